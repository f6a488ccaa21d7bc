//! Deliveries from our sender, verified by the Python Standard Webhooks library.
//!
//! Agreeing with our own verifier only shows the two halves agree with each other; a receiver
//! built on another language's off-the-shelf library shows that tenants using any of the
//! specification's libraries will accept what we send. The receiver
//! (tests/receiver/receiver.py) reports one verdict per delivery on its stdout.
//!
//! This test needs python3 and the package index, through scripts/webhook-receiver.sh. When
//! either is missing it fails: a skipped interoperability test would pass silently forever.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use touchline_webhooks::testing::PythonReceiver as Receiver;
use touchline_webhooks::{AddressPolicy, Outcome, Sender, SenderConfig, SigningSecret};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// What the receiver should report for one delivery.
struct Expected<'a> {
    id: &'a str,
    body: &'a str,
    verified: bool,
    status: u16,
}

async fn deliver_and_check(
    sender: &Sender,
    receiver: &mut Receiver,
    secrets: &[&SigningSecret],
    expected: &Expected<'_>,
) -> Outcome {
    let outcome = sender
        .send(
            &receiver.url("/webhooks"),
            expected.id,
            Bytes::copy_from_slice(expected.body.as_bytes()),
            secrets,
        )
        .await
        .expect("the receiver's URL is allowed");
    let verdict = receiver.verdict().await.expect("the receiver reports");
    assert_eq!(verdict["webhook_id"], expected.id, "{verdict}");
    assert_eq!(verdict["body"], expected.body, "{verdict}");
    assert_eq!(verdict["verified"], expected.verified, "{verdict}");
    assert_eq!(verdict["status"], expected.status, "{verdict}");
    outcome
}

fn secret(text: &str) -> SigningSecret {
    SigningSecret::parse(text).expect("a valid test secret")
}

const BODY: &str = r#"{"type":"order.paid","data":{"order":"o-1","total":12.5}}"#;

#[tokio::test]
async fn the_python_standard_webhooks_library_verifies_our_deliveries() {
    // The receiver holds only the current secret; `next` is the one a rotation moves to.
    let current = secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let next = SigningSecret::generate();
    let mut receiver = Receiver::start(&workspace_root(), &[&current])
        .await
        .expect("the receiver starts");
    let sender = Sender::new(SenderConfig {
        policy: AddressPolicy::LOCAL,
        ..SenderConfig::default()
    })
    .expect("the client builds");

    one_and_two_signatures_verify(&sender, &mut receiver, &current, &next).await;
    a_wrong_secret_does_not_verify(&sender, &mut receiver).await;
    a_failed_delivery_is_retried_and_verifies_again(&sender, &mut receiver, &current).await;
}

async fn one_and_two_signatures_verify(
    sender: &Sender,
    receiver: &mut Receiver,
    current: &SigningSecret,
    next: &SigningSecret,
) {
    let signed_once = Expected {
        id: "msg_one_secret",
        body: BODY,
        verified: true,
        status: 204,
    };
    let outcome = deliver_and_check(sender, receiver, &[current], &signed_once).await;
    assert!(
        matches!(outcome, Outcome::Delivered { status: 204, .. }),
        "{outcome:?}"
    );

    // During a rotation both signatures travel; the receiver's is found in either position.
    for (id, secrets) in [
        ("msg_rotation_new_first", [next, current]),
        ("msg_rotation_old_first", [current, next]),
    ] {
        let rotating = Expected {
            id,
            body: BODY,
            verified: true,
            status: 204,
        };
        let outcome = deliver_and_check(sender, receiver, &secrets, &rotating).await;
        assert!(matches!(outcome, Outcome::Delivered { .. }), "{outcome:?}");
    }

    // Bytes beyond ASCII are signed exactly as sent.
    let unicode = Expected {
        id: "msg_unicode",
        body: r#"{"customer":"Zoë","city":"北京","note":"\u00e9 stays escaped"}"#,
        verified: true,
        status: 204,
    };
    deliver_and_check(sender, receiver, &[current], &unicode).await;
}

async fn a_wrong_secret_does_not_verify(sender: &Sender, receiver: &mut Receiver) {
    let stranger = SigningSecret::generate();
    let forged = Expected {
        id: "msg_wrong_secret",
        body: BODY,
        verified: false,
        status: 401,
    };
    let outcome = deliver_and_check(sender, receiver, &[&stranger], &forged).await;
    assert!(
        matches!(
            outcome,
            Outcome::Retry {
                status: Some(401),
                ..
            }
        ),
        "{outcome:?}"
    );
}

async fn a_failed_delivery_is_retried_and_verifies_again(
    sender: &Sender,
    receiver: &mut Receiver,
    current: &SigningSecret,
) {
    let control = reqwest::Client::new()
        .post(receiver.url("/fail-next/1"))
        .send()
        .await
        .expect("the receiver takes control requests");
    assert_eq!(control.status(), 200);
    let failing = Expected {
        id: "msg_retried",
        body: BODY,
        verified: true,
        status: 500,
    };
    let outcome = deliver_and_check(sender, receiver, &[current], &failing).await;
    assert!(
        matches!(&outcome, Outcome::Retry { status: Some(500), error, .. } if error == "answered 500"),
        "{outcome:?}"
    );
    // The retry carries a fresh timestamp and verifies again.
    let retried = Expected {
        status: 204,
        ..failing
    };
    let outcome = deliver_and_check(sender, receiver, &[current], &retried).await;
    assert!(
        matches!(outcome, Outcome::Delivered { status: 204, .. }),
        "{outcome:?}"
    );
}
