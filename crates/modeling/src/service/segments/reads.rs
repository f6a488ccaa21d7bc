//! Reading segments' members and changes: pages as of one change sequence, and the change
//! log as a stream that follows each publication.

use uuid::Uuid;

use super::{ChangesPage, MAX_ROWS_PAGE, MembersPage};
use crate::error::ModelingError;
use crate::service::Modeling;
use crate::store::segments as store;

impl Modeling {
    /// A page of a segment's members as of `as_of` (the head when `None`: the first page
    /// fixes it), after person `after`.
    pub async fn list_segment_members(
        &self,
        tenant: &str,
        id: &str,
        as_of: Option<i64>,
        after: Uuid,
        size: i64,
    ) -> Result<MembersPage, ModelingError> {
        let segment = self.get_segment(tenant, id).await?;
        if segment.built_rule_revision.is_none() {
            return Err(ModelingError::Building);
        }
        let size = size.clamp(1, MAX_ROWS_PAGE);
        let as_of_sequence = match as_of {
            Some(sequence) => sequence,
            None => store::head(&self.pool, tenant).await?.0,
        };
        let mut members =
            store::members_as_of(&self.pool, tenant, id, as_of_sequence, after, size + 1).await?;
        let more = members.len() as i64 > size;
        members.truncate(size as usize);
        let total = store::member_count_as_of(&self.pool, tenant, id, as_of_sequence).await?;
        Ok(MembersPage {
            members,
            more,
            total,
            as_of_sequence,
        })
    }

    /// Changes after `after` of one segment or (`None`) all; OUT_OF_RANGE when changes after
    /// the cursor were already pruned.
    pub async fn list_segment_changes(
        &self,
        tenant: &str,
        segment: Option<&str>,
        after: i64,
        size: i64,
    ) -> Result<ChangesPage, ModelingError> {
        if let Some(id) = segment {
            self.get_segment(tenant, id).await?;
        }
        self.changes_page(tenant, segment, after, size).await
    }

    /// A page of the log after `after`, the segment already known to exist.
    async fn changes_page(
        &self,
        tenant: &str,
        segment: Option<&str>,
        after: i64,
        size: i64,
    ) -> Result<ChangesPage, ModelingError> {
        let (head_sequence, pruned_through) = store::head(&self.pool, tenant).await?;
        if after > 0 && after < pruned_through {
            return Err(ModelingError::CursorExpired {
                cursor: after,
                oldest: pruned_through + 1,
            });
        }
        let size = size.clamp(1, MAX_ROWS_PAGE);
        let mut changes = store::changes_after(
            &self.pool,
            tenant,
            segment,
            after.max(pruned_through),
            size + 1,
        )
        .await?;
        let more = changes.len() as i64 > size;
        changes.truncate(size as usize);
        Ok(ChangesPage {
            changes,
            more,
            head_sequence,
        })
    }
}

/// How long a change stream stays silent before it sends a heartbeat.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);
/// How often a waiting stream looks at the store (for changes another replica published).
const STREAM_POLL: std::time::Duration = std::time::Duration::from_secs(1);

impl Modeling {
    /// The change log after `after` as a stream: what is kept first, in pages of `batch`,
    /// then each publication as it happens; an empty page is a heartbeat.
    pub fn follow_segment_changes(
        &self,
        tenant: String,
        segment: Option<String>,
        after: i64,
        batch: i64,
    ) -> impl futures::Stream<Item = Result<ChangesPage, ModelingError>> + Send + 'static {
        let modeling = self.clone();
        async_stream::try_stream! {
            let mut heads = modeling.segment_signals.subscribe(&tenant);
            let mut cursor = after;
            let mut quiet_since = tokio::time::Instant::now();
            loop {
                // The segment was found when the stream started; a poll reads the log alone.
                let page = modeling
                    .changes_page(&tenant, segment.as_deref(), cursor, batch)
                    .await?;
                if let Some(last) = page.changes.last() {
                    cursor = last.sequence;
                    let more = page.more;
                    quiet_since = tokio::time::Instant::now();
                    yield page;
                    if more {
                        continue;
                    }
                } else if quiet_since.elapsed() >= HEARTBEAT {
                    quiet_since = tokio::time::Instant::now();
                    yield page;
                }
                // Woken by a publication here, or after a while to see another replica's.
                let _ = tokio::time::timeout(STREAM_POLL, heads.changed()).await;
            }
        }
    }
}
