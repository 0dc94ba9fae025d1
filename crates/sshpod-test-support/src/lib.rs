//! Test doubles for sshpod, so the SSH server can be tested in-process, in milliseconds and
//! without a container engine.
//!
//! - [`FakeBackend`] implements [`sshpod_core::Backend`] with processes that are tokio tasks
//!   on in-memory pipes, speaking a small command language (see [`fake`]). It records what the
//!   server asked of it, and a test can script how `connect` behaves.
//! - [`TestClient`] is a thin russh client with the calls tests make: log in, run a command,
//!   drive an interactive session, forward a port.
//! - [`TestGateway`] runs the real SSH server in-process on a free loopback port, with a
//!   [`Recorder`] among its event subscribers, so tests can wait on and inspect every event and
//!   every tapped byte.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use sshpod_core::{
//!     Backend, Command, ConnectionContext, ConnectionId, Container, ExitStatus, ProcessSpec,
//! };
//! use sshpod_test_support::FakeBackend;
//! use tokio::io::AsyncReadExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let fake = FakeBackend::builder().subsystem("sftp").build();
//! let server_side = fake.clone(); // the server under test gets this one
//! let addr = "127.0.0.1:1".parse().unwrap();
//! let ctx = ConnectionContext::new(ConnectionId::random(), "alice".into(), addr);
//! let container = server_side.connect(&ctx).await.unwrap();
//! let spec = ProcessSpec { command: Command::Exec("echo hi".into()), env: vec![], tty: None, x11: None };
//! let mut process = container.exec(spec).await.unwrap();
//! let mut out = String::new();
//! process.stdout.read_to_string(&mut out).await.unwrap();
//! assert_eq!(out, "hi\n");
//! assert_eq!(process.control.wait().await.unwrap(), ExitStatus::Code(0));
//! container.close().await.unwrap();
//! fake.wait_until_no_containers(Duration::from_secs(5)).await.unwrap();
//! assert_eq!(fake.closes(ctx.connection_id), 1);
//! # }
//! ```
//!
//! Used only by tests (`publish = false`). The fake and the client depend on the core
//! contracts and russh only; the gateway also on the server library (the server's own tests
//! in `crates/sshpod/tests` use it as a dev-dependency).

pub mod client;
pub mod fake;
pub mod gateway;
pub mod recorder;

pub use client::{ed25519_key, ExitOutcome, Output, Session, TestClient, TestClientHandler};
pub use fake::{
    DialRecord, ExecRecord, FakeBackend, FakeBackendBuilder, FakeContainer, OnConnect, Record,
    WaitTimedOut,
};
pub use gateway::{TestGateway, PASSWORD};
pub use recorder::{Recorded, Recorder};
