//! One pod that sessions exec into (`connection` and `persistent` modes): running processes,
//! forwarding ports and, for a pod sshpod made, deleting it at logout.

use std::sync::Arc;

use kube::api::{AttachParams, AttachedProcess};
use sshpod_config::KubernetesConfig;
use sshpod_core::{
    BackendError, Command, CommandPolicy, CommandTable, Identity, NotPossible, Process, ProcessSpec,
};
use tokio::sync::Mutex;

use crate::exec;
use crate::forward::ForwardStream;
use crate::helper::{self, HelperStream};
use crate::lifecycle;
use crate::listener::{self, Bind, KubeListener};
use crate::requests::{PodsApi, Requests};

/// What a session's command runs, from `pod.shellCommand`, `pod.subsystems` and
/// `pod.disableCommand`.
pub(crate) fn command_table(config: &KubernetesConfig) -> CommandTable<'_> {
    let pod = &config.pod;
    CommandTable {
        shell: &pod.shell_command,
        subsystems: &pod.subsystems,
        policy: if pod.disable_command {
            CommandPolicy::ShellOnly
        } else {
            CommandPolicy::Any
        },
    }
}

/// Whether sshpod deletes the pod at logout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// sshpod made the pod for this connection and deletes it.
    Owned,
    /// A persistent pod, shared and kept.
    Borrowed,
}

/// The attach that keeps a connection's pod alive (see the crate docs).
struct Lifeline {
    _stdin: Option<tokio::io::WriteHalf<tokio::io::SimplexStream>>,
    _attached: AttachedProcess,
}

/// One pod that sessions exec into.
pub(crate) struct PodHandle {
    pods: PodsApi,
    name: String,
    console: String,
    config: Arc<KubernetesConfig>,
    /// From the webhooks: every process gets it.
    environment: Vec<(String, String)>,
    lifeline: Mutex<Option<Lifeline>>,
    ownership: Ownership,
    /// The user processes run as (`identity`), set up once the pod ran.
    identity: Option<Identity>,
    /// Where the forwarding helper was put, once a client asked for it.
    helper: tokio::sync::OnceCell<String>,
}

impl PodHandle {
    /// The pod's name and its console's image.
    pub(crate) fn info(&self) -> sshpod_core::ContainerInfo {
        sshpod_core::ContainerInfo {
            id: Some(self.name.clone()),
            image: crate::pod::console_of(&self.config.pod).1,
        }
    }

    pub(crate) fn new(
        pods: PodsApi,
        name: String,
        console: String,
        config: Arc<KubernetesConfig>,
        environment: Vec<(String, String)>,
        ownership: Ownership,
    ) -> Self {
        Self {
            pods,
            name,
            console,
            config,
            environment,
            lifeline: Mutex::new(None),
            ownership,
            identity: None,
            helper: tokio::sync::OnceCell::new(),
        }
    }

    /// Runs every process as `identity`'s user, when there is one.
    pub(crate) fn running_as(mut self, identity: Option<Identity>) -> Self {
        self.identity = identity;
        self
    }

    /// Gives every process `environment` (a pooled pod's, once a login claimed it).
    pub(crate) fn with_environment(mut self, environment: Vec<(String, String)>) -> Self {
        self.environment = environment;
        self
    }

    /// The same pod, its requests counted in `requests` from now on (a login's, for a pooled
    /// pod the pool started).
    pub(crate) fn counting(mut self, requests: Requests) -> Self {
        self.pods = self.pods.counting(requests);
        self
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn config(&self) -> &KubernetesConfig {
        &self.config
    }

    pub(crate) fn target(&self) -> exec::Target<'_> {
        exec::Target {
            pods: &self.pods,
            pod: &self.name,
            container: &self.console,
        }
    }

    /// Opens the lifeline attach to the console's stdin.
    pub(crate) async fn hold_lifeline(&self, image: &str) -> Result<(), BackendError> {
        let params = AttachParams {
            container: Some(self.console.clone()),
            stdin: true,
            stdout: false,
            stderr: false,
            tty: false,
            ..AttachParams::default()
        };
        let mut attached = self
            .pods
            .pods()
            .attach(&self.name, &params)
            .await
            .map_err(|e| {
                lifecycle::start_error(image, "cannot attach to the pod", Some(Box::new(e)))
            })?;
        let stdin = attached.stdin();
        *self.lifeline.lock().await = Some(Lifeline {
            _stdin: stdin,
            _attached: attached,
        });
        Ok(())
    }

    pub(crate) async fn exec(&self, spec: ProcessSpec) -> Result<Process, BackendError> {
        let mut argv = command_table(&self.config).argv(&spec.command)?;
        let program = spec.command.describe();
        let mut env = self.environment.clone();
        if let Some(identity) = &self.identity {
            // As sshd: the user's login shell and environment (the client's may add to it),
            // as the user, in their home. The exec API has no user: the process switches.
            if spec.command == Command::Shell {
                argv = Identity::login_shell_argv();
            }
            argv = identity.run_as_argv(spec.tty.is_some(), argv);
            env.extend(identity.env());
        }
        env.extend(spec.env);
        tokio::time::timeout(
            self.config.timeouts.command_start,
            exec::start(
                &self.target(),
                argv,
                &env,
                spec.tty.as_ref(),
                program.clone(),
                self.config.timeouts.signal,
            ),
        )
        .await
        .map_err(|_| BackendError::Exec {
            program,
            source: "the command did not start in time".into(),
        })?
    }

    pub(crate) async fn dial(&self, host: &str, port: u16) -> Result<ForwardStream, BackendError> {
        if !matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]") {
            return Err(NotPossible::ForwardingBeyondLocalhost {
                host: host.to_owned(),
            }
            .into());
        }
        let dial_error = |source: Box<dyn std::error::Error + Send + Sync>| BackendError::Dial {
            host: host.to_owned(),
            port,
            source,
        };
        let forwarder = self
            .pods
            .pods()
            .portforward(&self.name, &[port])
            .await
            .map_err(|e| dial_error(Box::new(e)))?;
        ForwardStream::new(forwarder, port).ok_or_else(|| dial_error("no stream".into()))
    }

    /// The forwarding helper's path in the pod, copied in on first use.
    async fn helper(&self) -> Result<&str, BackendError> {
        let after = self.config.timeouts.command_start;
        let path = self
            .helper
            .get_or_try_init(|| {
                helper::within(after, "sshpod-agent install", async {
                    helper::install(&self.target()).await
                })
            })
            .await?;
        Ok(path)
    }

    /// Listens inside the pod (`ssh -R`, `-R /socket`, `-A`).
    pub(crate) async fn listen(&self, bind: Bind<'_>) -> Result<KubeListener, BackendError> {
        let helper = self.helper().await?;
        // As the login's user, as sshd listens: a socket it can reach, a directory it owns.
        let after = self.config.timeouts.command_start;
        let target = self.target();
        let listening = listener::listen(&target, helper, bind, self.identity.as_ref(), after);
        helper::within(after, "sshpod-agent listen", listening).await
    }

    /// Connects to the Unix socket `path` inside the pod (`ssh -L ...:/path`).
    pub(crate) async fn dial_unix(
        &self,
        path: &str,
    ) -> Result<sshpod_core::ClosedOnDrop<HelperStream>, BackendError> {
        let helper = self.helper().await?;
        let after = self.config.timeouts.command_start;
        helper::within(after, "sshpod-agent dial-unix", async {
            helper::dial_unix(&self.target(), helper, path).await
        })
        .await
    }

    /// Deletes the pod when this instance owns it; a persistent pod is kept.
    pub(crate) async fn close(&self) -> sshpod_core::Closed {
        // Ending the lifeline first lets the pod end even if the delete below fails.
        drop(self.lifeline.lock().await.take());
        if self.ownership != Ownership::Owned {
            return sshpod_core::Closed::Kept;
        }
        let stop = self.config.timeouts.pod_stop;
        lifecycle::delete(&self.pods.pods(), &self.name, stop).await;
        sshpod_core::Closed::Removed
    }
}

/// In `mode: user` a user's connections share the pod; it is deleted once the last of them is
/// gone for the grace period.
impl sshpod_core::per_user::Shared for PodHandle {
    async fn is_alive(&self) -> bool {
        match self.pods.pods().get_opt(&self.name).await {
            Ok(Some(pod)) => {
                pod.metadata.deletion_timestamp.is_none()
                    && pod.status.and_then(|s| s.phase).as_deref() == Some("Running")
            }
            _ => false,
        }
    }

    async fn retire(&self) {
        tracing::debug!(pod = %self.name, "user pod's grace period is over");
        self.close().await;
    }
}
