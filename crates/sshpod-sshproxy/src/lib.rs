//! sshpod's SSH proxy backend (ContainerSSH's `sshproxy`): instead of a container, each login
//! gets its own SSH connection to another server, and its sessions and port forwards are
//! passed on over it.
//!
//! Implements `sshpod_core::Backend` on russh's client, so a proxied login goes through the
//! same server paths as a container's: the `security` policy, limits, audit events and
//! recordings see its sessions like any other. Depends on the core contracts and the
//! configuration; must not depend on other backends.
//!
//! - [`SshProxyBackend`] serves `backend: sshproxy` in the file: every login is proxied.
//! - [`WithSshProxy`] serves a file that runs containers while a config server may send some
//!   users elsewhere (`backend: sshproxy` and an `sshproxy` section in its answer), as
//!   ContainerSSH allows: a honeypot can pass chosen visitors on to a real machine.
//!
//! What maps onto the backend contract, and how:
//! - `connect` opens the upstream connection within `sshproxy.timeout`, checks the host key
//!   against `allowedHostKeyFingerprints` (never trust on first use) and logs in as
//!   `username`, or as the login's own user with `usernamePassThrough`. A failure is one short
//!   sentence for the user (`BackendError::Upstream`) and leaves nothing open.
//! - `exec` opens a session channel upstream and replays pty, env (the upstream `AcceptEnv`
//!   decides), shell/exec/subsystem; window changes and signals follow; exit-status and
//!   exit-signal come back as they were sent. Terminal modes are not replayed (sshpod has
//!   turned them into `stty` arguments for containers); the upstream defaults apply.
//! - `dial` opens a `direct-tcpip` channel upstream, so `ssh -L` reaches what the upstream
//!   server reaches, and the `security` policy still decides first. `dial_unix` does the same
//!   for a socket (`direct-streamlocal@openssh.com`).
//! - `listen` and `listen_unix` ask the upstream server to forward (`ssh -R`); the channels it
//!   opens wait in the listener until sshpod's client has taken or refused each (`forward.rs`).
//! - `close` disconnects.
//!
//! Where the contract assumes a container, the honest answer is "nothing to do":
//! `remove_orphans` finds nothing (an upstream connection dies with the process that held
//! it), readiness does not depend on the upstream server (a login to it fails on its own,
//! with its own message), and pools, persistent homes and `identity` do not apply: the
//! upstream server has its own users and homes.
//!
//! - `listen_agent` takes the channels the upstream server opens to the client's agent; a
//!   session whose client forwarded it asks the upstream server for the agent, which sets
//!   `SSH_AUTH_SOCK` there itself.
//! - `forward_x11` answers `PassedOn`: sshpod makes no display and writes no Xauthority file.
//!   A session that asked for X11 forwarding sends its `x11-req` (protocol, the client's cookie
//!   as sent, screen, single connection) upstream before its shell or command, so the upstream
//!   server makes the display, sets `DISPLAY` and runs its own `xauth`. The `x11` channels it
//!   opens wait in one listener per connection until sshpod's client has taken or refused each,
//!   and keep their true originator.

mod algorithms;
mod connect;
mod forward;
mod host_key;
mod process;
mod routed;

use std::sync::Arc;

use russh::client::Msg;
use russh::{ChannelStream, Disconnect};
use sshpod_config::SshProxyConfig;
use sshpod_core::{
    Backend, BackendError, Closed, ConnectionContext, Container, ContainerInfo, ForwardedStream,
    Lifecycle, Listener, Process, ProcessSpec, X11Forwarding,
};

pub use routed::{Either, WithSshProxy};

/// The backend that passes every login on to the server in `sshproxy`.
#[derive(Debug, Clone)]
pub struct SshProxyBackend {
    /// The file's section; a config server's answer may replace it per login.
    config: Arc<SshProxyConfig>,
    /// Where the sessions' output pumps run.
    lifecycle: Lifecycle,
}

impl SshProxyBackend {
    /// A backend for `config`, running its background work on a child of `lifecycle`.
    pub fn new(config: &SshProxyConfig, lifecycle: &Lifecycle) -> Self {
        Self {
            config: Arc::new(config.clone()),
            lifecycle: lifecycle.child(),
        }
    }

    /// Checks that `sshproxy.privateKey` can be read, so a broken file is found at start-up
    /// rather than at the first login.
    pub async fn check_private_key(&self) -> Result<(), BackendError> {
        match connect::private_key(self.config.private_key.expose_secret()).await {
            Ok(_) => Ok(()),
            Err(error) => Err(BackendError::Settings {
                setting: "sshproxy.privateKey",
                reason: std::error::Error::source(&error)
                    .map_or_else(|| error.to_string(), ToString::to_string),
            }),
        }
    }
}

impl Backend for SshProxyBackend {
    type Container = ProxiedConnection;

    async fn connect(&self, ctx: &ConnectionContext) -> Result<ProxiedConnection, BackendError> {
        let config = match &ctx.config {
            Some(config) => &config.sshproxy,
            None => self.config.as_ref(),
        };
        let user = if config.username_pass_through {
            ctx.user.as_str()
        } else {
            config.username.as_str()
        };
        let (upstream, routes) = connect::connect(config, user).await?;
        tracing::debug!(
            server = %config.server,
            port = config.port,
            user,
            "logged in upstream"
        );
        Ok(ProxiedConnection {
            upstream: Arc::new(upstream),
            routes,
            environment: ctx.environment.clone(),
            info: ContainerInfo {
                id: None,
                image: format!("ssh://{user}@{}:{}", config.server, config.port),
            },
            lifecycle: self.lifecycle.clone(),
        })
    }

    async fn remove_orphans(&self) -> Result<usize, BackendError> {
        // Nothing outlives sshpod: an upstream connection closes with the process.
        Ok(0)
    }

    async fn shutdown(&self) {
        self.lifecycle.cancel();
        self.lifecycle.wait().await;
    }
}

/// One login's connection to the upstream server.
pub struct ProxiedConnection {
    /// Shared with its forwards' listeners, which cancel their forward when dropped.
    upstream: Arc<connect::Upstream>,
    routes: Arc<forward::Routes>,
    /// Variables from the webhooks, sent with every session.
    environment: Vec<(String, String)>,
    info: ContainerInfo,
    lifecycle: Lifecycle,
}

impl std::fmt::Debug for ProxiedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxiedConnection")
            .field("upstream", &self.info.image)
            .finish_non_exhaustive()
    }
}

impl Container for ProxiedConnection {
    type Stream = ChannelStream<Msg>;

    async fn exec(&self, spec: ProcessSpec) -> Result<Process, BackendError> {
        process::start(&self.upstream, spec, &self.environment, &self.lifecycle).await
    }

    async fn dial(&self, host: &str, port: u16) -> Result<Self::Stream, BackendError> {
        let channel = self
            .upstream
            .channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0)
            .await
            .map_err(|error| BackendError::Upstream {
                reason: format!("the SSH server behind this one could not open {host}:{port}"),
                source: Some(Box::new(error)),
            })?;
        Ok(channel.into_stream())
    }

    async fn listen(&self, host: &str, port: u16) -> Result<Box<dyn Listener>, BackendError> {
        forward::listen_tcp(&self.upstream, &self.routes, &self.lifecycle, host, port).await
    }

    async fn listen_unix(&self, path: &str) -> Result<Box<dyn Listener>, BackendError> {
        forward::listen_unix(&self.upstream, &self.routes, &self.lifecycle, path).await
    }

    async fn listen_agent(&self) -> Result<Box<dyn Listener>, BackendError> {
        Ok(forward::listen_server_opened(
            &self.upstream,
            &self.routes,
            &self.lifecycle,
            forward::ServerOpened::Agent,
        ))
    }

    async fn forward_x11(&self) -> Result<X11Forwarding, BackendError> {
        Ok(X11Forwarding::PassedOn(forward::listen_server_opened(
            &self.upstream,
            &self.routes,
            &self.lifecycle,
            forward::ServerOpened::X11,
        )))
    }

    async fn dial_unix(&self, path: &str) -> Result<Box<dyn ForwardedStream>, BackendError> {
        forward::dial_unix(&self.upstream, path).await
    }

    fn info(&self) -> ContainerInfo {
        self.info.clone()
    }

    async fn close(&self) -> Result<Closed, BackendError> {
        // A server already gone is closed all the same.
        let _ = self
            .upstream
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
        Ok(Closed::Removed)
    }
}
