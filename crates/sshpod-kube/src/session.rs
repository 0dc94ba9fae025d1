//! `session` mode: a pod per SSH session, running the session's program as the console
//! container's main process, reached by attach.
//!
//! The program waits for a first line on its stdin before it starts, and sshpod sends that
//! line once it is attached: nothing the program prints early is lost. The exit status is the
//! console container's, read from the pod once the attach ends; then the pod is deleted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{AttachParams, WatchEvent, WatchParams};
use kube::Api;
use sshpod_config::KubernetesConfig;
use sshpod_core::wrapper::{pid_file_name, wrap_argv};
use sshpod_core::{
    BackendError, BoxFuture, ConnectionContext, ExitStatus, Process, ProcessControl, ProcessSpec,
    Signal, TerminalSize, TtySpec, Vanished,
};
use tokio::io::AsyncWriteExt as _;

use crate::exec::{missing, Signaller, Target, Terminal};
use crate::lifecycle;
use crate::pod;
use crate::remote::{self, Subresource};
use crate::requests::PodsApi;

/// The session pods of one connection.
pub(crate) struct SessionPods {
    pods: PodsApi,
    config: Arc<KubernetesConfig>,
    ctx: ConnectionContext,
    owner: pod::Owner,
    next: AtomicUsize,
    /// Pods not deleted yet, by name.
    live: Arc<Mutex<Vec<String>>>,
}

impl SessionPods {
    /// The console's image of every session's pod (each has its own name).
    pub(crate) fn info(&self) -> sshpod_core::ContainerInfo {
        sshpod_core::ContainerInfo {
            id: None,
            image: pod::console_of(&self.config.pod).1,
        }
    }

    pub(crate) fn new(
        pods: PodsApi,
        config: Arc<KubernetesConfig>,
        ctx: &ConnectionContext,
        owner: &pod::Owner,
    ) -> Self {
        Self {
            pods,
            config,
            ctx: ctx.clone(),
            owner: owner.clone(),
            next: AtomicUsize::new(1),
            live: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Runs a session's command as the main process of a new pod, attached.
    pub(crate) async fn exec(&self, spec: ProcessSpec) -> Result<Process, BackendError> {
        let argv = crate::handle::command_table(&self.config).argv(&spec.command)?;
        let mut env = self.ctx.environment.clone();
        env.extend(spec.env);
        self.start(argv, &env, spec.tty.as_ref()).await
    }

    /// Starts `argv` as the main process of a new pod and attaches to it.
    async fn start(
        &self,
        argv: Vec<String>,
        env: &[(String, String)],
        tty: Option<&TtySpec>,
    ) -> Result<Process, BackendError> {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let pid_file = pid_file_name(rand::random());
        let mut env = env.to_vec();
        if let Some(t) = tty {
            env.push(("TERM".to_owned(), t.term.clone()));
        }
        let mut command = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            // Wait for sshpod's go-ahead (sent once attached), then become the program. On a
            // terminal the go-ahead must not echo.
            "[ -t 0 ] && stty -echo 2>/dev/null; read -r _ || exit 0; \
             [ -t 0 ] && stty echo 2>/dev/null; exec \"$@\""
                .to_owned(),
            "sh".to_owned(),
        ];
        command.extend(wrap_argv(argv, &pid_file, &env, tty));
        let spec = pod::session_pod(
            &self.config.pod,
            &self.ctx,
            &self.owner,
            number,
            command,
            tty.is_some(),
        );
        let (console, image) = pod::console_of(&self.config.pod);
        // Known before it is created: a session cancelled while its pod starts (the client
        // left) leaves the name here, and `close` deletes the pod.
        let name = spec.metadata.name.clone().unwrap_or_default();
        if let Ok(mut live) = self.live.lock() {
            live.push(name.clone());
        }
        let created = lifecycle::create_and_wait(
            &self.pods.pods(),
            &spec,
            (&console, &image),
            &self.config.timeouts,
            &self.ctx.progress,
        )
        .await;
        if let Err(e) = created {
            self.forget(&name); // create_and_wait deleted what it made
            return Err(e);
        }
        let target = Target {
            pods: &self.pods,
            pod: &name,
            container: &console,
        };
        let ready = async {
            crate::files::write_all(&target, &self.ctx.files).await?;
            self.attach(&name, &console, tty, pid_file).await
        };
        let ready =
            lifecycle::prepared_within(self.config.timeouts.command_start, &image, ready).await;
        match ready {
            Ok(process) => Ok(process),
            Err(e) => {
                self.discard(&name).await;
                Err(e)
            }
        }
    }

    /// Forgets a session's pod and deletes it.
    async fn discard(&self, name: &str) {
        self.forget(name);
        let stop = self.config.timeouts.pod_stop;
        lifecycle::delete(&self.pods.pods(), name, stop).await;
    }

    async fn attach(
        &self,
        name: &str,
        console: &str,
        tty: Option<&TtySpec>,
        pid_file: String,
    ) -> Result<Process, BackendError> {
        let params = AttachParams {
            container: Some(console.to_owned()),
            stdin: true,
            stdout: true,
            stderr: tty.is_none(),
            tty: tty.is_some(),
            ..AttachParams::default()
        };
        let mut attached = remote::open(&self.pods.pods(), name, Subresource::Attach, &params)
            .await
            .map_err(|e| BackendError::Exec {
                program: "your session".to_owned(),
                source: Box::new(e),
            })?;
        let mut stdin = attached
            .stdin
            .take()
            .ok_or_else(|| missing("your session", "stdin"))?;
        let stdout = attached
            .stdout
            .take()
            .ok_or_else(|| missing("your session", "stdout"))?;
        let stderr = attached.stderr.take();
        let resize = attached.resize.take();
        if let (Some(t), Some(sender)) = (tty, resize.as_ref()) {
            let _ = sender.send(t.size).await;
        }
        stdin
            .write_all(b"\n")
            .await
            .map_err(|e| BackendError::Exec {
                program: "your session".to_owned(),
                source: Box::new(e),
            })?;
        let target = Target {
            pods: &self.pods,
            pod: name,
            container: console,
        };
        let control = SessionControl {
            terminal: Terminal::new(resize),
            // Signals go by exec into the session's pod, like for any process.
            signaller: Signaller::new(&target, pid_file, self.config.timeouts.signal),
            live: Arc::clone(&self.live),
            attached: tokio::sync::Mutex::new(Some(attached.driver)),
            pod_stop: self.config.timeouts.pod_stop,
        };
        Ok(Process {
            stdin: Box::new(stdin),
            stdout: Box::new(stdout),
            stderr: stderr.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            control: Box::new(control),
        })
    }

    fn forget(&self, name: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.retain(|n| n != name);
        }
    }

    /// Deletes every session pod still there.
    pub(crate) async fn close(&self) {
        let names = self
            .live
            .lock()
            .map(|mut live| std::mem::take(&mut *live))
            .unwrap_or_default();
        let stop = self.config.timeouts.pod_stop;
        let pods = self.pods.pods();
        for name in names {
            lifecycle::delete(&pods, &name, stop).await;
        }
    }
}

struct SessionControl {
    terminal: Terminal,
    signaller: Signaller,
    live: Arc<Mutex<Vec<String>>>,
    /// Drives the attach's WebSocket.
    attached: tokio::sync::Mutex<Option<remote::Driver>>,
    /// `timeouts.podStop`: how long the pod's deletion is retried.
    pod_stop: std::time::Duration,
}

impl SessionControl {
    async fn wait_exit(&self) -> Result<ExitStatus, BackendError> {
        // The attach ends when the program does (or the pod goes).
        if let Some(attached) = self.attached.lock().await.take() {
            attached.finished().await;
        }
        let s = &self.signaller;
        let pods = s.pods.pods();
        let code = terminated_exit_code(&pods, &s.pod, &s.container).await;
        if let Ok(mut live) = self.live.lock() {
            live.retain(|n| n != &s.pod);
        }
        lifecycle::delete(&pods, &s.pod, self.pod_stop).await;
        code.map(|c| s.exit_status(c))
    }
}

impl ProcessControl for SessionControl {
    fn resize(&self, size: TerminalSize) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(self.terminal.resize(size))
    }

    fn signal(&self, signal: Signal) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(self.signaller.deliver(signal))
    }

    fn wait(&self) -> BoxFuture<'_, Result<ExitStatus, BackendError>> {
        Box::pin(self.wait_exit())
    }
}

/// Watches the pod until its console container has terminated and returns the exit code.
async fn terminated_exit_code(
    pods: &Api<Pod>,
    name: &str,
    console: &str,
) -> Result<i64, BackendError> {
    let gone = || BackendError::Gone {
        what: Vanished::PodDeleted,
    };
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(60);
    let stream = pods
        .watch(&params, "0")
        .await
        .map_err(|e| BackendError::Engine(Box::new(e)))?;
    let mut stream = stream.boxed();
    while let Some(event) = stream
        .try_next()
        .await
        .map_err(|e| BackendError::Engine(Box::new(e)))?
    {
        match event {
            WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                if let Some(code) = pod::console_exit_code(&p, console) {
                    return Ok(code);
                }
            }
            WatchEvent::Deleted(_) => return Err(gone()),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => {
                return Err(BackendError::Refused {
                    what: "watching your pod",
                    source: e.message.into(),
                })
            }
        }
    }
    Err(gone())
}
