//! The event-store worker: tails governance's clean log, resolves each
//! event's identifiers to a person through the identity service, and stores
//! the events with the consumed cursor in one transaction.

use std::str::FromStr;

use futures::TryStreamExt as _;
use prost::Message as _;
use sqlx::PgPool;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use touchline_proto::governance::v1::governance_service_client::GovernanceServiceClient;
use touchline_proto::governance::v1::{
    CleanEvent, TailCleanEventsRequest, TailCleanEventsResponse,
};
use touchline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use touchline_proto::identity::v1::{BatchResolveRequest, ResolveItem, UnresolvedReason};
use touchline_runtime::Shutdown;
use touchline_runtime::client::CallCredentials;
use uuid::Uuid;

use crate::store::dead_letters::{DeadLetter, DeadLetterReason};
use crate::store::{self, NewStoredEvent};

/// A governance client carrying the worker's credentials.
pub type GovernanceClient = GovernanceServiceClient<InterceptedService<Channel, CallCredentials>>;
/// An identity client carrying the worker's credentials.
pub type IdentityClient = IdentityServiceClient<InterceptedService<Channel, CallCredentials>>;

/// Whose an event is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    /// The person identity resolved it to.
    Person(Uuid),
    /// Nobody: the event carries no identifier (an ad platform's daily report row), or only
    /// blocked or shared ones (a store iPad's anonymous session). It is stored without a person.
    Nobody,
    /// Every identifier is suppressed (an erased person's late event): not stored, so the
    /// erasure is not undone.
    Suppressed,
    /// Identity cannot take this event's identifiers, however often it is asked: the event is
    /// set aside as a dead letter and the rest of the batch flows on.
    SetAside(DeadLetterReason, String),
}

/// A batch of the clean log with its persons, ready to store.
#[derive(Debug)]
struct ResolvedBatch {
    tenant: String,
    rows: Vec<NewStoredEvent>,
    /// Events set aside, stored with the batch's cursor.
    dead: Vec<DeadLetter>,
    /// The last sequence of the batch, stored events or not.
    last: i64,
}

/// Clean-log batches being resolved at once.
const RESOLVES_IN_FLIGHT: usize = 4;

/// The identity service takes at most this many identifiers per call.
const MAX_IDENTIFIERS_PER_RESOLVE: usize = touchline_bounds::MAX_IDENTIFIERS_PER_CALL;

/// Why a worker session ended.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// An upstream call failed.
    #[error("upstream call: {0}")]
    Upstream(#[from] tonic::Status),
    /// Committing failed.
    #[error("storing events: {0}")]
    Store(#[from] sqlx::Error),
    /// An upstream answer made no sense.
    #[error("upstream answer: {0}")]
    Protocol(String),
}

/// Fills the unified event store from the clean log, for every tenant.
#[derive(Debug, Clone)]
pub struct EventStoreWorker {
    pool: PgPool,
    governance: GovernanceClient,
    identity: IdentityClient,
    status: touchline_runtime::status::PipelineStatus,
}

impl EventStoreWorker {
    /// A worker writing to `pool`.
    pub fn new(pool: PgPool, governance: GovernanceClient, identity: IdentityClient) -> Self {
        Self {
            pool,
            governance,
            identity,
            status: touchline_runtime::status::PipelineStatus::new(),
        }
    }

    /// Reports positions and errors into `status` (the process's shared one).
    pub fn with_status(mut self, status: touchline_runtime::status::PipelineStatus) -> Self {
        self.status = status;
        self
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) {
        touchline_runtime::consumer::run(crate::CLEAN_LOG_CONSUMER, shutdown, &self.status, || {
            self.session()
        })
        .await;
    }

    async fn session(&self) -> Result<(), WorkerError> {
        let cursors = store::load_cursors(&self.pool, crate::CLEAN_LOG_CONSUMER).await?;
        let request = TailCleanEventsRequest {
            selector: Some(touchline_runtime::tail::resume_all_tenants(cursors, 500)),
        };
        let stream = self
            .governance
            .clone()
            .tail_clean_events(request)
            .await?
            .into_inner();
        // Resolution (a call to identity) is most of a batch's time and is bound by round trips
        // and row locks, not by one core: batches of different tenants are resolved at once,
        // and storing overlaps them. One tenant's batches are resolved one after another, in
        // log order: identity's answer depends on what it saw first (a recycled number, a
        // value shared past its limit), so the same events must reach it in the same order to
        // give the same persons. Batches are stored one after another in log order, each with
        // its cursor. An erasure applied between a batch's resolution and its storage is
        // caught at storage (see `store::commit_batch`).
        let (ready, mut to_store) = tokio::sync::mpsc::channel::<ResolvedBatch>(1);
        let turns = TenantTurns::default();
        let resolve = async move {
            let mut resolved = stream
                .map_err(WorkerError::from)
                .map_ok(|batch| {
                    let turn = turns.take(&batch.tenant);
                    async move {
                        turn.wait().await;
                        let processed = self.process(batch).await;
                        turn.done();
                        processed
                    }
                })
                .try_buffered(RESOLVES_IN_FLIGHT);
            while let Some(batch) = resolved.try_next().await? {
                let Some(batch) = batch else { continue };
                if ready.send(batch).await.is_err() {
                    // The store side ended, with the error the session returns.
                    break;
                }
            }
            Ok::<(), WorkerError>(())
        };
        let store = async {
            while let Some(batch) = to_store.recv().await {
                if !batch.dead.is_empty() {
                    tracing::warn!(tenant = %batch.tenant, set_aside = batch.dead.len(), "clean events set aside as dead letters");
                    let metrics = touchline_telemetry::metrics::pipeline();
                    for letter in &batch.dead {
                        metrics.count_dead_letters(letter.reason.code(), 1);
                    }
                }
                store::commit_batch_setting_aside(
                    &self.pool,
                    &batch.tenant,
                    &batch.rows,
                    &batch.dead,
                    crate::CLEAN_LOG_CONSUMER,
                    batch.last,
                )
                .await?;
                self.status
                    .committed(crate::CLEAN_LOG_CONSUMER, &batch.tenant, batch.last);
                self.status.recovered(crate::CLEAN_LOG_CONSUMER);
            }
            Ok::<(), WorkerError>(())
        };
        tokio::try_join!(resolve, store)?;
        Ok(())
    }

    #[tracing::instrument(name = "modeling.store_batch", skip_all, fields(service = "modeling", tenant = %batch.tenant, events = batch.events.len(), lag))]
    async fn process(
        &self,
        batch: TailCleanEventsResponse,
    ) -> Result<Option<ResolvedBatch>, WorkerError> {
        let Some(last) = batch.events.last().map(|e| e.sequence) else {
            return Ok(None);
        };
        tracing::Span::current().record("lag", batch.head_sequence - last);
        self.status.saw_head(
            crate::CLEAN_LOG_CONSUMER,
            &batch.tenant,
            batch.head_sequence,
        );
        let persons = self.resolve(&batch.tenant, &batch.events).await?;
        let mut rows = Vec::with_capacity(batch.events.len());
        let mut dead = Vec::new();
        let mut suppressed = 0usize;
        for (event, owner) in batch.events.iter().zip(persons) {
            if event.retraction {
                rows.push(NewStoredEvent::retraction(
                    event.sequence,
                    &event.message_id,
                ));
                continue;
            }
            let person_id = match owner {
                Owner::Person(person) => Some(person),
                Owner::Nobody => None,
                Owner::Suppressed => {
                    suppressed += 1;
                    continue;
                }
                Owner::SetAside(reason, detail) => {
                    dead.push(dead_letter(event, reason, detail));
                    continue;
                }
            };
            let span = tracing::info_span!("modeling.store_event", service = "modeling", message_id = %event.message_id);
            if !event.traceparent.is_empty() {
                touchline_telemetry::set_parent_from_traceparent(&span, &event.traceparent);
            }
            let _entered = span.enter();
            let event_time = event.event_time.as_ref().and_then(|ts| {
                chrono::DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).unwrap_or(0))
            });
            let Some(event_time) = event_time else {
                dead.push(dead_letter(
                    event,
                    DeadLetterReason::NoEventTime,
                    "the clean event has no valid event time".to_owned(),
                ));
                continue;
            };
            let mut stored = event.clone();
            stored.traceparent.clear();
            rows.push(NewStoredEvent {
                sequence: event.sequence,
                message_id: event.message_id.clone(),
                person_id,
                event_name: event.event_name.clone(),
                channel: event.channel.clone(),
                event_time,
                payload: stored.encode_to_vec(),
                retraction: false,
            });
        }
        if suppressed > 0 {
            tracing::info!(
                suppressed,
                "events of erased persons not stored (their identifiers are suppressed)"
            );
        }
        Ok(Some(ResolvedBatch {
            tenant: batch.tenant,
            rows,
            dead,
            last,
        }))
    }

    /// One person per event, resolving in calls of at most 1,000 identifiers.
    async fn resolve(
        &self,
        tenant: &str,
        events: &[CleanEvent],
    ) -> Result<Vec<Owner>, WorkerError> {
        let mut persons = Vec::with_capacity(events.len());
        let mut chunk: Vec<ResolveItem> = Vec::new();
        // Where each resolved item's answer goes in `persons`.
        let mut slots: Vec<usize> = Vec::new();
        let mut identifiers_in_chunk = 0;
        for event in events {
            // A retraction carries no identifiers: it names nobody.
            let size = event.identifiers.len();
            if size == 0 {
                persons.push(Owner::Nobody);
                continue;
            }
            if size > MAX_IDENTIFIERS_PER_RESOLVE {
                persons.push(Owner::SetAside(
                    DeadLetterReason::TooManyIdentifiers,
                    format!("{size} identifiers, over the {MAX_IDENTIFIERS_PER_RESOLVE} one resolve call holds"),
                ));
                continue;
            }
            if identifiers_in_chunk + size > MAX_IDENTIFIERS_PER_RESOLVE && !chunk.is_empty() {
                let owners = self
                    .resolve_isolating(tenant, std::mem::take(&mut chunk))
                    .await?;
                for (slot, owner) in slots.drain(..).zip(owners) {
                    persons[slot] = owner;
                }
                identifiers_in_chunk = 0;
            }
            identifiers_in_chunk += size;
            slots.push(persons.len());
            persons.push(Owner::Nobody);
            chunk.push(ResolveItem {
                identifiers: event.identifiers.clone(),
                observed_at: event.event_time,
                evidence_message_id: event.message_id.clone(),
            });
        }
        if !chunk.is_empty() {
            let owners = self.resolve_isolating(tenant, chunk).await?;
            for (slot, owner) in slots.drain(..).zip(owners) {
                persons[slot] = owner;
            }
        }
        Ok(persons)
    }

    /// Resolves a chunk; when identity refuses it as invalid, resolves each item alone, so the
    /// item it cannot take is set aside and the others are resolved. A transient failure
    /// (UNAVAILABLE, a deadline) is returned, and the batch is read again later.
    async fn resolve_isolating(
        &self,
        tenant: &str,
        items: Vec<ResolveItem>,
    ) -> Result<Vec<Owner>, WorkerError> {
        let status = match self.resolve_chunk(tenant, items.clone()).await {
            Err(WorkerError::Upstream(status)) if refuses_the_records(&status) => status,
            other => return other,
        };
        tracing::warn!(tenant, code = ?status.code(), items = items.len(), "identity refused a resolve call; resolving its items one by one");
        let mut owners = Vec::with_capacity(items.len());
        for item in items {
            match self.resolve_chunk(tenant, vec![item]).await {
                Ok(mut one) => owners.push(one.pop().unwrap_or(Owner::Nobody)),
                Err(WorkerError::Upstream(status)) if refuses_the_records(&status) => {
                    owners.push(Owner::SetAside(
                        DeadLetterReason::IdentifiersRefused,
                        format!(
                            "identity answered {:?}: {}",
                            status.code(),
                            status.message()
                        ),
                    ));
                }
                Err(err) => return Err(err),
            }
        }
        Ok(owners)
    }

    async fn resolve_chunk(
        &self,
        tenant: &str,
        items: Vec<ResolveItem>,
    ) -> Result<Vec<Owner>, WorkerError> {
        let expected = items.len();
        let response = self
            .identity
            .clone()
            .batch_resolve(BatchResolveRequest {
                parent: format!("tenants/{tenant}"),
                items,
            })
            .await?
            .into_inner();
        if response.results.len() != expected {
            return Err(WorkerError::Protocol(format!(
                "asked for {expected} persons, got {}",
                response.results.len()
            )));
        }
        response
            .results
            .iter()
            .map(|r| {
                if r.person_id.is_empty() {
                    return Ok(match r.unresolved_reason() {
                        // Blocked or shared identifiers: a real event that names nobody.
                        UnresolvedReason::Blocked | UnresolvedReason::Shared => Owner::Nobody,
                        // An erased person's late event must not recreate them.
                        UnresolvedReason::Suppressed | UnresolvedReason::Unspecified => {
                            Owner::Suppressed
                        }
                    });
                }
                Uuid::from_str(&r.person_id)
                    .map(Owner::Person)
                    .map_err(|err| WorkerError::Protocol(format!("person id: {err}")))
            })
            .collect()
    }
}

/// Whether identity's answer is about the records sent (the same call fails again forever),
/// not about identity or the network.
fn refuses_the_records(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange
    )
}

fn dead_letter(event: &CleanEvent, reason: DeadLetterReason, detail: String) -> DeadLetter {
    let mut payload = event.clone();
    payload.traceparent.clear();
    DeadLetter {
        sequence: event.sequence,
        message_id: event.message_id.clone(),
        reason,
        detail,
        payload: payload.encode_to_vec(),
    }
}

/// Per tenant, the order in which its batches may be resolved: a ticket is taken when a batch
/// is read (in log order), and a batch resolves only once every earlier ticket is done.
#[derive(Debug, Default)]
struct TenantTurns {
    tenants: std::sync::Mutex<std::collections::HashMap<String, TenantQueue>>,
}

#[derive(Debug)]
struct TenantQueue {
    next_ticket: u64,
    done: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

/// One batch's place in its tenant's queue.
#[derive(Debug)]
struct Turn {
    ticket: u64,
    done: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

impl TenantTurns {
    fn take(&self, tenant: &str) -> Turn {
        let mut tenants = match self.tenants.lock() {
            Ok(tenants) => tenants,
            Err(poisoned) => poisoned.into_inner(),
        };
        let queue = tenants
            .entry(tenant.to_owned())
            .or_insert_with(|| TenantQueue {
                next_ticket: 0,
                done: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
            });
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        Turn {
            ticket,
            done: queue.done.clone(),
        }
    }
}

impl Turn {
    /// Waits until every earlier batch of the tenant is resolved.
    async fn wait(&self) {
        let mut done = self.done.subscribe();
        let _ = done.wait_for(|finished| *finished >= self.ticket).await;
    }

    /// Lets the next batch of the tenant go.
    fn done(&self) {
        self.done
            .send_modify(|finished| *finished = (*finished).max(self.ticket + 1));
    }
}
