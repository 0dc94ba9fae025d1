//! sshpod's in-container forwarding helper in a pod: the executable the Docker backend ships
//! (built from the same source by `build.rs`), copied in through an exec on first use, then
//! run through an exec per listener (`listen`, see `listener`) and per forwarded connection
//! (`take`, `dial-unix`). Each exec is sshpod's own WebSocket (`remote`), so every forwarded
//! connection has its own stream, its own flow control and its own end of input.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::AttachParams;
use sshpod_core::{BackendError, ClosedOnDrop, Deadline, Identity, WindDown};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::sync::oneshot;

use crate::exec::Target;
use crate::pod::exit_code;
use crate::remote::{self, Driver, InputWriter, OutputReader, Subresource};

/// The helper executable, built by `build.rs` (static, no dependencies).
static HELPER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sshpod-agent"));

/// Copies stdin to the helper's place and prints that place: `/.sshpod` as the Docker
/// backend uses where the pod's user may write there, else a directory of its own in the
/// temporary directory (a pod running as a plain user). Replaced by rename, so a helper that
/// is running keeps its file.
const INSTALL: &str = r#"umask 022
for d in /.sshpod "${TMPDIR:-/tmp}/.sshpod-$(id -u 2>/dev/null || echo user)"; do
  mkdir -p "$d" 2>/dev/null && [ -O "$d" ] && [ -w "$d" ] || continue
  f="$d/sshpod-agent"
  if cat > "$f.$$" && chmod 755 "$f.$$" && mv -f "$f.$$" "$f"; then echo "$f"; exit 0; fi
  rm -f "$f.$$"; exit 1
done
echo "no directory to put it in" >&2
exit 1
"#;

/// The longest answer the install script gives (a path).
const MAX_ANSWER: u64 = 4096;

/// `work` (starting the helper as `program`), given up after `after`: an API server that does
/// not answer must not hold a forward request forever.
pub(crate) async fn within<T>(
    after: Duration,
    program: &str,
    work: impl Future<Output = Result<T, BackendError>>,
) -> Result<T, BackendError> {
    tokio::time::timeout(after, work)
        .await
        .map_err(|_| BackendError::Timeout {
            what: Deadline::Command {
                program: program.to_owned(),
            },
            after,
        })?
}

fn params(target: &Target<'_>) -> AttachParams {
    AttachParams {
        container: Some(target.container.to_owned()),
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
        ..AttachParams::default()
    }
}

/// Copies the helper into the pod and returns its path there.
pub(crate) async fn install(target: &Target<'_>) -> Result<String, BackendError> {
    let refused = |source: Box<dyn std::error::Error + Send + Sync>| BackendError::Refused {
        what: "installing the forwarding helper in your pod",
        source,
    };
    let argv = ["/bin/sh", "-c", INSTALL, "sshpod-install"].map(str::to_owned);
    let mut remote = remote::open(
        &target.pods.pods(),
        target.pod,
        Subresource::Exec(argv.to_vec()),
        &params(target),
    )
    .await
    .map_err(|e| refused(Box::new(e)))?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) = (
        remote.stdin.take(),
        remote.stdout.take(),
        remote.stderr.take(),
    ) else {
        return Err(refused("the exec came without its streams".into()));
    };
    let status = remote.status.take();
    let write = async {
        // A shell that is not there takes no input: its reason is in the Status.
        let _ = stdin.write_all(HELPER).await;
        let _ = stdin.shutdown().await;
    };
    let mut path = String::new();
    let mut why = String::new();
    let read = async {
        let _ = stdout.take(MAX_ANSWER).read_to_string(&mut path).await;
    };
    let explain = async {
        let _ = stderr.take(MAX_ANSWER).read_to_string(&mut why).await;
    };
    tokio::join!(write, read, explain);
    let status = match status {
        Some(f) => f.await.ok(),
        None => None,
    };
    drop(remote.driver);
    let path = path.trim();
    match status.as_ref().and_then(exit_code) {
        Some(0) if path.starts_with('/') => Ok(path.to_owned()),
        _ => {
            let reason = match (why.trim(), status.and_then(|s| s.message)) {
                ("", Some(message)) => message,
                ("", None) => "the pod cannot run /bin/sh".to_owned(),
                (why, _) => why.to_owned(),
            };
            tracing::warn!(pod = target.pod, reason, "installing the forwarding helper");
            Err(refused(reason.into()))
        }
    }
}

/// A running helper: its streams, and the socket's driver (dropping it ends the exec).
pub(crate) struct Running {
    pub(crate) stdin: InputWriter,
    pub(crate) stdout: OutputReader,
    pub(crate) stderr: OutputReader,
    /// The exec's final Status, for a helper that could not even start.
    status: Option<oneshot::Receiver<Status>>,
    pub(crate) driver: Driver,
}

impl Running {
    /// What the helper wrote on stderr before it ended (or why the exec failed).
    pub(crate) async fn reason(&mut self) -> String {
        let mut why = String::new();
        let _ = (&mut self.stderr).take(4096).read_to_string(&mut why).await;
        let why = why.trim().trim_start_matches("sshpod-agent: ").to_owned();
        if !why.is_empty() {
            return why;
        }
        let status = match self.status.take() {
            Some(f) => f.await.ok(),
            None => None,
        };
        match status.and_then(|s| s.message) {
            Some(message) if !message.is_empty() => message,
            _ => "the forwarding helper ended without a word".to_owned(),
        }
    }

    /// Waits for the helper's zero byte (connected), or returns what it said.
    async fn ready(mut self) -> Result<HelperStream, String> {
        let mut ready = [0u8; 1];
        match self.stdout.read(&mut ready).await {
            Ok(1) if ready[0] == 0 => Ok(HelperStream {
                stdout: self.stdout,
                stdin: self.stdin,
                _driver: self.driver,
            }),
            _ => Err(self.reason().await),
        }
    }
}

/// Runs the helper at `path` with `args`, as `identity`'s user when there is one.
pub(crate) async fn run(
    target: &Target<'_>,
    path: &str,
    args: &[&str],
    identity: Option<&Identity>,
) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
    let mut argv = vec![path.to_owned()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    if let Some(identity) = identity {
        argv = identity.run_as_argv(false, argv);
    }
    let mut remote = remote::open(
        &target.pods.pods(),
        target.pod,
        Subresource::Exec(argv),
        &params(target),
    )
    .await?;
    match (
        remote.stdin.take(),
        remote.stdout.take(),
        remote.stderr.take(),
    ) {
        (Some(stdin), Some(stdout), Some(stderr)) => Ok(Running {
            stdin,
            stdout,
            stderr,
            status: remote.status.take(),
            driver: remote.driver,
        }),
        _ => Err("the exec came without its streams".into()),
    }
}

/// How long closing a dialled connection inside may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects to the Unix socket `path` inside the pod (`ssh -L ...:/path`). Dropped while the
/// service inside still holds the connection, the stream has the helper close it.
pub(crate) async fn dial_unix(
    target: &Target<'_>,
    helper: &str,
    path: &str,
) -> Result<ClosedOnDrop<HelperStream>, BackendError> {
    let dial_error = |source: Box<dyn std::error::Error + Send + Sync>| BackendError::Dial {
        host: path.to_owned(),
        port: 0,
        source,
    };
    let running = run(target, helper, &["dial-unix", path], None)
        .await
        .map_err(dial_error)?;
    let mut stream = running
        .ready()
        .await
        .map_err(|why| dial_error(why.into()))?;
    let Some(close_path) = sshpod_core::read_close_path(&mut stream).await else {
        return Err(dial_error("the helper did not say how to close".into()));
    };
    let (pods, pod, container) = (
        target.pods.clone(),
        target.pod.to_owned(),
        target.container.to_owned(),
    );
    let helper = helper.to_owned();
    Ok(ClosedOnDrop::new(stream, move || {
        Box::pin(async move {
            let target = Target {
                pods: &pods,
                pod: &pod,
                container: &container,
            };
            let closing = async {
                match run(&target, &helper, &["close", &close_path], None).await {
                    // Done once the helper's own exec ends.
                    Ok(running) => running.driver.finished().await,
                    Err(e) => tracing::debug!(
                        pod = %pod,
                        error = &*e as &dyn std::error::Error,
                        "closing a forwarded connection inside"
                    ),
                }
            };
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
        })
    }))
}

/// Takes a connection a listening helper parked at `path` (see `listener`).
pub(crate) async fn take(
    target: &Target<'_>,
    helper: &str,
    path: &str,
    identity: Option<&Identity>,
) -> Result<HelperStream, BackendError> {
    let refused = |source: Box<dyn std::error::Error + Send + Sync>| BackendError::Refused {
        what: "taking a forwarded connection",
        source,
    };
    let running = run(target, helper, &["take", path], identity)
        .await
        .map_err(refused)?;
    running.ready().await.map_err(|why| refused(why.into()))
}

/// One forwarded connection through a helper: its stdout read, its stdin written (shutting
/// it down ends the helper's input, which half-closes the socket inside).
pub(crate) struct HelperStream {
    stdout: OutputReader,
    stdin: InputWriter,
    _driver: Driver,
}

impl WindDown for HelperStream {
    async fn wind_down(self, grace: Duration) -> bool {
        let HelperStream {
            stdout,
            mut stdin,
            _driver: driver,
        } = self;
        // Its output has nowhere to go any more; the exec is still read to its end.
        drop(stdout);
        let _ = stdin.shutdown().await;
        tokio::time::timeout(grace, driver.finished()).await.is_ok()
    }
}

impl AsyncRead for HelperStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for HelperStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stdin).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_helper_that_does_not_start_in_time_is_given_up() {
        let after = Duration::from_secs(60);
        let never = std::future::pending::<Result<(), BackendError>>();
        match within(after, "sshpod-agent listen", never).await {
            Err(BackendError::Timeout {
                what: Deadline::Command { program },
                after: waited,
            }) => assert_eq!((program.as_str(), waited), ("sshpod-agent listen", after)),
            other => panic!("expected a timeout, got {other:?}"),
        }
        let quick = within(after, "sshpod-agent take", async { Ok(7) }).await;
        assert!(matches!(quick, Ok(7)));
    }

    #[test]
    fn the_embedded_helper_is_a_static_executable() {
        assert!(HELPER.starts_with(b"\x7fELF"));
        // No interpreter: a static executable runs in any image, whatever its C library.
        let interp = b"/lib64/ld-linux";
        assert!(!HELPER.windows(interp.len()).any(|w| w == interp));
    }
}
