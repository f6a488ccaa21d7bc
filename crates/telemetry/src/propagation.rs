//! W3C trace-context propagation: gRPC metadata on the way out, HTTP headers on the way in, and
//! a stored `traceparent` string for work that resumes later (pipeline stages, queues).
//!
//! Outgoing and incoming gRPC use the global propagator that [`crate::init`] sets (W3C
//! TraceContext), so `traceparent` and `tracestate` both travel. The stored-string helpers use
//! the TraceContext format directly because what they persist is, by contract, a `traceparent`.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Header name of the W3C trace parent.
const TRACEPARENT: &str = "traceparent";

/// Writes propagation fields into outgoing gRPC metadata.
struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // Propagators only emit lowercase ASCII names and printable values; anything else would
        // be rejected by the peer anyway, so it is skipped rather than failing the call.
        let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) else {
            return;
        };
        self.0.insert(key, value);
    }
}

/// Reads propagation fields from incoming HTTP/2 headers.
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The OpenTelemetry context of the current `tracing` span, or the ambient OpenTelemetry
/// context when there is no enabled span (code that uses the OpenTelemetry API directly).
fn current_context() -> Context {
    let cx = tracing::Span::current().context();
    if cx.has_active_span() {
        cx
    } else {
        Context::current()
    }
}

/// Injects the current span's trace context (`traceparent`, `tracestate`) into outgoing gRPC
/// metadata. Does nothing when there is no active span.
///
/// [`TraceInterceptor`] calls this; interceptors that do more (auth headers, deadlines) call it
/// themselves so that they compose.
pub fn inject_context(metadata: &mut MetadataMap) {
    let cx = current_context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&cx, &mut MetadataInjector(metadata));
    });
}

/// Extracts a remote parent context from incoming request headers.
///
/// The result carries the caller's span context when the headers hold a valid `traceparent`,
/// and is otherwise empty: the ambient context of the receiving task is deliberately not used
/// as a fallback, so an unrelated span can never become the parent of a request.
pub fn extract_context(headers: &http::HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract_with_context(&Context::new(), &HeaderExtractor(headers))
    })
}

/// The W3C `traceparent` of the current span, for storing beside a record so that a later
/// stage can continue the same trace with [`set_parent_from_traceparent`].
///
/// `None` when there is no active span with a valid context (no subscriber with an
/// OpenTelemetry layer installed, or no span entered).
pub fn current_traceparent() -> Option<String> {
    let cx = current_context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::with_capacity(2);
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the span described by a stored `traceparent`.
///
/// Must be called before `span` is first entered (or before anything reads its context): once
/// the OpenTelemetry span has started its parent is fixed. A malformed or all-zero value is
/// ignored, leaving `span` with the parent it already had; so is a span that is disabled by the
/// filter.
pub fn set_parent_from_traceparent(span: &tracing::Span, traceparent: &str) {
    let traceparent = traceparent.trim();
    if !is_well_formed_traceparent(traceparent) {
        tracing::debug!(traceparent, "ignoring malformed traceparent");
        return;
    }
    let mut carrier: HashMap<String, String> = HashMap::with_capacity(1);
    carrier.insert(TRACEPARENT.to_owned(), traceparent.to_owned());
    let parent = TraceContextPropagator::new().extract_with_context(&Context::new(), &carrier);
    if !parent.span().span_context().is_valid() {
        tracing::debug!(traceparent, "ignoring malformed traceparent");
        return;
    }
    if let Err(error) = span.set_parent(parent) {
        tracing::debug!(%error, "could not set span parent from traceparent");
    }
}

/// Checks the W3C field widths the SDK parser is lenient about (it accepts short ids), so a
/// truncated value stored by some other writer cannot graft spans onto a wrong parent:
/// `version-traceid-parentid-flags`, 2/32/16/2 lowercase hex digits, with only versions after
/// `00` allowed to append further `-` fields.
fn is_well_formed_traceparent(value: &str) -> bool {
    fn lower_hex(field: &str, len: usize) -> bool {
        field.len() == len
            && field
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
    let mut fields = value.split('-');
    let (Some(version), Some(trace_id), Some(parent_id), Some(flags)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return false;
    };
    let has_more = fields.next().is_some();
    lower_hex(version, 2)
        && version != "ff"
        && !(version == "00" && has_more)
        && lower_hex(trace_id, 32)
        && lower_hex(parent_id, 16)
        && lower_hex(flags, 2)
}

/// A tonic client interceptor that sends the current span's trace context with each call:
/// `FooClient::with_interceptor(channel, TraceInterceptor)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceInterceptor;

impl tonic::service::Interceptor for TraceInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        inject_context(request.metadata_mut());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_shape_is_checked_strictly() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(is_well_formed_traceparent(valid));
        // A later version may append fields.
        assert!(is_well_formed_traceparent(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"
        ));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(!is_well_formed_traceparent(bad), "{bad:?}");
        }
    }
}
