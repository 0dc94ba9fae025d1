//! sshpod's Kubernetes backend: a pod per SSH connection, every session an exec into it,
//! port forwarding through the API, the pod deleted on logout.
//!
//! Implements `sshpod_core::Backend` on kube-rs. Depends on the core contracts and the
//! configuration; must not depend on SSH libraries or on other backends.
//!
//! A login costs these API requests: create, watch (until the pod runs), attach (the
//! lifeline, below), one exec per session, delete.
//!
//! The lifeline: the console container runs the idle command (which reads its stdin) with
//! `stdin` and `stdinOnce`, and sshpod keeps an attach to that stdin open for as long as the
//! connection lives. If sshpod dies, the attach closes, the idle command sees end of input and
//! the pod ends; the next start of any sshpod deletes ended pods of other instances. Running
//! pods of other instances are never touched.

mod client;
mod exec;
mod forward;
mod lifecycle;
mod limiter;
mod orphans;
pub mod pod;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{AttachParams, AttachedProcess};
use kube::Api;
use sshpod_config::{KubernetesConfig, PodMode};
use sshpod_core::{
    Backend, BackendError, Command, ConnectionContext, Container, Process, ProcessSpec,
};
use tokio::sync::Mutex;

pub use forward::ForwardStream;

/// The Kubernetes backend. One value serves the whole process.
pub struct KubeBackend {
    pods: Api<Pod>,
    config: Arc<KubernetesConfig>,
    instance: String,
}

impl KubeBackend {
    /// Builds the shared client and checks that the API server answers.
    pub async fn connect(config: &KubernetesConfig) -> Result<Self, BackendError> {
        if config.pod.mode == PodMode::Session {
            return Err(BackendError::Settings {
                setting: "kubernetes.pod.mode",
                reason: "`session` mode is not available in the Kubernetes backend yet; use \
                         `connection` or `persistent`"
                    .to_owned(),
            });
        }
        let client = client::build(&config.connection, config.timeouts.http).await?;
        let pods: Api<Pod> = Api::namespaced(client, config.pod.namespace());
        // `/version` answers anyone; listing pods proves the credentials and the rights.
        pods.list_metadata(&kube::api::ListParams::default().limit(1))
            .await
            .map_err(|e| BackendError::Engine(Box::new(e)))?;
        Ok(Self {
            pods,
            config: Arc::new(config.clone()),
            instance: hex::encode(rand::random::<[u8; 8]>()),
        })
    }

    /// This process's instance id, as put on its pods.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    fn console(&self) -> (String, String) {
        let container = self
            .config
            .pod
            .spec
            .containers
            .get(self.config.pod.console_container_number);
        (
            container.map(|c| c.name.clone()).unwrap_or_default(),
            container.and_then(|c| c.image.clone()).unwrap_or_default(),
        )
    }

    async fn start_connection_pod(
        &self,
        ctx: &ConnectionContext,
    ) -> Result<KubeContainer, BackendError> {
        let (console, image) = self.console();
        let pod = pod::connection_pod(&self.config.pod, ctx, &self.instance);
        let name = lifecycle::create_and_wait(
            &self.pods,
            &pod,
            &console,
            &image,
            self.config.timeouts.pod_start,
        )
        .await?;
        let lifeline = match self.hold_lifeline(&name, &console).await {
            Ok(l) => l,
            Err(e) => {
                lifecycle::delete(&self.pods, &name).await;
                return Err(e);
            }
        };
        tracing::debug!(pod = %name, "pod running");
        Ok(KubeContainer {
            pods: self.pods.clone(),
            name,
            console,
            config: Arc::clone(&self.config),
            lifeline: Mutex::new(Some(lifeline)),
            owned: true,
        })
    }

    async fn hold_lifeline(&self, name: &str, console: &str) -> Result<Lifeline, BackendError> {
        let params = AttachParams {
            container: Some(console.to_owned()),
            stdin: true,
            stdout: false,
            stderr: false,
            tty: false,
            ..AttachParams::default()
        };
        let mut attached =
            self.pods
                .attach(name, &params)
                .await
                .map_err(|e| BackendError::StartContainer {
                    image: self.console().1,
                    reason: format!("cannot attach to the pod: {}", lifecycle::api_message(&e)),
                    source: None,
                })?;
        let stdin = attached.stdin();
        Ok(Lifeline {
            _stdin: stdin,
            _attached: attached,
        })
    }

    async fn persistent_pod(&self) -> Result<KubeContainer, BackendError> {
        let (console, image) = self.console();
        let name = self.config.pod.metadata.name.clone().unwrap_or_default();
        let found = self
            .pods
            .get_opt(&name)
            .await
            .map_err(|e| BackendError::Engine(Box::new(e)))?;
        match found {
            Some(existing) => {
                if let pod::Progress::Failed(reason) = pod::progress(&existing, &console) {
                    return Err(BackendError::StartContainer {
                        image,
                        reason,
                        source: None,
                    });
                }
            }
            None if self.config.pod.create_missing_pods => {
                let mut pod = Pod {
                    metadata: self.config.pod.metadata.clone(),
                    spec: Some(self.config.pod.spec.clone()),
                    status: None,
                };
                if let Some(console) = pod.spec.as_mut().and_then(|s| {
                    s.containers
                        .get_mut(self.config.pod.console_container_number)
                }) {
                    console.command = Some(persistent_idle_command(&self.config.pod.idle_command));
                    console.args = None;
                }
                lifecycle::create_and_wait(
                    &self.pods,
                    &pod,
                    &console,
                    &image,
                    self.config.timeouts.pod_start,
                )
                .await?;
            }
            None => {
                return Err(BackendError::StartContainer {
                    image,
                    reason: format!("the pod `{name}` does not exist"),
                    source: None,
                })
            }
        }
        Ok(KubeContainer {
            pods: self.pods.clone(),
            name,
            console,
            config: Arc::clone(&self.config),
            lifeline: Mutex::new(None),
            owned: false,
        })
    }
}

impl Backend for KubeBackend {
    type Container = KubeContainer;

    async fn connect(&self, ctx: &ConnectionContext) -> Result<KubeContainer, BackendError> {
        match self.config.pod.mode {
            PodMode::Persistent => self.persistent_pod().await,
            PodMode::Connection | PodMode::Session => self.start_connection_pod(ctx).await,
        }
    }

    async fn remove_orphans(&self) -> Result<usize, BackendError> {
        orphans::remove_orphans(
            &self.pods,
            &self.instance,
            self.config.timeouts.pod_start * 2,
        )
        .await
    }
}

/// The main process of a persistent pod. The default idle command ends when its stdin closes
/// (the lifeline of connection pods); a persistent pod has no lifeline, so it gets a loop that
/// waits for ever and ends at once on SIGTERM instead.
fn persistent_idle_command(configured: &[String]) -> Vec<String> {
    if configured == sshpod_config::DEFAULT_IDLE_COMMAND {
        vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done".to_owned(),
        ]
    } else {
        configured.to_vec()
    }
}

/// The attach that keeps a connection's pod alive (see the crate docs).
struct Lifeline {
    _stdin: Option<tokio::io::WriteHalf<tokio::io::SimplexStream>>,
    _attached: AttachedProcess,
}

/// The pod of one connection.
pub struct KubeContainer {
    pods: Api<Pod>,
    name: String,
    console: String,
    config: Arc<KubernetesConfig>,
    lifeline: Mutex<Option<Lifeline>>,
    /// False for a persistent pod, which sshpod never deletes.
    owned: bool,
}

impl KubeContainer {
    fn argv(&self, command: &Command) -> Result<Vec<String>, BackendError> {
        let pod = &self.config.pod;
        match command {
            Command::Shell => Ok(pod.shell_command.clone()),
            Command::Exec(_) if pod.disable_command => Err(BackendError::Unsupported(
                "running commands is disabled on this server; log in for a shell".to_owned(),
            )),
            Command::Exec(line) => Ok(vec!["/bin/sh".to_owned(), "-c".to_owned(), line.clone()]),
            Command::Subsystem(name) => match pod.subsystems.get(name) {
                Some(program) => Ok(vec![program.clone()]),
                None => Err(BackendError::Unsupported(format!(
                    "the `{name}` subsystem is not available"
                ))),
            },
        }
    }
}

impl Container for KubeContainer {
    type Stream = ForwardStream;

    async fn exec(&self, spec: ProcessSpec) -> Result<Process, BackendError> {
        let argv = self.argv(&spec.command)?;
        let program = match &spec.command {
            Command::Shell => "your shell".to_owned(),
            Command::Exec(line) => line.clone(),
            Command::Subsystem(s) => format!("the {s} subsystem"),
        };
        let target = exec::Target {
            pods: &self.pods,
            pod: &self.name,
            container: &self.console,
        };
        tokio::time::timeout(
            self.config.timeouts.command_start,
            exec::start(
                &target,
                argv,
                &spec.env,
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

    async fn dial(&self, host: &str, port: u16) -> Result<ForwardStream, BackendError> {
        if !matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]") {
            return Err(BackendError::Unsupported(format!(
                "only ports on the pod's own localhost can be forwarded, not {host}"
            )));
        }
        let dial_error = |source: Box<dyn std::error::Error + Send + Sync>| BackendError::Dial {
            host: host.to_owned(),
            port,
            source,
        };
        let forwarder = self
            .pods
            .portforward(&self.name, &[port])
            .await
            .map_err(|e| dial_error(Box::new(e)))?;
        ForwardStream::new(forwarder, port).ok_or_else(|| dial_error("no stream".into()))
    }

    async fn close(&self) -> Result<(), BackendError> {
        // Ending the lifeline first lets the pod end even if the delete below fails.
        drop(self.lifeline.lock().await.take());
        if self.owned {
            lifecycle::delete(&self.pods, &self.name).await;
        }
        Ok(())
    }
}
