//! The trigger log as a stream (`SubscribeTriggers`): batches as they are appended, from a
//! cursor or the head, with heartbeats while nothing passes the filter.

use super::super::Modeling;
use crate::error::ModelingError;
use crate::store::activation::{self as store, StoredTrigger, TriggerFilter};

impl Modeling {
    /// The trigger log after `after` (or from the head) as a stream of batches; an empty
    /// batch is a heartbeat, sent at once when there is nothing to send at the start (so a
    /// subscriber learns the head and that it is connected) and after 30 s of silence.
    pub fn follow_triggers(
        &self,
        tenant: String,
        filter: TriggerFilter,
        after: Option<i64>,
        batch: i64,
    ) -> impl futures::Stream<Item = Result<(Vec<StoredTrigger>, i64), ModelingError>> + Send + 'static
    {
        const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(30);
        let modeling = self.clone();
        async_stream::try_stream! {
            let mut heads = modeling.segment_signals.subscribe(&tenant);
            let (head, pruned) = store::trigger_head(&modeling.pool, &tenant).await?;
            let mut cursor = match after {
                None => head,
                Some(0) => pruned,
                Some(after) if after < pruned => {
                    Err(ModelingError::CursorExpired { cursor: after, oldest: pruned + 1 })?
                }
                Some(after) => after,
            };
            let mut quiet_since = tokio::time::Instant::now();
            let mut started = false;
            loop {
                // The head first: every trigger up to it is committed (it moves in the same
                // transaction), so finding none past the cursor means none up to the head.
                let (head, _) = store::trigger_head(&modeling.pool, &tenant).await?;
                let triggers =
                    store::triggers_after(&modeling.pool, &tenant, &filter, cursor, batch).await?;
                if let Some(last) = triggers.last() {
                    cursor = last.sequence;
                    let full = triggers.len() as i64 == batch;
                    quiet_since = tokio::time::Instant::now();
                    started = true;
                    yield (triggers, head);
                    if full {
                        continue;
                    }
                } else {
                    // Nothing passed the filter up to the head: skip what was looked at.
                    cursor = cursor.max(head);
                    if !started || quiet_since.elapsed() >= HEARTBEAT {
                        quiet_since = tokio::time::Instant::now();
                        started = true;
                        yield (triggers, head);
                    }
                }
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), heads.changed()).await;
            }
        }
    }
}
