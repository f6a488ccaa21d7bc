//! Trigger definitions: which raw triggers marketing automation wants, each person at most as
//! often as a cap allows. Checked here (types, the segment, target values, the cap); fired by
//! the store in the transaction that appends the raw triggers.

use std::collections::HashSet;

use touchline_proto::modeling::v1::TriggerType;

use super::super::Modeling;
use crate::error::ModelingError;
use crate::journeys::query::Violations;
use crate::store::activation::{self as store, DefinitionSpec, StoredDefinition};
use crate::store::segments as segment_store;

/// The smallest cap period: one minute.
pub const MIN_CAP_PERIOD_SECS: i64 = 60;
/// The largest: 90 days.
pub const MAX_CAP_PERIOD_SECS: i64 = 90 * 86_400;
/// The most triggers a cap allows per period.
pub const MAX_CAP_TRIGGERS: i32 = 1_000;

/// A definition as a caller sent it (names already reduced to ids by the adapter).
#[derive(Debug, Clone, Default)]
pub struct DefinitionInput {
    /// For people.
    pub display_name: String,
    /// The contract's `TriggerType` number.
    pub trigger_type: i32,
    /// For segment types, the segment id.
    pub segment: String,
    /// Lifecycle stages changed to (contract numbers).
    pub lifecycle_stages: Vec<i32>,
    /// RFM segments changed to (contract numbers).
    pub rfm_segments: Vec<i32>,
    /// The cap: most triggers and period (seconds), when one was sent.
    pub cap: Option<(i32, i64)>,
    /// Problems found while reading the request.
    pub problems: Violations,
}

/// A new definition.
#[derive(Debug, Clone, Default)]
pub struct NewDefinition {
    /// The id; generated when empty.
    pub id: String,
    /// The fields.
    pub input: DefinitionInput,
    /// The idempotency key.
    pub request_id: String,
}

fn is_segment_type(t: TriggerType) -> bool {
    matches!(
        t,
        TriggerType::SegmentEntered
            | TriggerType::SegmentExited
            | TriggerType::SegmentMemberUpdated
    )
}

/// The target values the type takes, from the list sent for it; a list sent for another type
/// is a violation.
fn targets(t: TriggerType, input: &DefinitionInput, problems: &mut Violations) -> Vec<i16> {
    let field = "trigger_definition";
    let (stages, rfm) = (&input.lifecycle_stages, &input.rfm_segments);
    if t != TriggerType::LifecycleStageChanged && !stages.is_empty() {
        problems.add(
            format!("{field}.lifecycle_stages"),
            "NOT_FOR_TYPE",
            "lifecycle stages filter LIFECYCLE_STAGE_CHANGED only",
        );
    }
    if t != TriggerType::RfmSegmentChanged && !rfm.is_empty() {
        problems.add(
            format!("{field}.rfm_segments"),
            "NOT_FOR_TYPE",
            "RFM segments filter RFM_SEGMENT_CHANGED only",
        );
    }
    let (list, path, known): (&[i32], &str, fn(i32) -> bool) = match t {
        TriggerType::LifecycleStageChanged => (stages, "lifecycle_stages", |n| {
            touchline_proto::modeling::v1::LifecycleStage::try_from(n).is_ok()
        }),
        TriggerType::RfmSegmentChanged => (rfm, "rfm_segments", |n| {
            touchline_proto::modeling::v1::RfmSegment::try_from(n).is_ok()
        }),
        _ => return Vec::new(),
    };
    let mut values = Vec::with_capacity(list.len());
    for (index, number) in list.iter().enumerate() {
        match i16::try_from(*number) {
            Ok(value) if *number != 0 && known(*number) => values.push(value),
            _ => problems.add(
                format!("{field}.{path}[{index}]"),
                "UNKNOWN_VALUE",
                "an unknown value",
            ),
        }
    }
    values.sort_unstable();
    values.dedup();
    values
}

/// The cap, checked: 1–1,000 triggers in 1 minute to 90 days.
fn cap(asked: Option<(i32, i64)>, problems: &mut Violations) -> (Option<i32>, Option<i64>) {
    let Some((most, period)) = asked else {
        return (None, None);
    };
    if !(1..=MAX_CAP_TRIGGERS).contains(&most) {
        problems.add(
            "trigger_definition.frequency_cap.max_triggers",
            "OUT_OF_RANGE",
            "from 1 to 1,000",
        );
    }
    if !(MIN_CAP_PERIOD_SECS..=MAX_CAP_PERIOD_SECS).contains(&period) {
        problems.add(
            "trigger_definition.frequency_cap.period",
            "OUT_OF_RANGE",
            "from 1 minute to 90 days",
        );
    }
    (Some(most), Some(period))
}

fn check_name(name: &str, problems: &mut Violations) {
    if name.chars().count() > 200 {
        problems.add(
            "trigger_definition.display_name",
            "TOO_LONG",
            "at most 200 characters",
        );
    }
}

impl Modeling {
    /// The segment ids the tenant has live.
    async fn live_segments(&self, tenant: &str) -> Result<HashSet<String>, ModelingError> {
        let mut conn = self.pool.acquire().await?;
        Ok(segment_store::all(&mut conn, tenant)
            .await?
            .into_iter()
            .filter(|s| !s.deleted)
            .map(|s| s.id)
            .collect())
    }

    /// The definition `input` describes, checked; problems are added to `problems`.
    async fn definition_spec(
        &self,
        tenant: &str,
        input: &DefinitionInput,
        problems: &mut Violations,
    ) -> Result<DefinitionSpec, ModelingError> {
        check_name(&input.display_name, problems);
        let t = TriggerType::try_from(input.trigger_type).unwrap_or(TriggerType::Unspecified);
        if t == TriggerType::Unspecified {
            problems.add(
                "trigger_definition.type",
                "REQUIRED",
                "a known trigger type",
            );
        }
        if is_segment_type(t) {
            if input.segment.is_empty() {
                problems.add(
                    "trigger_definition.segment",
                    "REQUIRED",
                    "segment triggers name their segment",
                );
            } else if !self.live_segments(tenant).await?.contains(&input.segment) {
                return Err(ModelingError::NotFound("segment"));
            }
        } else if !input.segment.is_empty() {
            problems.add(
                "trigger_definition.segment",
                "NOT_FOR_TYPE",
                "only segment triggers name a segment",
            );
        }
        let target_values = targets(t, input, problems);
        let (cap_max, cap_period_secs) = cap(input.cap, problems);
        Ok(DefinitionSpec {
            display_name: input.display_name.clone(),
            trigger_type: t as i16,
            segment_id: input.segment.clone(),
            target_values,
            cap_max,
            cap_period_secs,
        })
    }

    /// Creates a trigger definition.
    pub async fn create_trigger_definition(
        &self,
        tenant: &str,
        new: NewDefinition,
    ) -> Result<StoredDefinition, ModelingError> {
        if !new.request_id.is_empty()
            && let Some(id) = store::definition_request(&self.pool, tenant, &new.request_id).await?
        {
            return self.trigger_definition(tenant, &id).await;
        }
        let mut problems = new.input.problems.clone();
        let id = super::super::resource_id::or_generated(new.id, "trigger");
        super::super::resource_id::check("trigger_definition_id", &id, &mut problems);
        let spec = self
            .definition_spec(tenant, &new.input, &mut problems)
            .await?;
        if !problems.is_empty() {
            return Err(ModelingError::Invalid(problems.0));
        }
        let mut tx = self.pool.begin().await?;
        if !store::insert_definition(&mut tx, tenant, &id, &spec).await? {
            return Err(ModelingError::AlreadyExists("trigger definition"));
        }
        if !new.request_id.is_empty() {
            store::record_definition_request(&mut tx, tenant, &new.request_id, &id).await?;
        }
        tx.commit().await?;
        self.trigger_definition(tenant, &id).await
    }

    /// One trigger definition.
    pub async fn trigger_definition(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<StoredDefinition, ModelingError> {
        store::definition(&self.pool, tenant, id)
            .await?
            .ok_or(ModelingError::NotFound("trigger definition"))
    }

    /// A page of trigger definitions after the id `after`, and whether more follow.
    pub async fn trigger_definitions(
        &self,
        tenant: &str,
        after: &str,
        size: i64,
    ) -> Result<(Vec<StoredDefinition>, bool), ModelingError> {
        let mut page = store::definitions(&self.pool, tenant, after, size + 1).await?;
        let more = page.len() > usize::try_from(size).unwrap_or(usize::MAX);
        page.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        Ok((page, more))
    }

    /// Changes the masked fields of a definition (its name, target values and cap; its type
    /// and segment cannot change). `etag`, when not empty, must be the current one.
    pub async fn update_trigger_definition(
        &self,
        tenant: &str,
        id: &str,
        etag: &str,
        input: DefinitionInput,
        paths: &[String],
    ) -> Result<StoredDefinition, ModelingError> {
        let mut problems = input.problems.clone();
        if paths.is_empty() {
            problems.add("update_mask", "REQUIRED", "name the fields to change");
        }
        let mut tx = self.pool.begin().await?;
        let current = store::lock_definition(&mut tx, tenant, id)
            .await?
            .ok_or(ModelingError::NotFound("trigger definition"))?;
        if !etag.is_empty() && etag != current.revision.to_string() {
            return Err(ModelingError::Aborted("the trigger definition changed"));
        }
        let all = paths.iter().any(|p| p == "*");
        let wants = |field: &str| all || paths.iter().any(|p| p == field);
        for path in paths {
            if !matches!(
                path.as_str(),
                "*" | "display_name" | "lifecycle_stages" | "rfm_segments" | "frequency_cap"
            ) {
                problems.add(
                    "update_mask",
                    "UNKNOWN_FIELD",
                    format!("{path:?} cannot be changed"),
                );
            }
        }
        let spec = current.spec();
        let t = TriggerType::try_from(i32::from(spec.trigger_type)).unwrap_or_default();
        let wanted = DefinitionInput {
            display_name: if wants("display_name") {
                input.display_name
            } else {
                spec.display_name.clone()
            },
            trigger_type: t as i32,
            segment: spec.segment_id.clone(),
            lifecycle_stages: match (wants("lifecycle_stages"), t) {
                (true, _) => input.lifecycle_stages,
                (false, TriggerType::LifecycleStageChanged) => {
                    spec.target_values.iter().map(|v| i32::from(*v)).collect()
                }
                (false, _) => Vec::new(),
            },
            rfm_segments: match (wants("rfm_segments"), t) {
                (true, _) => input.rfm_segments,
                (false, TriggerType::RfmSegmentChanged) => {
                    spec.target_values.iter().map(|v| i32::from(*v)).collect()
                }
                (false, _) => Vec::new(),
            },
            cap: if wants("frequency_cap") {
                input.cap
            } else {
                spec.cap_max.zip(spec.cap_period_secs)
            },
            problems: Violations::default(),
        };
        // The segment is not looked up again: it cannot change, and was checked on create.
        check_name(&wanted.display_name, &mut problems);
        let target_values = targets(t, &wanted, &mut problems);
        let (cap_max, cap_period_secs) = cap(wanted.cap, &mut problems);
        if !problems.is_empty() {
            return Err(ModelingError::Invalid(problems.0));
        }
        let changed = DefinitionSpec {
            display_name: wanted.display_name,
            target_values,
            cap_max,
            cap_period_secs,
            ..spec
        };
        store::update_definition(&mut tx, tenant, id, &changed).await?;
        tx.commit().await?;
        self.trigger_definition(tenant, id).await
    }

    /// Deletes a definition; `Ok(false)` when there was none. Refused while a webhook
    /// destination delivers its triggers.
    pub async fn delete_trigger_definition(
        &self,
        tenant: &str,
        id: &str,
        etag: &str,
    ) -> Result<bool, ModelingError> {
        let mut tx = self.pool.begin().await?;
        let Some(current) = store::lock_definition(&mut tx, tenant, id).await? else {
            return Ok(false);
        };
        if !etag.is_empty() && etag != current.revision.to_string() {
            return Err(ModelingError::Aborted("the trigger definition changed"));
        }
        let delivering = store::delivering_definition(&mut tx, tenant, id).await?;
        if !delivering.is_empty() {
            return Err(ModelingError::FailedPrecondition(format!(
                "webhook destinations {} deliver this definition's triggers; change them first",
                delivering.join(", ")
            )));
        }
        let deleted = store::delete_definition(&mut tx, tenant, id).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// Adds a violation for each named definition the tenant does not have.
    pub(super) async fn check_definitions(
        &self,
        tenant: &str,
        ids: &[String],
        field: &str,
        problems: &mut Violations,
    ) -> Result<(), ModelingError> {
        if ids.is_empty() {
            return Ok(());
        }
        let existing = store::existing_definitions(&self.pool, tenant, ids).await?;
        for (index, id) in ids.iter().enumerate() {
            if !existing.contains(id) {
                problems.add(
                    format!("{field}[{index}]"),
                    "UNKNOWN_TRIGGER_DEFINITION",
                    format!("no trigger definition {id:?} in this tenant"),
                );
            }
        }
        Ok(())
    }
}
