//! One event's way through the pipeline is one trace across services.

use std::time::Duration;

use opentelemetry::trace::TraceId;
use touchline_e2e::sample_event;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_testkit::{TestApp, eventually, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_traced_from_collection_to_modeling() -> anyhow::Result<()> {
    let exporter = crate::init();
    let app = TestApp::spawn().await?;
    let message_id = format!("traced-{}", uuid::Uuid::new_v4());
    let mut collection =
        CollectionServiceClient::new(app.channel(&token("acme", &["events:write"]))?);
    let span = tracing::info_span!("test.client");
    {
        use tracing::Instrument as _;
        collection
            .ingest_events(IngestEventsRequest {
                events: vec![sample_event(&message_id, 9, "view", 1_795_507_200_000)],
            })
            .instrument(span.clone())
            .await?;
    }
    let trace_id: TraceId = {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry_ext::context_of;
        context_of(&span).span().span_context().trace_id()
    };
    drop(span);
    let names = eventually(Duration::from_secs(30), || {
        let exporter = exporter.clone();
        async move {
            let spans = exporter.get_finished_spans()?;
            let names: Vec<String> = spans
                .iter()
                .filter(|s| s.span_context.trace_id() == trace_id)
                .map(|s| s.name.to_string())
                .collect();
            let stored = names.iter().any(|n| n == "modeling.store_event");
            Ok(stored.then_some(names))
        }
    })
    .await?;
    for service in ["collection.", "governance.", "modeling."] {
        assert!(
            names.iter().any(|n| n.starts_with(service)),
            "no {service} span in {names:?}"
        );
    }
    app.stop().await;
    Ok(())
}

/// Reads the OpenTelemetry context a tracing span carries.
mod tracing_opentelemetry_ext {
    pub fn context_of(span: &tracing::Span) -> opentelemetry::Context {
        let traceparent = span
            .in_scope(touchline_telemetry::current_traceparent)
            .unwrap_or_default();
        let mut headers = http::HeaderMap::new();
        if let Ok(value) = traceparent.parse() {
            headers.insert("traceparent", value);
        }
        touchline_telemetry::extract_context(&headers)
    }
}
