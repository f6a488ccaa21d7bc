//! Standard Webhooks 1.0 symmetric signatures.
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature is
//! HMAC-SHA256 of it under the decoded key, written `v1,{base64}`. During a secret rotation a
//! delivery is signed with every live secret and the signatures travel space-separated in one
//! `webhook-signature` header, so a receiver holding either the old or the new secret accepts
//! it. Receivers skip versions they do not know (`v1a` is the asymmetric scheme), which is what
//! lets a sender add schemes without breaking anyone.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

use crate::secret::SigningSecret;

/// The message's identifier: the same for every attempt, so receivers can deduplicate.
pub const WEBHOOK_ID: &str = "webhook-id";
/// Seconds since the Unix epoch at which this attempt was signed.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// One or more space-separated `version,signature` entries.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
/// How far a timestamp may be from the receiver's clock: the specification's libraries use
/// five minutes, enough for clock skew and slow networks, short enough to make replays stale.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The symmetric (HMAC-SHA256) scheme's identifier.
const SYMMETRIC_VERSION: &str = "v1";

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the `{name}` header is missing")]
    MissingHeader { name: &'static str },
    #[error("the `{name}` header is not visible ASCII text")]
    HeaderNotText { name: &'static str },
    #[error("`{WEBHOOK_TIMESTAMP}` is not whole seconds since the epoch: {value:?}")]
    InvalidTimestamp { value: String },
    #[error("the delivery was signed at {timestamp}, more than {tolerance:?} before now ({now})")]
    TimestampTooOld {
        timestamp: i64,
        now: i64,
        tolerance: Duration,
    },
    #[error("the delivery was signed at {timestamp}, more than {tolerance:?} after now ({now})")]
    TimestampTooNew {
        timestamp: i64,
        now: i64,
        tolerance: Duration,
    },
    #[error("`{WEBHOOK_SIGNATURE}` carries no `{SYMMETRIC_VERSION}` signature")]
    NoSymmetricSignature,
    #[error("no `{SYMMETRIC_VERSION}` signature matches the secret")]
    NoMatchingSignature,
}

/// The `webhook-signature` value for a delivery: one `v1,…` entry per secret, in the order
/// given, separated by single spaces.
///
/// The id must not contain `.` (it would make the signed content ambiguous); the sender
/// checks that before it signs. With no secrets the value is empty, which no receiver accepts.
pub fn sign(id: &str, timestamp_secs: i64, body: &[u8], secrets: &[&SigningSecret]) -> String {
    let timestamp = timestamp_secs.to_string();
    secrets
        .iter()
        .map(|secret| {
            let tag = signed_content_mac(secret, id, &timestamp, body).finalize();
            format!("{SYMMETRIC_VERSION},{}", STANDARD.encode(tag.into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The three Standard Webhooks headers for a delivery, as name/value pairs.
pub fn headers(
    id: &str,
    timestamp_secs: i64,
    body: &[u8],
    secrets: &[&SigningSecret],
) -> [(&'static str, String); 3] {
    [
        (WEBHOOK_ID, id.to_owned()),
        (WEBHOOK_TIMESTAMP, timestamp_secs.to_string()),
        (WEBHOOK_SIGNATURE, sign(id, timestamp_secs, body, secrets)),
    ]
}

/// Checks a received delivery the way a Standard Webhooks receiver does: the timestamp within
/// `tolerance` of `now`, and at least one `v1` signature equal (in constant time) to the one
/// `secret` gives. Entries of other versions and malformed entries are skipped.
pub fn verify(
    secret: &SigningSecret,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let id = header_text(headers, WEBHOOK_ID)?;
    let timestamp = header_text(headers, WEBHOOK_TIMESTAMP)?;
    let signatures = header_text(headers, WEBHOOK_SIGNATURE)?;

    let signed_at = parse_timestamp(timestamp)?;
    check_freshness(signed_at, unix_seconds(now), tolerance)?;

    let expected = signed_content_mac(secret, id, timestamp, body);
    let mut saw_symmetric = false;
    for entry in signatures.split(' ') {
        let Some((version, encoded)) = entry.split_once(',') else {
            continue;
        };
        if version != SYMMETRIC_VERSION {
            continue;
        }
        saw_symmetric = true;
        let Ok(candidate) = STANDARD.decode(encoded) else {
            continue;
        };
        // `verify_slice` compares in constant time; the clone keeps `expected` for the next
        // entry, since verifying consumes the MAC state.
        if expected.clone().verify_slice(&candidate).is_ok() {
            return Ok(());
        }
    }
    Err(if saw_symmetric {
        VerifyError::NoMatchingSignature
    } else {
        VerifyError::NoSymmetricSignature
    })
}

/// The MAC state after absorbing `{id}.{timestamp}.{body}`, fed piecewise so the body is
/// never copied.
fn signed_content_mac(
    secret: &SigningSecret,
    id: &str,
    timestamp: &str,
    body: &[u8],
) -> HmacSha256 {
    // HMAC hashes or pads a key of any length; `new_from_slice` can fail only for MACs with a
    // fixed key size, so this never panics.
    let mut mac = HmacSha256::new_from_slice(secret.key()).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn header_text<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, VerifyError> {
    let value = headers
        .get(name)
        .ok_or(VerifyError::MissingHeader { name })?;
    value
        .to_str()
        .map_err(|_| VerifyError::HeaderNotText { name })
}

/// Only the canonical decimal form is accepted: the timestamp is signed as text, so a value
/// like `+17` or `017` would be a second spelling of the same instant with another signature.
fn parse_timestamp(value: &str) -> Result<i64, VerifyError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|parsed| parsed.to_string() == value)
        .ok_or_else(|| VerifyError::InvalidTimestamp {
            value: value.to_owned(),
        })
}

fn check_freshness(signed_at: i64, now: i64, tolerance: Duration) -> Result<(), VerifyError> {
    let tolerance_secs = i128::from(tolerance.as_secs());
    let ahead = i128::from(signed_at) - i128::from(now);
    if ahead < -tolerance_secs {
        return Err(VerifyError::TimestampTooOld {
            timestamp: signed_at,
            now,
            tolerance,
        });
    }
    if ahead > tolerance_secs {
        return Err(VerifyError::TimestampTooNew {
            timestamp: signed_at,
            now,
            tolerance,
        });
    }
    Ok(())
}

/// Whole seconds since the epoch, negative before it (a clock can be wrong either way).
pub(crate) fn unix_seconds(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |secs| -secs),
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn secret(text: &str) -> SigningSecret {
        SigningSecret::parse(text).expect("a valid test secret")
    }

    fn header_map(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                *name,
                HeaderValue::from_str(value).expect("test header values are visible ASCII"),
            );
        }
        map
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn vector_secret() -> SigningSecret {
        secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    }

    fn vector_headers(signature: &str, timestamp: &str) -> HeaderMap {
        header_map(&[
            (WEBHOOK_ID, ID.to_owned()),
            (WEBHOOK_TIMESTAMP, timestamp.to_owned()),
            (WEBHOOK_SIGNATURE, signature.to_owned()),
        ])
    }

    #[test]
    fn reproduces_the_specification_test_vector() {
        assert_eq!(sign(ID, TIMESTAMP, BODY, &[&vector_secret()]), SIGNATURE);
    }

    #[test]
    fn verifies_the_specification_test_vector() {
        let headers = vector_headers(SIGNATURE, "1614265330");
        let now = at(1_614_265_330);
        assert_eq!(
            verify(&vector_secret(), &headers, BODY, now, DEFAULT_TOLERANCE),
            Ok(())
        );
    }

    #[test]
    fn headers_carry_the_id_the_timestamp_and_the_signature() {
        let pairs = headers(ID, TIMESTAMP, BODY, &[&vector_secret()]);
        assert_eq!(
            pairs,
            [
                (WEBHOOK_ID, ID.to_owned()),
                (WEBHOOK_TIMESTAMP, "1614265330".to_owned()),
                (WEBHOOK_SIGNATURE, SIGNATURE.to_owned()),
            ]
        );
    }

    #[test]
    fn several_secrets_give_space_separated_signatures_in_order() {
        let old = vector_secret();
        let new = SigningSecret::generate();
        let both = sign(ID, TIMESTAMP, BODY, &[&new, &old]);
        let expected = format!(
            "{} {}",
            sign(ID, TIMESTAMP, BODY, &[&new]),
            sign(ID, TIMESTAMP, BODY, &[&old])
        );
        assert_eq!(both, expected);
        assert!(both.ends_with(SIGNATURE));
    }

    #[test]
    fn the_timestamp_may_be_off_by_the_tolerance_and_no_more() {
        let headers = vector_headers(SIGNATURE, "1614265330");
        let verify_at = |now| verify(&vector_secret(), &headers, BODY, at(now), DEFAULT_TOLERANCE);
        assert_eq!(verify_at(1_614_265_330 + 300), Ok(()));
        assert_eq!(verify_at(1_614_265_330 - 300), Ok(()));
        assert!(matches!(
            verify_at(1_614_265_330 + 301),
            Err(VerifyError::TimestampTooOld { .. })
        ));
        assert!(matches!(
            verify_at(1_614_265_330 - 301),
            Err(VerifyError::TimestampTooNew { .. })
        ));
    }

    #[test]
    fn unknown_versions_and_malformed_entries_are_skipped() {
        let mixed = format!(
            "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg== \
             v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= garbage v1,not*base64  {SIGNATURE}"
        );
        let headers = vector_headers(&mixed, "1614265330");
        assert_eq!(
            verify(
                &vector_secret(),
                &headers,
                BODY,
                at(1_614_265_330),
                DEFAULT_TOLERANCE
            ),
            Ok(())
        );
    }

    #[test]
    fn a_header_without_any_v1_entry_says_so() {
        let headers = vector_headers(
            "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==",
            "1614265330",
        );
        assert_eq!(
            verify(
                &vector_secret(),
                &headers,
                BODY,
                at(1_614_265_330),
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::NoSymmetricSignature)
        );
    }

    #[test]
    fn a_signature_one_bit_off_does_not_match() {
        let headers = vector_headers(
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",
            "1614265330",
        );
        assert_eq!(
            verify(
                &vector_secret(),
                &headers,
                BODY,
                at(1_614_265_330),
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn missing_headers_are_named() {
        let complete = headers(ID, TIMESTAMP, BODY, &[&vector_secret()]);
        for missing in [WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE] {
            let kept: Vec<_> = complete
                .iter()
                .filter(|(name, _)| *name != missing)
                .cloned()
                .collect();
            assert_eq!(
                verify(
                    &vector_secret(),
                    &header_map(&kept),
                    BODY,
                    at(1_614_265_330),
                    DEFAULT_TOLERANCE
                ),
                Err(VerifyError::MissingHeader { name: missing })
            );
        }
    }

    #[test]
    fn timestamps_in_any_but_the_canonical_form_are_refused() {
        for value in [
            "hello",
            "1614265330.0",
            "+1614265330",
            "01614265330",
            " 1614265330",
            "",
        ] {
            let mut headers = vector_headers(SIGNATURE, "1614265330");
            headers.insert(
                WEBHOOK_TIMESTAMP,
                HeaderValue::from_str(value).expect("visible test value"),
            );
            assert_eq!(
                verify(
                    &vector_secret(),
                    &headers,
                    BODY,
                    at(1_614_265_330),
                    DEFAULT_TOLERANCE
                ),
                Err(VerifyError::InvalidTimestamp {
                    value: value.to_owned()
                }),
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_non_text_header_is_refused() {
        let mut headers = vector_headers(SIGNATURE, "1614265330");
        headers.insert(
            WEBHOOK_ID,
            HeaderValue::from_bytes(b"msg_\xff").expect("opaque bytes are a valid header value"),
        );
        assert_eq!(
            verify(
                &vector_secret(),
                &headers,
                BODY,
                at(1_614_265_330),
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::HeaderNotText { name: WEBHOOK_ID })
        );
    }

    #[test]
    fn unix_seconds_counts_both_sides_of_the_epoch() {
        assert_eq!(unix_seconds(at(1_614_265_330)), 1_614_265_330);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(5)), -5);
    }
}
