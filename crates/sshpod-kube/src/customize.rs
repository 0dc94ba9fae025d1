//! The first-login customisation on Kubernetes: one exec into the pod after it runs (the step
//! itself does nothing when the home's marker exists), its output (bounded) shown at the top
//! of the connection's first shell. Never fatal to the login.

use std::time::Duration;

use sshpod_core::{BackendError, Command, ProcessSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::handle::PodHandle;

/// At most this much of each of the step's streams is kept for the user.
const MAX_OUTPUT: u64 = 64 * 1024;

/// Runs the command line `line` in the pod and returns what it printed.
pub(crate) async fn run(pod: &PodHandle, line: String, timeout: Duration) -> Vec<u8> {
    match tokio::time::timeout(timeout, captured(pod, line)).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            tracing::warn!(pod = %pod.name(), error = &e as &dyn std::error::Error, "first-login customisation");
            b"sshpod: the first-login customisation could not run\n".to_vec()
        }
        Err(_) => format!(
            "sshpod: the first-login customisation did not finish within {} s\n",
            timeout.as_secs()
        )
        .into_bytes(),
    }
}

async fn captured(pod: &PodHandle, line: String) -> Result<Vec<u8>, BackendError> {
    let mut process = pod
        .exec(ProcessSpec {
            command: Command::Exec(line),
            env: Vec::new(),
            tty: None,
            x11: None,
        })
        .await?;
    // No input: the step must not wait for any.
    let _ = process.stdin.shutdown().await;
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut limited = (&mut process.stdout).take(MAX_OUTPUT);
    let stdout = limited.read_to_end(&mut out);
    let stderr = async {
        match process.stderr.as_mut() {
            Some(stderr) => stderr.take(MAX_OUTPUT).read_to_end(&mut err).await,
            None => Ok(0),
        }
    };
    let (read_out, read_err) = tokio::join!(stdout, stderr);
    for read in [read_out, read_err] {
        read.map_err(|e| BackendError::Refused {
            what: "reading the customisation's output",
            source: Box::new(e),
        })?;
    }
    process.control.wait().await?;
    out.extend_from_slice(&err);
    Ok(out)
}
