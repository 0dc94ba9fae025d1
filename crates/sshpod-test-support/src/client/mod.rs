//! An SSH client for tests: a thin layer over russh's client with the calls tests make.
//!
//! It accepts any host key (and records it), records banners and the server's disconnect
//! message, and never sleeps: every read waits for a russh `ChannelMsg`. Wrap calls in
//! `tokio::time::timeout` where a test must not hang on a broken server.

mod session;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, PoisonError};

use russh::client::{self, DisconnectReason, Handle};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelStream, Disconnect};
use tokio::net::ToSocketAddrs;

pub use session::{ExitOutcome, Output, Session};

/// A fresh Ed25519 key to log in with.
pub fn ed25519_key() -> PrivateKey {
    // rand's thread RNG is a CSPRNG seeded from the operating system.
    PrivateKey::from(Ed25519Keypair::from_seed(&rand::random::<[u8; 32]>()))
}

/// What the server told the client outside of channels.
#[derive(Debug, Default)]
struct Seen {
    host_key: Option<PublicKey>,
    banners: Vec<String>,
    /// The reason code (russh's `Disconnect` is not `Clone`) and message.
    disconnect: Option<(u32, String)>,
}

/// The russh handler of a [`TestClient`]: trusts any server and records what it says.
#[derive(Debug, Clone, Default)]
pub struct TestClientHandler {
    seen: Arc<Mutex<Seen>>,
}

impl TestClientHandler {
    fn with_seen<T>(&self, f: impl FnOnce(&mut Seen) -> T) -> T {
        f(&mut self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl client::Handler for TestClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => PublicKey::from(cert.public_key().clone()),
        };
        self.with_seen(|s| s.host_key = Some(key));
        Ok(true)
    }

    async fn auth_banner(
        &mut self,
        banner: &str,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.with_seen(|s| s.banners.push(banner.to_owned()));
        Ok(())
    }

    async fn disconnected(
        &mut self,
        reason: DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        match reason {
            DisconnectReason::ReceivedDisconnect(info) => {
                self.with_seen(|s| s.disconnect = Some((info.reason_code as u32, info.message)));
                Ok(())
            }
            DisconnectReason::Error(e) => Err(e),
        }
    }
}

/// One SSH connection to the server under test.
pub struct TestClient {
    handle: Handle<TestClientHandler>,
    handler: TestClientHandler,
    user: String,
}

impl std::fmt::Debug for TestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestClient")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl TestClient {
    /// Connects as `user` with russh's default client settings; authenticate next.
    pub async fn connect(addr: impl ToSocketAddrs, user: &str) -> Result<Self, russh::Error> {
        Self::connect_with(addr, user, client::Config::default()).await
    }

    /// Connects as `user` with the given client settings (rekey limits, algorithms, ...).
    pub async fn connect_with(
        addr: impl ToSocketAddrs,
        user: &str,
        config: client::Config,
    ) -> Result<Self, russh::Error> {
        let handler = TestClientHandler::default();
        let handle = client::connect(Arc::new(config), addr, handler.clone()).await?;
        Ok(Self {
            handle,
            handler,
            user: user.to_owned(),
        })
    }

    /// Connects as `user` over a stream already open (after a PROXY protocol header, say).
    pub async fn connect_stream<S>(stream: S, user: &str) -> Result<Self, russh::Error>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let handler = TestClientHandler::default();
        let handle =
            client::connect_stream(Arc::new(client::Config::default()), stream, handler.clone())
                .await?;
        Ok(Self {
            handle,
            handler,
            user: user.to_owned(),
        })
    }

    /// Tries a password; `Ok(true)` when the server accepted it.
    pub async fn auth_password(&mut self, password: &str) -> Result<bool, russh::Error> {
        let result = self
            .handle
            .authenticate_password(self.user.clone(), password)
            .await?;
        Ok(result.success())
    }

    /// Tries a public key; `Ok(true)` when the server accepted it.
    pub async fn auth_publickey(&mut self, key: &PrivateKey) -> Result<bool, russh::Error> {
        let key = PrivateKeyWithHashAlg::new(Arc::new(key.clone()), None);
        let result = self
            .handle
            .authenticate_publickey(self.user.clone(), key)
            .await?;
        Ok(result.success())
    }

    /// Keyboard-interactive: answers each prompt, in order, with the next of `responses`
    /// (an empty answer when they run out), over as many rounds as the server asks.
    /// `Ok(true)` when the server accepted.
    pub async fn auth_keyboard_interactive(
        &mut self,
        responses: &[&str],
    ) -> Result<bool, russh::Error> {
        let mut answers = responses.iter().map(|r| (*r).to_owned());
        let mut reply = self
            .handle
            .authenticate_keyboard_interactive_start(self.user.clone(), None)
            .await?;
        loop {
            match reply {
                client::KeyboardInteractiveAuthResponse::Success => return Ok(true),
                client::KeyboardInteractiveAuthResponse::Failure { .. } => return Ok(false),
                client::KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                    let round = prompts
                        .iter()
                        .map(|_| answers.next().unwrap_or_default())
                        .collect();
                    reply = self
                        .handle
                        .authenticate_keyboard_interactive_respond(round)
                        .await?;
                }
            }
        }
    }

    /// Runs `command` on a fresh session channel and collects everything until the channel
    /// closes. `exit` is `None` when the server refused the command or sent no status.
    pub async fn exec(&self, command: &str) -> Result<Output, russh::Error> {
        let mut session = self.open_session().await?;
        if !session.exec(command).await? {
            session.close().await?;
        }
        session.read_to_end().await
    }

    /// Opens a session channel for an interactive test.
    pub async fn open_session(&self) -> Result<Session, russh::Error> {
        Ok(Session::new(self.handle.channel_open_session().await?))
    }

    /// Opens a `direct-tcpip` channel (`ssh -L`) to `host:port` as seen from the server, as a
    /// byte stream.
    pub async fn direct_tcpip(
        &self,
        host: &str,
        port: u16,
    ) -> Result<ChannelStream<client::Msg>, russh::Error> {
        let channel = self
            .handle
            .channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 40000)
            .await?;
        Ok(channel.into_stream())
    }

    /// Says goodbye to the server (`SSH_MSG_DISCONNECT`, by application).
    pub async fn disconnect(&self) -> Result<(), russh::Error> {
        self.handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await
    }

    /// The server's host key, once the key exchange has happened.
    pub fn host_key(&self) -> Option<PublicKey> {
        self.handler.with_seen(|s| s.host_key.clone())
    }

    /// Authentication banners the server sent, in order.
    pub fn banners(&self) -> Vec<String> {
        self.handler.with_seen(|s| s.banners.clone())
    }

    /// The reason and message of the server's `SSH_MSG_DISCONNECT`, if it sent one.
    pub fn disconnect_reason(&self) -> Option<(Disconnect, String)> {
        let (code, message) = self.handler.with_seen(|s| s.disconnect.clone())?;
        Some((Disconnect::try_from(code).ok()?, message))
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// The russh handle, for what this wrapper does not cover (keepalives, rekeying, ...).
    pub fn handle(&self) -> &Handle<TestClientHandler> {
        &self.handle
    }
}
