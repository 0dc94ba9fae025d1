//! The drain after SIGTERM: readiness goes false first (the binary's concern), then for
//! `ssh.drainTimeout` new connections are refused with a message the client shows and
//! connected terminal users are told when their session ends; then the shutdown runs.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// The server's drain state, shared by the accept loop, the connections and whoever starts
/// it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Drain {
    /// When the shutdown will run, once the drain has started.
    shutdown_at: Arc<watch::Sender<Option<Instant>>>,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            shutdown_at: Arc::new(watch::Sender::new(None)),
        }
    }
}

impl Drain {
    /// Starts the drain: the shutdown is announced for `notice` from now. A second call keeps
    /// the first announcement. Returns false if the drain had started already.
    pub fn start(&self, notice: Duration) -> bool {
        self.shutdown_at.send_if_modified(|at| {
            if at.is_some() {
                return false;
            }
            *at = Some(Instant::now() + notice);
            true
        })
    }

    /// Whether the drain has started.
    pub fn is_draining(&self) -> bool {
        self.shutdown_at.borrow().is_some()
    }

    /// Follows the drain: `Some(when the shutdown runs)` once it has started (for a readiness
    /// probe, or anything else that must know).
    pub fn subscribe(&self) -> watch::Receiver<Option<Instant>> {
        self.shutdown_at.subscribe()
    }
}

/// What a client connecting during the drain is told.
pub(crate) const RESTARTING: &str = "sshpod: this server is restarting";

/// How long a refused client has to read the refusal before the socket closes.
const REFUSAL_LINGER: Duration = Duration::from_secs(5);

/// Refuses a connection with `message` in a form OpenSSH shows without `-v`: sshpod's version
/// line, then a plain-text (pre-key-exchange) SSH_MSG_DISCONNECT, which `ssh` prints as
/// "Received disconnect from ...: MESSAGE". Then waits (briefly) for the client to close, so
/// that closing with its unread bytes does not reset the connection before it read ours.
pub(crate) async fn refuse(mut socket: TcpStream, server_version: &str, message: &str) {
    let mut out = format!("{server_version}\r\n").into_bytes();
    out.extend(disconnect_packet(message));
    if socket.write_all(&out).await.is_err() {
        return;
    }
    let _ = socket.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// An unencrypted SSH binary packet holding SSH_MSG_DISCONNECT (reason 11, "by application")
/// with `message`.
fn disconnect_packet(message: &str) -> Vec<u8> {
    const SSH_MSG_DISCONNECT: u8 = 1;
    const BY_APPLICATION: u32 = 11;
    let message = &message.as_bytes()[..message.len().min(1024)];
    let mut payload = vec![SSH_MSG_DISCONNECT];
    payload.extend(BY_APPLICATION.to_be_bytes());
    payload.extend(u32::try_from(message.len()).unwrap_or(0).to_be_bytes());
    payload.extend(message);
    payload.extend(0u32.to_be_bytes()); // language tag: empty
                                        // packet_length, padding_length, payload, padding: a multiple of 8, at least 4 of padding.
    let unpadded = 4 + 1 + payload.len();
    let padding = 8 - unpadded % 8 + if 8 - unpadded % 8 < 4 { 8 } else { 0 };
    let packet_length = u32::try_from(1 + payload.len() + padding).unwrap_or(0);
    let mut packet = packet_length.to_be_bytes().to_vec();
    packet.push(u8::try_from(padding).unwrap_or(4));
    packet.extend(payload);
    packet.extend(std::iter::repeat_n(0u8, padding));
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disconnect_packet_is_well_formed() {
        for message in ["", "x", RESTARTING, &"y".repeat(5000)] {
            let packet = disconnect_packet(message);
            assert_eq!(packet.len() % 8, 0);
            let length = u32::from_be_bytes([packet[0], packet[1], packet[2], packet[3]]) as usize;
            assert_eq!(length + 4, packet.len());
            let padding = usize::from(packet[4]);
            assert!((4..=255).contains(&padding));
            assert_eq!(packet[5], 1, "SSH_MSG_DISCONNECT");
            let text_len =
                u32::from_be_bytes([packet[10], packet[11], packet[12], packet[13]]) as usize;
            assert_eq!(&packet[14..14 + text_len], &message.as_bytes()[..text_len]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_is_announced_once() {
        let drain = Drain::default();
        let mut follower = drain.subscribe();
        assert!(!drain.is_draining());
        assert!(drain.start(Duration::from_secs(5)));
        let at = follower
            .wait_for(Option::is_some)
            .await
            .map(|at| *at)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(at, Some(Instant::now() + Duration::from_secs(5)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            !drain.start(Duration::from_secs(5)),
            "a second start changes nothing"
        );
        assert_eq!(*drain.subscribe().borrow(), at);
    }
}
