//! The first-login customisation (`homes.customizeRepo`, `customizeRepoCommand`,
//! `customizeCommand`): run once per home, in the container that first mounts it, before the
//! login is handed over; its output (bounded) is shown at the top of the login's first shell.

use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::StreamExt;

use crate::engine::Engine;

/// At most this much of the step's output is kept for the user.
const MAX_OUTPUT: usize = 64 * 1024;

/// Runs `argv` in the container, as `user` (`uid:gid`) when given, and returns what it
/// printed (stdout and stderr, in order).
/// Failures of the step itself are in its output; failures to run it at all, or a step that
/// outlives `timeout`, become a line saying so: never fatal to the login.
pub(crate) async fn run(
    engine: &Engine,
    id: &str,
    argv: Vec<String>,
    user: Option<String>,
    timeout: Duration,
) -> Vec<u8> {
    match tokio::time::timeout(timeout, captured(engine, id, argv, user)).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            tracing::warn!(
                container = id,
                error = &e as &dyn std::error::Error,
                "first-login customisation"
            );
            b"sshpod: the first-login customisation could not run\n".to_vec()
        }
        Err(_) => format!(
            "sshpod: the first-login customisation did not finish within {} s\n",
            timeout.as_secs()
        )
        .into_bytes(),
    }
}

async fn captured(
    engine: &Engine,
    id: &str,
    argv: Vec<String>,
    user: Option<String>,
) -> Result<Vec<u8>, bollard::errors::Error> {
    let created = engine
        .docker
        .create_exec(
            id,
            CreateExecOptions {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(argv),
                // `uid:gid`, or the image's user (root) when `None`.
                user,
                ..Default::default()
            },
        )
        .await?;
    let mut output = Vec::new();
    if let StartExecResults::Attached {
        output: mut stream, ..
    } = engine.docker.start_exec(&created.id, None).await?
    {
        while let Some(chunk) = stream.next().await {
            let bytes = chunk?.into_bytes();
            let room = MAX_OUTPUT.saturating_sub(output.len());
            output.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }
    Ok(output)
}
