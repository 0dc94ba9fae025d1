//! The control socket: a unix socket (mode 0600, so only the server's user can use it) on
//! which `sshpod reload` asks the running server to reload and reads the outcome.
//!
//! The exchange is one line each way and then more lines of answer: the client sends
//! `reload\n`; the server answers `applied: …`, `unchanged: …` or `refused: …`, with the
//! reasons on the lines after, and closes.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sshpod::log_codes;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

/// The default path of the control socket.
pub(crate) const DEFAULT_PATH: &str = "/run/sshpod/control.sock";

/// The request for a reload.
pub(crate) const RELOAD: &str = "reload";

/// Longest request line read; anything longer is not a request.
const MAX_REQUEST: u64 = 64;

/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A listening control socket; its file is removed when it is dropped, if it is still ours.
pub(crate) struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file's identity (device, inode), so a socket another process put there
    /// since is not removed.
    identity: (u64, u64),
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| (m.dev(), m.ino()) == self.identity);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Why the control socket is not there.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BindError {
    #[error("another process answers on {0}")]
    InUse(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Listens at `path`: its directory is created (mode 0700) if missing, a stale socket left by
/// a process that died is replaced, a live one is left alone. The socket is bound under a
/// temporary name, restricted to mode 0600, then renamed into place, so it is never
/// reachable with wider permissions.
pub(crate) fn bind(path: &Path) -> Result<ControlSocket, BindError> {
    let io_error = |source: io::Error| BindError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error)?;
    }
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(BindError::InUse(path.to_owned()));
        }
        std::fs::remove_file(path).map_err(io_error)?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let _ = std::fs::remove_file(&temporary);
    let listener = UnixListener::bind(&temporary).map_err(io_error)?;
    let placed = std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&temporary);
        return Err(io_error(e));
    }
    let metadata = std::fs::symlink_metadata(path).map_err(io_error)?;
    Ok(ControlSocket {
        listener,
        path: path.to_owned(),
        identity: (metadata.dev(), metadata.ino()),
    })
}

impl ControlSocket {
    /// Answers requests until `token` is cancelled; `reload` runs on a blocking thread.
    pub(crate) async fn serve<F>(self, reload: Arc<F>, token: CancellationToken)
    where
        F: Fn() -> String + Send + Sync + 'static,
    {
        tracing::info!(
            code = log_codes::CONTROL_SOCKET,
            path = %self.path.display(),
            "control socket listening (sshpod reload)"
        );
        loop {
            let stream = tokio::select! {
                () = token.cancelled() => return,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(
                            code = log_codes::CONTROL_SOCKET,
                            error = &e as &dyn std::error::Error,
                            "control socket: accept failed"
                        );
                        continue;
                    }
                },
            };
            // One request at a time: reloads are serialised anyway.
            if let Err(e) = answer(stream, Arc::clone(&reload)).await {
                tracing::debug!(
                    code = log_codes::CONTROL_SOCKET,
                    error = &e as &dyn std::error::Error,
                    "control socket: request not answered"
                );
            }
        }
    }
}

async fn answer<F>(stream: UnixStream, reload: Arc<F>) -> io::Result<()>
where
    F: Fn() -> String + Send + Sync + 'static,
{
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut limited = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
    match tokio::time::timeout(REQUEST_TIMEOUT, limited.read_line(&mut line)).await {
        Ok(result) => result?,
        Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "no request")),
    };
    let reply = match line.trim() {
        RELOAD => tokio::task::spawn_blocking(move || reload())
            .await
            .unwrap_or_else(|e| format!("refused: the reload failed: {e}\n")),
        other => format!(
            "refused: unknown request `{}`; the only one is `{RELOAD}`\n",
            other.escape_debug()
        ),
    };
    write.write_all(reply.as_bytes()).await?;
    write.shutdown().await
}

/// Asks the server listening at `path` to reload; returns its answer.
pub(crate) async fn request_reload(path: &Path) -> io::Result<String> {
    let mut stream = UnixStream::connect(path).await?;
    stream.write_all(format!("{RELOAD}\n").as_bytes()).await?;
    let mut answer = String::new();
    // A reload reads files and may build TLS clients: allow it a while.
    let mut limited = tokio::io::AsyncReadExt::take(&mut stream, 1024 * 1024);
    let read = tokio::io::AsyncReadExt::read_to_string(&mut limited, &mut answer);
    match tokio::time::timeout(Duration::from_secs(60), read).await {
        Ok(result) => result.map(|_| answer),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the server did not answer within 60 s",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reload_requests_are_answered_on_a_private_socket() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("run").join("control.sock");
        let socket = bind(&path).map_err(io::Error::other)?;
        let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(dir.path().join("run"))?
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        // A second server must not take the socket from the first.
        assert!(matches!(bind(&path), Err(BindError::InUse(_))));

        let token = CancellationToken::new();
        let served = tokio::spawn(socket.serve(
            Arc::new(|| "applied: changed auth\n".to_owned()),
            token.clone(),
        ));
        assert_eq!(request_reload(&path).await?, "applied: changed auth\n");

        let mut other = UnixStream::connect(&path).await?;
        other.write_all(b"shutdown\n").await?;
        let mut answer = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut other, &mut answer).await?;
        assert!(
            answer.starts_with("refused: unknown request `shutdown`"),
            "{answer}"
        );

        token.cancel();
        served.await.map_err(io::Error::other)?;
        // Gone with its server; a stale file left by a dead one is replaced.
        assert!(!path.exists());
        std::fs::write(&path, "")?;
        drop(bind(&path).map_err(io::Error::other)?);
        Ok(())
    }
}
