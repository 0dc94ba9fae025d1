//! Test doubles for sshpod, so the SSH server can be tested in-process, in milliseconds and
//! without a container engine.
//!
//! - [`FakeBackend`] implements [`sshpod_core::Backend`] with processes that are tokio tasks
//!   on in-memory pipes, speaking a small command language (see [`fake`]). It records what the
//!   server asked of it, and a test can script how `connect` behaves.
//! - [`TestClient`] is a thin russh client with the calls tests make: log in, run a command,
//!   drive an interactive session, forward a port.
//!
//! Used only by tests (`publish = false`). Depends on the core contracts and russh; must not
//! depend on the server or on a real backend, so that any of them can use it in their tests.

pub mod client;
pub mod fake;

pub use client::{ed25519_key, ExitOutcome, Output, Session, TestClient};
pub use fake::{FakeBackend, FakeBackendBuilder, FakeContainer, OnConnect, Record, WaitTimedOut};
