//! Listeners inside the container (`ssh -R`, and the displays of `ssh -X`): the part of the
//! backend contract that turns connections made inside the container into streams for
//! `forwarded-tcpip` (or `x11`) channels.
//!
//! Trait objects, not associated types: only some backends can listen, and a backend that
//! cannot keeps [`Container::listen`](crate::Container::listen)'s default, which refuses.

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite};

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

/// The longest line the in-container helper reports (longer ones are not the helper's).
pub const MAX_REPORT_LINE: u64 = 512;

/// What the in-container helper's `listen` modes (`sshpod-agent listen`, `listen-unix`,
/// `listen-agent`) report on stdout, one line each: the protocol every backend reads.
#[derive(Debug, PartialEq, Eq)]
pub enum ListenerReport {
    /// `listening PORT DIR`: bound; parked connections are `DIR/N.sock`.
    Listening {
        /// The port bound (0 for a Unix socket).
        port: u16,
        /// The helper's private directory.
        dir: String,
    },
    /// `accept N ADDRESS PORT`: connection N came from ADDRESS:PORT.
    Accept(Accepted),
}

impl ListenerReport {
    /// Reads one report line strictly: anything else is `None`.
    pub fn parse(line: &str) -> Option<Self> {
        let mut words = line.trim_end_matches('\n').split(' ');
        let report = match words.next()? {
            "listening" => ListenerReport::Listening {
                port: words.next()?.parse().ok()?,
                dir: words.next().filter(|d| d.starts_with('/'))?.to_owned(),
            },
            "accept" => ListenerReport::Accept(Accepted {
                id: words.next()?.parse().ok()?,
                originator: words.next().filter(|a| !a.is_empty())?.to_owned(),
                originator_port: words.next()?.parse().ok()?,
            }),
            _ => return None,
        };
        words.next().is_none().then_some(report)
    }

    /// Reads the helper's next report; `None` at its end or for a line that is not one.
    pub async fn read_next<R: AsyncBufRead + Unpin>(reports: &mut R) -> Option<Self> {
        let mut line = String::new();
        let n = reports
            .take(MAX_REPORT_LINE)
            .read_line(&mut line)
            .await
            .ok()?;
        if n == 0 {
            return None;
        }
        Self::parse(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_read_strictly() {
        assert_eq!(
            ListenerReport::parse("listening 40123 /tmp/sshpod-7-1f\n"),
            Some(ListenerReport::Listening {
                port: 40123,
                dir: "/tmp/sshpod-7-1f".to_owned()
            })
        );
        assert_eq!(
            ListenerReport::parse("accept 3 127.0.0.1 5555\n"),
            Some(ListenerReport::Accept(Accepted {
                id: 3,
                originator: "127.0.0.1".to_owned(),
                originator_port: 5555
            }))
        );
        for bad in [
            "",
            "listening 70000 /tmp/x",
            "listening 1 relative",
            "accept x 1.2.3.4 5",
            "accept 1 1.2.3.4 5 extra",
            "accept 1  5",
            "hello",
        ] {
            assert_eq!(ListenerReport::parse(bad), None, "{bad:?}");
        }
    }
}
