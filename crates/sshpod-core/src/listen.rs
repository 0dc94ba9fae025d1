//! Listeners inside the container (`ssh -R`, and the displays of `ssh -X`): the part of the
//! backend contract that turns connections made inside the container into streams for
//! `forwarded-tcpip` (or `x11`) channels.
//!
//! Trait objects, not associated types: only some backends can listen, and a backend that
//! cannot keeps [`Container::listen`](crate::Container::listen)'s default, which refuses.

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::BackendError;

/// A future a listener returns, boxed so listeners can be trait objects.
pub type ListenFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// A byte stream of one forwarded connection.
pub trait ForwardedStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ForwardedStream for T {}

/// A connection accepted by a listener inside the container, parked until it is taken or
/// refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The listener's number for it, passed back to [`Listener::take`] or
    /// [`Listener::refuse`].
    pub id: u64,
    /// The address of whoever connected (inside the container's network).
    pub originator: String,
    /// Their port.
    pub originator_port: u16,
}

/// A TCP listener inside the container. Dropping it stops listening; connections already
/// taken carry on until they end.
pub trait Listener: Send + Sync + 'static {
    /// The port actually bound (the one chosen, when port 0 was asked for).
    fn port(&self) -> u16;

    /// The socket's path, for a listener whose path the backend chose (the forwarded agent's).
    fn socket_path(&self) -> Option<&str> {
        None
    }

    /// Waits for the next connection. An error means the listener is gone.
    fn accept(&self) -> ListenFuture<'_, Accepted>;

    /// The stream of an accepted connection.
    fn take(&self, id: u64) -> ListenFuture<'_, Box<dyn ForwardedStream>>;

    /// Closes an accepted connection nobody will take.
    fn refuse(&self, id: u64);
}
