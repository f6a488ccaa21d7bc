//! Helpers for finding and reading exported spans.

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};

/// Every finished span that belongs to `trace_id`.
pub fn spans_in_trace(exporter: &InMemorySpanExporter, trace_id: TraceId) -> Vec<SpanData> {
    exporter
        .get_finished_spans()
        .expect("in-memory exporter readable")
        .into_iter()
        .filter(|span| span.span_context.trace_id() == trace_id)
        .collect()
}

/// The finished span with `span_id`, if it has been exported.
pub fn span_by_id(exporter: &InMemorySpanExporter, span_id: SpanId) -> Option<SpanData> {
    exporter
        .get_finished_spans()
        .expect("in-memory exporter readable")
        .into_iter()
        .find(|span| span.span_context.span_id() == span_id)
}

/// The value of attribute `key` on `span`.
pub fn attribute(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}
