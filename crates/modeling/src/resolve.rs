//! From clean events to rows of the event store: each event's identifiers resolved to a person
//! through identity, and the events identity can never take set aside as dead letters.
//!
//! The event-store worker runs every clean-log batch through [`Resolver::plan`]; a replay of
//! dead letters runs their stored events through the same function, so a replayed event is
//! judged exactly as it would have been the first time.

use std::str::FromStr;

use prost::Message as _;
use touchline_proto::common::v1::Identifier;
use touchline_proto::governance::v1::CleanEvent;
use touchline_proto::identity::v1::{ReassignmentOutcome, ResolveItem, UnresolvedReason};
use uuid::Uuid;

use crate::store::NewStoredEvent;
use crate::store::dead_letters::{DeadLetter, DeadLetterReason};
use crate::upstream::Identity;

/// The identity service takes at most this many identifiers per call.
const MAX_IDENTIFIERS_PER_RESOLVE: usize = touchline_bounds::MAX_IDENTIFIERS_PER_CALL;

/// The canonical event of a carrier's reassigned-number check (the industry templates define
/// it): its phone numbers were given out again, each held by its current subscriber since the
/// event's time. Identity records it rather than resolving it (see RecordReassignedNumbers),
/// and the event is stored without a person: it says something of a number, not of a
/// customer's doing.
pub const REASSIGNED_NUMBER_EVENT: &str = "phone_reassigned";

/// Why resolving failed as a whole (the batch is read again later).
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Identity failed in a way that may pass (unavailable, a deadline), or refused the call
    /// for a reason that is not about its records.
    #[error("identity call: {0}")]
    Upstream(#[from] tonic::Status),
    /// Identity's answer made no sense.
    #[error("identity answer: {0}")]
    Protocol(String),
}

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
    /// Identity cannot take this event's identifiers, however often it is asked.
    SetAside(DeadLetterReason, String),
}

/// What to do with a run of clean events.
#[derive(Debug, Default)]
pub struct StorePlan {
    /// Rows to store (retractions included).
    pub rows: Vec<NewStoredEvent>,
    /// Events set aside, with their reasons.
    pub dead: Vec<DeadLetter>,
    /// Events of erased persons, not stored.
    pub suppressed: Vec<i64>,
}

/// Resolves clean events to persons.
#[derive(Debug, Clone)]
pub struct Resolver {
    identity: Identity,
}

impl Resolver {
    /// Resolves through `identity`.
    pub fn new(identity: Identity) -> Self {
        Self { identity }
    }

    /// The rows and dead letters of `events` (one tenant's, in log order).
    pub async fn plan(
        &self,
        tenant: &str,
        events: &[CleanEvent],
    ) -> Result<StorePlan, ResolveError> {
        let owners = self.resolve(tenant, events).await?;
        let mut plan = StorePlan::default();
        for (event, owner) in events.iter().zip(owners) {
            if event.retraction {
                plan.rows.push(NewStoredEvent::retraction(
                    event.sequence,
                    &event.message_id,
                ));
                continue;
            }
            let person_id = match owner {
                Owner::Person(person) => Some(person),
                Owner::Nobody => None,
                Owner::Suppressed => {
                    plan.suppressed.push(event.sequence);
                    continue;
                }
                Owner::SetAside(reason, detail) => {
                    plan.dead.push(dead_letter(event, reason, detail));
                    continue;
                }
            };
            // Each stored event continues the trace of its cleaning step.
            let span = tracing::info_span!("modeling.store_event", service = "modeling", message_id = %event.message_id);
            if !event.traceparent.is_empty() {
                touchline_telemetry::set_parent_from_traceparent(&span, &event.traceparent);
            }
            let _entered = span.enter();
            match stored_row(event, person_id) {
                Some(row) => plan.rows.push(row),
                None => plan.dead.push(dead_letter(
                    event,
                    DeadLetterReason::NoEventTime,
                    "the clean event has no valid event time".to_owned(),
                )),
            }
        }
        Ok(plan)
    }

    /// One owner per event, resolving in calls of at most 1,000 identifiers.
    async fn resolve(
        &self,
        tenant: &str,
        events: &[CleanEvent],
    ) -> Result<Vec<Owner>, ResolveError> {
        let mut owners = Vec::with_capacity(events.len());
        let mut chunk: Vec<ResolveItem> = Vec::new();
        // Where each resolved item's answer goes in `owners`.
        let mut slots: Vec<usize> = Vec::new();
        let mut identifiers_in_chunk = 0;
        for event in events {
            if event.event_name == REASSIGNED_NUMBER_EVENT && !event.retraction {
                // The chunk ends before a number record, so the events before it in the log
                // are resolved before it (a holder's use on its date keeps the number) and
                // those after it, after.
                self.flush(tenant, &mut chunk, &mut slots, &mut owners)
                    .await?;
                identifiers_in_chunk = 0;
                owners.push(self.record_reassigned(tenant, event).await?);
                continue;
            }
            // A retraction carries no identifiers: it names nobody.
            let size = event.identifiers.len();
            if size == 0 {
                owners.push(Owner::Nobody);
                continue;
            }
            if size > MAX_IDENTIFIERS_PER_RESOLVE {
                owners.push(Owner::SetAside(
                    DeadLetterReason::TooManyIdentifiers,
                    format!("{size} identifiers, over the {MAX_IDENTIFIERS_PER_RESOLVE} one resolve call holds"),
                ));
                continue;
            }
            if identifiers_in_chunk + size > MAX_IDENTIFIERS_PER_RESOLVE {
                self.flush(tenant, &mut chunk, &mut slots, &mut owners)
                    .await?;
                identifiers_in_chunk = 0;
            }
            identifiers_in_chunk += size;
            slots.push(owners.len());
            owners.push(Owner::Nobody);
            chunk.push(ResolveItem {
                identifiers: event.identifiers.clone(),
                observed_at: event.event_time,
                evidence_message_id: event.message_id.clone(),
            });
        }
        self.flush(tenant, &mut chunk, &mut slots, &mut owners)
            .await?;
        Ok(owners)
    }

    /// Resolves the items of `chunk` (when any) and writes each answer to its slot of
    /// `owners`, leaving `chunk` and `slots` empty.
    async fn flush(
        &self,
        tenant: &str,
        chunk: &mut Vec<ResolveItem>,
        slots: &mut Vec<usize>,
        owners: &mut [Owner],
    ) -> Result<(), ResolveError> {
        if chunk.is_empty() {
            return Ok(());
        }
        let resolved = self
            .resolve_isolating(tenant, std::mem::take(chunk))
            .await?;
        for (slot, owner) in slots.drain(..).zip(resolved) {
            if let Some(place) = owners.get_mut(slot) {
                *place = owner;
            }
        }
        Ok(())
    }

    /// Records a `phone_reassigned` event's numbers with identity. The event itself names
    /// nobody; one identity cannot take is set aside, like an event whose identifiers it
    /// refuses.
    async fn record_reassigned(
        &self,
        tenant: &str,
        event: &CleanEvent,
    ) -> Result<Owner, ResolveError> {
        // Without a time the event is set aside when its row is made (NO_EVENT_TIME).
        let Some(since) = event.event_time else {
            return Ok(Owner::Nobody);
        };
        let mut phones: Vec<Identifier> = Vec::new();
        for id in event.identifiers.iter().filter(|id| id.r#type == "phone") {
            if !phones.contains(id) {
                phones.push(id.clone());
            }
        }
        if phones.is_empty() {
            return Ok(Owner::SetAside(
                DeadLetterReason::NoPhoneNumber,
                format!("a {REASSIGNED_NUMBER_EVENT} event names no phone identifier"),
            ));
        }
        match self
            .identity
            .record_reassigned_numbers(tenant, phones, since)
            .await
        {
            // A holder who used the number on or after the date keeps it, with whatever
            // joined them through those uses: the record changed nothing and says so, where a
            // person can see it, split the holder and replay it.
            Ok(outcomes) if outcomes.contains(&ReassignmentOutcome::UsedSince) => {
                Ok(Owner::SetAside(
                    DeadLetterReason::NumberUsedSince,
                    "the number's holder used it on or after the date the record gives: the \
                     persons formed through those uses stand (SplitPerson, then replay)"
                        .to_owned(),
                ))
            }
            Ok(_) => Ok(Owner::Nobody),
            Err(status) if refuses_the_records(&status) => Ok(Owner::SetAside(
                DeadLetterReason::IdentifiersRefused,
                format!(
                    "identity refused the reassigned numbers ({:?}): {}",
                    status.code(),
                    status.message()
                ),
            )),
            Err(status) => Err(status.into()),
        }
    }

    /// Resolves a chunk; when identity refuses it as invalid, resolves each item alone, so the
    /// item it cannot take is set aside and the others are resolved. A transient failure
    /// (UNAVAILABLE, a deadline) is returned, and the batch is read again later.
    async fn resolve_isolating(
        &self,
        tenant: &str,
        items: Vec<ResolveItem>,
    ) -> Result<Vec<Owner>, ResolveError> {
        let status = match self.resolve_chunk(tenant, items.clone()).await {
            Err(ResolveError::Upstream(status)) if refuses_the_records(&status) => status,
            other => return other,
        };
        tracing::warn!(tenant, code = ?status.code(), items = items.len(), "identity refused a resolve call; resolving its items one by one");
        let mut owners = Vec::with_capacity(items.len());
        for item in items {
            match self.resolve_chunk(tenant, vec![item]).await {
                Ok(mut one) => owners.push(one.pop().unwrap_or(Owner::Nobody)),
                Err(ResolveError::Upstream(status)) if refuses_the_records(&status) => {
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
    ) -> Result<Vec<Owner>, ResolveError> {
        let expected = items.len();
        let results = self.identity.batch_resolve(tenant, items).await?;
        if results.len() != expected {
            return Err(ResolveError::Protocol(format!(
                "asked for {expected} persons, got {}",
                results.len()
            )));
        }
        results
            .iter()
            .map(|r| {
                if r.person_id.is_empty() {
                    return Ok(match r.unresolved_reason() {
                        // Blocked or shared identifiers: a real event that names nobody.
                        UnresolvedReason::Blocked | UnresolvedReason::Shared => Owner::Nobody,
                        // A phone or email in clear: identity will never take it.
                        UnresolvedReason::NotPseudonymised => Owner::SetAside(
                            DeadLetterReason::IdentifiersRefused,
                            "identity refused a phone or email in clear (NOT_PSEUDONYMISED)"
                                .to_owned(),
                        ),
                        // An erased person's late event must not recreate them.
                        UnresolvedReason::Suppressed | UnresolvedReason::Unspecified => {
                            Owner::Suppressed
                        }
                    });
                }
                Uuid::from_str(&r.person_id)
                    .map(Owner::Person)
                    .map_err(|err| ResolveError::Protocol(format!("person id: {err}")))
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

/// The row of a clean event owned by `person_id`; `None` without a valid event time.
fn stored_row(event: &CleanEvent, person_id: Option<Uuid>) -> Option<NewStoredEvent> {
    let ts = event.event_time.as_ref()?;
    let event_time =
        chrono::DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).unwrap_or(0))?;
    let mut stored = event.clone();
    stored.traceparent.clear();
    Some(NewStoredEvent {
        sequence: event.sequence,
        message_id: event.message_id.clone(),
        person_id,
        event_name: event.event_name.clone(),
        channel: event.channel.clone(),
        event_time,
        payload: stored.encode_to_vec(),
        retraction: false,
    })
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
