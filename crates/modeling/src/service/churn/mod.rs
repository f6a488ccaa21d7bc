//! Model settings, RFM and churn calls: the settings' reads and transaction (`settings`), and
//! the churn table computed once per view revision, settings version and rule segments'
//! members, kept per tenant (`cache`).

mod cache;
mod settings;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

pub use cache::ChurnCache;
use cache::TableKey;
pub use settings::SettingsUpdate;

use super::Modeling;
use crate::error::ModelingError;
use crate::journeys::churn::{
    self, ChurnRow, ChurnTable, PersonRfm, PurchaseEvent, RuleMembers, RuleOutcome,
};
use crate::journeys::churn_pages::{
    self, ChurnListQuery, ChurnPage, MAX_PAGE_SIZE, RfmCursor, decode_rfm_token, rfm_token,
};
use crate::journeys::churn_settings::{
    Effective, ModelSettings, RfmOptions, RfmSettings, VersionedSettings, check_purchase,
    rfm_options,
};
use crate::journeys::listings::request_key;
use crate::journeys::query::{Matcher, Violations, check_instant};
use crate::store::model_settings as store;

/// Most persons one GetChurnScores names.
pub const MAX_PERSONS: usize = 1_000;

/// An RFM run as asked for.
#[derive(Debug, Clone, Default)]
pub struct RfmQuery {
    /// What a purchase is; `None` takes the settings'.
    pub purchase_event: Option<Matcher>,
    /// The value field; empty takes the settings'.
    pub value_field: String,
    /// Overrides of the settings' RFM options.
    pub settings: RfmSettings,
    /// The evaluation time; `None` is now.
    pub as_of_ms: Option<i64>,
    /// A segment (not supported yet).
    pub segment: String,
    /// Persons to return (0: none).
    pub page_size: i32,
    /// The token of the persons' page.
    pub page_token: String,
}

/// An RFM run's reply.
#[derive(Debug, Clone)]
pub struct RfmPage {
    /// The run (its persons are the page's only).
    pub run: churn::RfmRun,
    /// The persons of this page, by id.
    pub persons: Vec<PersonRfm>,
    /// The next page's token.
    pub next_page_token: String,
    /// The evaluation time (ms).
    pub as_of_ms: i64,
    /// The options used.
    pub options: RfmOptions,
}

/// The churn outputs of named persons.
#[derive(Debug, Clone)]
pub struct ChurnScores {
    /// Found persons in request order.
    pub rows: Vec<ChurnRow>,
    /// The names asked for that are unknown or erased.
    pub missing: Vec<String>,
    /// Of the found persons, those who opted out.
    pub opted_out: HashSet<Uuid>,
    /// When the table was computed (ms).
    pub compute_ms: i64,
    /// The inactivity rules' outcomes, which rows name by index.
    pub rules: Vec<RuleOutcome>,
}

/// A page of churn outputs.
#[derive(Debug, Clone)]
pub struct ChurnScoresPage {
    /// The page.
    pub page: ChurnPage,
    /// When the table was computed (ms).
    pub compute_ms: i64,
    /// The inactivity rules' outcomes, which rows name by index.
    pub rules: Vec<RuleOutcome>,
}

fn invalid(problems: Violations) -> ModelingError {
    ModelingError::Invalid(problems.0)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// An RFM request after its checks.
struct CheckedRfm {
    options: RfmOptions,
    size: usize,
    request: u64,
    cursor: Option<RfmCursor>,
    as_of_ms: i64,
}

/// Checks an RFM request against the stored settings it falls back on, naming every problem.
fn check_rfm(
    tenant: &str,
    stored: &ModelSettings,
    query: &RfmQuery,
) -> Result<CheckedRfm, ModelingError> {
    let mut problems = Violations::default();
    let merged = RfmSettings {
        lookback: query.settings.lookback.or(stored.rfm.lookback),
        score_levels: match query.settings.score_levels {
            0 => stored.rfm.score_levels,
            n => n,
        },
        segment_rules: if query.settings.segment_rules.is_empty() {
            stored.rfm.segment_rules.clone()
        } else {
            query.settings.segment_rules.clone()
        },
    };
    let options = rfm_options(&merged, "settings", &mut problems);
    if let Some(matcher) = &query.purchase_event {
        check_purchase(matcher, "purchase_event", &mut problems);
    }
    if !query.value_field.is_empty() {
        problems.add(
            "value_field",
            "UNSUPPORTED",
            "purchase values come from the dictionary's value property; leave value_field empty",
        );
    }
    if !query.segment.is_empty() {
        problems.add(
            "segment",
            "UNSUPPORTED",
            "RFM cannot be limited to a segment yet; leave segment empty",
        );
    }
    let size = churn_pages::page_size(query.page_size, 0, &mut problems).min(MAX_PAGE_SIZE);
    let request = request_key(&format!(
        "{tenant}|{:?}|{:?}|{:?}|{}",
        query.purchase_event, query.settings, query.as_of_ms, query.segment
    ));
    let cursor = decode_rfm_token(&query.page_token, request, &mut problems);
    let as_of_ms = cursor
        .map(|c| c.as_of_ms)
        .or(query.as_of_ms)
        .unwrap_or_else(now_ms);
    check_instant(as_of_ms, "as_of", &mut problems);
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    Ok(CheckedRfm {
        options,
        size,
        request,
        cursor,
        as_of_ms,
    })
}

impl Modeling {
    /// The purchase event of the settings: their matcher, or the dictionary's conversions.
    pub(super) async fn purchase_event(
        &self,
        tenant: &str,
        matcher: Option<&Matcher>,
    ) -> Result<PurchaseEvent, ModelingError> {
        Ok(match matcher {
            Some(matcher) => PurchaseEvent::Matcher(matcher.clone()),
            None => PurchaseEvent::Conversions(self.dictionary_conversions(tenant).await?),
        })
    }

    /// The names of the dictionary's conversion events; none when governance is not
    /// configured. A dictionary that cannot be read fails the call (UNAVAILABLE) rather than
    /// answering as if nobody had bought anything.
    async fn dictionary_conversions(&self, tenant: &str) -> Result<Vec<String>, ModelingError> {
        let Some(governance) = &self.governance else {
            return Ok(Vec::new());
        };
        let events = governance
            .canonical_events(tenant)
            .await
            .map_err(|status| ModelingError::upstream("governance", &status))?;
        Ok(events
            .into_iter()
            .filter(|event| event.conversion)
            .map(|event| event.name)
            .collect())
    }

    /// The churn table of the current view and `settings`, from the cache when neither
    /// moved since it was computed.
    pub(super) async fn churn_table(
        &self,
        tenant: &str,
        settings: &VersionedSettings,
    ) -> Result<Arc<ChurnTable>, ModelingError> {
        let effective = settings.settings.validate("").map_err(|problems| {
            tracing::error!(
                violations = problems.0.len(),
                "stored model settings break a rule"
            );
            ModelingError::Internal("model settings")
        })?;
        let purchase = self
            .purchase_event(tenant, effective.purchase_event.as_ref())
            .await?;
        let members = self.rule_members(tenant, &effective).await?;
        // The members are part of the key: a segment's new members change the table even when
        // the events did not move.
        let settings_key = request_key(&(&settings.etag, format!("{purchase:?}"), &members.0));
        let cache = self.churn.clone();
        let tenant_name = tenant.to_owned();
        let refit = Duration::from_secs(u64::try_from(effective.refit_secs).unwrap_or(86_400));
        self.on_view(tenant, Vec::new(), move |view, run| {
            let now = now_ms();
            let key = TableKey {
                positions: view.positions,
                settings: settings_key,
            };
            let reuse = match cache.lookup(&tenant_name, &key, refit, now) {
                Ok(table) => return Ok(table),
                Err(fit) => fit,
            };
            let condition =
                churn::purchase_condition(view, &purchase, run, "purchase_event", false)
                    .map_err(invalid)?;
            let table = Arc::new(churn::churn_table(
                view,
                &condition,
                (&effective, &members),
                now,
                reuse,
                run,
            ));
            cache.keep(&tenant_name, key, table.clone());
            Ok(table)
        })
        .await
    }

    /// The members of each segment rule's segment as the segment worker last published them,
    /// sorted; a segment that no longer exists (or another tenant's) holds nobody, so its
    /// rule applies to nobody until the settings name another.
    async fn rule_members(
        &self,
        tenant: &str,
        effective: &Effective,
    ) -> Result<RuleMembers, ModelingError> {
        let mut members = Vec::with_capacity(effective.rules.len());
        for rule in &effective.rules {
            let id = rule
                .segment
                .as_deref()
                .and_then(|name| crate::domain::tenant_segment_id(name, tenant));
            let mut persons = match id {
                Some(id) => crate::store::segments::live_members(&self.pool, tenant, id)
                    .await?
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            persons.sort_unstable();
            members.push(persons);
        }
        Ok(RuleMembers(members))
    }

    /// Recomputes the tenant's churn table when its events moved (at most every few
    /// seconds, and no more often than ten times what the last computation took) or time
    /// passed (at least every minute), so that reads of scores and flags find them current
    /// instead of computing them; true when it looked.
    pub(in crate::service) async fn refresh_churn_scores(
        &self,
        tenant: &str,
        memory: &mut crate::service::activation::ModelMemory,
    ) -> Result<bool, ModelingError> {
        if !memory.could_be_due() {
            return Ok(false);
        }
        let revision = self.journeys.current(tenant).await?.positions.revision;
        if !memory.due(revision) {
            return Ok(false);
        }
        // Marked before computing: a failing tenant is retried at the same pace, not on
        // every turn of the worker.
        memory.looked(revision);
        let started = std::time::Instant::now();
        let settings = self.model_settings(tenant).await?;
        let table = self.churn_table(tenant, &settings).await?;
        memory.paced(started.elapsed());
        tracing::debug!(tenant, persons = table.rows.len(), "churn scores refreshed");
        Ok(true)
    }

    /// RFM scores and segments over every event committed before the call.
    pub async fn run_rfm(&self, tenant: &str, query: &RfmQuery) -> Result<RfmPage, ModelingError> {
        let settings = self.model_settings(tenant).await?;
        let stored = &settings.settings;
        let checked = check_rfm(tenant, stored, query)?;
        let CheckedRfm {
            options,
            size,
            request,
            cursor,
            as_of_ms,
        } = checked;
        let (purchase, strict) = match &query.purchase_event {
            Some(matcher) => (PurchaseEvent::Matcher(matcher.clone()), true),
            None => (
                self.purchase_event(tenant, stored.purchase_event.as_ref())
                    .await?,
                false,
            ),
        };
        let names = match &purchase {
            PurchaseEvent::Matcher(m) if strict && !m.event_name.is_empty() => {
                vec![m.event_name.clone()]
            }
            _ => Vec::new(),
        };
        let run_options = options.clone();
        let mut run = self
            .on_view(tenant, names, move |view, run| {
                let condition =
                    churn::purchase_condition(view, &purchase, run, "purchase_event", strict)
                        .map_err(invalid)?;
                Ok(churn::run_rfm(
                    view,
                    &condition,
                    &run_options,
                    as_of_ms,
                    run,
                ))
            })
            .await?;
        let start = cursor.map_or(0, |c| run.persons.partition_point(|p| p.person <= c.after));
        let persons: Vec<PersonRfm> = run.persons.iter().skip(start).take(size).copied().collect();
        let next_page_token = match persons.last() {
            Some(last) if start + persons.len() < run.persons.len() => rfm_token(
                request,
                RfmCursor {
                    as_of_ms,
                    after: last.person,
                },
            ),
            _ => String::new(),
        };
        run.persons = Vec::new();
        Ok(RfmPage {
            run,
            persons,
            next_page_token,
            as_of_ms,
            options,
        })
    }

    /// The churn outputs of the named persons (`tenants/{tenant}/persons/{id}`), merged ids
    /// answered by their survivor.
    pub async fn churn_scores(
        &self,
        tenant: &str,
        names: &[String],
    ) -> Result<ChurnScores, ModelingError> {
        let mut problems = Violations::default();
        if names.is_empty() || names.len() > MAX_PERSONS {
            problems.add(
                "persons",
                "OUT_OF_RANGE",
                format!("name 1 to {MAX_PERSONS} persons"),
            );
        }
        let prefix = format!("tenants/{tenant}/persons/");
        let mut ids = Vec::with_capacity(names.len());
        for (index, name) in names.iter().enumerate() {
            match name
                .strip_prefix(&prefix)
                .and_then(|id| Uuid::parse_str(id).ok())
            {
                Some(id) => ids.push(id),
                None => problems.add(
                    format!("persons[{index}]"),
                    "INVALID_PERSON",
                    "each person is tenants/{tenant}/persons/{person id}",
                ),
            }
        }
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        let survivors = store::survivors(&self.pool, tenant, &ids).await?;
        let settings = self.model_settings(tenant).await?;
        let table = self.churn_table(tenant, &settings).await?;
        let opted_out = crate::store::opted_out_persons(&self.pool, tenant).await?;
        let mut rows = Vec::new();
        let mut missing = Vec::new();
        for (name, id) in names.iter().zip(&ids) {
            let person = survivors.get(id).copied().unwrap_or(*id);
            match table.row(&person) {
                Some(row) => rows.push(*row),
                None => missing.push(name.clone()),
            }
        }
        let opted_out = rows
            .iter()
            .map(|r| r.person)
            .filter(|p| opted_out.contains(p))
            .collect();
        Ok(ChurnScores {
            rows,
            missing,
            opted_out,
            compute_ms: table.compute_ms,
            rules: table.rules.clone(),
        })
    }

    /// A page of churn outputs, opted-out persons left out.
    pub async fn list_churn_scores(
        &self,
        tenant: &str,
        query: &ChurnListQuery,
    ) -> Result<ChurnScoresPage, ModelingError> {
        let valid = query.validate()?;
        let members = if query.segment.is_empty() {
            None
        } else {
            let segment = super::journeys::InSegment::at(&query.segment, "segment");
            let mut members = self.segment_members(tenant, &segment).await?;
            members.sort_unstable();
            Some(members)
        };
        let settings = self.model_settings(tenant).await?;
        let table = self.churn_table(tenant, &settings).await?;
        let opted_out = crate::store::opted_out_persons(&self.pool, tenant).await?;
        Ok(ChurnScoresPage {
            page: valid.page(&table, &opted_out, members.as_deref()),
            compute_ms: table.compute_ms,
            rules: table.rules.clone(),
        })
    }
}
