//! Trace context carried in gRPC metadata and in stored `traceparent` strings.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt};
use tonic::metadata::MetadataMap;
use touchline_telemetry::testing::install_in_memory;
use touchline_telemetry::{
    current_traceparent, extract_context, inject_context, set_parent_from_traceparent,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::support::span_by_id;

fn span_context(span: &tracing::Span) -> SpanContext {
    span.context().span().span_context().clone()
}

#[test]
fn stored_traceparent_continues_the_trace_in_a_later_span() {
    let exporter = install_in_memory();

    let producer = tracing::info_span!("test.produce");
    let stored = producer
        .in_scope(current_traceparent)
        .expect("an entered span has a traceparent");
    let producer_cx = span_context(&producer);
    assert_eq!(
        stored,
        format!("00-{}-{}-01", producer_cx.trace_id(), producer_cx.span_id())
    );
    drop(producer);

    // A later stage starts from nothing but the stored string.
    let consumer = tracing::info_span!(parent: None, "test.consume");
    set_parent_from_traceparent(&consumer, &stored);
    let consumer_cx = span_context(&consumer);
    assert_eq!(consumer_cx.trace_id(), producer_cx.trace_id());
    assert_ne!(consumer_cx.span_id(), producer_cx.span_id());
    // Work done inside the consumer reports the consumer as the current position.
    let inner = consumer
        .in_scope(current_traceparent)
        .expect("consumer has a traceparent");
    assert!(
        inner.contains(&consumer_cx.span_id().to_string()),
        "{inner}"
    );
    drop(consumer);

    let exported = span_by_id(&exporter, consumer_cx.span_id()).expect("consumer exported");
    assert_eq!(exported.parent_span_id, producer_cx.span_id());
    assert_eq!(exported.span_context.trace_id(), producer_cx.trace_id());
}

#[test]
fn no_traceparent_outside_a_span() {
    install_in_memory();
    assert_eq!(current_traceparent(), None);
}

#[test]
fn malformed_traceparent_is_ignored() {
    let exporter = install_in_memory();
    let malformed = [
        "",
        "garbage",
        // all-zero trace id is invalid by the spec
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        // too short a span id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902-01",
        // version ff is forbidden
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ];
    for value in malformed {
        // A root span stays a root with its own fresh trace.
        let root = tracing::info_span!(parent: None, "test.malformed.root");
        set_parent_from_traceparent(&root, value);
        let root_cx = span_context(&root);
        assert!(root_cx.is_valid(), "{value:?}");
        assert_ne!(
            root_cx.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "{value:?}"
        );
        drop(root);
        let exported = span_by_id(&exporter, root_cx.span_id()).expect("root exported");
        assert_eq!(exported.parent_span_id, SpanId::INVALID, "{value:?}");

        // A span with a contextual parent keeps that parent.
        let outer = tracing::info_span!(parent: None, "test.malformed.outer");
        let outer_cx = span_context(&outer);
        let child = outer.in_scope(|| tracing::info_span!("test.malformed.child"));
        set_parent_from_traceparent(&child, value);
        let child_cx = span_context(&child);
        assert_eq!(child_cx.trace_id(), outer_cx.trace_id(), "{value:?}");
        drop(child);
        drop(outer);
        let exported = span_by_id(&exporter, child_cx.span_id()).expect("child exported");
        assert_eq!(exported.parent_span_id, outer_cx.span_id(), "{value:?}");
    }
}

#[test]
fn metadata_round_trip_carries_the_span_context() {
    install_in_memory();

    let mut empty = MetadataMap::new();
    inject_context(&mut empty);
    assert!(empty.is_empty(), "nothing to inject outside a span");
    assert!(!extract_context(empty.as_ref()).has_active_span());

    let span = tracing::info_span!("test.metadata");
    let sent = span_context(&span);
    let mut metadata = MetadataMap::new();
    span.in_scope(|| inject_context(&mut metadata));
    let traceparent = metadata
        .get("traceparent")
        .expect("traceparent injected")
        .to_str()
        .expect("ascii");
    assert_eq!(
        traceparent,
        format!("00-{}-{}-01", sent.trace_id(), sent.span_id())
    );

    let received = extract_context(metadata.as_ref());
    let received = received.span().span_context().clone();
    assert!(received.is_remote());
    assert_eq!(received.trace_id(), sent.trace_id());
    assert_eq!(received.span_id(), sent.span_id());
    assert!(received.is_sampled());
}
