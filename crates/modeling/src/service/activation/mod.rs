//! Activation: webhook destinations (create with a generated or given `whsec_` secret, read,
//! list, delete, resume) and their delivery ledger (`mod`); the trigger log as a stream
//! (`trigger_stream`); the delivery worker that pushes each destination's triggers
//! (`delivery`, one `endpoint` task per destination, `dispatch` saying which batches may go,
//! each `attempt` recorded by the `ledger`); the body of a delivery (`body`); a test delivery
//! beside the queue (`test_delivery`).

mod attempt;
mod body;
mod definitions;
mod delivery;
mod dispatch;
mod endpoint;
mod ledger;
mod model_triggers;
mod test_delivery;
mod trigger_stream;

use std::collections::HashSet;

use touchline_webhooks::{AddressPolicy, SigningSecret};

pub use definitions::{DefinitionInput, NewDefinition};
pub use delivery::DeliveryWorker;
pub use model_triggers::ModelMemory;
pub use test_delivery::TestDelivery;

use super::Modeling;
use super::segments::KEEP_CHANGES;
use crate::error::ModelingError;
use crate::journeys::query::Violations;
use crate::store::activation::{self as store, Attempt, Destination};
use crate::store::segments as segment_store;

/// Most triggers one delivery carries by default.
const DEFAULT_BATCH: i32 = 100;
/// And at most.
const MAX_BATCH: i32 = 1_000;
/// The highest per-destination rate limit (attempts a second).
const MAX_RATE: i32 = 10_000;
/// Most deliveries in flight by default, for the orderings that allow several.
const DEFAULT_CONCURRENCY: i32 = 8;
/// And at most.
const MAX_CONCURRENCY: i32 = 50;
/// How long an old secret keeps signing after a rotation, by default.
const DEFAULT_OVERLAP_SECS: i64 = 86_400;
/// And at most.
const MAX_OVERLAP_SECS: i64 = 7 * 86_400;

/// A destination as a caller sent it.
#[derive(Debug, Clone, Default)]
pub struct NewDestination {
    /// The id; generated when empty.
    pub id: String,
    /// For people.
    pub display_name: String,
    /// The endpoint.
    pub url: String,
    /// Trigger type numbers; empty for all.
    pub types: Vec<i32>,
    /// Segment ids; empty for all.
    pub segments: Vec<String>,
    /// `whsec_…`; generated when empty.
    pub signing_secret: String,
    /// 0 for the default.
    pub max_batch_size: i32,
    /// 0 for the head (or the oldest retained, with `deliver_retained`).
    pub start_after_sequence: i64,
    /// Start from the oldest trigger still retained.
    pub deliver_retained: bool,
    /// Most attempts a second; 0 for no limit.
    pub max_deliveries_per_second: i32,
    /// Identifier types each trigger carries.
    pub identifier_types: Vec<String>,
    /// Definition ids whose triggers it delivers; empty for the raw log.
    pub definitions: Vec<String>,
    /// The contract's `WebhookOrdering` number; 0 for sequence order.
    pub ordering: i32,
    /// Most deliveries in flight; 0 for the ordering's default.
    pub max_concurrency: i32,
    /// The idempotency key.
    pub request_id: String,
    /// Problems found while reading the request.
    pub problems: Violations,
}

/// Where a resumed destination delivers from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Where delivery stopped, with the batch that failed.
    Stopped,
    /// The triggers after this sequence.
    AfterSequence(i64),
    /// The triggers of this time or later.
    FromTime(chrono::DateTime<chrono::Utc>),
}

/// A destination with the trigger log's head, for lag.
#[derive(Debug, Clone)]
pub struct DestinationView {
    /// As stored.
    pub destination: Destination,
    /// The tenant's newest trigger.
    pub head_sequence: i64,
    /// When the batch in flight is next tried, while failing.
    pub next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Webhook settings of the operator.
#[derive(Debug, Clone, Copy)]
pub struct WebhookOptions {
    /// Which endpoint addresses may be called.
    pub policy: AddressPolicy,
    /// How long one attempt may take.
    pub timeout: std::time::Duration,
}

impl WebhookOptions {
    /// An HTTP sender under these settings.
    fn sender(&self) -> Result<touchline_webhooks::Sender, touchline_webhooks::SendError> {
        touchline_webhooks::Sender::new(touchline_webhooks::SenderConfig {
            timeout: self.timeout,
            policy: self.policy,
            ..touchline_webhooks::SenderConfig::default()
        })
    }
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self {
            policy: AddressPolicy::STRICT,
            timeout: std::time::Duration::from_secs(15),
        }
    }
}

/// The trigger type numbers, each checked.
fn check_types(numbers: &[i32], problems: &mut Violations) -> Vec<i16> {
    let mut types = Vec::new();
    for (index, number) in numbers.iter().enumerate() {
        match touchline_proto::modeling::v1::TriggerType::try_from(*number) {
            Ok(t) if *number != 0 => types.push(t as i16),
            _ => problems.add(
                format!("webhook_destination.types[{index}]"),
                "UNKNOWN_VALUE",
                "an unknown trigger type",
            ),
        }
    }
    types
}

/// The secret to keep, and the one to return when it was generated.
fn secret_of(given: &str, problems: &mut Violations) -> (String, Option<String>) {
    if given.is_empty() {
        let secret = SigningSecret::generate().to_string();
        return (secret.clone(), Some(secret));
    }
    match SigningSecret::parse(given) {
        Ok(_) => (given.to_owned(), None),
        Err(err) => {
            problems.add(
                "webhook_destination.signing_secret",
                "INVALID_SECRET",
                format!("{err}; a secret is whsec_ + base64 of 24–64 random bytes"),
            );
            (String::new(), None)
        }
    }
}

/// The ordering and the most deliveries in flight, each checked.
fn concurrency_of(ordering: i32, asked: i32, problems: &mut Violations) -> (i16, i32) {
    use touchline_proto::modeling::v1::WebhookOrdering;
    let ordering = match WebhookOrdering::try_from(ordering) {
        Ok(WebhookOrdering::Unspecified | WebhookOrdering::Sequence) => store::SEQUENCE,
        Ok(WebhookOrdering::PerPerson) => store::PER_PERSON,
        Ok(WebhookOrdering::Unordered) => store::UNORDERED,
        Err(_) => {
            problems.add(
                "webhook_destination.ordering",
                "UNKNOWN_VALUE",
                "an unknown ordering",
            );
            return (store::SEQUENCE, 1);
        }
    };
    let concurrency = match (ordering, asked) {
        (store::SEQUENCE, 0 | 1) => 1,
        (store::SEQUENCE, _) => {
            problems.add(
                "webhook_destination.max_concurrency",
                "NEEDS_ORDERING",
                "sequence order has one delivery in flight: leave it 0 or 1, or choose PER_PERSON or UNORDERED",
            );
            1
        }
        (_, 0) => DEFAULT_CONCURRENCY,
        (_, n) if (2..=MAX_CONCURRENCY).contains(&n) => n,
        _ => {
            problems.add(
                "webhook_destination.max_concurrency",
                "OUT_OF_RANGE",
                "from 2 to 50, or 0 for the default of 8",
            );
            DEFAULT_CONCURRENCY
        }
    };
    (ordering, concurrency)
}

/// Most triggers a delivery carries.
fn batch_size(asked: i32, problems: &mut Violations) -> i32 {
    match asked {
        0 => DEFAULT_BATCH,
        n if (1..=MAX_BATCH).contains(&n) => n,
        _ => {
            problems.add(
                "webhook_destination.max_batch_size",
                "OUT_OF_RANGE",
                "from 1 to 1,000",
            );
            DEFAULT_BATCH
        }
    }
}

impl Modeling {
    /// Registers a destination; returns it and the secret when one was generated.
    pub async fn create_webhook_destination(
        &self,
        tenant: &str,
        mut new: NewDestination,
    ) -> Result<(DestinationView, Option<String>), ModelingError> {
        if !new.request_id.is_empty()
            && let Some((id, secret)) =
                store::recorded_request(&self.pool, tenant, &new.request_id).await?
        {
            return Ok((self.webhook_destination(tenant, &id).await?, secret));
        }
        let mut problems = std::mem::take(&mut new.problems);
        let id = super::resource_id::or_generated(new.id.clone(), "webhook");
        super::resource_id::check("webhook_destination_id", &id, &mut problems);
        if let Err(rejection) = self.webhooks.policy.check_endpoint(&new.url).await {
            problems.add(
                "webhook_destination.url",
                rejection.code(),
                format!("{rejection}"),
            );
        }
        let types = check_types(&new.types, &mut problems);
        self.check_selection(tenant, &new, &mut problems).await?;
        let (secret, generated) = secret_of(&new.signing_secret, &mut problems);
        let max_batch_size = batch_size(new.max_batch_size, &mut problems);
        let (ordering, max_concurrency) =
            concurrency_of(new.ordering, new.max_concurrency, &mut problems);
        let delivered_sequence = self
            .start_after(
                tenant,
                new.start_after_sequence,
                new.deliver_retained,
                &mut problems,
            )
            .await?;
        if !problems.is_empty() {
            return Err(ModelingError::Invalid(problems.0));
        }
        let destination = Destination {
            tenant_id: tenant.to_owned(),
            destination_id: id.clone(),
            display_name: new.display_name,
            url: new.url,
            trigger_types: types,
            segment_ids: new.segments,
            max_batch_size,
            signing_secret: secret,
            previous_secret: None,
            previous_secret_until: None,
            delivered_sequence,
            state: store::ACTIVE,
            consecutive_failures: 0,
            last_success_at: None,
            last_failure_at: None,
            last_error: String::new(),
            created_at: chrono::Utc::now(),
            max_deliveries_per_second: new.max_deliveries_per_second,
            identifier_types: new.identifier_types,
            definition_ids: new.definitions,
            ordering,
            max_concurrency,
            frozen_sequence: delivered_sequence,
        };
        let mut tx = self.pool.begin().await?;
        if !store::insert_destination(&mut tx, &destination).await? {
            return Err(ModelingError::AlreadyExists("webhook destination"));
        }
        if !new.request_id.is_empty() {
            store::record_request(&mut tx, tenant, &new.request_id, &id, generated.as_deref())
                .await?;
        }
        tx.commit().await?;
        self.segment_signals.wake_deliveries();
        Ok((self.webhook_destination(tenant, &id).await?, generated))
    }

    /// Adds a violation for each part of what a new destination selects and carries that does
    /// not hold: segments and definitions the tenant does not have, a rate out of range,
    /// identifier types it cannot export.
    async fn check_selection(
        &self,
        tenant: &str,
        new: &NewDestination,
        problems: &mut Violations,
    ) -> Result<(), ModelingError> {
        self.check_segments(tenant, &new.segments, problems).await?;
        self.check_definitions(
            tenant,
            &new.definitions,
            "webhook_destination.trigger_definitions",
            problems,
        )
        .await?;
        if !(0..=MAX_RATE).contains(&new.max_deliveries_per_second) {
            problems.add(
                "webhook_destination.max_deliveries_per_second",
                "OUT_OF_RANGE",
                "from 0 (no limit) to 10,000",
            );
        }
        if let Err(ModelingError::Invalid(found)) = crate::service::check_export_types(
            &new.identifier_types,
            "webhook_destination.identifier_types",
        ) {
            problems.0.extend(found);
        }
        Ok(())
    }

    /// Adds a violation for each named segment the tenant does not have.
    async fn check_segments(
        &self,
        tenant: &str,
        segments: &[String],
        problems: &mut Violations,
    ) -> Result<(), ModelingError> {
        let mut conn = self.pool.acquire().await?;
        let live: HashSet<String> = segment_store::all(&mut conn, tenant)
            .await?
            .into_iter()
            .filter(|s| !s.deleted)
            .map(|s| s.id)
            .collect();
        for (index, segment) in segments.iter().enumerate() {
            if !live.contains(segment) {
                problems.add(
                    format!("webhook_destination.segments[{index}]"),
                    "UNKNOWN_SEGMENT",
                    format!("no segment {segment:?} in this tenant"),
                );
            }
        }
        Ok(())
    }

    /// The sequence a new destination delivers after: the head for 0 (the last pruned one,
    /// so everything retained, with `retained`), else the one asked for, which must still be
    /// kept.
    async fn start_after(
        &self,
        tenant: &str,
        asked: i64,
        retained: bool,
        problems: &mut Violations,
    ) -> Result<i64, ModelingError> {
        let (head, pruned) = store::trigger_head(&self.pool, tenant).await?;
        if retained && asked != 0 {
            problems.add(
                "webhook_destination.start_after_sequence",
                "CONFLICTING_START",
                "leave it 0 with deliver_retained",
            );
        }
        match asked {
            0 if retained => Ok(pruned),
            0 => Ok(head),
            n if n < 0 => {
                problems.add(
                    "webhook_destination.start_after_sequence",
                    "OUT_OF_RANGE",
                    "a sequence is 0 or more",
                );
                Ok(head)
            }
            n if n < pruned => Err(ModelingError::CursorExpired {
                cursor: n,
                oldest: pruned + 1,
            }),
            n => Ok(n),
        }
    }

    /// One destination with its delivery state.
    pub async fn webhook_destination(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<DestinationView, ModelingError> {
        let destination = store::destination(&self.pool, tenant, id)
            .await?
            .ok_or(ModelingError::NotFound("webhook destination"))?;
        let (head_sequence, _) = store::trigger_head(&self.pool, tenant).await?;
        self.with_state(destination, head_sequence).await
    }

    /// The destination with the log's head (read once per call, shared by a page) and, while
    /// it is failing, when its earliest retry is due.
    async fn with_state(
        &self,
        destination: Destination,
        head_sequence: i64,
    ) -> Result<DestinationView, ModelingError> {
        let next_attempt_at = if destination.state == store::FAILING {
            store::next_retry(
                &self.pool,
                &destination.tenant_id,
                &destination.destination_id,
            )
            .await?
        } else {
            None
        };
        Ok(DestinationView {
            destination,
            head_sequence,
            next_attempt_at,
        })
    }

    /// Destinations after `after`, by id; the flag says whether more follow.
    pub async fn list_webhook_destinations(
        &self,
        tenant: &str,
        after: &str,
        size: i64,
    ) -> Result<(Vec<DestinationView>, bool), ModelingError> {
        let mut rows = store::destinations(&self.pool, tenant, after, size + 1).await?;
        let more = rows.len() as i64 > size;
        rows.truncate(usize::try_from(size).unwrap_or(0));
        let (head_sequence, _) = store::trigger_head(&self.pool, tenant).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.with_state(row, head_sequence).await?);
        }
        Ok((out, more))
    }

    /// Deletes a destination; its deliveries stop.
    pub async fn delete_webhook_destination(
        &self,
        tenant: &str,
        id: &str,
        allow_missing: bool,
    ) -> Result<(), ModelingError> {
        let deleted = store::delete_destination(&self.pool, tenant, id).await?;
        if !deleted && !allow_missing {
            return Err(ModelingError::NotFound("webhook destination"));
        }
        Ok(())
    }

    /// Delivers to a suspended or disabled destination again.
    pub async fn resume_webhook_destination(
        &self,
        tenant: &str,
        id: &str,
        replay: Replay,
    ) -> Result<DestinationView, ModelingError> {
        self.webhook_destination(tenant, id).await?;
        let (head, pruned) = store::trigger_head(&self.pool, tenant).await?;
        let after = match replay {
            Replay::Stopped => None,
            Replay::AfterSequence(after) if after < pruned => {
                return Err(ModelingError::CursorExpired {
                    cursor: after,
                    oldest: pruned + 1,
                });
            }
            Replay::AfterSequence(after) => Some(after),
            Replay::FromTime(time) => {
                let kept_since = chrono::Utc::now()
                    - chrono::Duration::from_std(KEEP_CHANGES).unwrap_or(chrono::Duration::MAX);
                if pruned > 0 && time < kept_since {
                    return Err(ModelingError::ReplayTooOld { kept_since });
                }
                let first = store::first_trigger_since(&self.pool, tenant, time).await?;
                Some(first.map_or(head, |first| first - 1))
            }
        };
        store::resume(&self.pool, tenant, id, after).await?;
        self.segment_signals.wake_deliveries();
        self.webhook_destination(tenant, id).await
    }

    /// Replaces the destination's secret (generated when `given` is empty); the old one
    /// keeps signing for `overlap_secs`. Returns the destination, the generated secret and
    /// when the old one stops.
    pub async fn rotate_webhook_secret(
        &self,
        tenant: &str,
        id: &str,
        given: &str,
        overlap_secs: Option<i64>,
    ) -> Result<
        (
            DestinationView,
            Option<String>,
            chrono::DateTime<chrono::Utc>,
        ),
        ModelingError,
    > {
        let mut problems = Violations::default();
        let (secret, generated) = secret_of(given, &mut problems);
        let overlap = overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
        if !(0..=MAX_OVERLAP_SECS).contains(&overlap) {
            problems.add("overlap", "OUT_OF_RANGE", "from 0 to 7 days");
        }
        let problems = problems.0.into_iter().map(|mut v| {
            v.field = v.field.replace("webhook_destination.", "");
            v
        });
        let problems: Vec<_> = problems.collect();
        if !problems.is_empty() {
            return Err(ModelingError::Invalid(problems));
        }
        let until = chrono::Utc::now() + chrono::Duration::seconds(overlap);
        if !store::rotate_secret(&self.pool, tenant, id, &secret, until).await? {
            return Err(ModelingError::NotFound("webhook destination"));
        }
        Ok((
            self.webhook_destination(tenant, id).await?,
            generated,
            until,
        ))
    }

    /// A page of the destination's attempts, newest first, before attempt `before`.
    pub async fn list_webhook_deliveries(
        &self,
        tenant: &str,
        id: &str,
        before: i64,
        size: i64,
    ) -> Result<(Vec<(i64, Attempt)>, bool), ModelingError> {
        self.webhook_destination(tenant, id).await?;
        let mut rows = store::attempts(&self.pool, tenant, id, before, size + 1).await?;
        let more = rows.len() as i64 > size;
        rows.truncate(usize::try_from(size).unwrap_or(0));
        Ok((rows, more))
    }
}
