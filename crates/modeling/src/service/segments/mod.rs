//! Segment calls: definitions with etags and request ids, previews, members as of one change
//! sequence and the change log (`mod`, reads in `reads`); keeping membership current and publishing its
//! changes (`membership`); the loop that does it as events arrive and time passes, and the
//! signal that wakes change streams (`worker`).

mod membership;
mod reads;
mod worker;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use uuid::Uuid;

pub use worker::{KEEP_CHANGES, SegmentSignals, SegmentWorker};

use super::Modeling;
use super::outputs::Needs;
use crate::error::ModelingError;
use crate::journeys::query::Violations;
use crate::journeys::segments::rule::evaluation_order;
use crate::journeys::segments::{self, Rule};
use crate::store::segments::{self as store, Definition, SegmentRow, StoredChange, StoredMember};

/// The default re-evaluation interval of window conditions (seconds).
pub const DEFAULT_REEVALUATION_SECS: i64 = 3_600;
/// Its bounds.
pub const REEVALUATION_SECS: std::ops::RangeInclusive<i64> = 300..=86_400;
/// Longest display name.
const MAX_DISPLAY_NAME: usize = 200;
/// Longest description.
const MAX_DESCRIPTION: usize = 2_000;
/// Persons a preview names.
const PREVIEW_SAMPLE: usize = 20;
/// Most segments a page lists.
pub const MAX_SEGMENTS_PAGE: i64 = 500;
/// Most members or changes a page holds.
pub const MAX_ROWS_PAGE: i64 = 5_000;

/// A segment's fields as a caller sent them.
#[derive(Debug, Clone, Default)]
pub struct SegmentInput {
    /// For people.
    pub display_name: String,
    /// What it is for.
    pub description: String,
    /// Who is a member; `None` when not sent.
    pub rule: Option<Rule>,
    /// Seconds; `None` takes the default.
    pub reevaluation_secs: Option<i64>,
    /// Identifier types whose change for a member publishes an update.
    pub identifier_update_types: Vec<String>,
    /// Problems found while reading the request (conditions this service cannot take).
    pub problems: Violations,
}

/// A new segment as asked for.
#[derive(Debug, Clone, Default)]
pub struct NewSegment {
    /// The id; generated when empty.
    pub id: String,
    /// The fields.
    pub input: SegmentInput,
    /// The idempotency key; empty for none.
    pub request_id: String,
    /// Check and preview only.
    pub validate_only: bool,
}

/// A segment change as asked for.
#[derive(Debug, Clone, Default)]
pub struct SegmentUpdate {
    /// The segment.
    pub id: String,
    /// The incoming fields; only the masked ones are taken.
    pub input: SegmentInput,
    /// The etag the caller read; empty skips the check.
    pub etag: String,
    /// The update mask's paths.
    pub paths: Vec<String>,
    /// The idempotency key; empty for none.
    pub request_id: String,
    /// Check and preview only.
    pub validate_only: bool,
}

/// Who a rule selects now.
#[derive(Debug, Clone, Default)]
pub struct Preview {
    /// How many (opted-out persons excluded).
    pub member_count: i64,
    /// Up to 20 of them, by id.
    pub sample: Vec<Uuid>,
    /// The store revision it reflects.
    pub as_of_revision: i64,
}

/// A stored segment, and the preview when only checked.
#[derive(Debug, Clone)]
pub struct SegmentReply {
    /// The segment as stored (or as it would be).
    pub segment: SegmentRow,
    /// With `validate_only`.
    pub preview: Option<Preview>,
}

/// A page of members as of one change sequence.
#[derive(Debug, Clone)]
pub struct MembersPage {
    /// The members.
    pub members: Vec<StoredMember>,
    /// Whether more follow.
    pub more: bool,
    /// Members across all pages.
    pub total: i64,
    /// The sequence every page reflects.
    pub as_of_sequence: i64,
}

/// A page of the change log.
#[derive(Debug, Clone)]
pub struct ChangesPage {
    /// In sequence order.
    pub changes: Vec<StoredChange>,
    /// Whether the log has more after them.
    pub more: bool,
    /// The tenant's newest sequence.
    pub head_sequence: i64,
}

fn check_texts(display_name: &str, description: &str, problems: &mut Violations) {
    if display_name.chars().count() > MAX_DISPLAY_NAME {
        problems.add("segment.display_name", "TOO_LONG", "at most 200 characters");
    }
    if description.chars().count() > MAX_DESCRIPTION {
        problems.add(
            "segment.description",
            "TOO_LONG",
            "at most 2,000 characters",
        );
    }
}

fn check_reevaluation(secs: Option<i64>, problems: &mut Violations) -> i64 {
    match secs {
        None => DEFAULT_REEVALUATION_SECS,
        Some(secs) if REEVALUATION_SECS.contains(&secs) => secs,
        Some(_) => {
            problems.add(
                "segment.reevaluation_interval",
                "OUT_OF_RANGE",
                "from 5 minutes to 1 day",
            );
            DEFAULT_REEVALUATION_SECS
        }
    }
}

/// Most identifier types a segment publishes updates for.
pub const MAX_IDENTIFIER_UPDATE_TYPES: usize = 10;

/// The identifier types a segment publishes member updates for, trimmed, without repeats.
fn check_update_types(types: Vec<String>, problems: &mut Violations) -> Vec<String> {
    if types.len() > MAX_IDENTIFIER_UPDATE_TYPES {
        problems.add(
            "segment.identifier_update_types",
            "TOO_MANY",
            "at most 10 identifier types",
        );
    }
    let mut kept: Vec<String> = Vec::with_capacity(types.len());
    for (i, id_type) in types.into_iter().enumerate() {
        let id_type = id_type.trim().to_owned();
        if id_type.is_empty() || id_type.chars().count() > 64 || id_type.contains('\0') {
            problems.add(
                format!("segment.identifier_update_types[{i}]"),
                "INVALID_IDENTIFIER_TYPE",
                "an identifier type of 1–64 characters, e.g. member_card",
            );
        } else if !kept.contains(&id_type) {
            kept.push(id_type);
        }
    }
    kept
}

/// Problems with the segments a rule names: its own, unknown ones, and cycles through the
/// tenant's other segments.
fn check_references(own: &str, rule: &Rule, others: &[SegmentRow], problems: &mut Violations) {
    let live: HashSet<&str> = others
        .iter()
        .filter(|s| !s.deleted)
        .map(|s| s.id.as_str())
        .collect();
    for named in rule.referenced_segments() {
        if named == own {
            problems.add(
                "segment.rule",
                "SEGMENT_CYCLE",
                format!("the rule refers to its own segment {named:?}"),
            );
        } else if !live.contains(named.as_str()) {
            problems.add(
                "segment.rule",
                "UNKNOWN_SEGMENT",
                format!("no segment {named:?} in this tenant"),
            );
        }
    }
    let mut graph: Vec<(String, BTreeSet<String>)> = others
        .iter()
        .filter(|s| !s.deleted && s.id != own)
        .map(|s| (s.id.clone(), s.definition.rule.referenced_segments()))
        .collect();
    graph.push((own.to_owned(), rule.referenced_segments()));
    if let Err(cycle) = evaluation_order(&graph) {
        problems.add(
            "segment.rule",
            "SEGMENT_CYCLE",
            format!(
                "segment membership goes round in a cycle through {}",
                cycle.join(", ")
            ),
        );
    }
}

/// `current` with the masked fields of `input`.
fn merged(
    current: &Definition,
    input: SegmentInput,
    paths: &[String],
    problems: &mut Violations,
) -> Definition {
    let all = paths.iter().any(|p| p == "*");
    let wants = |field: &str| all || paths.iter().any(|p| p == field);
    let mut definition = current.clone();
    for path in paths {
        if !matches!(
            path.as_str(),
            "*" | "display_name"
                | "description"
                | "rule"
                | "reevaluation_interval"
                | "identifier_update_types"
        ) {
            problems.add(
                "update_mask",
                "UNKNOWN_FIELD",
                format!("{path:?} cannot be changed"),
            );
        }
    }
    if wants("display_name") {
        definition.display_name = input.display_name;
    }
    if wants("description") {
        definition.description = input.description;
    }
    check_texts(&definition.display_name, &definition.description, problems);
    if wants("reevaluation_interval") {
        definition.reevaluation_secs = check_reevaluation(input.reevaluation_secs, problems);
    }
    if wants("identifier_update_types") {
        definition.identifier_update_types =
            check_update_types(input.identifier_update_types, problems);
    }
    if wants("rule") {
        match input.rule {
            Some(rule) => definition.rule = rule,
            None => problems.add("segment.rule", "REQUIRED", "a segment needs a rule"),
        }
    }
    definition
}

fn invalid(problems: Violations) -> ModelingError {
    ModelingError::Invalid(problems.0)
}

fn fail_on(problems: Violations) -> Result<(), ModelingError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(invalid(problems))
    }
}

impl Modeling {
    /// Checks a rule against the tenant's segments (names, cycles) and its events, and
    /// previews who it selects now. `own` is the segment the rule is for.
    async fn check_and_preview(
        &self,
        tenant: &str,
        own: &str,
        rule: &Rule,
        mut problems: Violations,
    ) -> Result<Preview, ModelingError> {
        rule.check("segment.rule", &mut problems);
        let mut conn = self.pool.acquire().await?;
        let others = store::all(&mut conn, tenant).await?;
        drop(conn);
        check_references(own, rule, &others, &mut problems);
        fail_on(std::mem::take(&mut problems))?;
        let mut stored = HashMap::new();
        for named in rule.referenced_segments() {
            let mut conn = self.pool.acquire().await?;
            let members = store::current_members(&mut conn, tenant, &named).await?;
            stored.insert(named, Arc::new(members.into_iter().collect::<HashSet<_>>()));
        }
        let mut inputs = self.output_inputs(tenant, Needs::of(&[rule])).await?;
        self.read_holders(tenant, &[rule], &mut inputs).await?;
        let opted_out = crate::store::opted_out_persons(&self.pool, tenant).await?;
        let rule = rule.clone();
        self.on_view(tenant, rule.event_names(), move |view, run| {
            let lookup = |name: &str| stored.get(name).cloned();
            let now_ms = chrono::Utc::now().timestamp_millis();
            let outputs = inputs.outputs(view, run, now_ms)?;
            let context = inputs.context(&outputs, now_ms);
            let mut evaluation =
                segments::preview(view, &rule, &lookup, &run.defined, &context, run.threads)
                    .map_err(invalid)?;
            evaluation.members.retain(|p| !opted_out.contains(p));
            Ok(Preview {
                member_count: i64::try_from(evaluation.members.len()).unwrap_or(i64::MAX),
                sample: evaluation
                    .members
                    .iter()
                    .take(PREVIEW_SAMPLE)
                    .copied()
                    .collect(),
                as_of_revision: view.positions.revision,
            })
        })
        .await
    }

    /// Creates a segment; its first build follows within moments, publishing an entry of
    /// every member with reason SEGMENT_CREATED.
    pub async fn create_segment(
        &self,
        tenant: &str,
        request: NewSegment,
    ) -> Result<SegmentReply, ModelingError> {
        let NewSegment {
            id,
            input,
            request_id,
            validate_only,
        } = request;
        let mut problems = input.problems;
        let id = super::resource_id::or_generated(id, "segment");
        super::resource_id::check("segment_id", &id, &mut problems);
        check_texts(&input.display_name, &input.description, &mut problems);
        let reevaluation_secs = check_reevaluation(input.reevaluation_secs, &mut problems);
        let identifier_update_types =
            check_update_types(input.identifier_update_types, &mut problems);
        let Some(rule) = input.rule else {
            problems.add("segment.rule", "REQUIRED", "a segment needs a rule");
            return Err(invalid(problems));
        };
        if !request_id.is_empty() && !validate_only {
            let mut conn = self.pool.acquire().await?;
            if let Some((segment, _)) =
                store::recorded_request(&mut conn, tenant, &request_id).await?
            {
                let row = store::get(&mut conn, tenant, &segment)
                    .await?
                    .ok_or(ModelingError::NotFound("segment"))?;
                return Ok(SegmentReply {
                    segment: row,
                    preview: None,
                });
            }
        }
        let preview = self.check_and_preview(tenant, &id, &rule, problems).await?;
        let definition = Definition {
            display_name: input.display_name,
            description: input.description,
            rule,
            reevaluation_secs,
            identifier_update_types,
        };
        if validate_only {
            let now = chrono::Utc::now();
            return Ok(SegmentReply {
                segment: SegmentRow {
                    id,
                    definition,
                    revision: 0,
                    rule_revision: 0,
                    built_rule_revision: None,
                    member_count: 0,
                    last_change_sequence: 0,
                    next_due_at: None,
                    created_at: now,
                    updated_at: now,
                    deleted: false,
                },
                preview: Some(preview),
            });
        }
        let mut tx = self.pool.begin().await?;
        if !store::insert(&mut tx, tenant, &id, &definition).await? {
            return Err(ModelingError::AlreadyExists("segment"));
        }
        if !request_id.is_empty() {
            store::record_request(&mut tx, tenant, &request_id, &id, "create").await?;
        }
        let row = store::get(&mut tx, tenant, &id)
            .await?
            .ok_or(ModelingError::Internal("segment create"))?;
        tx.commit().await?;
        self.segment_signals.wake();
        Ok(SegmentReply {
            segment: row,
            preview: None,
        })
    }

    /// One segment.
    pub async fn get_segment(&self, tenant: &str, id: &str) -> Result<SegmentRow, ModelingError> {
        let mut conn = self.pool.acquire().await?;
        store::get(&mut conn, tenant, id)
            .await?
            .ok_or(ModelingError::NotFound("segment"))
    }

    /// Segments after `after`, by id; the flag says whether more follow.
    pub async fn list_segments(
        &self,
        tenant: &str,
        after: &str,
        size: i64,
    ) -> Result<(Vec<SegmentRow>, bool), ModelingError> {
        let size = size.clamp(1, MAX_SEGMENTS_PAGE);
        let mut rows = store::list(&self.pool, tenant, after, size + 1).await?;
        let more = rows.len() as i64 > size;
        rows.truncate(size as usize);
        Ok((rows, more))
    }

    /// Changes a segment's masked fields; a rule change rebuilds its membership, publishing
    /// the differences with reason RULE_CHANGED.
    pub async fn update_segment(
        &self,
        tenant: &str,
        update: SegmentUpdate,
    ) -> Result<SegmentReply, ModelingError> {
        let SegmentUpdate {
            id,
            input,
            etag,
            paths,
            request_id,
            validate_only,
        } = update;
        let mut input = input;
        let mut problems = std::mem::take(&mut input.problems);
        if paths.is_empty() {
            problems.add("update_mask", "REQUIRED", "name the fields to change, or *");
        }
        if !request_id.is_empty() && !validate_only {
            let mut conn = self.pool.acquire().await?;
            if store::recorded_request(&mut conn, tenant, &request_id)
                .await?
                .is_some()
            {
                return Ok(SegmentReply {
                    segment: self.get_segment(tenant, &id).await?,
                    preview: None,
                });
            }
        }
        let current = self.get_segment(tenant, &id).await?;
        if !etag.is_empty() && etag != current.revision.to_string() {
            return Err(ModelingError::Aborted(
                "the segment changed since it was read",
            ));
        }
        let definition = merged(&current.definition, input, &paths, &mut problems);
        let rule_changed = definition.rule != current.definition.rule;
        let preview = self
            .check_and_preview(tenant, &id, &definition.rule, problems)
            .await?;
        if validate_only {
            return Ok(SegmentReply {
                segment: SegmentRow {
                    definition,
                    ..current
                },
                preview: Some(preview),
            });
        }
        let mut tx = self.pool.begin().await?;
        let locked = store::get(&mut tx, tenant, &id)
            .await?
            .ok_or(ModelingError::NotFound("segment"))?;
        if locked.revision != current.revision {
            return Err(ModelingError::Aborted(
                "the segment changed while it was being updated",
            ));
        }
        store::update(&mut tx, tenant, &id, &definition, rule_changed).await?;
        if !request_id.is_empty() {
            store::record_request(&mut tx, tenant, &request_id, &id, "update").await?;
        }
        let row = store::get(&mut tx, tenant, &id)
            .await?
            .ok_or(ModelingError::Internal("segment update"))?;
        tx.commit().await?;
        if rule_changed {
            self.segment_signals.wake();
        }
        Ok(SegmentReply {
            segment: row,
            preview: None,
        })
    }

    /// Deletes a segment: the worker publishes its members' exits (reason SEGMENT_DELETED).
    /// Refused while another segment's rule or a trigger definition names it.
    pub async fn delete_segment(
        &self,
        tenant: &str,
        id: &str,
        etag: &str,
        allow_missing: bool,
        request_id: &str,
    ) -> Result<(), ModelingError> {
        let mut tx = self.pool.begin().await?;
        if !request_id.is_empty()
            && store::recorded_request(&mut tx, tenant, request_id)
                .await?
                .is_some()
        {
            return Ok(());
        }
        let Some(current) = store::get(&mut tx, tenant, id).await? else {
            return if allow_missing {
                Ok(())
            } else {
                Err(ModelingError::NotFound("segment"))
            };
        };
        if !etag.is_empty() && etag != current.revision.to_string() {
            return Err(ModelingError::Aborted(
                "the segment changed since it was read",
            ));
        }
        let naming: Vec<String> = store::all(&mut tx, tenant)
            .await?
            .into_iter()
            .filter(|s| !s.deleted && s.definition.rule.referenced_segments().contains(id))
            .map(|s| s.id)
            .collect();
        if !naming.is_empty() {
            return Err(ModelingError::FailedPrecondition(format!(
                "segments {} refer to this segment; change their rules first",
                naming.join(", ")
            )));
        }
        let defining = crate::store::activation::naming_segment(&mut tx, tenant, id).await?;
        if !defining.is_empty() {
            return Err(ModelingError::FailedPrecondition(format!(
                "trigger definitions {} fire on this segment; delete or change them first",
                defining.join(", ")
            )));
        }
        store::mark_deleted(&mut tx, tenant, id).await?;
        if !request_id.is_empty() {
            store::record_request(&mut tx, tenant, request_id, id, "delete").await?;
        }
        tx.commit().await?;
        self.segment_signals.wake();
        Ok(())
    }
}
