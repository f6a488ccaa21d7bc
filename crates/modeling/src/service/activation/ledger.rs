//! The ledger writer: every delivery task hands it its attempts, and it writes whatever has
//! gathered (attempts of many deliveries and many destinations) in one transaction, so a
//! delivery does not cost a commit of its own. A task learns when its attempts are written,
//! and whether each was kept (an attempt for a destination since deleted is dropped).

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::store::deliveries::{self, AttemptRecord};

/// Attempts waiting to be written at most (a task waits for room beyond).
const QUEUE: usize = 4_096;
/// Most attempts written in one transaction.
const MOST_PER_COMMIT: usize = 1_000;

/// Why an attempt could not be written down.
#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum LedgerError {
    /// The transaction failed (every attempt in it is sent again, with the same id).
    #[error("the attempt ledger could not be written: {0}")]
    Write(String),
    /// The writer has stopped (shutting down).
    #[error("the attempt ledger writer has stopped")]
    Stopped,
}

/// Whether an attempt was kept, once it is written.
pub(super) type Written = oneshot::Receiver<Result<bool, LedgerError>>;

struct Entry {
    record: AttemptRecord,
    done: oneshot::Sender<Result<bool, LedgerError>>,
}

/// Hands attempts to the writer; cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct Ledger {
    queue: mpsc::Sender<Entry>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Starts the writer over `pool`; it ends once every handle is dropped and the queue is
    /// written.
    pub(super) fn start(pool: PgPool) -> (Self, JoinHandle<()>) {
        let (queue, entries) = mpsc::channel(QUEUE);
        (Self { queue }, tokio::spawn(write(pool, entries)))
    }

    /// Queues `record`; the answer says when it is written and whether it was kept.
    pub(super) async fn record(&self, record: AttemptRecord) -> Result<Written, LedgerError> {
        let (done, written) = oneshot::channel();
        self.queue
            .send(Entry { record, done })
            .await
            .map_err(|_| LedgerError::Stopped)?;
        Ok(written)
    }
}

/// Waits until `written` is in the ledger; whether it was kept.
pub(super) async fn kept(written: Written) -> Result<bool, LedgerError> {
    written.await.unwrap_or(Err(LedgerError::Stopped))
}

async fn write(pool: PgPool, mut entries: mpsc::Receiver<Entry>) {
    let mut gathered: Vec<Entry> = Vec::with_capacity(MOST_PER_COMMIT);
    while entries.recv_many(&mut gathered, MOST_PER_COMMIT).await > 0 {
        let (records, answers): (Vec<AttemptRecord>, Vec<_>) =
            gathered.drain(..).map(|e| (e.record, e.done)).unzip();
        match commit(&pool, &records).await {
            Ok(kept) => {
                for (answer, kept) in answers.into_iter().zip(kept) {
                    let _ = answer.send(Ok(kept));
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, attempts = records.len(), "webhook attempts could not be recorded; their batches are sent again");
                let failed = LedgerError::Write(err.to_string());
                for answer in answers {
                    let _ = answer.send(Err(failed.clone()));
                }
            }
        }
    }
}

async fn commit(pool: &PgPool, records: &[AttemptRecord]) -> Result<Vec<bool>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let kept = deliveries::record_attempts(&mut tx, records).await?;
    tx.commit().await?;
    Ok(kept)
}
