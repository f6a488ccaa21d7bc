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
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use touchline_webhooks::{AddressPolicy, Outcome, Sender, SenderConfig, SigningSecret};

/// Long enough for a slow machine to start Python, short enough to fail rather than hang.
const LINE_TIMEOUT: Duration = Duration::from_secs(20);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// The receiver environment's python, set up by the project's script on first use.
fn receiver_python(root: &Path) -> PathBuf {
    let output = std::process::Command::new("bash")
        .arg("scripts/webhook-receiver.sh")
        .current_dir(root)
        .output()
        .expect("bash runs scripts/webhook-receiver.sh");
    assert!(
        output.status.success(),
        "scripts/webhook-receiver.sh could not set up the receiver (python3 and the package \
         index are required): {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let python = stdout
        .lines()
        .last()
        .expect("the script prints the environment's python last");
    let python = root.join(python.trim());
    assert!(
        python.exists(),
        "the script named {} but it does not exist",
        python.display()
    );
    python
}

/// A running receiver and its report stream; killed when dropped.
struct Receiver {
    _process: Child,
    lines: Lines<BufReader<ChildStdout>>,
    port: u16,
}

impl Receiver {
    async fn start(secrets: &[&SigningSecret]) -> Self {
        let root = workspace_root();
        let python = receiver_python(&root);
        let mut process = Command::new(&python)
            .arg(root.join("tests/receiver/receiver.py"))
            .arg("0")
            .args(secrets.iter().map(ToString::to_string))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("{} does not start: {error}", python.display()));
        let stdout = process.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let first = next_line(&mut lines).await;
        let port = first
            .strip_prefix("listening ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("the receiver's first line is {first:?}"));
        Self {
            _process: process,
            lines,
            port,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The receiver's verdict on the next delivery.
    async fn verdict(&mut self) -> Value {
        let line = next_line(&mut self.lines).await;
        serde_json::from_str(&line).unwrap_or_else(|error| panic!("{line:?}: {error}"))
    }
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    match tokio::time::timeout(LINE_TIMEOUT, lines.next_line()).await {
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) => panic!("the receiver exited"),
        Ok(Err(error)) => panic!("reading the receiver's output: {error}"),
        Err(_) => panic!("the receiver said nothing for {LINE_TIMEOUT:?}"),
    }
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
    let verdict = receiver.verdict().await;
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
    let mut receiver = Receiver::start(&[&current]).await;
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
