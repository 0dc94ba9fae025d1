//! sshpod's Kubernetes backend: a pod per SSH connection, every session an exec into it,
//! port forwarding through the API, the pod deleted on logout.
//!
//! Implements `sshpod_core::Backend` on kube-rs. Depends on the core contracts and the
//! configuration; must not depend on SSH libraries or on other backends.
//!
//! A login costs these API requests: create, watch (until the pod runs), one exec per
//! session, delete. The count is logged at debug level when the connection ends.
//!
//! What happens to pods when sshpod is killed: every instance holds a Lease (see `lease`)
//! and labels its pods with it; the other instances, and the next start, delete the pods of
//! an instance whose Lease is no longer renewed (see `orphans`). An instance that cannot hold
//! a Lease (no rights on leases), or a connection configured with `pod.lifeline`, ties each
//! pod to itself instead: the console container runs the idle command (which reads its
//! stdin) and sshpod keeps an attach to that stdin open for as long as the connection lives,
//! one API request more. If sshpod dies, the attach closes, the idle command sees end of
//! input and the pod ends by itself. Running pods of live instances are never touched.

mod client;
mod exec;
mod files;
mod forward;
mod lease;
mod lifecycle;
mod limiter;
mod orphans;
pub mod pod;
mod requests;
mod session;
mod token_file;

use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{AttachParams, AttachedProcess};
use kube::{Api, Client};
use sshpod_config::{KubernetesConfig, PodMode};
use sshpod_core::{
    Backend, BackendError, Command, ConnectionContext, Container, Process, ProcessSpec,
};
use tokio::sync::Mutex;

pub use forward::ForwardStream;
use lease::HeldLease;
use orphans::Sweeper;
use pod::Owner;
use requests::Requests;
use session::SessionPods;

/// The Kubernetes backend. One value serves the whole process.
pub struct KubeBackend {
    client: Client,
    config: Arc<KubernetesConfig>,
    instance: String,
    sweeper: Sweeper,
    /// None when the instance could not create its Lease: every pod then gets a lifeline.
    lease: Option<HeldLease>,
}

impl KubeBackend {
    /// Builds the shared client, checks that the credentials work in the namespace and takes
    /// this instance's Lease there.
    pub async fn connect(config: &KubernetesConfig) -> Result<Self, BackendError> {
        let timeouts = &config.timeouts;
        let clients = client::build(&config.connection, timeouts.http).await?;
        let client = clients.connections;
        let namespace = config.pod.namespace();
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        // `/version` answers anyone; listing pods proves the credentials and the rights.
        pods.list_metadata(&kube::api::ListParams::default().limit(1))
            .await
            .map_err(|e| BackendError::Engine(Box::new(e)))?;
        let instance = hex::encode(rand::random::<[u8; 8]>());
        let leases: Api<Lease> = Api::namespaced(clients.lease, namespace);
        let sweeper = Sweeper::new(
            pods,
            leases.clone(),
            &instance,
            timeouts.pod_start * 2,
            timeouts.pod_stop,
        );
        let lease =
            match HeldLease::acquire(leases, &instance, timeouts.instance_lease, sweeper.clone())
                .await
            {
                Ok(lease) => Some(lease),
                Err(e) => {
                    tracing::warn!(
                        namespace,
                        error = %lifecycle::api_message(&e),
                        "cannot hold an instance lease (sshpod needs create, get, update, list \
                         and delete on leases.coordination.k8s.io); every pod is tied to this \
                         instance with a lifeline attach instead, one API request more per login"
                    );
                    None
                }
            };
        Ok(Self {
            client,
            config: Arc::new(config.clone()),
            instance,
            sweeper,
            lease,
        })
    }

    /// This process's instance id, as put on its pods.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Who makes one connection's pods. The Lease vouches only for pods in its own namespace
    /// (in another one, a config server's choice, other deployments sweep by their own
    /// Leases) and only while it is renewed; other pods get a lifeline instead.
    fn owner_for(&self, config: &KubernetesConfig) -> Owner {
        let home = config.pod.namespace() == self.config.pod.namespace();
        Owner {
            instance: self.instance.clone(),
            lease: self
                .lease
                .as_ref()
                .and_then(HeldLease::vouching_name)
                .filter(|_| home)
                .map(str::to_owned),
        }
    }

    /// The settings for one connection: the file's, or what a config server chose.
    fn config_for(&self, ctx: &ConnectionContext) -> Arc<KubernetesConfig> {
        match &ctx.config {
            Some(config) => Arc::new(config.kubernetes.clone()),
            None => Arc::clone(&self.config),
        }
    }

    async fn start_connection_pod(
        &self,
        pods: Api<Pod>,
        config: Arc<KubernetesConfig>,
        owner: &Owner,
        ctx: &ConnectionContext,
        requests: Requests,
    ) -> Result<PodHandle, BackendError> {
        let (console, image) = pod::console_of(&config.pod);
        let lifeline = config.pod.lifeline || owner.lease.is_none();
        let spec = pod::connection_pod(&config.pod, ctx, owner, lifeline);
        requests.add(2); // create, watch
        let name =
            lifecycle::create_and_wait(&pods, &spec, &console, &image, &config.timeouts).await?;
        let handle = PodHandle {
            pods,
            name,
            console,
            config,
            environment: ctx.environment.clone(),
            lifeline: Mutex::new(None),
            owned: true,
            requests,
        };
        let ready = async {
            if lifeline {
                handle.hold_lifeline(&image).await?;
            }
            files::write_all(&handle.target(), &ctx.files, &handle.requests).await
        };
        let ready =
            lifecycle::prepared_within(handle.config.timeouts.command_start, &image, ready).await;
        if let Err(e) = ready {
            handle.close().await;
            return Err(e);
        }
        tracing::debug!(pod = %handle.name, "pod running");
        Ok(handle)
    }

    async fn persistent_pod(
        &self,
        pods: Api<Pod>,
        config: Arc<KubernetesConfig>,
        ctx: &ConnectionContext,
        requests: Requests,
    ) -> Result<PodHandle, BackendError> {
        let (console, image) = pod::console_of(&config.pod);
        let name = config.pod.metadata.name.clone().unwrap_or_default();
        requests.add(1);
        let found = pods
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
            None if config.pod.create_missing_pods => {
                let mut spec = Pod {
                    metadata: config.pod.metadata.clone(),
                    spec: Some(config.pod.spec.clone()),
                    status: None,
                };
                if let Some(console) = spec
                    .spec
                    .as_mut()
                    .and_then(|s| s.containers.get_mut(config.pod.console_container_number))
                {
                    console.command =
                        Some(pod::idle_command_without_lifeline(&config.pod.idle_command));
                    console.args = None;
                }
                requests.add(2);
                lifecycle::create_and_wait(&pods, &spec, &console, &image, &config.timeouts)
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
        let handle = PodHandle {
            pods,
            name,
            console,
            config,
            environment: ctx.environment.clone(),
            lifeline: Mutex::new(None),
            owned: false,
            requests,
        };
        files::write_all(&handle.target(), &ctx.files, &handle.requests).await?;
        Ok(handle)
    }
}

impl Backend for KubeBackend {
    type Container = KubeContainer;

    async fn connect(&self, ctx: &ConnectionContext) -> Result<KubeContainer, BackendError> {
        let config = self.config_for(ctx);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), config.pod.namespace());
        let owner = self.owner_for(&config);
        let requests = Requests::default();
        let kind = match config.pod.mode {
            PodMode::Connection => Kind::Pod(
                self.start_connection_pod(pods, config, &owner, ctx, requests.clone())
                    .await?,
            ),
            PodMode::Persistent => Kind::Pod(
                self.persistent_pod(pods, config, ctx, requests.clone())
                    .await?,
            ),
            PodMode::Session => Kind::Sessions(SessionPods::new(
                pods,
                config,
                ctx,
                &owner,
                requests.clone(),
            )),
        };
        Ok(KubeContainer { kind, requests })
    }

    async fn remove_orphans(&self) -> Result<usize, BackendError> {
        self.sweeper.sweep().await
    }

    async fn shutdown(&self) {
        if let Some(lease) = &self.lease {
            lease.release().await;
        }
    }
}

/// The argv for a session's command.
fn argv(config: &KubernetesConfig, command: &Command) -> Result<Vec<String>, BackendError> {
    let pod = &config.pod;
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

fn describe(command: &Command) -> String {
    match command {
        Command::Shell => "your shell".to_owned(),
        Command::Exec(line) => line.clone(),
        Command::Subsystem(s) => format!("the {s} subsystem"),
    }
}

/// The attach that keeps a connection's pod alive (see the crate docs).
struct Lifeline {
    _stdin: Option<tokio::io::WriteHalf<tokio::io::SimplexStream>>,
    _attached: AttachedProcess,
}

/// The pod(s) of one connection.
pub struct KubeContainer {
    kind: Kind,
    requests: Requests,
}

enum Kind {
    /// `connection` and `persistent` modes: one pod, sessions exec into it.
    Pod(PodHandle),
    /// `session` mode: a pod per session.
    Sessions(SessionPods),
}

/// One pod that sessions exec into.
struct PodHandle {
    pods: Api<Pod>,
    name: String,
    console: String,
    config: Arc<KubernetesConfig>,
    /// From the webhooks: every process gets it.
    environment: Vec<(String, String)>,
    lifeline: Mutex<Option<Lifeline>>,
    /// False for a persistent pod, which sshpod never deletes.
    owned: bool,
    requests: Requests,
}

impl PodHandle {
    fn target(&self) -> exec::Target<'_> {
        exec::Target {
            pods: &self.pods,
            pod: &self.name,
            container: &self.console,
            requests: &self.requests,
        }
    }

    async fn hold_lifeline(&self, image: &str) -> Result<(), BackendError> {
        let params = AttachParams {
            container: Some(self.console.clone()),
            stdin: true,
            stdout: false,
            stderr: false,
            tty: false,
            ..AttachParams::default()
        };
        self.requests.add(1);
        let mut attached = self.pods.attach(&self.name, &params).await.map_err(|e| {
            BackendError::StartContainer {
                image: image.to_owned(),
                reason: format!("cannot attach to the pod: {}", lifecycle::api_message(&e)),
                source: None,
            }
        })?;
        let stdin = attached.stdin();
        *self.lifeline.lock().await = Some(Lifeline {
            _stdin: stdin,
            _attached: attached,
        });
        Ok(())
    }

    async fn exec(&self, spec: ProcessSpec) -> Result<Process, BackendError> {
        let argv = argv(&self.config, &spec.command)?;
        let program = describe(&spec.command);
        let mut env = self.environment.clone();
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
        self.requests.add(1);
        let forwarder = self
            .pods
            .portforward(&self.name, &[port])
            .await
            .map_err(|e| dial_error(Box::new(e)))?;
        ForwardStream::new(forwarder, port).ok_or_else(|| dial_error("no stream".into()))
    }

    async fn close(&self) {
        // Ending the lifeline first lets the pod end even if the delete below fails.
        drop(self.lifeline.lock().await.take());
        if self.owned {
            let stop = self.config.timeouts.pod_stop;
            self.requests
                .add(lifecycle::delete(&self.pods, &self.name, stop).await);
        }
    }
}

impl Container for KubeContainer {
    type Stream = ForwardStream;

    async fn exec(&self, spec: ProcessSpec) -> Result<Process, BackendError> {
        match &self.kind {
            Kind::Pod(pod) => pod.exec(spec).await,
            Kind::Sessions(sessions) => sessions.exec(spec).await,
        }
    }

    async fn dial(&self, host: &str, port: u16) -> Result<ForwardStream, BackendError> {
        match &self.kind {
            Kind::Pod(pod) => pod.dial(host, port).await,
            Kind::Sessions(_) => Err(BackendError::Unsupported(
                "port forwarding is not available in session mode".to_owned(),
            )),
        }
    }

    async fn close(&self) -> Result<(), BackendError> {
        match &self.kind {
            Kind::Pod(pod) => pod.close().await,
            Kind::Sessions(sessions) => sessions.close().await,
        }
        tracing::debug!(
            api_requests = self.requests.total(),
            "Kubernetes API requests for this connection"
        );
        Ok(())
    }
}
