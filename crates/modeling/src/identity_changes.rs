//! The identity-changes worker: tails the identity service's change log and applies each change
//! to the event store in the same transaction as its cursor — merges move history to the
//! surviving person, splits move the split-off identifiers' events, detaches take the person
//! off events made only of identifiers found shared, erasures delete (and queue their
//! confirmation in an outbox), consent changes set the opt-out activation honours, links
//! record who holds each identifier now (segments select by them).

use std::str::FromStr;

use prost::Message as _;
use sqlx::PgPool;
use touchline_proto::common::v1::Identifier;
use touchline_proto::governance::v1::CleanEvent;
use touchline_proto::identity::v1::{
    IdentityChange, IdentityChangeKind, TailIdentityChangesResponse,
};
use touchline_runtime::Shutdown;
use uuid::Uuid;

use crate::split::events_to_move;
use crate::store::{self, changes, identifiers};
use crate::upstream::Identity;
use crate::worker::WorkerError;

/// The cursor name under which this worker records its progress.
pub const IDENTITY_CHANGES_CONSUMER: &str = "modeling.identity_changes";

/// The service name modeling confirms erasures under.
pub const ERASURE_SERVICE: &str = "modeling";

/// Applies identity's change log to the event store, for every tenant.
#[derive(Debug, Clone)]
pub struct IdentityChangesWorker {
    pool: PgPool,
    identity: Identity,
    status: touchline_pipeline::status::PipelineStatus,
}

impl IdentityChangesWorker {
    /// A worker applying changes to `pool`.
    pub fn new(pool: PgPool, identity: Identity) -> Self {
        Self {
            pool,
            identity,
            status: touchline_pipeline::status::PipelineStatus::new(),
        }
    }

    /// Reports positions and errors into `status` (the process's shared one).
    pub fn with_status(mut self, status: touchline_pipeline::status::PipelineStatus) -> Self {
        self.status = status;
        self
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) {
        touchline_pipeline::consumer::run(
            IDENTITY_CHANGES_CONSUMER,
            shutdown,
            &self.status,
            || self.session(),
        )
        .await;
    }

    async fn session(&self) -> Result<(), WorkerError> {
        // Confirmations a previous run committed but did not deliver.
        self.relay_confirmations().await?;
        let cursors = store::load_cursors(&self.pool, IDENTITY_CHANGES_CONSUMER).await?;
        let mut stream = self
            .identity
            .tail_changes(touchline_pipeline::tail::resume_all_tenants(cursors, 500))
            .await?;
        while let Some(batch) = stream.message().await? {
            let erasures = self.apply(batch).await?;
            if erasures {
                self.relay_confirmations().await?;
            }
        }
        Ok(())
    }

    /// Applies a batch; returns whether it held erasures to confirm.
    #[tracing::instrument(name = "modeling.apply_identity_changes", skip_all, fields(service = "modeling", tenant = %batch.tenant, changes = batch.changes.len()))]
    async fn apply(&self, batch: TailIdentityChangesResponse) -> Result<bool, WorkerError> {
        let Some(last) = batch.changes.last().map(|c| c.sequence) else {
            return Ok(false);
        };
        let tenant = batch.tenant.as_str();
        self.status
            .saw_head(IDENTITY_CHANGES_CONSUMER, tenant, batch.head_sequence);
        let mut tx = self.pool.begin().await?;
        // Links touch who holds which identifier, never the events: a batch of links alone
        // does not hold up the event store, which takes the same lock.
        if batch
            .changes
            .iter()
            .any(|c| c.kind() != IdentityChangeKind::Link)
        {
            changes::lock_tenant(&mut tx, tenant).await?;
        }
        let mut erasures = false;
        // Consecutive merges are applied together, and so are consecutive links; any other
        // change ends the run, so each change sees the ones before it and none after.
        let mut merges: Vec<changes::Merge> = Vec::new();
        let mut links: Vec<(Uuid, &[Identifier])> = Vec::new();
        for change in &batch.changes {
            erasures |= change.kind() == IdentityChangeKind::Erasure;
            match change.kind() {
                IdentityChangeKind::Merge => {
                    apply_links(&mut tx, tenant, &mut links).await?;
                    merges.push(changes::Merge {
                        survivor: parse_person(&change.person_id)?,
                        merged: parse_persons(&change.other_person_ids)?,
                    });
                }
                IdentityChangeKind::Link => {
                    apply_merges(&mut tx, tenant, &mut merges).await?;
                    links.push((parse_person(&change.person_id)?, &change.moved_identifiers));
                }
                _ => {
                    apply_merges(&mut tx, tenant, &mut merges).await?;
                    apply_links(&mut tx, tenant, &mut links).await?;
                    apply_change(&mut tx, tenant, change).await?;
                }
            }
        }
        apply_merges(&mut tx, tenant, &mut merges).await?;
        apply_links(&mut tx, tenant, &mut links).await?;
        store::advance_cursor(&mut tx, IDENTITY_CHANGES_CONSUMER, tenant, last).await?;
        tx.commit().await?;
        self.status
            .committed(IDENTITY_CHANGES_CONSUMER, tenant, last);
        self.status.recovered(IDENTITY_CHANGES_CONSUMER);
        Ok(erasures)
    }

    async fn relay_confirmations(&self) -> Result<(), WorkerError> {
        let mut conn = self.pool.acquire().await?;
        for (tenant, erasure, removed) in changes::pending_confirmations(&mut conn).await? {
            self.identity
                .confirm_erasure(erasure.clone(), ERASURE_SERVICE, removed)
                .await?;
            changes::confirmation_sent(&mut conn, &tenant, &erasure).await?;
        }
        Ok(())
    }
}

async fn apply_links(
    conn: &mut sqlx::PgConnection,
    tenant: &str,
    links: &mut Vec<(Uuid, &[Identifier])>,
) -> Result<(), WorkerError> {
    if links.is_empty() {
        return Ok(());
    }
    identifiers::link(conn, tenant, links).await?;
    links.clear();
    Ok(())
}

async fn apply_merges(
    conn: &mut sqlx::PgConnection,
    tenant: &str,
    merges: &mut Vec<changes::Merge>,
) -> Result<(), WorkerError> {
    if merges.is_empty() {
        return Ok(());
    }
    let moved = changes::apply_merges(conn, tenant, merges).await?;
    tracing::debug!(
        merges = merges.len(),
        events_moved = moved,
        "persons merged"
    );
    merges.clear();
    Ok(())
}

async fn apply_change(
    conn: &mut sqlx::PgConnection,
    tenant: &str,
    change: &IdentityChange,
) -> Result<(), WorkerError> {
    let person = parse_person(&change.person_id)?;
    let others = parse_persons(&change.other_person_ids)?;
    match change.kind() {
        IdentityChangeKind::Merge => {
            let moved = changes::apply_merge(conn, tenant, person, &others).await?;
            tracing::debug!(%person, merged = others.len(), events_moved = moved, "persons merged");
        }
        IdentityChangeKind::Split => {
            let Some(new_person) = others.first().copied() else {
                return Err(WorkerError::Protocol(format!(
                    "split {} names no new person",
                    change.sequence
                )));
            };
            let stored = changes::events_of(conn, tenant, person).await?;
            let decoded = decode_identifiers(&stored)?;
            let to_move = events_to_move(
                decoded.iter().map(|(s, ids)| (*s, ids.as_slice())),
                &change.moved_identifiers,
            );
            let moved = changes::move_events(conn, tenant, &to_move, new_person).await?;
            identifiers::split(conn, tenant, person, new_person, &change.moved_identifiers).await?;
            tracing::debug!(%person, %new_person, events_moved = moved, "person split");
        }
        IdentityChangeKind::Detach => {
            let stored = changes::events_of(conn, tenant, person).await?;
            let decoded = decode_identifiers(&stored)?;
            let to_detach = events_to_move(
                decoded.iter().map(|(s, ids)| (*s, ids.as_slice())),
                &change.moved_identifiers,
            );
            changes::record_detached(conn, tenant, person, &change.moved_identifiers).await?;
            let detached = changes::detach_events(conn, tenant, &to_detach).await?;
            tracing::debug!(%person, events_detached = detached, "shared identifiers detached");
        }
        IdentityChangeKind::Erasure => {
            let mut persons = others;
            persons.push(person);
            let removed = changes::erase(conn, tenant, &persons, &change.erasure).await?;
            tracing::info!(erasure = %change.erasure, removed, "person erased");
        }
        IdentityChangeKind::Link => {
            identifiers::link(conn, tenant, &[(person, &change.moved_identifiers)]).await?;
        }
        IdentityChangeKind::Consent => {
            changes::set_opt_out(conn, tenant, person, change.marketing_opt_out).await?;
        }
        IdentityChangeKind::Unspecified => {
            return Err(WorkerError::Protocol(format!(
                "change {} has no kind",
                change.sequence
            )));
        }
    }
    Ok(())
}

/// The identifiers of stored events, by sequence.
fn decode_identifiers(
    stored: &[(i64, Vec<u8>)],
) -> Result<Vec<(i64, Vec<Identifier>)>, WorkerError> {
    stored
        .iter()
        .map(|(sequence, payload)| {
            CleanEvent::decode(payload.as_slice())
                .map(|event| (*sequence, event.identifiers))
                .map_err(|err| WorkerError::Protocol(format!("stored event {sequence}: {err}")))
        })
        .collect()
}

fn parse_persons(ids: &[String]) -> Result<Vec<Uuid>, WorkerError> {
    ids.iter().map(|p| parse_person(p)).collect()
}

fn parse_person(id: &str) -> Result<Uuid, WorkerError> {
    Uuid::from_str(id).map_err(|err| WorkerError::Protocol(format!("person id {id:?}: {err}")))
}
