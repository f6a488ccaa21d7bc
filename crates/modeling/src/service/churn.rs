//! Model settings, RFM and churn calls: the settings' transaction (etag, request id), and
//! the churn table computed once per view revision and settings version, kept per tenant.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::Modeling;
use crate::error::ModelingError;
use crate::journeys::churn::{self, ChurnRow, ChurnTable, FitOutcome, PersonRfm, PurchaseEvent};
use crate::journeys::churn_pages::{
    self, ChurnListQuery, ChurnPage, MAX_PAGE_SIZE, RfmCursor, decode_rfm_token, rfm_token,
};
use crate::journeys::churn_settings::{
    ModelSettings, RfmOptions, RfmSettings, VersionedSettings, apply_mask, check_purchase,
    rfm_options,
};
use crate::journeys::listings::request_key;
use crate::journeys::query::{Matcher, Violations, check_instant};
use crate::store::journal::Positions;
use crate::store::model_settings as store;

/// A cached table is recomputed after this long even when nothing changed, so inactivity
/// and ages follow the clock.
const STALE_AFTER: Duration = Duration::from_secs(600);
/// Tenants whose tables are kept at once; the oldest goes first.
const MAX_TABLES: usize = 16;
/// Rows kept across every tenant's table (about 120 bytes each); the oldest tables go first,
/// and the newest is always kept, however large.
const MAX_CACHED_ROWS: usize = 2_000_000;
/// Most persons one GetChurnScores names.
pub const MAX_PERSONS: usize = 1_000;

/// The cache key of a table: what it was computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TableKey {
    positions: Positions,
    settings: u64,
}

#[derive(Debug)]
struct CachedTable {
    key: TableKey,
    at: Instant,
    table: Arc<ChurnTable>,
}

/// Each tenant's latest churn table.
#[derive(Debug, Clone, Default)]
pub struct ChurnCache {
    tables: Arc<Mutex<HashMap<String, CachedTable>>>,
}

impl ChurnCache {
    /// The table of `tenant` for `key`, unless stale; else a fit still usable for `settings`.
    fn lookup(
        &self,
        tenant: &str,
        key: &TableKey,
        refit: Duration,
        now_ms: i64,
    ) -> Result<Arc<ChurnTable>, Option<FitOutcome>> {
        let tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(cached) = tables.get(tenant) else {
            return Err(None);
        };
        if cached.key == *key && cached.at.elapsed() < STALE_AFTER {
            return Ok(cached.table.clone());
        }
        let fit = cached.table.fit.filter(|fit| {
            cached.key.settings == key.settings
                && u64::try_from(now_ms.saturating_sub(fit.fit_ms)).unwrap_or(u64::MAX)
                    < u64::try_from(refit.as_millis()).unwrap_or(u64::MAX)
        });
        Err(fit)
    }

    fn keep(&self, tenant: &str, key: TableKey, table: Arc<ChurnTable>) {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        tables.remove(tenant);
        let rows = |tables: &HashMap<String, CachedTable>| -> usize {
            tables.values().map(|cached| cached.table.rows.len()).sum()
        };
        while !tables.is_empty()
            && (tables.len() >= MAX_TABLES || rows(&tables) + table.rows.len() > MAX_CACHED_ROWS)
        {
            let oldest = tables
                .iter()
                .min_by_key(|(_, cached)| cached.at)
                .map(|(name, _)| name.clone());
            match oldest {
                Some(name) => tables.remove(&name),
                None => break,
            };
        }
        tables.insert(
            tenant.to_owned(),
            CachedTable {
                key,
                at: Instant::now(),
                table,
            },
        );
    }
}

/// A settings change as asked for.
#[derive(Debug, Clone, Default)]
pub struct SettingsUpdate {
    /// The incoming settings; only the masked fields are taken.
    pub incoming: ModelSettings,
    /// The etag the caller read; empty skips the check.
    pub etag: String,
    /// The update mask's paths.
    pub paths: Vec<String>,
    /// The idempotency key; empty for none.
    pub request_id: String,
    /// Check only.
    pub validate_only: bool,
}

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
    /// The inactivity threshold that applied.
    pub threshold_days: u32,
}

/// A page of churn outputs.
#[derive(Debug, Clone)]
pub struct ChurnScoresPage {
    /// The page.
    pub page: ChurnPage,
    /// When the table was computed (ms).
    pub compute_ms: i64,
    /// The inactivity threshold that applied.
    pub threshold_days: u32,
}

fn invalid(problems: Violations) -> ModelingError {
    ModelingError::Invalid(problems.0)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn versioned(stored: Option<store::StoredSettings>) -> VersionedSettings {
    match stored {
        Some(stored) => VersionedSettings {
            settings: stored.settings,
            etag: stored.revision.to_string(),
            update_ms: Some(stored.updated_at.timestamp_millis()),
        },
        None => VersionedSettings {
            etag: "0".to_owned(),
            ..VersionedSettings::default()
        },
    }
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
    /// The tenant's settings as stored (defaults before the first change).
    pub async fn model_settings(&self, tenant: &str) -> Result<VersionedSettings, ModelingError> {
        Ok(versioned(store::get(&self.pool, tenant).await?))
    }

    /// The tenant's settings with the churn table they give over every event committed so
    /// far (its suggestion and fit are the settings' output-only fields).
    pub async fn model_settings_with_outputs(
        &self,
        tenant: &str,
    ) -> Result<(VersionedSettings, Arc<ChurnTable>), ModelingError> {
        let settings = self.model_settings(tenant).await?;
        let table = self.churn_table(tenant, &settings).await?;
        Ok((settings, table))
    }

    /// Changes the settings by field mask in one transaction: a retried request id answers
    /// with the stored settings, a stale etag is ABORTED, the result must pass every rule.
    pub async fn update_model_settings(
        &self,
        tenant: &str,
        update: &SettingsUpdate,
    ) -> Result<VersionedSettings, ModelingError> {
        // Every problem of the request is named before the store is touched: the masked
        // fields are checked on their own (stored fields always pass), with the request id.
        let mut problems = Violations::default();
        if !update.request_id.is_empty() && Uuid::parse_str(&update.request_id).is_err() {
            problems.add("request_id", "INVALID_REQUEST_ID", "request_id is a UUID");
        }
        match apply_mask(&ModelSettings::default(), &update.incoming, &update.paths) {
            Ok(masked) => {
                if let Err(found) = masked.validate("model_settings.") {
                    problems.0.extend(found.0);
                }
            }
            Err(found) => problems.0.extend(found.0),
        }
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        let mut tx = self.pool.begin().await?;
        if !update.request_id.is_empty()
            && store::request_seen(&mut tx, tenant, &update.request_id).await?
        {
            let stored = store::get_for_update(&mut tx, tenant).await?;
            tx.commit().await?;
            return Ok(versioned(stored));
        }
        let current = store::get_for_update(&mut tx, tenant).await?;
        let revision = current.as_ref().map_or(0, |c| c.revision);
        if !update.etag.is_empty() && update.etag != revision.to_string() {
            return Err(ModelingError::Aborted(
                "the model settings changed since they were read",
            ));
        }
        let base = current.map(|c| c.settings).unwrap_or_default();
        let next = apply_mask(&base, &update.incoming, &update.paths).map_err(invalid)?;
        next.validate("model_settings.").map_err(invalid)?;
        if update.validate_only {
            return Ok(VersionedSettings {
                settings: next,
                etag: revision.to_string(),
                update_ms: None,
            });
        }
        let Some((stored, at)) = store::put(&mut tx, tenant, &next, revision).await? else {
            return Err(ModelingError::Aborted(
                "the model settings changed concurrently",
            ));
        };
        if !update.request_id.is_empty() {
            store::record_request(&mut tx, tenant, &update.request_id, stored).await?;
        }
        tx.commit().await?;
        Ok(VersionedSettings {
            settings: next,
            etag: stored.to_string(),
            update_ms: Some(at.timestamp_millis()),
        })
    }

    /// The purchase event of the settings: their matcher, or the dictionary's conversions.
    async fn purchase_event(
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
    async fn churn_table(
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
        let settings_key = request_key(&format!("{}|{purchase:?}", settings.etag));
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
                view, &condition, &effective, now, reuse, run,
            ));
            cache.keep(&tenant_name, key, table.clone());
            Ok(table)
        })
        .await
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
            threshold_days: table.threshold.days(),
        })
    }

    /// A page of churn outputs, opted-out persons left out.
    pub async fn list_churn_scores(
        &self,
        tenant: &str,
        query: &ChurnListQuery,
    ) -> Result<ChurnScoresPage, ModelingError> {
        let valid = query.validate()?;
        let settings = self.model_settings(tenant).await?;
        let table = self.churn_table(tenant, &settings).await?;
        let opted_out = crate::store::opted_out_persons(&self.pool, tenant).await?;
        Ok(ChurnScoresPage {
            page: valid.page(&table, &opted_out),
            compute_ms: table.compute_ms,
            threshold_days: table.threshold.days(),
        })
    }
}

#[cfg(test)]
mod tests {
    use touchline_analytics::churn::bgnbd::BgNbdParams;
    use touchline_analytics::churn::inactivity::{InactivityThreshold, ThresholdSuggestion};

    use super::*;

    fn table(rows: usize, fit_ms: i64) -> Arc<ChurnTable> {
        let threshold = InactivityThreshold::from_days(90).unwrap_or_else(|_| unreachable!());
        let row = ChurnRow {
            person: Uuid::nil(),
            score: None,
            probability_alive: None,
            churned: false,
            inactive_for_ms: None,
            repeat_purchases: 0,
            first_purchase_ms: None,
            last_purchase_ms: None,
        };
        Arc::new(ChurnTable {
            rows: vec![row; rows],
            by_score: Vec::new(),
            suggestion: ThresholdSuggestion {
                threshold,
                gap_sample_size: 0,
                percentile_gap_secs: None,
            },
            threshold,
            fit: Some(FitOutcome {
                params: BgNbdParams {
                    r: 1.0,
                    alpha: 1.0,
                    a: 1.0,
                    b: 1.0,
                },
                log_likelihood: 0.0,
                person_count: 1,
                converged: true,
                fit_ms,
            }),
            compute_ms: fit_ms,
            positions: Positions::default(),
        })
    }

    fn key(revision: i64, settings: u64) -> TableKey {
        TableKey {
            positions: Positions {
                revision,
                ..Positions::default()
            },
            settings,
        }
    }

    #[test]
    fn a_table_is_reused_until_its_view_or_settings_move_and_a_young_fit_outlives_the_view() {
        let cache = ChurnCache::default();
        let day = Duration::from_secs(86_400);
        let kept = table(3, 1_000);
        cache.keep("t", key(1, 7), kept.clone());
        let same = cache.lookup("t", &key(1, 7), day, 2_000);
        assert!(same.is_ok_and(|t| Arc::ptr_eq(&t, &kept)), "no recompute");
        let moved = cache.lookup("t", &key(2, 7), day, 2_000);
        assert!(
            moved.is_err_and(|fit| fit.is_some()),
            "new events: the young fit is reused"
        );
        let old = cache.lookup("t", &key(2, 7), day, 1_000 + 86_400_001);
        assert!(old.is_err_and(|fit| fit.is_none()), "the fit is due again");
        let other = cache.lookup("t", &key(1, 8), day, 2_000);
        assert!(other.is_err_and(|fit| fit.is_none()), "new settings refit");
        assert!(cache.lookup("u", &key(1, 7), day, 2_000).is_err());
    }

    #[test]
    fn the_oldest_tables_make_room_for_a_new_one() {
        let cache = ChurnCache::default();
        cache.keep("a", key(1, 1), table(MAX_CACHED_ROWS / 2, 0));
        cache.keep("b", key(1, 1), table(MAX_CACHED_ROWS / 2, 0));
        cache.keep("c", key(1, 1), table(10, 0));
        let day = Duration::from_secs(86_400);
        assert!(
            cache.lookup("a", &key(1, 1), day, 0).is_err(),
            "a went first"
        );
        assert!(cache.lookup("b", &key(1, 1), day, 0).is_ok());
        assert!(cache.lookup("c", &key(1, 1), day, 0).is_ok());
    }
}
