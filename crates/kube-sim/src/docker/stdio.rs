//! Processes' stdio on the engine: exec a command, or attach to a container's main process.
//! Streams are hijacked with our raw client so the framing is the one we asked for: raw bytes
//! with a TTY, the multiplexed format (see `frames`) without.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::exec::{CreateExecOptions, ResizeExecOptions};
use bollard::models::ExecInspectResponse;
use bollard::query_parameters::{EventsOptions, ResizeContainerTTYOptions};
use futures_util::StreamExt;
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

/// How long an exec may still count as running once its output has ended.
const EXIT_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("creating an exec in container {container}")]
    CreateExec {
        container: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("inspecting exec {exec_id}")]
    InspectExec {
        exec_id: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("exec {exec_id} did not finish")]
    Unfinished { exec_id: String },
    #[error(transparent)]
    Raw(#[from] RawError),
}

impl StdioError {
    /// The text to show a client: the engine's own words where it refused.
    pub fn message(&self) -> String {
        match self {
            Self::CreateExec { source, .. } | Self::InspectExec { source, .. } => {
                super::message_of(source)
            }
            Self::Unfinished { .. } => self.to_string(),
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
        .map_err(|source| StdioError::CreateExec {
            container: container.to_owned(),
            source,
        })?;
    let body = json!({"Detach": false, "Tty": streams.tty});
    let io = engine
        .raw
        .hijack(&format!("/exec/{}/start", created.id), Some(&body))
        .await?;
    Ok((created.id, io))
}

/// The exit code of an exec whose output has ended. The engine records the exit before it
/// closes the exec's streams, so the first inspect normally answers. If the stream ended for
/// another reason (a broken connection), this waits up to [`EXIT_GRACE`] for the engine's
/// `exec_die` event, then asks once more.
pub async fn exec_exit_code(engine: &Engine, exec_id: &str) -> Result<i64, StdioError> {
    // Taken before the first inspect: events since then are replayed, so an exit between the
    // inspect and the subscription is not missed.
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs().saturating_sub(1));
    let info = inspect_exec(engine, exec_id).await?;
    if let Some(code) = exit_code(&info) {
        return Ok(code);
    }
    let mut filters = HashMap::from([
        ("type".to_owned(), vec!["container".to_owned()]),
        ("event".to_owned(), vec!["exec_die".to_owned()]),
    ]);
    if let Some(container) = info.container_id {
        filters.insert("container".to_owned(), vec![container]);
    }
    let options = EventsOptions {
        since: Some(since.to_string()),
        filters: Some(filters),
        ..Default::default()
    };
    let mut events = engine.docker.events(Some(options));
    let died = async {
        while let Some(Ok(event)) = events.next().await {
            let id = event
                .actor
                .as_ref()
                .and_then(|a| a.attributes.as_ref())
                .and_then(|a| a.get("execID"));
            if id.is_some_and(|id| id == exec_id) {
                return;
            }
        }
        // Without events, the last inspect below decides at the deadline.
        std::future::pending::<()>().await;
    };
    let _ = tokio::time::timeout(EXIT_GRACE, died).await;
    exit_code(&inspect_exec(engine, exec_id).await?).ok_or_else(|| StdioError::Unfinished {
        exec_id: exec_id.to_owned(),
    })
}

async fn inspect_exec(engine: &Engine, exec_id: &str) -> Result<ExecInspectResponse, StdioError> {
    engine
        .docker
        .inspect_exec(exec_id)
        .await
        .map_err(|source| StdioError::InspectExec {
            exec_id: exec_id.to_owned(),
            source,
        })
}

/// The exit code, once the engine no longer reports the exec as running.
fn exit_code(info: &ExecInspectResponse) -> Option<i64> {
    (info.running != Some(true)).then(|| info.exit_code.unwrap_or(0))
}

/// Attaches to the main process of `container`; `None` when it had ended by the time the
/// attach was established (the engine would hold such an attach open until a restart).
pub async fn attach(
    engine: &Engine,
    container: &str,
    streams: Streams,
) -> Result<Option<Hijacked>, StdioError> {
    let flag = |b: bool| if b { 1 } else { 0 };
    let path = format!(
        "/containers/{container}/attach?stream=1&stdin={}&stdout={}&stderr={}",
        flag(streams.stdin),
        flag(streams.stdout),
        flag(streams.stderr)
    );
    let io = engine.raw.hijack(&path, None).await?;
    // From here on the engine ends the attach at the exit; before, it may have missed it.
    Ok(is_running(engine, container).await.then_some(io))
}

/// Whether `container` still runs.
async fn is_running(engine: &Engine, container: &str) -> bool {
    match engine.docker.inspect_container(container, None).await {
        Ok(info) => info.state.and_then(|s| s.running).unwrap_or(false),
        Err(_) => false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_see_the_engines_words() {
        let refused = StdioError::CreateExec {
            container: "c1".into(),
            source: bollard::errors::Error::DockerResponseServerError {
                status_code: 409,
                message: "container c1 is not running".into(),
            },
        };
        assert_eq!(refused.message(), "container c1 is not running");
        let slow = StdioError::Unfinished {
            exec_id: "e1".into(),
        };
        assert_eq!(slow.message(), "exec e1 did not finish");
    }
}
