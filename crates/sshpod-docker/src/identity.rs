//! Setting a login's user up in its started container (`identity`): the setup script of
//! [`sshpod_core::Identity`] runs once as root, before any of the user's processes, which
//! then run as the user's uid and gid (the exec API's `User`).

use std::time::Duration;

use bollard::exec::CreateExecOptions;
use sshpod_core::{BackendError, Deadline, Identity};
use tokio::io::AsyncReadExt;

use crate::demux::demux;
use crate::engine::Engine;
use crate::exec::wait_exec_exit;

/// At most this much of the setup's error output is kept, for the log and the user.
const MAX_OUTPUT: u64 = 4096;

/// Runs the setup of `identity` in the container as root; its error output becomes the
/// error's cause when it fails, and is logged as a warning when it succeeds with something to
/// say (sudo asked on an image without it).
pub(crate) async fn set_up(
    engine: &Engine,
    container_id: &str,
    identity: &Identity,
    timeout: Duration,
) -> Result<(), BackendError> {
    match tokio::time::timeout(timeout, run(engine, container_id, identity, timeout)).await {
        Ok(result) => result,
        Err(_) => Err(BackendError::Timeout {
            what: Deadline::Command {
                program: "the user's setup".to_owned(),
            },
            after: timeout,
        }),
    }
}

async fn run(
    engine: &Engine,
    container_id: &str,
    identity: &Identity,
    timeout: Duration,
) -> Result<(), BackendError> {
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| BackendError::SetUpUser {
        user: identity.name.clone(),
        source,
    };
    let created = engine
        .docker
        .create_exec(
            container_id,
            CreateExecOptions {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                user: Some("0:0".to_owned()),
                cmd: Some(identity.setup_argv()),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| failed(Box::new(e)))?;
    let hijacked = engine
        .hijack(
            &format!("/exec/{}/start", created.id),
            r#"{"Detach":false,"Tty":false}"#,
        )
        .await
        .map_err(|e| failed(Box::new(e)))?;
    let (err_w, err_r) = tokio::io::duplex(64 * 1024);
    let mut errors = Vec::new();
    let read = async {
        let mut limited = err_r.take(MAX_OUTPUT);
        let _ = limited.read_to_end(&mut errors).await;
        // Whatever is beyond the limit is drained so the process is not blocked.
        let _ = tokio::io::copy(&mut limited.into_inner(), &mut tokio::io::sink()).await;
    };
    let (demuxed, ()) = tokio::join!(demux(hijacked.reader, tokio::io::sink(), err_w), read);
    demuxed.map_err(|e| failed(Box::new(e)))?;
    let said = String::from_utf8_lossy(&errors).trim().to_owned();
    match wait_exec_exit(engine, &created.id, timeout).await? {
        0 => {
            if !said.is_empty() {
                tracing::warn!(user = %identity.name, output = %said, "setting the user up");
            }
            Ok(())
        }
        code => Err(failed(
            format!("the setup exited with status {code}: {said}").into(),
        )),
    }
}
