//! Opening the upstream connection: TCP within `sshproxy.timeout` (retried while it is refused,
//! as ContainerSSH does), the key exchange with the configured algorithms and host key check,
//! then logging in with the configured key and/or password.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{decode_secret_key, PrivateKey, PrivateKeyWithHashAlg};
use russh::SshId;
use sshpod_config::SshProxyConfig;
use sshpod_core::BackendError;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout_at, Instant};

use crate::algorithms::preferred;
use crate::forward::{Route, Routes};
use crate::host_key::HostKeyCheck;

/// How long to wait before dialling a refusing server again (ContainerSSH's interval).
const REDIAL_INTERVAL: Duration = Duration::from_secs(10);
/// How often a silent upstream server is asked whether it is still there, and how many
/// unanswered asks end the connection.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_MAX: usize = 3;
/// The largest private key file read; real keys are a few KiB.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// The logged-in connection to the upstream server.
pub(crate) type Upstream = Handle<UpstreamHandler>;

/// The upstream connection's russh handler: it judges the host key and passes the channels
/// the server opens for forwards, the agent and X11 to their listeners.
pub(crate) struct UpstreamHandler {
    check: HostKeyCheck,
    routes: Arc<Routes>,
}

impl russh::client::Handler for UpstreamHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        presented: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(self.check.judge(presented))
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: russh::Channel<client::Msg>,
        _connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let route = Route::Tcp(connected_port);
        self.routes
            .deliver(&route, channel, reply, originator_address, originator_port);
        Ok(())
    }

    async fn server_channel_open_forwarded_streamlocal(
        &mut self,
        channel: russh::Channel<client::Msg>,
        socket_path: &str,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let route = Route::Unix(socket_path.to_owned());
        self.routes.deliver(&route, channel, reply, "", 0);
        Ok(())
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        channel: russh::Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.routes.deliver(&Route::Agent, channel, reply, "", 0);
        Ok(())
    }

    async fn server_channel_open_x11(
        &mut self,
        channel: russh::Channel<client::Msg>,
        originator_address: &str,
        originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.routes.deliver(
            &Route::X11,
            channel,
            reply,
            originator_address,
            originator_port,
        );
        Ok(())
    }
}

/// Connects to the configured server and logs in as `user`, all within `config.timeout`; the
/// connection, and where its forwards' channels go.
pub(crate) async fn connect(
    config: &SshProxyConfig,
    user: &str,
) -> Result<(Upstream, Arc<Routes>), BackendError> {
    let deadline = Instant::now() + config.timeout;
    let key = private_key(config.private_key.expose_secret()).await?;
    let socket = dial(config, deadline).await?;
    let client_config = Arc::new(client::Config {
        client_id: SshId::Standard(Cow::Owned(config.client_version.clone())),
        preferred: preferred(config),
        // A server that stops answering ends the login's sessions instead of holding them
        // open until TCP gives up.
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: KEEPALIVE_MAX,
        nodelay: true,
        ..client::Config::default()
    });
    let (check, refused) = HostKeyCheck::new(config.allowed_host_key_fingerprints.clone());
    let routes = Arc::new(Routes::default());
    let handler = UpstreamHandler {
        check,
        routes: Arc::clone(&routes),
    };
    let handshake = client::connect_stream(client_config, socket, handler);
    let mut handle = match timeout_at(deadline, handshake).await {
        Ok(Ok(handle)) => handle,
        Ok(Err(error)) => {
            if let Some(fingerprint) = refused.get() {
                return Err(upstream(
                    "the SSH server behind this one presented a host key this server does not trust",
                    Some(format!(
                        "host key {fingerprint} is not in sshproxy.allowedHostKeyFingerprints"
                    )),
                ));
            }
            return Err(upstream(
                "the SSH server behind this one failed the SSH handshake",
                Some(error.to_string()),
            ));
        }
        Err(_) => return Err(timed_out(config)),
    };
    match timeout_at(deadline, log_in(&mut handle, config, user, key)).await {
        Ok(result) => result.map(|()| (handle, routes)),
        Err(_) => Err(timed_out(config)),
    }
}

/// A TCP connection to the server, dialled again while it is refused, until `deadline`.
async fn dial(config: &SshProxyConfig, deadline: Instant) -> Result<TcpStream, BackendError> {
    let address = (config.server.as_str(), config.port);
    loop {
        let error = match timeout_at(deadline, TcpStream::connect(address)).await {
            Ok(Ok(socket)) => {
                let _ = socket.set_nodelay(true);
                return Ok(socket);
            }
            Ok(Err(error)) => error,
            Err(_) => return Err(timed_out(config)),
        };
        let again = Instant::now() + REDIAL_INTERVAL;
        if again >= deadline {
            return Err(upstream(
                "the SSH server behind this one is not reachable",
                Some(format!("{}:{}: {error}", config.server, config.port)),
            ));
        }
        tracing::debug!(
            server = %config.server,
            port = config.port,
            error = &error as &dyn std::error::Error,
            "the upstream server is not reachable; dialling again"
        );
        sleep_until(again).await;
    }
}

/// Authenticates as `user`: with the key first, then the password, whichever are set; with
/// neither, as `none`.
async fn log_in(
    handle: &mut Upstream,
    config: &SshProxyConfig,
    user: &str,
    key: Option<PrivateKey>,
) -> Result<(), BackendError> {
    let failed = |error: russh::Error| {
        upstream(
            "the connection to the SSH server behind this one was lost",
            Some(error.to_string()),
        )
    };
    let password = config.password.expose_secret();
    if let Some(key) = key {
        let hash = handle.best_supported_rsa_hash().await.map_err(failed)?;
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash.flatten());
        if handle
            .authenticate_publickey(user, key)
            .await
            .map_err(failed)?
            .success()
        {
            return Ok(());
        }
    }
    if !password.is_empty()
        && handle
            .authenticate_password(user, password.as_str())
            .await
            .map_err(failed)?
            .success()
    {
        return Ok(());
    }
    if config.private_key.expose_secret().is_empty()
        && password.is_empty()
        && handle
            .authenticate_none(user)
            .await
            .map_err(failed)?
            .success()
    {
        return Ok(());
    }
    Err(upstream(
        "the SSH server behind this one did not accept this server's credentials",
        Some(format!("as `{user}`")),
    ))
}

/// `sshproxy.privateKey`: the key itself (PEM or OpenSSH format) or the name of its file.
/// The user is told only that sshpod cannot log in upstream; the log gets why.
pub(crate) async fn private_key(setting: &str) -> Result<Option<PrivateKey>, BackendError> {
    let setting = setting.trim();
    if setting.is_empty() {
        return Ok(None);
    }
    let settings = |reason: String| {
        upstream(
            "this server cannot log in to the SSH server behind it",
            Some(format!("sshproxy.privateKey: {reason}")),
        )
    };
    let text = if setting.starts_with("-----") {
        setting.to_owned()
    } else {
        let file = tokio::fs::File::open(setting)
            .await
            .map_err(|e| settings(format!("cannot read {setting}: {e}")))?;
        let mut text = String::new();
        file.take(MAX_KEY_FILE)
            .read_to_string(&mut text)
            .await
            .map_err(|e| settings(format!("cannot read {setting}: {e}")))?;
        text
    };
    decode_secret_key(&text, None)
        .map(Some)
        .map_err(|e| settings(format!("not a private key without a passphrase: {e}")))
}

fn timed_out(config: &SshProxyConfig) -> BackendError {
    upstream(
        &format!(
            "the SSH server behind this one did not answer within {} s",
            config.timeout.as_secs().max(1)
        ),
        None,
    )
}

fn upstream(reason: &str, cause: Option<String>) -> BackendError {
    BackendError::Upstream {
        reason: reason.to_owned(),
        source: cause.map(Into::into),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshpod_config::Fingerprint;

    fn config(port: u16, timeout: Duration) -> SshProxyConfig {
        let fingerprint = Fingerprint::parse("SHA256:MbGuM3U0iq9MGi0aCrY12m1iStLpXHtR9TSbGJLGmiE")
            .unwrap_or_else(|e| panic!("{e}"));
        SshProxyConfig {
            server: "127.0.0.1".to_owned(),
            port,
            username: "someone".to_owned(),
            allowed_host_key_fingerprints: vec![fingerprint],
            timeout,
            ..SshProxyConfig::default()
        }
    }

    fn message(result: Result<(Upstream, Arc<Routes>), BackendError>) -> String {
        match result {
            Ok(_) => panic!("connected"),
            Err(error) => error.to_string(),
        }
    }

    #[tokio::test]
    async fn a_server_that_refuses_connections_is_not_reachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        drop(listener);
        // Shorter than the redial interval: one attempt, then the answer.
        let result = connect(&config(port, Duration::from_secs(5)), "someone").await;
        assert_eq!(
            message(result),
            "the SSH server behind this one is not reachable"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_never_speaks_ends_the_login_at_the_timeout() {
        // Accepts (the kernel completes the handshake) and never sends its version line.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let result = connect(&config(port, Duration::from_secs(60)), "someone").await;
        assert_eq!(
            message(result),
            "the SSH server behind this one did not answer within 60 s"
        );
        drop(listener);
    }

    #[tokio::test]
    async fn an_unreadable_key_is_reported_without_its_path_to_the_user() {
        let error = match private_key("/nonexistent/sshproxy-key").await {
            Ok(_) => panic!("read a key that does not exist"),
            Err(error) => error,
        };
        assert_eq!(
            error.to_string(),
            "this server cannot log in to the SSH server behind it"
        );
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        assert!(
            cause.is_some_and(|c| c.contains("/nonexistent/sshproxy-key")),
            "the log gets the path"
        );
        assert!(matches!(private_key("  ").await, Ok(None)));
        assert!(
            private_key("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n")
                .await
                .is_err()
        );
    }
}
