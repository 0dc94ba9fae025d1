//! Syslog messages as ContainerSSH sends them: `<PRI>Mmm dd hh:mm:ss TAG[PID]: MESSAGE`, the
//! BSD form (RFC 3164) that local daemons (`/dev/log`) and UDP receivers alike accept, over a
//! unix datagram socket or UDP. Sending never blocks: a message the socket does not take is
//! dropped and counted.

use std::io;
use std::net::{ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use sshpod_config::{SyslogConfig, SyslogTarget};

/// Longest message sent; a longer one is cut (UDP receivers commonly take no more than this).
const MAX_MESSAGE: usize = 8 * 1024;

/// Syslog severities (RFC 5424 table 2) of the levels sshpod's lines carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Error = 3,
    Warning = 4,
    Notice = 5,
    Debug = 7,
}

/// The fixed part of every message: facility, tag and process id.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    facility: u8,
    /// `TAG` or `TAG[PID]`.
    tag: String,
}

impl Header {
    pub(crate) fn new(facility: u8, tag: &str, pid: Option<u32>) -> Self {
        let tag = match pid {
            Some(pid) => format!("{tag}[{pid}]"),
            None => tag.to_owned(),
        };
        Self { facility, tag }
    }

    /// One datagram: `<PRI>TIMESTAMP TAG: MESSAGE`, with `timestamp` as `Mmm dd hh:mm:ss`.
    pub(crate) fn message(&self, severity: Severity, timestamp: &str, text: &str) -> Vec<u8> {
        let priority = u16::from(self.facility) * 8 + severity as u16;
        let mut text = text.trim_end_matches('\n');
        if text.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text = &text[..end];
        }
        format!("<{priority}>{timestamp} {}: {text}", self.tag).into_bytes()
    }
}

/// The local time as RFC 3164 writes it (`Dec  7 06:41:57`).
pub(crate) fn timestamp_now() -> String {
    chrono::Local::now().format("%b %e %H:%M:%S").to_string()
}

/// Where datagrams go.
#[derive(Debug)]
pub(crate) enum Socket {
    /// Sent to the path each time, so a daemon that restarts (and recreates the socket) is
    /// found again.
    Unix {
        socket: UnixDatagram,
        path: PathBuf,
    },
    Udp(UdpSocket),
}

impl Socket {
    /// Opens the socket for `config`; a UDP host is resolved now, once.
    pub(crate) fn open(config: &SyslogConfig) -> io::Result<Self> {
        let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
        match config.target().map_err(invalid)? {
            SyslogTarget::Unix(path) => {
                let socket = UnixDatagram::unbound()?;
                socket.set_nonblocking(true)?;
                Ok(Self::Unix { socket, path })
            }
            SyslogTarget::Udp(address) => {
                let server = address
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| invalid(format!("{address} has no address")))?;
                let local = if server.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let socket = UdpSocket::bind(local)?;
                socket.set_nonblocking(true)?;
                socket.connect(server)?;
                Ok(Self::Udp(socket))
            }
        }
    }

    /// Sends one datagram without waiting.
    pub(crate) fn send(&self, datagram: &[u8]) -> io::Result<()> {
        match self {
            Self::Unix { socket, path } => socket.send_to(datagram, path).map(drop),
            Self::Udp(socket) => socket.send(datagram).map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_as_containerssh_sends_it() {
        let header = Header::new(4, "sshpod", Some(1234));
        let message = header.message(Severity::Warning, "Dec  7 06:41:57", "{\"code\":\"X\"}\n");
        assert_eq!(
            String::from_utf8_lossy(&message),
            "<36>Dec  7 06:41:57 sshpod[1234]: {\"code\":\"X\"}"
        );
        let local7 = Header::new(23, "gw", None);
        assert_eq!(
            String::from_utf8_lossy(&local7.message(Severity::Debug, "Jan 10 00:00:00", "m")),
            "<191>Jan 10 00:00:00 gw: m"
        );
        assert_eq!(timestamp_now().len(), "Dec  7 06:41:57".len());
    }

    #[test]
    fn long_messages_are_cut_on_a_character() {
        let header = Header::new(1, "t", None);
        let text = "é".repeat(MAX_MESSAGE);
        let message = header.message(Severity::Error, "Dec  7 06:41:57", &text);
        let message = String::from_utf8(message).unwrap_or_else(|e| panic!("{e}"));
        assert!(message.len() <= MAX_MESSAGE + 40);
        assert!(message.ends_with('é'));
    }

    #[test]
    fn datagrams_reach_a_unix_socket_and_udp() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("log");
        let receiver = UnixDatagram::bind(&path)?;
        let unix = Socket::open(&SyslogConfig {
            destination: path.display().to_string(),
            ..SyslogConfig::default()
        })?;
        unix.send(b"<38>hello")?;
        let mut buffer = [0u8; 64];
        let n = receiver.recv(&mut buffer)?;
        assert_eq!(&buffer[..n], b"<38>hello");

        let server = UdpSocket::bind("127.0.0.1:0")?;
        let udp = Socket::open(&SyslogConfig {
            destination: format!("udp://{}", server.local_addr()?),
            ..SyslogConfig::default()
        })?;
        udp.send(b"<38>over udp")?;
        let n = server.recv(&mut buffer)?;
        assert_eq!(&buffer[..n], b"<38>over udp");

        // The daemon went away: sending fails at once rather than waiting.
        drop(receiver);
        assert!(unix.send(b"lost").is_err());
        Ok(())
    }
}
