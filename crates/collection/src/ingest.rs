//! Ingest of one batch, shared by IngestEvents and StreamEvents: limits,
//! per-event validation, the group commit, and the per-event results.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use prost::Message;
use touchline_error::FieldViolation;
use touchline_proto::collection::v1 as pb;
use touchline_proto::common::v1::{Event, EventType};

use crate::committer::{GroupCommitter, RowOutcome, Submission};
use crate::config::CollectionConfig;
use crate::domain::{EventCheck, validate};
use crate::error::CollectionError;
use crate::limits::IngestLimits;
use crate::store::NewRawEvent;
use crate::store::counts::CountDelta;

/// A batch let in: holds its share of the in-flight bound until it is answered.
#[derive(Debug)]
pub struct Admitted {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// Takes batches in; cheap to clone.
#[derive(Debug, Clone)]
pub struct Ingestor {
    committer: GroupCommitter,
    limits: Arc<IngestLimits>,
    config: Arc<CollectionConfig>,
}

impl Ingestor {
    /// An ingestor committing through `committer`.
    pub fn new(committer: GroupCommitter, config: Arc<CollectionConfig>) -> Self {
        Self {
            committer,
            limits: Arc::new(IngestLimits::new(&config)),
            config,
        }
    }

    /// Checks the batch against the size limits before anything else.
    pub fn check_size(&self, events: usize, bytes: usize) -> Result<(), CollectionError> {
        if events == 0 {
            return Err(CollectionError::EmptyBatch);
        }
        if events > self.config.max_batch_events {
            return Err(CollectionError::BatchTooLarge {
                limit: self.config.max_batch_events,
                actual: events,
            });
        }
        if bytes > self.config.max_batch_bytes {
            return Err(CollectionError::BatchTooBig {
                limit: self.config.max_batch_bytes,
                actual: bytes,
            });
        }
        Ok(())
    }

    /// Validates, commits and reports on one batch. Returns only after the
    /// accepted events are committed.
    pub async fn ingest(
        &self,
        tenant: &str,
        events: &[Event],
        traceparent: Option<String>,
    ) -> Result<pb::IngestEventsResponse, CollectionError> {
        let admitted = self.admit(tenant, events).await?;
        self.ingest_admitted(admitted, tenant, events, traceparent)
            .await
    }

    /// Everything that can refuse a batch as a whole — its size, the rates, the admission
    /// bound — before any of it is stored. A stream runs this for its batches one after
    /// another, in order, so a batch refused here is never followed by a later one stored.
    pub async fn admit(&self, tenant: &str, events: &[Event]) -> Result<Admitted, CollectionError> {
        let bytes: usize = events.iter().map(Message::encoded_len).sum();
        self.check_size(events.len(), bytes)?;
        let mut per_source: HashMap<&str, usize> = HashMap::new();
        for event in events {
            *per_source.entry(event.source.trim()).or_default() += 1;
        }
        self.limits.check_rates(tenant, events.len(), &per_source)?;
        Ok(Admitted {
            _permit: self.limits.admit(events.len()).await?,
        })
    }

    /// Validates, commits and reports on a batch [`Ingestor::admit`] let in; cannot refuse the
    /// batch as a whole except for a storage failure.
    pub async fn ingest_admitted(
        &self,
        admitted: Admitted,
        tenant: &str,
        events: &[Event],
        traceparent: Option<String>,
    ) -> Result<pb::IngestEventsResponse, CollectionError> {
        let _admitted = admitted;

        // A message id repeats only what the batch stores: an event whose first occurrence was
        // rejected is judged on its own, not called a duplicate of nothing.
        let mut stored_ids: std::collections::HashSet<&str> = std::collections::HashSet::new();
        let mut results: Vec<pb::IngestResult> = Vec::with_capacity(events.len());
        let mut rows = Vec::with_capacity(events.len());
        let mut row_index = Vec::with_capacity(events.len());
        let mut turned_away: BTreeMap<&str, CountDelta> = BTreeMap::new();
        for (index, event) in events.iter().enumerate() {
            // Sources are counted and stored trimmed, as governance reads them, so the
            // quality report's received and outcome counts fall in the same row.
            let source = event.source.trim();
            let mut result = pb::IngestResult {
                index: i32::try_from(index).unwrap_or(i32::MAX),
                message_id: event.message_id.clone(),
                ..Default::default()
            };
            match validate(&check_of(event)) {
                Err(violations) => {
                    result.set_status(pb::IngestStatus::Rejected);
                    result.violations = violations.into_iter().map(to_pb_violation).collect();
                    turned(&mut turned_away, source).rejected += 1;
                }
                Ok(_) if !stored_ids.insert(event.message_id.as_str()) => {
                    result.set_status(pb::IngestStatus::Duplicate);
                    turned(&mut turned_away, source).duplicates += 1;
                }
                Ok(_) => {
                    row_index.push(index);
                    rows.push(NewRawEvent {
                        message_id: event.message_id.clone(),
                        event_name: event.event.clone(),
                        source: source.to_owned(),
                        channel: event.channel.clone(),
                        payload: event.encode_to_vec(),
                        traceparent: traceparent.clone(),
                        source_revision: 0,
                        import_row: None,
                    });
                }
            }
            results.push(result);
        }
        let outcomes = self
            .committer
            .submit(Submission {
                tenant: tenant.to_owned(),
                rows,
                turned_away: turned_away.into_values().collect(),
            })
            .await?;
        for (index, outcome) in row_index.into_iter().zip(outcomes) {
            if let Some(result) = results.get_mut(index) {
                apply(result, outcome);
            }
        }
        let count = |status: pb::IngestStatus| {
            i32::try_from(results.iter().filter(|r| r.status() == status).count())
                .unwrap_or(i32::MAX)
        };
        Ok(pb::IngestEventsResponse {
            accepted_count: count(pb::IngestStatus::Accepted),
            duplicate_count: count(pb::IngestStatus::Duplicate),
            rejected_count: count(pb::IngestStatus::Rejected),
            results,
        })
    }
}

fn turned<'a, 'm>(
    map: &'m mut BTreeMap<&'a str, CountDelta>,
    source: &'a str,
) -> &'m mut CountDelta {
    map.entry(source).or_insert_with(|| CountDelta {
        source: countable(source),
        ..CountDelta::default()
    })
}

/// The counter key of a source as sent. A rejected event may carry a source no counter should
/// hold (a NUL byte, a control character, a megabyte of text): it is counted under the empty
/// source, so counting never fails the rows stored beside it and no report grows with junk.
fn countable(source: &str) -> String {
    if touchline_bounds::check_name(source.trim(), false, touchline_bounds::MAX_SOURCE_BYTES)
        .is_some()
    {
        String::new()
    } else {
        source.to_owned()
    }
}

fn apply(result: &mut pb::IngestResult, outcome: RowOutcome) {
    match outcome {
        RowOutcome::Accepted(sequence) => {
            result.set_status(pb::IngestStatus::Accepted);
            result.sequence = sequence;
        }
        RowOutcome::Duplicate => result.set_status(pb::IngestStatus::Duplicate),
        RowOutcome::SourceDisabled => {
            result.set_status(pb::IngestStatus::Rejected);
            result.violations.push(pb::FieldViolation {
                field: "source".to_owned(),
                description: "the source is disabled".to_owned(),
                reason: "SOURCE_DISABLED".to_owned(),
            });
        }
        RowOutcome::SourceNotRegistered => {
            result.set_status(pb::IngestStatus::Rejected);
            result.violations.push(pb::FieldViolation {
                field: "source".to_owned(),
                description: "the source is not registered".to_owned(),
                reason: "SOURCE_NOT_REGISTERED".to_owned(),
            });
        }
    }
}

/// The contract's form of a violation.
pub fn to_pb_violation(v: FieldViolation) -> pb::FieldViolation {
    pb::FieldViolation {
        field: v.field,
        description: v.description,
        reason: v.reason.to_owned(),
    }
}

fn check_of(event: &Event) -> EventCheck<'_> {
    let requires_name = matches!(event.r#type(), EventType::Unspecified | EventType::Track);
    EventCheck {
        message_id: &event.message_id,
        requires_name,
        event_name: &event.event,
        // Stored and counted trimmed, so judged trimmed.
        source: event.source.trim(),
        channel: &event.channel,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![3 => "[a-z0-9_-]{1,12}", 1 => ".{0,12}", 1 => "[a\u{0}]{0,3}"]
    }

    proptest! {
        /// Any event, whatever its type and text, is judged without a
        /// panic; a source or channel that cannot be held is named by field,
        /// and only track (or untyped) events need a name.
        #[test]
        fn any_event_is_judged_field_by_field(
            message_id in text(),
            name in text(),
            source in text(),
            channel in text(),
            kind in -2i32..8,
        ) {
            let event = Event {
                message_id,
                event: name,
                source,
                channel,
                r#type: kind,
                ..Default::default()
            };
            let fields: Vec<String> = validate(&check_of(&event))
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|v| v.field)
                .collect();
            let unfit = |v: &str, max| touchline_bounds::check_name(v, false, max).is_some();
            prop_assert_eq!(
                fields.contains(&"source".to_owned()),
                unfit(event.source.trim(), touchline_bounds::MAX_SOURCE_BYTES)
            );
            prop_assert_eq!(
                fields.contains(&"channel".to_owned()),
                unfit(&event.channel, touchline_bounds::MAX_CHANNEL_BYTES)
            );
            let needs_name = matches!(event.r#type(), EventType::Unspecified | EventType::Track);
            if !needs_name {
                prop_assert!(!fields.contains(&"event".to_owned()) || !event.event.trim().is_empty());
            }
            if needs_name && event.event.trim().is_empty() {
                prop_assert!(fields.contains(&"event".to_owned()));
            }
        }
    }
}
