//! The client against a minimal russh server with canned answers.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server::{self, Auth, ChannelOpenHandle, Msg, Response, VerifiedPublicKey};
use russh::{Channel, ChannelId, Pty, Sig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{ed25519_key, ExitOutcome, TestClient};

/// Answers by the book of this test:
/// - password `secret`, any public key, keyboard-interactive with one prompt answered `secret`;
/// - exec `hello` prints `hi` and `oops` (stderr) and exits 3; `refuse` is refused; anything
///   else runs "interactively": data is echoed, resizes and the pty are reported as text, EOF
///   exits 0 and a signal ends it with that signal;
/// - the shell is interactive too; subsystem `sftp` is accepted, others refused;
/// - env `REFUSED` is refused; direct-tcpip echoes.
#[derive(Default)]
struct Canned {
    pty: Option<(String, u32, u32)>,
    sessions: HashSet<ChannelId>,
}

impl Canned {
    fn end(session: &mut server::Session, channel: ChannelId) -> Result<(), russh::Error> {
        session.eof(channel)?;
        session.close(channel)
    }
}

impl server::Handler for Canned {
    type Error = russh::Error;

    async fn auth_password(&mut self, _user: &str, password: &str) -> Result<Auth, Self::Error> {
        Ok(if password == "secret" {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        _key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        _user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        let Some(mut answers) = response else {
            return Ok(Auth::Partial {
                name: Cow::Borrowed(""),
                instructions: Cow::Borrowed(""),
                prompts: Cow::Owned(vec![(Cow::Borrowed("Password: "), false)]),
            });
        };
        Ok(if answers.next().as_deref() == Some(&b"secret"[..]) {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        self.sessions.insert(channel.id());
        reply.accept().await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        _host: &str,
        _port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        tokio::spawn(async move {
            let (mut r, mut w) = tokio::io::split(channel.into_stream());
            let _ = tokio::io::copy(&mut r, &mut w).await;
            let _ = w.shutdown().await;
        });
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        cols: u32,
        rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(Pty, u32)],
        session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        self.pty = Some((term.to_owned(), cols, rows));
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        _value: &str,
        session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        if name == "REFUSED" {
            session.channel_failure(channel)
        } else {
            session.channel_success(channel)
        }
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        command: &[u8],
        session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        match command {
            b"hello" => {
                session.channel_success(channel)?;
                session.data(channel, &b"hi\n"[..])?;
                session.extended_data(channel, 1, &b"oops\n"[..])?;
                session.exit_status_request(channel, 3)?;
                Self::end(session, channel)
            }
            b"refuse" => session.channel_failure(channel),
            _ => session.channel_success(channel),
        }
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        if let Some((term, cols, rows)) = &self.pty {
            session.data(channel, format!("pty {term} {cols}x{rows}\n"))?;
        }
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        if name == "sftp" {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        // Forwarded channels are served by their own task.
        if self.sessions.contains(&channel) {
            session.data(channel, data.to_vec())?;
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        if self.sessions.contains(&channel) {
            session.exit_status_request(channel, 0)?;
            Self::end(session, channel)?;
        }
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        cols: u32,
        rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        session.data(channel, format!("resize {cols}x{rows}\n"))
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: Sig,
        session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        session.exit_signal_request(channel, signal, false, "", "")?;
        Self::end(session, channel)
    }
}

/// A server on port 0 that serves every connection with [`Canned`], and its host key.
async fn serve() -> (std::net::SocketAddr, PrivateKey) {
    let key = ed25519_key();
    let config = Arc::new(server::Config {
        keys: vec![key.clone()],
        auth_rejection_time: Duration::ZERO,
        auth_rejection_time_initial: Some(Duration::ZERO),
        ..Default::default()
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let config = Arc::clone(&config);
            tokio::spawn(async move {
                let _ = server::run_stream(config, socket, Canned::default()).await;
            });
        }
    });
    (addr, key)
}

async fn logged_in() -> TestClient {
    let (addr, _) = serve().await;
    let mut client = TestClient::connect(addr, "alice").await.unwrap();
    assert!(client.auth_password("secret").await.unwrap());
    client
}

/// Fails the test rather than hanging it.
async fn within<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), work)
        .await
        .expect("the test took too long")
}

#[tokio::test]
async fn authenticates_and_records_the_host_key() {
    within(async {
        let (addr, key) = serve().await;
        let mut client = TestClient::connect(addr, "alice").await.unwrap();
        assert_eq!(client.host_key().as_ref(), Some(key.public_key()));
        assert!(!client.auth_password("wrong").await.unwrap());
        assert!(!client.auth_keyboard_interactive(&["wrong"]).await.unwrap());
        assert!(client.auth_keyboard_interactive(&["secret"]).await.unwrap());

        let mut by_key = TestClient::connect(addr, "bob").await.unwrap();
        assert!(by_key.auth_publickey(&ed25519_key()).await.unwrap());
        by_key.disconnect().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn exec_collects_output_and_exit_status() {
    within(async {
        let client = logged_in().await;
        let out = client.exec("hello").await.unwrap();
        assert_eq!(out.stdout_text(), "hi\n");
        assert_eq!(out.stderr_text(), "oops\n");
        assert_eq!(out.exit, Some(ExitOutcome::Code(3)));

        let refused = client.exec("refuse").await.unwrap();
        assert_eq!(refused.exit, None);
    })
    .await;
}

#[tokio::test]
async fn an_interactive_session_with_a_pty() {
    within(async {
        let client = logged_in().await;
        let mut s = client.open_session().await.unwrap();
        assert!(s.request_pty("xterm", 80, 24).await.unwrap());
        assert!(s.set_env("LANG", "C").await.unwrap());
        assert!(!s.set_env("REFUSED", "1").await.unwrap());
        assert!(s.shell().await.unwrap());
        assert!(s
            .read_until_stdout_contains("pty xterm 80x24\n")
            .await
            .unwrap());
        s.write(b"typed").await.unwrap();
        assert!(s.read_until_stdout_contains("typed").await.unwrap());
        s.window_change(100, 30).await.unwrap();
        assert!(s
            .read_until_stdout_contains("resize 100x30\n")
            .await
            .unwrap());
        s.signal(Sig::TERM).await.unwrap();
        let out = s.read_to_end().await.unwrap();
        assert_eq!(out.exit, Some(ExitOutcome::Signal("TERM".into())));
    })
    .await;
}

#[tokio::test]
async fn eof_ends_a_command_and_subsystems_may_be_refused() {
    within(async {
        let client = logged_in().await;
        let mut s = client.open_session().await.unwrap();
        assert!(s.exec("cat").await.unwrap());
        s.write(b"abc").await.unwrap();
        s.eof().await.unwrap();
        assert!(!s.read_until(|o| o.stdout.len() > 3).await.unwrap());
        assert!(s.got_eof() && s.is_closed());
        assert_eq!(s.output().stdout, b"abc");
        assert_eq!(s.output().exit, Some(ExitOutcome::Code(0)));

        assert!(client
            .open_session()
            .await
            .unwrap()
            .subsystem("sftp")
            .await
            .unwrap());
        assert!(!client
            .open_session()
            .await
            .unwrap()
            .subsystem("nope")
            .await
            .unwrap());
    })
    .await;
}

#[tokio::test]
async fn direct_tcpip_is_a_byte_stream() {
    within(async {
        let client = logged_in().await;
        let mut stream = client.direct_tcpip("localhost", 8080).await.unwrap();
        stream.write_all(b"ping").await.unwrap();
        let mut back = [0; 4];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"ping");
    })
    .await;
}
