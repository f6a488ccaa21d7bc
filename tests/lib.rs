//! Shared by the end-to-end suite and the benchmarks: building events the
//! way a client SDK would, and judging a run of the reference data set
//! against its ground truth.
#![allow(
    clippy::too_many_lines,
    reason = "the acceptance scenario and its helpers read top to bottom"
)]

pub mod acceptance;

use touchline_proto::common::v1::{Event, EventType, Identifier};

/// An instant in epoch milliseconds as a contract timestamp, in whole seconds.
pub fn at(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1_000),
        nanos: 0,
    }
}

/// An event's properties from `(name, value)` pairs.
pub fn properties<'a>(
    fields: impl IntoIterator<Item = (&'a str, prost_types::value::Kind)>,
) -> prost_types::Struct {
    prost_types::Struct {
        fields: fields
            .into_iter()
            .map(|(name, kind)| (name.to_owned(), prost_types::Value { kind: Some(kind) }))
            .collect(),
    }
}

/// A valid track event with a unique id for `person` at `epoch_ms`.
pub fn sample_event(message_id: &str, person: u64, event: &str, epoch_ms: i64) -> Event {
    Event {
        message_id: message_id.to_owned(),
        r#type: EventType::Track as i32,
        event: event.to_owned(),
        anonymous_id: format!("anon-{person}"),
        original_timestamp: epoch_ms.to_string(),
        channel: ["app", "mini_program", "web", "pos"][usize::try_from(person % 4).unwrap_or(0)]
            .to_owned(),
        source: "sdk-app".to_owned(),
        identifiers: vec![Identifier {
            r#type: "device_id".to_owned(),
            value: format!("device-{person}"),
            scope: String::new(),
        }],
        ..Default::default()
    }
}

/// A segment rule: persons who did `event` at least once within the last `days` days.
pub fn did_within(event: &str, days: i64) -> touchline_proto::modeling::v1::SegmentRule {
    use touchline_proto::common::v1::FilterOperator;
    use touchline_proto::modeling::v1::{
        EventAggregateCondition, EventAggregation, EventMatcher, NumberComparison, SegmentRule,
        event_aggregate_condition, segment_rule,
    };
    SegmentRule {
        rule: Some(segment_rule::Rule::EventAggregate(
            EventAggregateCondition {
                event: Some(EventMatcher {
                    event_name: event.to_owned(),
                    filters: Vec::new(),
                }),
                aggregation: EventAggregation::Count as i32,
                field: String::new(),
                comparison: Some(NumberComparison {
                    operator: FilterOperator::GreaterThanOrEqual as i32,
                    value: 1.0,
                    upper_value: 0.0,
                }),
                window: Some(event_aggregate_condition::Window::WithinLast(
                    prost_types::Duration {
                        seconds: days * 86_400,
                        nanos: 0,
                    },
                )),
            },
        )),
    }
}

/// The modeling client the suite calls with (credentials on every call).
pub type Modeling = touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        touchline_runtime::client::CallCredentials,
    >,
>;

/// The collection client the suite calls with (credentials on every call).
pub type Collection =
    touchline_proto::collection::v1::collection_service_client::CollectionServiceClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            touchline_runtime::client::CallCredentials,
        >,
    >;

/// Sends `events` in one call and waits until the event store holds every acknowledged one;
/// returns every stored event of the caller's tenant.
pub async fn ingest_and_store(
    collection: &mut Collection,
    modeling: &mut Modeling,
    events: Vec<Event>,
) -> anyhow::Result<Vec<touchline_proto::modeling::v1::StoredEvent>> {
    let acked = collection
        .ingest_events(touchline_proto::collection::v1::IngestEventsRequest { events })
        .await?
        .into_inner();
    let position = acked.results.iter().map(|r| r.sequence).max().unwrap_or(0);
    modeling
        .count_events(touchline_proto::modeling::v1::CountEventsRequest {
            min_raw_sequence: position,
            ..Default::default()
        })
        .await?;
    stored_events(modeling).await
}

/// Turns model-output triggers on for the caller's tenant: they are computed for tenants with a
/// webhook destination, so this creates one (`automation`) pointing at a closed local port.
pub async fn turn_on_model_triggers(modeling: &mut Modeling) -> anyhow::Result<()> {
    use touchline_proto::modeling::v1::{CreateWebhookDestinationRequest, WebhookDestination};
    modeling
        .create_webhook_destination(CreateWebhookDestinationRequest {
            webhook_destination_id: "automation".into(),
            webhook_destination: Some(WebhookDestination {
                url: "http://127.0.0.1:9/hooks".into(),
                ..WebhookDestination::default()
            }),
            ..CreateWebhookDestinationRequest::default()
        })
        .await?;
    Ok(())
}

/// Gives the caller's tenant the retail industry dictionary and publishes it, so aliases map
/// to canonical names, `submit_order` and `purchase` are conversions and `revenue` is the
/// order's value. `request_id` makes the publication idempotent.
pub async fn publish_retail_dictionary(
    channel: tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        touchline_runtime::client::CallCredentials,
    >,
    request_id: &str,
) -> anyhow::Result<()> {
    use touchline_proto::governance::v1 as governance;
    let mut client = governance::governance_service_client::GovernanceServiceClient::new(channel);
    client
        .apply_industry_template(governance::ApplyIndustryTemplateRequest {
            template: "retail".to_owned(),
            mode: governance::ApplyTemplateMode::Merge as i32,
            ..Default::default()
        })
        .await?;
    client
        .publish_dictionary_version(governance::PublishDictionaryVersionRequest {
            description: "retail".to_owned(),
            request_id: request_id.to_owned(),
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// Every stored event of the caller's tenant, page by page, in store order.
pub async fn stored_events(
    modeling: &mut Modeling,
) -> anyhow::Result<Vec<touchline_proto::modeling::v1::StoredEvent>> {
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = modeling
            .list_events(touchline_proto::modeling::v1::ListEventsRequest {
                page_size: 1_000,
                page_token,
                ..Default::default()
            })
            .await?
            .into_inner();
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            return Ok(events);
        }
        page_token = page.next_page_token;
    }
}

/// Gives the caller's tenant a two-event dictionary and publishes it: `purchase`, a
/// conversion valued by its `amount` property, and `view`.
pub async fn publish_purchase_dictionary(
    channel: tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        touchline_runtime::client::CallCredentials,
    >,
) -> anyhow::Result<()> {
    use touchline_proto::governance::v1 as governance;
    let mut client = governance::governance_service_client::GovernanceServiceClient::new(channel);
    for (id, conversion) in [("purchase", true), ("view", false)] {
        client
            .create_canonical_event(governance::CreateCanonicalEventRequest {
                canonical_event_id: id.to_owned(),
                canonical_event: Some(governance::CanonicalEvent {
                    conversion,
                    value_property: if conversion {
                        "amount".to_owned()
                    } else {
                        String::new()
                    },
                    ..governance::CanonicalEvent::default()
                }),
                ..Default::default()
            })
            .await?;
    }
    client
        .publish_dictionary_version(governance::PublishDictionaryVersionRequest::default())
        .await?;
    Ok(())
}

/// The (field, reason) of each field violation a refused call carries.
pub fn field_violations(status: &tonic::Status) -> Vec<(String, String)> {
    tonic_types::StatusExt::get_error_details(status)
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.reason.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The person the store put the event `message` (a message id) on; empty when none.
pub fn person_of(stored: &[touchline_proto::modeling::v1::StoredEvent], message: &str) -> String {
    stored
        .iter()
        .find(|e| e.message_id == message)
        .map(|e| e.person_id.clone())
        .unwrap_or_default()
}

/// Marks `paths` analysable in the model settings of `tenant` (only that field changes).
pub async fn mark_analysable(
    modeling: &mut Modeling,
    tenant: &str,
    paths: &[&str],
) -> Result<touchline_proto::modeling::v1::ModelSettings, tonic::Status> {
    use touchline_proto::modeling::v1::{ModelSettings, UpdateModelSettingsRequest};
    let updated = modeling
        .update_model_settings(UpdateModelSettingsRequest {
            model_settings: Some(ModelSettings {
                name: format!("tenants/{tenant}/modelSettings"),
                analysable_properties: paths.iter().map(|p| (*p).to_owned()).collect(),
                ..ModelSettings::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["analysable_properties".to_owned()],
            }),
            ..UpdateModelSettingsRequest::default()
        })
        .await?;
    Ok(updated.into_inner().model_settings.unwrap_or_default())
}

/// Waits until the event store of the caller's tenant has not grown for `quiet` seconds
/// (for data sent without acknowledged positions, such as a generator's stream); returns
/// how many events it holds. Gives up after `patience`: a large data set sent faster than
/// the pipeline stores it takes longer to settle than a test's.
pub async fn wait_for_quiet_store(
    modeling: &mut Modeling,
    quiet: u32,
    patience: std::time::Duration,
) -> anyhow::Result<i64> {
    let (mut last, mut still) = (-1, 0);
    let deadline = std::time::Instant::now() + patience;
    while still < quiet {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the event store did not settle"
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let total = modeling
            .count_events(touchline_proto::modeling::v1::CountEventsRequest::default())
            .await?
            .into_inner()
            .total_events;
        (last, still) = if total == last {
            (last, still + 1)
        } else {
            (total, 0)
        };
    }
    Ok(last)
}
