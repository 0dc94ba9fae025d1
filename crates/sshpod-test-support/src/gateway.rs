//! The SSH server in-process, on a free loopback port, with any backend (usually the
//! [`FakeBackend`](crate::FakeBackend)) and a [`Recorder`] among its subscribers.
//!
//! Logins: the user `alice` with [`TestGateway::client_key`] (in `authorized_keys`) or the
//! password [`PASSWORD`] (in an htpasswd file). A test changes the rest of the configuration
//! in code, with [`TestGateway::start_with`].

// Test support: a set-up that fails is a failed test, said loudly where it happens.
#![allow(clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use russh::keys::PrivateKey;
use sshpod::server::{self, LogEvents, Server};
use sshpod_core::{Backend, EventSink, Lifecycle};
use tokio::task::JoinHandle;

use crate::{ed25519_key, Recorder};

/// `alice`'s password.
pub const PASSWORD: &str = "correct horse battery staple";

/// A running server.
pub struct TestGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Every event and tapped record.
    pub recorder: Recorder,
    client_key: PrivateKey,
    authorized_keys: std::path::PathBuf,
    lifecycle: Lifecycle,
    served: JoinHandle<()>,
    files: tempfile::TempDir,
}

impl TestGateway {
    /// Starts a server for `backend` with the default test configuration.
    pub async fn start<B: Backend>(backend: B) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server for `backend`, with the test configuration as `configure` changes it.
    pub async fn start_with<B: Backend>(
        backend: B,
        configure: impl FnOnce(&mut sshpod_config::Config),
    ) -> Self {
        Self::start_inner(backend, None, configure, Vec::new()).await
    }

    /// Starts a server for `backend` with `sinks` subscribed after the log and the recorder
    /// (a session recorder under test).
    pub async fn start_with_sinks<B: Backend>(
        backend: B,
        configure: impl FnOnce(&mut sshpod_config::Config),
        sinks: Vec<Arc<dyn EventSink>>,
    ) -> Self {
        Self::start_inner(backend, None, configure, sinks).await
    }

    /// Starts a server for `backend` whose `auth` section is `auth` (YAML, indented as under
    /// `auth:`), with `{dir}` standing for the gateway's directory ([`TestGateway::path`]).
    pub async fn start_with_auth<B: Backend>(backend: B, auth: &str) -> Self {
        Self::start_inner(backend, Some(auth), |_| {}, Vec::new()).await
    }

    async fn start_inner<B: Backend>(
        backend: B,
        auth: Option<&str>,
        configure: impl FnOnce(&mut sshpod_config::Config),
        sinks: Vec<Arc<dyn EventSink>>,
    ) -> Self {
        let files = tempfile::tempdir().expect("a temporary directory");
        let client_key = ed25519_key();
        let authorized = files.path().join("alice");
        let key_line = client_key
            .public_key()
            .to_openssh()
            .expect("an OpenSSH key");
        std::fs::write(&authorized, &key_line).expect("writing authorized_keys");
        let htpasswd = files.path().join("htpasswd");
        let hash = bcrypt::hash(PASSWORD, 4).expect("hashing");
        std::fs::write(&htpasswd, format!("alice:{hash}\n")).expect("writing htpasswd");
        let mut config = config(files.path(), &htpasswd, auth);
        configure(&mut config);
        let host_key = ed25519_key();
        let recorder = Recorder::default();
        let mut subscribers: Vec<Arc<dyn EventSink>> =
            vec![Arc::new(LogEvents), Arc::new(recorder.clone())];
        subscribers.extend(sinks);
        let server = Server::new(
            Arc::new(config),
            backend,
            vec![host_key],
            Vec::new(),
            subscribers,
        )
        .expect("a server");
        let socket = server::bind("127.0.0.1:0".parse().expect("an address")).expect("binding");
        let listener = server::listen(socket).expect("listening");
        let addr = listener.local_addr().expect("an address");
        let lifecycle = Lifecycle::new();
        let root = lifecycle.clone();
        let served = lifecycle.spawn(async move { server.serve(listener, &root).await });
        Self {
            addr,
            recorder,
            client_key,
            authorized_keys: authorized,
            lifecycle,
            served,
            files,
        }
    }

    /// The key `alice` may log in with.
    pub fn client_key(&self) -> &PrivateKey {
        &self.client_key
    }

    /// Gives `alice`'s key these `authorized_keys` options (such as `no-pty` or
    /// `command="..."`); the file is read at each login.
    pub fn set_key_options(&self, options: &str) {
        let line = self
            .client_key
            .public_key()
            .to_openssh()
            .expect("an OpenSSH key");
        std::fs::write(&self.authorized_keys, format!("{options} {line}\n"))
            .expect("writing authorized_keys");
    }

    /// A file in the gateway's directory (`{dir}` in [`TestGateway::start_with_auth`]).
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.files.path().join(name)
    }

    /// Shuts the server down as SIGTERM would, and waits until it has.
    pub async fn stop(self) {
        self.lifecycle.cancel();
        let _ = self.served.await;
        self.lifecycle.wait().await;
    }
}

/// The test configuration, with `auth` as its `auth` section if given.
fn config(dir: &Path, htpasswd: &Path, auth: Option<&str>) -> sshpod_config::Config {
    let auth = match auth {
        Some(auth) => auth.replace("{dir}", &dir.display().to_string()),
        None => format!(
            "  publicKey:\n    method: authorizedKeys\n    authorizedKeys:\n      file: {}/%u\n  password:\n    method: htpasswd\n    htpasswd:\n      file: {}\n",
            dir.display(),
            htpasswd.display()
        ),
    };
    let base = format!("ssh:\n  listen: 127.0.0.1:0\nauth:\n{auth}");
    match sshpod_config::parse_str(&base, sshpod_config::Format::Yaml, "test configuration") {
        Ok(loaded) => loaded.config,
        Err(errors) => panic!("the test configuration is not valid:\n{errors}\n{base}"),
    }
}
