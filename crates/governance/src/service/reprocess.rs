//! Reprocess jobs: starting one over a range of raw events, and reading one back.

use super::Governance;
use crate::error::GovernanceError;
use crate::reprocess::{JobSpec, ORPHANED_AFTER};
use crate::store::reprocess::{self as store, JobRow};

impl Governance {
    /// Starts a job (or returns the one its request id already started).
    pub async fn start_reprocess(
        &self,
        tenant: &str,
        spec: JobSpec,
    ) -> Result<JobRow, GovernanceError> {
        Ok(self.reprocessor.start(tenant, spec).await?)
    }

    /// The job `id`; one whose worker stopped answering is reported failed.
    pub async fn reprocess_job(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<JobRow>, GovernanceError> {
        Ok(store::get(&self.pool, tenant, id, ORPHANED_AFTER).await?)
    }
}
