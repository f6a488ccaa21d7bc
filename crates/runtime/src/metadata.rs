//! Limits on request metadata, refused per call with a status the caller can act on.
//!
//! HTTP/2 itself accepts header lists up to [`MAX_HEADER_LIST_BYTES`] (the server announces it),
//! so that a caller who sends too much gets an answer to that one call — UNAUTHENTICATED for
//! an oversized token, RESOURCE_EXHAUSTED for oversized metadata — instead of a GOAWAY that
//! drops its whole connection, or a bare HTTP 431 its client reports as UNKNOWN.

/// The header list size the server accepts at the HTTP/2 level.
pub const MAX_HEADER_LIST_BYTES: u32 = 2 * 1024 * 1024;
/// The longest `authorization` header; real tokens are a few hundred bytes to a few KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The most metadata one call may carry, names and values together.
pub const MAX_METADATA_BYTES: usize = 32 * 1024;

/// The refusal for a request head over the limits, if it is.
pub fn check(head: &http::request::Parts) -> Option<tonic::Status> {
    if head
        .headers
        .get(http::header::AUTHORIZATION)
        .is_some_and(|v| v.len() > MAX_TOKEN_BYTES)
    {
        return Some(tonic::Status::unauthenticated(format!(
            "the bearer token is longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    let total: usize = head
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (total > MAX_METADATA_BYTES).then(|| {
        tonic::Status::resource_exhausted(format!(
            "the call carries {total} bytes of metadata, over {MAX_METADATA_BYTES}"
        ))
    })
}

/// The layer applying [`check`] to every call.
pub fn layer() -> crate::gate::RefuseLayer<fn(&http::request::Parts) -> Option<tonic::Status>> {
    crate::gate::RefuseLayer::new(check as fn(&http::request::Parts) -> Option<tonic::Status>)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(name: &'static str, len: usize) -> http::request::Parts {
        let (parts, ()) = http::Request::builder()
            .header(name, "a".repeat(len))
            .body(())
            .unwrap_or_default()
            .into_parts();
        parts
    }

    #[test]
    fn oversized_tokens_and_metadata_are_told_apart() {
        assert_eq!(
            check(&head("authorization", MAX_TOKEN_BYTES + 1)).map(|s| s.code()),
            Some(tonic::Code::Unauthenticated)
        );
        assert_eq!(
            check(&head("x-note", MAX_METADATA_BYTES)).map(|s| s.code()),
            Some(tonic::Code::ResourceExhausted)
        );
        assert!(check(&head("authorization", 2_000)).is_none());
    }
}
