//! The port-forwarding helper: copied into a container on first use, then run once per
//! forwarded connection (`sshpod-agent dial HOST PORT`, `take PATH`), so `localhost` means the
//! container, and once per listener (`listen HOST PORT`, see `listener`).

use bollard::query_parameters::UploadToContainerOptions;
use sshpod_core::{BackendError, ClosedOnDrop};
use tokio::io::AsyncReadExt;

use crate::demux::demux;
use crate::engine::Engine;
use crate::exec::AbortOnDrop;
use crate::stream::ExecStream;

/// The helper executable, built by `build.rs` (static, no dependencies).
static AGENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sshpod-agent"));

/// Where the helper lives inside the container.
pub(crate) const AGENT_PATH: &str = "/.sshpod/sshpod-agent";

/// A tar archive holding the helper at `.sshpod/sshpod-agent`, mode 0755.
fn archive() -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    builder.append_data(&mut dir, ".sshpod/", std::io::empty())?;
    let mut file = tar::Header::new_gnu();
    file.set_mode(0o755);
    file.set_size(AGENT.len() as u64);
    builder.append_data(&mut file, ".sshpod/sshpod-agent", AGENT)?;
    builder.into_inner()
}

/// Copies the helper into the container.
pub(crate) async fn install(engine: &Engine, container_id: &str) -> Result<(), BackendError> {
    let refused = |source: Box<dyn std::error::Error + Send + Sync>| BackendError::Refused {
        what: "installing the port forwarding helper",
        source,
    };
    let tar = archive().map_err(|e| refused(Box::new(e)))?;
    let options = UploadToContainerOptions {
        path: "/".to_owned(),
        ..Default::default()
    };
    engine
        .docker
        .upload_to_container(
            container_id,
            Some(options),
            bollard::body_full(bytes::Bytes::from(tar)),
        )
        .await
        .map_err(|e| {
            tracing::warn!(
                error = &e as &dyn std::error::Error,
                "installing the forwarding helper"
            );
            refused(Box::new(e))
        })
}

/// A running helper: its stdout and stderr, its stdin, and the task that splits its output.
pub(crate) struct Running {
    pub(crate) stdout: tokio::io::DuplexStream,
    pub(crate) stderr: tokio::io::DuplexStream,
    pub(crate) stdin: tokio::io::WriteHalf<crate::hijack::EngineStream>,
    pub(crate) demux: AbortOnDrop,
}

impl Running {
    /// Waits for the helper's zero byte (connected), or returns what it said on stderr.
    async fn ready(mut self) -> Result<ExecStream, String> {
        let mut ready = [0u8; 1];
        match self.stdout.read(&mut ready).await {
            Ok(1) if ready[0] == 0 => Ok(ExecStream::new(self.stdout, self.stdin, self.demux)),
            _ => Err(reason(&mut self.stderr).await),
        }
    }
}

/// What a helper wrote on stderr before it ended.
pub(crate) async fn reason(stderr: &mut tokio::io::DuplexStream) -> String {
    let mut why = String::new();
    let _ = stderr.take(4096).read_to_string(&mut why).await;
    let why = why.trim().trim_start_matches("sshpod-agent: ").to_owned();
    if why.is_empty() {
        "the forwarding helper ended without a word".to_owned()
    } else {
        why
    }
}

/// Runs the helper with `args` in the container, its streams attached.
pub(crate) async fn run(
    engine: &Engine,
    container_id: &str,
    args: &[&str],
) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
    run_as(engine, container_id, args, None).await
}

/// Runs the helper with `args` as `user` (`uid:gid`; `None`: the container's user).
pub(crate) async fn run_as(
    engine: &Engine,
    container_id: &str,
    args: &[&str],
    user: Option<&str>,
) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
    let mut cmd = vec![AGENT_PATH.to_owned()];
    cmd.extend(args.iter().map(|a| (*a).to_owned()));
    let created = engine
        .docker
        .create_exec(
            container_id,
            bollard::exec::CreateExecOptions {
                attach_stdin: Some(true),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(cmd),
                user: user.map(str::to_owned),
                ..Default::default()
            },
        )
        .await?;
    let hijacked = engine
        .hijack(
            &format!("/exec/{}/start", created.id),
            r#"{"Detach":false,"Tty":false}"#,
        )
        .await?;
    let (out_w, stdout) = tokio::io::duplex(256 * 1024);
    let (err_w, stderr) = tokio::io::duplex(4 * 1024);
    let demux = AbortOnDrop(tokio::spawn(async move {
        let _ = demux(hijacked.reader, out_w, err_w).await;
    }));
    Ok(Running {
        stdout,
        stderr,
        stdin: hijacked.writer,
        demux,
    })
}

/// Connects to `host:port` from inside the container.
pub(crate) async fn dial(
    engine: &Engine,
    container_id: &str,
    host: &str,
    port: u16,
) -> Result<ClosedOnDrop<ExecStream>, BackendError> {
    let args = ["dial", host, &port.to_string()];
    dial_closable(engine, container_id, &args, host, port).await
}

/// Connects to the Unix socket `path` from inside the container.
pub(crate) async fn dial_unix(
    engine: &Engine,
    container_id: &str,
    path: &str,
) -> Result<ClosedOnDrop<ExecStream>, BackendError> {
    dial_closable(engine, container_id, &["dial-unix", path], path, 0).await
}

/// Runs a dialling helper (`args`) and waits until it is connected. Dropped while the service
/// inside still holds the connection, the stream has the helper close it.
async fn dial_closable(
    engine: &Engine,
    container_id: &str,
    args: &[&str],
    host: &str,
    port: u16,
) -> Result<ClosedOnDrop<ExecStream>, BackendError> {
    let dial_error = |source: Box<dyn std::error::Error + Send + Sync>| BackendError::Dial {
        host: host.to_owned(),
        port,
        source,
    };
    let running = run(engine, container_id, args).await.map_err(dial_error)?;
    // The helper writes one zero byte once connected, then its close socket, or explains on
    // stderr and exits.
    let mut stream = running
        .ready()
        .await
        .map_err(|why| dial_error(why.into()))?;
    let Some(close_path) = sshpod_core::read_close_path(&mut stream).await else {
        return Err(dial_error("the helper did not say how to close".into()));
    };
    let (engine, container_id) = (engine.clone(), container_id.to_owned());
    Ok(ClosedOnDrop::new(stream, move || {
        Box::pin(async move { close(&engine, &container_id, &close_path).await })
    }))
}

/// Has a dialling helper close its connection through its close socket `path`.
async fn close(engine: &Engine, container_id: &str, path: &str) {
    match run(engine, container_id, &["close", path]).await {
        // Done once the helper's own exec ends.
        Ok(Running { mut demux, .. }) => demux.finished().await,
        Err(e) => tracing::debug!(
            container = container_id,
            error = &*e as &dyn std::error::Error,
            "closing a forwarded connection inside"
        ),
    }
}

/// Takes a connection a listening helper parked at `path` (see `listener`).
pub(crate) async fn take(
    engine: &Engine,
    container_id: &str,
    path: &str,
    user: Option<&str>,
) -> Result<ExecStream, BackendError> {
    let refused = |source: Box<dyn std::error::Error + Send + Sync>| BackendError::Refused {
        what: "taking a forwarded connection",
        source,
    };
    let running = run_as(engine, container_id, &["take", path], user)
        .await
        .map_err(refused)?;
    running.ready().await.map_err(|why| refused(why.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_holds_the_executable_helper() {
        let tar = archive().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.size().unwrap(),
                )
            })
            .collect();
        assert_eq!(entries[0].0, ".sshpod/");
        assert_eq!(
            entries[1],
            (".sshpod/sshpod-agent".to_owned(), 0o755, AGENT.len() as u64)
        );
        assert!(AGENT.starts_with(b"\x7fELF"));
    }
}
