//! The contract's status codes for requests that never reach a handler.
//!
//! tonic answers a request it cannot decode with INTERNAL (garbage bytes, invalid UTF-8 in a
//! string, nesting past the decoder's limit) and an oversized one with OUT_OF_RANGE. Both are
//! the caller's to fix, and the contracts say so: INVALID_ARGUMENT for a request that is not a
//! valid message of its method, RESOURCE_EXHAUSTED for one over the size limit. This layer
//! rewrites those two answers on their way out, for every service, and nothing else.

use http::{HeaderValue, Response};

/// What a caller is told about a request that does not decode.
const NOT_A_MESSAGE: &str =
    "the request is not a valid protobuf message of this method; nothing of it was processed";
/// The contract's code and message for a transport-level refusal, if `code` and `message` are
/// one (tonic's decode or size refusals). The size refusal keeps the two figures tonic gives
/// (`found N bytes, the limit is: L bytes`), so the caller learns the limit.
pub fn contract_code(code: tonic::Code, message: &str) -> Option<(tonic::Code, String)> {
    match code {
        tonic::Code::Internal if message.contains("failed to decode Protobuf message") => {
            Some((tonic::Code::InvalidArgument, NOT_A_MESSAGE.to_owned()))
        }
        tonic::Code::OutOfRange if message.contains("message length too large") => {
            let figures: Vec<&str> = message
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .collect();
            let text = match figures.as_slice() {
                [found, limit, ..] => format!(
                    "the request holds {found} bytes, over this server's limit of {limit} bytes; send smaller batches"
                ),
                _ => "the request is larger than this server accepts; send smaller batches"
                    .to_owned(),
            };
            Some((tonic::Code::ResourceExhausted, text))
        }
        _ => None,
    }
}

/// A status with the contract's code, when it is a transport-level refusal; as it was
/// otherwise. For streams, whose refusals arrive as a message error inside the handler.
pub fn contract_status(status: tonic::Status) -> tonic::Status {
    match contract_code(status.code(), status.message()) {
        Some((code, message)) => tonic::Status::new(code, message),
        None => status,
    }
}

/// Rewrites a trailers-only response (how tonic answers a request it refused before the
/// handler) that carries a transport-level refusal.
pub fn rewrite_response<B>(mut response: Response<B>) -> Response<B> {
    let headers = response.headers_mut();
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32);
    let Some(code) = code else {
        return response;
    };
    let message = headers
        .get("grpc-message")
        .map(|v| percent_decoded(v.as_bytes()))
        .unwrap_or_default();
    if let Some((code, message)) = contract_code(code, &message) {
        headers.insert("grpc-status", HeaderValue::from(code as i32));
        match HeaderValue::from_str(&message) {
            Ok(value) => headers.insert("grpc-message", value),
            Err(_) => headers.insert("grpc-message", HeaderValue::from_static(NOT_A_MESSAGE)),
        };
        headers.remove("grpc-status-details-bin");
    }
    response
}

/// A `grpc-message` as text: it travels percent-encoded (spaces included).
fn percent_decoded(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            raw[i],
            raw.get(i + 1).copied().and_then(hex),
            raw.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The layer that applies [`rewrite_response`] to every response of a server.
pub fn layer<B>() -> tower::util::MapResponseLayer<fn(Response<B>) -> Response<B>> {
    tower::util::MapResponseLayer::new(rewrite_response::<B> as fn(Response<B>) -> Response<B>)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_and_size_refusals_get_the_contract_codes() {
        let decode = tonic::Status::internal(
            "failed to decode Protobuf message: invalid string value: data is not UTF-8 encoded",
        );
        assert_eq!(contract_status(decode).code(), tonic::Code::InvalidArgument);
        let size = tonic::Status::out_of_range(
            "Error, decoded message length too large: found 5300000 bytes, the limit is: 4194304 bytes",
        );
        let size = contract_status(size);
        assert_eq!(size.code(), tonic::Code::ResourceExhausted);
        assert!(size.message().contains("4194304"), "{size:?}");
        let other = tonic::Status::internal("something else");
        assert_eq!(contract_status(other).code(), tonic::Code::Internal);
    }

    #[test]
    fn trailers_only_responses_are_rewritten() {
        let response = Response::builder()
            .header("grpc-status", "13")
            .header(
                "grpc-message",
                "failed to decode Protobuf message: buffer underflow",
            )
            .body(())
            .unwrap_or_default();
        let response = rewrite_response(response);
        assert_eq!(
            response.headers().get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"3"[..])
        );
        let ok = Response::builder()
            .header("grpc-status", "0")
            .body(())
            .unwrap_or_default();
        assert_eq!(
            rewrite_response(ok)
                .headers()
                .get("grpc-status")
                .map(|v| v.as_bytes()),
            Some(&b"0"[..])
        );
    }
}
