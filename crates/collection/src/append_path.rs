//! Which way a tenant's next group commit is written: optimistic COPY, or
//! `INSERT … ON CONFLICT DO NOTHING`, which tolerates message ids stored
//! before. COPY is cheaper but the whole group is wasted when one message id
//! is a duplicate, so a tenant whose COPY conflicted uses INSERT until a
//! group of it stores without a duplicate (a client replaying a backlog of
//! retries would otherwise pay for every group twice).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

/// How a group commit is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendPath {
    /// COPY, falling back to INSERT on a conflict.
    Copy,
    /// INSERT, skipping stored message ids.
    Insert,
}

/// Per tenant, the path its next group takes; shared by a committer's
/// concurrent commits.
#[derive(Debug, Clone, Default)]
pub struct AppendPaths {
    copy_enabled: bool,
    inserting: Arc<Mutex<HashSet<String>>>,
}

impl AppendPaths {
    /// Paths that start on COPY when `copy_enabled`, else always INSERT.
    pub fn new(copy_enabled: bool) -> Self {
        Self {
            copy_enabled,
            inserting: Arc::default(),
        }
    }

    /// The path for `tenant`'s next group.
    pub fn choose(&self, tenant: &str) -> AppendPath {
        if self.copy_enabled && !self.lock().contains(tenant) {
            AppendPath::Copy
        } else {
            AppendPath::Insert
        }
    }

    /// A COPY of `tenant` hit a stored message id.
    pub fn copy_conflicted(&self, tenant: &str) {
        self.lock().insert(tenant.to_owned());
    }

    /// An INSERT group of `tenant` stored with `duplicates` of its rows
    /// turned away as stored before.
    pub fn inserted(&self, tenant: &str, duplicates: usize) {
        if duplicates == 0 {
            self.lock().remove(tenant);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // The set holds no invariant a panic could break half way.
        self.inserting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_start_on_copy_when_enabled() {
        assert_eq!(AppendPaths::new(true).choose("t"), AppendPath::Copy);
        assert_eq!(AppendPaths::new(false).choose("t"), AppendPath::Insert);
    }

    #[test]
    fn a_conflict_moves_only_that_tenant_to_insert() {
        let paths = AppendPaths::new(true);
        paths.copy_conflicted("a");
        assert_eq!(paths.choose("a"), AppendPath::Insert);
        assert_eq!(paths.choose("b"), AppendPath::Copy);
    }

    #[test]
    fn a_clean_insert_group_brings_the_tenant_back_to_copy() {
        let paths = AppendPaths::new(true);
        paths.copy_conflicted("a");
        paths.inserted("a", 3);
        assert_eq!(paths.choose("a"), AppendPath::Insert);
        paths.inserted("a", 0);
        assert_eq!(paths.choose("a"), AppendPath::Copy);
    }

    #[test]
    fn disabled_copy_stays_disabled() {
        let paths = AppendPaths::new(false);
        paths.inserted("a", 0);
        assert_eq!(paths.choose("a"), AppendPath::Insert);
    }
}
