//! Each tenant's latest churn table, keyed by the view positions and the settings version it
//! was computed from, within a row budget across tenants; a young model fit outlives the
//! table so new events do not refit before the refit interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::journeys::churn::{ChurnTable, FitOutcome};
use crate::store::journal::Positions;

/// A cached table is recomputed after this long even when nothing changed, so inactivity
/// and ages follow the clock.
const STALE_AFTER: Duration = Duration::from_secs(600);
/// Tenants whose tables are kept at once; the oldest goes first.
const MAX_TABLES: usize = 16;
/// Rows kept across every tenant's table (about 120 bytes each); the oldest tables go first,
/// and the newest is always kept, however large.
const MAX_CACHED_ROWS: usize = 2_000_000;

/// The cache key of a table: what it was computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TableKey {
    /// The view's positions.
    pub(super) positions: Positions,
    /// The settings version (etag and purchase event).
    pub(super) settings: u64,
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
    pub(super) fn lookup(
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

    pub(super) fn keep(&self, tenant: &str, key: TableKey, table: Arc<ChurnTable>) {
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

#[cfg(test)]
mod tests {
    use touchline_analytics::churn::bgnbd::{BetaGeoModel, BgNbdParams};
    use uuid::Uuid;

    use super::*;
    use crate::journeys::churn::{ChurnRow, RuleOutcome};

    fn table(rows: usize, fit_ms: i64) -> Arc<ChurnTable> {
        let row = ChurnRow {
            person: Uuid::nil(),
            score: None,
            probability_alive: None,
            expected_purchases: None,
            churned: false,
            inactive_for_ms: None,
            repeat_purchases: 0,
            first_purchase_ms: None,
            last_purchase_ms: None,
            rule: 0,
        };
        Arc::new(ChurnTable {
            rows: vec![row; rows],
            by_score: Vec::new(),
            rules: vec![RuleOutcome::fallback_default()],
            fit: Some(FitOutcome {
                model: BetaGeoModel::MbgNbd,
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
