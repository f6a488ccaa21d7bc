//! Properties of signing and verifying over many random deliveries: what is signed verifies,
//! any change to what was signed does not, and during a rotation either secret verifies.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use touchline_webhooks::signature::{self, DEFAULT_TOLERANCE, WEBHOOK_ID, WEBHOOK_TIMESTAMP};
use touchline_webhooks::{SigningSecret, VerifyError};

const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";

fn secret() -> impl Strategy<Value = SigningSecret> {
    prop::collection::vec(any::<u8>(), 24..=64)
        .prop_map(|key| SigningSecret::from_key(key).expect("24 to 64 bytes is a valid key"))
}

fn message_id() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ID_ALPHABET), 1..40)
        .prop_map(|bytes| String::from_utf8(bytes).expect("the alphabet is ASCII"))
}

fn timestamp() -> impl Strategy<Value = i64> {
    // From 2001 to 2286: ten-digit timestamps, as real ones are for centuries to come.
    1_000_000_000i64..10_000_000_000
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..512)
}

fn at(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).expect("test timestamps are positive"))
}

fn header_map(id: &str, timestamp: &str, signature: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in [
        (WEBHOOK_ID, id),
        (WEBHOOK_TIMESTAMP, timestamp),
        (signature::WEBHOOK_SIGNATURE, signature),
    ] {
        map.insert(
            name,
            HeaderValue::from_str(value).expect("generated values are visible ASCII"),
        );
    }
    map
}

fn verify(
    secret: &SigningSecret,
    id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let headers = header_map(id, timestamp, signature);
    signature::verify(secret, &headers, body, at(now), DEFAULT_TOLERANCE)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn what_is_signed_verifies(
        secret in secret(),
        id in message_id(),
        ts in timestamp(),
        body in body(),
        skew in -300i64..=300,
    ) {
        let signature = signature::sign(&id, ts, &body, &[&secret]);
        prop_assert_eq!(verify(&secret, &id, &ts.to_string(), &signature, &body, ts + skew), Ok(()));
    }

    #[test]
    fn the_headers_verify_as_a_receiver_gets_them(
        secret in secret(),
        id in message_id(),
        ts in timestamp(),
        body in body(),
    ) {
        let mut headers = HeaderMap::new();
        for (name, value) in signature::headers(&id, ts, &body, &[&secret]) {
            headers.insert(name, HeaderValue::from_str(&value).expect("visible ASCII"));
        }
        prop_assert_eq!(
            signature::verify(&secret, &headers, &body, at(ts), DEFAULT_TOLERANCE),
            Ok(())
        );
    }

    #[test]
    fn any_changed_body_byte_fails(
        secret in secret(),
        id in message_id(),
        ts in timestamp(),
        body in prop::collection::vec(any::<u8>(), 1..512),
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let signature = signature::sign(&id, ts, &body, &[&secret]);
        let mut changed = body.clone();
        changed[position.index(body.len())] ^= flip;
        prop_assert_eq!(
            verify(&secret, &id, &ts.to_string(), &signature, &changed, ts),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn any_changed_id_character_fails(
        secret in secret(),
        id in message_id(),
        ts in timestamp(),
        body in body(),
        position in any::<prop::sample::Index>(),
        replacement in prop::sample::select(ID_ALPHABET),
    ) {
        let index = position.index(id.len());
        prop_assume!(id.as_bytes()[index] != replacement);
        let signature = signature::sign(&id, ts, &body, &[&secret]);
        let mut changed = id.clone().into_bytes();
        changed[index] = replacement;
        let changed = String::from_utf8(changed).expect("the alphabet is ASCII");
        prop_assert_eq!(
            verify(&secret, &changed, &ts.to_string(), &signature, &body, ts),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn any_changed_timestamp_digit_fails(
        secret in secret(),
        id in message_id(),
        ts in timestamp(),
        body in body(),
        position in any::<prop::sample::Index>(),
        digit in b'0'..=b'9',
    ) {
        let signature = signature::sign(&id, ts, &body, &[&secret]);
        let mut changed = ts.to_string().into_bytes();
        let index = position.index(changed.len());
        prop_assume!(changed[index] != digit && !(index == 0 && digit == b'0'));
        changed[index] = digit;
        let changed = String::from_utf8(changed).expect("digits are ASCII");
        let changed_ts: i64 = changed.parse().expect("still a number");
        // Judged at the changed time, so it is the signature that fails, not the tolerance.
        prop_assert_eq!(
            verify(&secret, &id, &changed, &signature, &body, changed_ts),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn during_a_rotation_old_and_new_secrets_both_verify(
        old in secret(),
        new in secret(),
        stranger in secret(),
        id in message_id(),
        ts in timestamp(),
        body in body(),
        new_first in any::<bool>(),
    ) {
        prop_assume!(stranger != old && stranger != new);
        let secrets = if new_first { [&new, &old] } else { [&old, &new] };
        let signature = signature::sign(&id, ts, &body, &secrets);
        prop_assert_eq!(signature.split(' ').count(), 2);
        let ts_text = ts.to_string();
        prop_assert_eq!(verify(&old, &id, &ts_text, &signature, &body, ts), Ok(()));
        prop_assert_eq!(verify(&new, &id, &ts_text, &signature, &body, ts), Ok(()));
        prop_assert_eq!(
            verify(&stranger, &id, &ts_text, &signature, &body, ts),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn a_timestamp_past_the_tolerance_fails_even_when_signed(
        secret in secret(),
        id in message_id(),
        ts in timestamp(),
        body in body(),
        beyond in 301i64..100_000,
        late in any::<bool>(),
    ) {
        let signature = signature::sign(&id, ts, &body, &[&secret]);
        let now = if late { ts + beyond } else { ts - beyond };
        let result = verify(&secret, &id, &ts.to_string(), &signature, &body, now);
        if late {
            prop_assert!(matches!(result, Err(VerifyError::TimestampTooOld { .. })), "{result:?}");
        } else {
            prop_assert!(matches!(result, Err(VerifyError::TimestampTooNew { .. })), "{result:?}");
        }
    }
}
