//! The server side of every `Tail…` streaming RPC.
//!
//! A log source knows how to read the batches after its cursors; this driver
//! turns it into a bounded response stream that waits on LISTEN/NOTIFY
//! wake-ups when caught up (with a slow fallback poll in case a wake-up was
//! lost), stops when the caller goes away, and ends cleanly on shutdown so
//! draining never waits on an endless stream.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use touchline_error::FieldViolation;
use touchline_runtime::Shutdown;

use crate::LogError;

/// How long a caught-up stream waits without a wake-up before it looks again.
const FALLBACK_POLL: Duration = Duration::from_secs(5);

/// Batches read ahead of the caller at most.
const READ_AHEAD: usize = 2;

/// A log partition set being read from a cursor.
pub trait LogSource: Send + 'static {
    /// One streamed response.
    type Batch: Send + 'static;

    /// Reads what follows the cursors and advances them; empty when caught up.
    fn next_batches(&mut self) -> impl Future<Output = Result<Vec<Self::Batch>, LogError>> + Send;
}

/// Streams `source` until the caller disconnects or the process shuts down.
pub fn spawn_tail<S: LogSource>(
    mut source: S,
    mut wake: watch::Receiver<u64>,
    shutdown: Shutdown,
) -> ReceiverStream<Result<S::Batch, tonic::Status>> {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    tokio::spawn(async move {
        loop {
            // Mark the current notification seen before reading, so one that
            // arrives during the read still wakes the wait below.
            wake.borrow_and_update();
            let batches = tokio::select! {
                read = source.next_batches() => read,
                () = shutdown.wait() => return,
            };
            match batches {
                Ok(batches) if batches.is_empty() => {
                    tokio::select! {
                        changed = wake.changed() => if changed.is_err() { return },
                        () = tokio::time::sleep(FALLBACK_POLL) => {}
                        () = tx.closed() => return,
                        () = shutdown.wait() => return,
                    }
                }
                Ok(batches) => {
                    for batch in batches {
                        if tx.send(Ok(batch)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(err) => {
                    let _ = tx.send(Err(tonic::Status::from(err))).await;
                    return;
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

/// The tenant claim of platform service accounts, which may read every
/// tenant's partition of a log.
pub const ALL_TENANTS: &str = "*";

/// A log split into per-tenant partitions with increasing sequences.
pub trait PartitionedLog: Send + Sync + 'static {
    /// One stored record.
    type Record: Send;
    /// One streamed response.
    type Batch: Send + 'static;

    /// Newest sequence per tenant (all tenants when `tenants` is `None`).
    fn heads(
        &self,
        tenants: Option<&[String]>,
    ) -> impl Future<Output = Result<Vec<(String, i64)>, LogError>> + Send;

    /// Up to `limit` records after `after`, in order.
    fn read_after(
        &self,
        tenant: &str,
        after: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<Self::Record>, LogError>> + Send;

    /// A record's sequence.
    fn sequence(record: &Self::Record) -> i64;

    /// Packs records of one tenant into a response.
    fn batch(tenant: &str, head: i64, records: Vec<Self::Record>) -> Result<Self::Batch, LogError>;
}

/// Largest batch a caller may ask for.
pub const MAX_BATCH: i32 = 5_000;
/// Batch size when the caller does not say.
pub const DEFAULT_BATCH: i32 = 500;

/// Where a Tail call reads: the partitions and their cursors, checked
/// against the caller's tenant.
#[derive(Debug)]
pub struct PartitionCursors<L> {
    log: L,
    cursors: std::collections::BTreeMap<String, i64>,
    all_tenants: bool,
    limit: i64,
}

impl<L: PartitionedLog> PartitionCursors<L> {
    /// Applies the tenancy rules: a tenant-scoped caller reads only its own
    /// partition; only platform accounts (tenant `*`) read all of them.
    pub fn new(
        log: L,
        caller_tenant: &str,
        selector: Option<touchline_proto::common::v1::TailSelector>,
    ) -> Result<Self, LogError> {
        let selector = selector.unwrap_or_default();
        let platform = caller_tenant == ALL_TENANTS;
        if selector.all_tenants && !platform {
            return Err(LogError::PermissionDenied(
                "all_tenants is only for platform service accounts",
            ));
        }
        let mut violations = Vec::new();
        let mut cursors = std::collections::BTreeMap::new();
        for (i, cursor) in selector.cursors.into_iter().enumerate() {
            if cursor.tenant.is_empty() {
                violations.push(FieldViolation::new(
                    format!("selector.cursors[{i}].tenant"),
                    "MISSING_TENANT",
                    "each cursor names a tenant",
                ));
            }
            if cursor.after_sequence < 0 {
                violations.push(FieldViolation::new(
                    format!("selector.cursors[{i}].after_sequence"),
                    "NEGATIVE_SEQUENCE",
                    "after_sequence is 0 or more",
                ));
            }
            if !platform && !cursor.tenant.is_empty() && cursor.tenant != caller_tenant {
                return Err(LogError::PermissionDenied("a cursor names another tenant"));
            }
            cursors.insert(cursor.tenant, cursor.after_sequence);
        }
        if cursors.is_empty() && !selector.all_tenants {
            if platform {
                violations.push(FieldViolation::new(
                    "selector.cursors",
                    "NO_PARTITION",
                    "name tenants in cursors or set all_tenants",
                ));
            }
            cursors.insert(caller_tenant.to_owned(), 0);
        }
        let limit = match selector.max_batch_size {
            0 => DEFAULT_BATCH,
            n if (1..=MAX_BATCH).contains(&n) => n,
            n => {
                violations.push(FieldViolation::new(
                    "selector.max_batch_size",
                    "OUT_OF_RANGE",
                    format!("max_batch_size {n} is outside 1..={MAX_BATCH}"),
                ));
                DEFAULT_BATCH
            }
        };
        if !violations.is_empty() {
            return Err(LogError::InvalidSelector(violations));
        }
        Ok(Self {
            log,
            cursors,
            all_tenants: selector.all_tenants,
            limit: i64::from(limit),
        })
    }
}

impl<L: PartitionedLog> LogSource for PartitionCursors<L> {
    type Batch = L::Batch;

    async fn next_batches(&mut self) -> Result<Vec<Self::Batch>, LogError> {
        let named: Vec<String> = self.cursors.keys().cloned().collect();
        let heads = self
            .log
            .heads(if self.all_tenants { None } else { Some(&named) })
            .await?;
        let mut batches = Vec::new();
        for (tenant, head) in heads {
            let cursor = self.cursors.entry(tenant.clone()).or_insert(0);
            if head <= *cursor {
                continue;
            }
            let records = self.log.read_after(&tenant, *cursor, self.limit).await?;
            let full = i64::try_from(records.len()).unwrap_or(i64::MAX) >= self.limit;
            if let Some(last) = records.last() {
                *cursor = L::sequence(last);
            }
            // Head and records commit together, so a short read means nothing
            // else up to the head exists (its sequences were duplicates).
            if !full {
                *cursor = (*cursor).max(head);
            }
            if !records.is_empty() {
                batches.push(L::batch(&tenant, head, records)?);
            }
        }
        Ok(batches)
    }
}

/// What a platform consumer asks a log for: every tenant's partition, resuming each from the
/// cursor it committed (tenants without one start at the beginning).
pub fn resume_all_tenants(
    cursors: Vec<(String, i64)>,
    max_batch_size: i32,
) -> touchline_proto::common::v1::TailSelector {
    touchline_proto::common::v1::TailSelector {
        cursors: cursors
            .into_iter()
            .map(
                |(tenant, after_sequence)| touchline_proto::common::v1::PartitionCursor {
                    tenant,
                    after_sequence,
                },
            )
            .collect(),
        all_tenants: true,
        max_batch_size,
    }
}
