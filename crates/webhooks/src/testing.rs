//! A receiver built on another language's off-the-shelf Standard Webhooks library, for tests
//! (feature `testing`): tests/receiver/receiver.py, in the Python environment
//! scripts/webhook-receiver.sh sets up, reports one verdict per delivery on its stdout.
//!
//! Starting it fails loudly when python3 or the package index is missing: a skipped
//! interoperability test would pass silently forever.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::SigningSecret;

/// Long enough for a slow machine to start Python, short enough to fail rather than hang.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the receiver could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    /// Setting up or starting it failed.
    #[error("the Python receiver could not start: {0}")]
    Start(String),
    /// It stopped talking.
    #[error("the Python receiver: {0}")]
    Report(String),
}

/// The receiver environment's python, set up by the project's script on first use.
fn receiver_python(root: &Path) -> Result<PathBuf, ReceiverError> {
    let output = std::process::Command::new("bash")
        .arg("scripts/webhook-receiver.sh")
        .current_dir(root)
        .output()
        .map_err(|e| ReceiverError::Start(format!("bash scripts/webhook-receiver.sh: {e}")))?;
    if !output.status.success() {
        return Err(ReceiverError::Start(format!(
            "scripts/webhook-receiver.sh (python3 and the package index are required): {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let python = stdout
        .lines()
        .last()
        .map(|line| root.join(line.trim()))
        .ok_or_else(|| ReceiverError::Start("the script printed no python".to_owned()))?;
    if python.exists() {
        Ok(python)
    } else {
        Err(ReceiverError::Start(format!(
            "{} does not exist",
            python.display()
        )))
    }
}

/// A running receiver and its report stream; killed when dropped.
#[derive(Debug)]
pub struct PythonReceiver {
    _process: Child,
    lines: Lines<BufReader<ChildStdout>>,
    port: u16,
}

impl PythonReceiver {
    /// Starts a receiver that accepts deliveries signed with any of `secrets`; `root` is the
    /// workspace root (where scripts/ and tests/receiver/ are).
    pub async fn start(root: &Path, secrets: &[&SigningSecret]) -> Result<Self, ReceiverError> {
        let python = receiver_python(root)?;
        let mut process = Command::new(&python)
            .arg(root.join("tests/receiver/receiver.py"))
            .arg("0")
            .args(secrets.iter().map(ToString::to_string))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ReceiverError::Start(format!("{}: {e}", python.display())))?;
        let stdout = process
            .stdout
            .take()
            .ok_or_else(|| ReceiverError::Start("no stdout".to_owned()))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = next_line(&mut lines).await?;
        let port = first
            .strip_prefix("listening ")
            .and_then(|port| port.parse().ok())
            .ok_or_else(|| ReceiverError::Start(format!("its first line is {first:?}")))?;
        Ok(Self {
            _process: process,
            lines,
            port,
        })
    }

    /// The receiver's URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The receiver's verdict on the next delivery: `webhook_id`, `verified`, `status`,
    /// `body`, `error`.
    pub async fn verdict(&mut self) -> Result<Value, ReceiverError> {
        let line = next_line(&mut self.lines).await?;
        serde_json::from_str(&line).map_err(|e| ReceiverError::Report(format!("{line:?}: {e}")))
    }
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> Result<String, ReceiverError> {
    match tokio::time::timeout(LINE_TIMEOUT, lines.next_line()).await {
        Ok(Ok(Some(line))) => Ok(line),
        Ok(Ok(None)) => Err(ReceiverError::Report("it exited".to_owned())),
        Ok(Err(error)) => Err(ReceiverError::Report(format!(
            "reading its output: {error}"
        ))),
        Err(_) => Err(ReceiverError::Report(format!(
            "it said nothing for {LINE_TIMEOUT:?}"
        ))),
    }
}
