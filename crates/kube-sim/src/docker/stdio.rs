//! Processes' stdio on the engine: exec a command, or attach to a container's main process.
//! Streams are hijacked with our raw client so the framing is the one we asked for: raw bytes
//! with a TTY, the multiplexed format (see `frames`) without.

use std::time::Duration;

use bollard::exec::{CreateExecOptions, ResizeExecOptions};
use bollard::query_parameters::ResizeContainerTTYOptions;
use serde_json::json;

use super::raw::{Hijacked, RawError};
use super::Engine;

/// Which stdio streams a process gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("{0}")]
    Engine(String),
    #[error(transparent)]
    Raw(#[from] RawError),
}

impl StdioError {
    /// The text to show a client.
    pub fn message(&self) -> String {
        match self {
            Self::Engine(m) => m.clone(),
            Self::Raw(RawError::Status { message, .. }) => message.clone(),
            Self::Raw(e) => e.to_string(),
        }
    }
}

/// Starts `command` in `container`; returns the exec id and its hijacked stdio.
pub async fn exec(
    engine: &Engine,
    container: &str,
    command: Vec<String>,
    streams: Streams,
) -> Result<(String, Hijacked), StdioError> {
    let options = CreateExecOptions {
        cmd: Some(command),
        attach_stdin: Some(streams.stdin),
        attach_stdout: Some(streams.stdout),
        attach_stderr: Some(streams.stderr && !streams.tty),
        tty: Some(streams.tty),
        ..Default::default()
    };
    let created = engine
        .docker
        .create_exec(container, options)
        .await
        .map_err(|e| StdioError::Engine(super::message_of(&e)))?;
    let body = json!({"Detach": false, "Tty": streams.tty});
    let io = engine
        .raw
        .hijack(&format!("/exec/{}/start", created.id), Some(&body))
        .await?;
    Ok((created.id, io))
}

/// The exit code of a finished exec (waits briefly for the engine to notice the exit).
pub async fn exec_exit_code(engine: &Engine, exec_id: &str) -> Result<i64, StdioError> {
    for _ in 0..100 {
        let info = engine
            .docker
            .inspect_exec(exec_id)
            .await
            .map_err(|e| StdioError::Engine(super::message_of(&e)))?;
        if info.running != Some(true) {
            return Ok(info.exit_code.unwrap_or(0));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(StdioError::Engine(format!("exec {exec_id} did not finish")))
}

/// Attaches to the main process of `container`.
pub async fn attach(
    engine: &Engine,
    container: &str,
    streams: Streams,
) -> Result<Hijacked, StdioError> {
    let flag = |b: bool| if b { 1 } else { 0 };
    let path = format!(
        "/containers/{container}/attach?stream=1&stdin={}&stdout={}&stderr={}",
        flag(streams.stdin),
        flag(streams.stdout),
        flag(streams.stderr)
    );
    Ok(engine.raw.hijack(&path, None).await?)
}

/// What a resize applies to.
#[derive(Debug, Clone)]
pub enum Terminal {
    Exec(String),
    Container(String),
}

pub async fn resize(engine: &Engine, terminal: &Terminal, width: u16, height: u16) {
    let result = match terminal {
        Terminal::Exec(id) => {
            engine
                .docker
                .resize_exec(id, ResizeExecOptions { height, width })
                .await
        }
        Terminal::Container(id) => {
            let options = ResizeContainerTTYOptions {
                h: i32::from(height),
                w: i32::from(width),
            };
            engine.docker.resize_container_tty(id, options).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "resize");
    }
}
