//! The PROXY protocol header (HAProxy's v1 text and v2 binary forms) that a load balancer puts
//! before the client's bytes to say whose connection it is.
//!
//! [`parse`] is pure and bounded: it looks at what has arrived and says either what the header
//! is and how long, or how many bytes it needs at least before it can say more, never more than
//! the header itself holds, so the reader never takes the client's SSH bytes by mistake.
//! [`read`] drives it on a socket with a deadline.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 prefix.
const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 line, CR LF included (the specification's bound).
const V1_MAX: usize = 107;
/// The shortest header of either form (`PROXY UNKNOWN\r\n`); reading this many first never
/// reads past a header.
const MIN_HEADER: usize = 15;
/// The longest v2 header accepted: addresses plus room for the TLVs load balancers add (AWS
/// adds a VPC endpoint id). The length field would allow 64 KiB.
pub(crate) const V2_MAX: usize = 16 + 1024;

/// What a header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxyHeader {
    /// A proxied TCP connection: the client's address and the address it connected to.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// `LOCAL` (v2), `UNKNOWN` (v1), or an address family other than TCP over IP: the proxy
    /// speaks for itself, the socket's address stands.
    Local,
}

/// Where parsing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// More bytes are needed: at least this many in all.
    Incomplete { at_least: usize },
    /// A whole header of `len` bytes.
    Done { header: ProxyHeader, len: usize },
}

/// Why the bytes are not a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeaderError {
    #[error("the connection does not start with a PROXY protocol header")]
    Missing,
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
    #[error("the PROXY protocol header is too long")]
    TooLong,
}

/// Reads `bytes` as the start of a connection.
pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed, HeaderError> {
    let prefix_of = |whole: &[u8]| {
        let n = bytes.len().min(whole.len());
        bytes[..n] == whole[..n]
    };
    if bytes.len() >= V2_SIGNATURE.len() && bytes.starts_with(V2_SIGNATURE) {
        return parse_v2(bytes);
    }
    if bytes.len() >= V1_PREFIX.len() && bytes.starts_with(V1_PREFIX) {
        return parse_v1(bytes);
    }
    if prefix_of(V2_SIGNATURE) || prefix_of(V1_PREFIX) {
        return Ok(Parsed::Incomplete {
            at_least: MIN_HEADER.max(bytes.len() + 1),
        });
    }
    Err(HeaderError::Missing)
}

fn parse_v1(bytes: &[u8]) -> Result<Parsed, HeaderError> {
    let window = &bytes[..bytes.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        if bytes.len() >= V1_MAX {
            return Err(HeaderError::TooLong);
        }
        if window.contains(&b'\n') {
            return Err(HeaderError::Malformed(
                "a line feed without a carriage return",
            ));
        }
        return Ok(Parsed::Incomplete {
            at_least: MIN_HEADER.max(bytes.len() + 1),
        });
    };
    let len = end + 2;
    let line = std::str::from_utf8(&bytes[V1_PREFIX.len()..end])
        .map_err(|_| HeaderError::Malformed("not ASCII"))?;
    let mut words = line.split(' ');
    let family = words.next().unwrap_or_default();
    let header = match family {
        // What follows UNKNOWN is to be ignored.
        "UNKNOWN" => ProxyHeader::Local,
        "TCP4" | "TCP6" => {
            let v4 = family == "TCP4";
            let mut next = || words.next().ok_or(HeaderError::Malformed("too few fields"));
            let source = v1_address(next()?, v4)?;
            let destination = v1_address(next()?, v4)?;
            let source_port = v1_port(next()?)?;
            let destination_port = v1_port(next()?)?;
            if words.next().is_some() {
                return Err(HeaderError::Malformed("too many fields"));
            }
            ProxyHeader::Proxied {
                source: SocketAddr::new(source, source_port),
                destination: SocketAddr::new(destination, destination_port),
            }
        }
        _ => return Err(HeaderError::Malformed("unknown protocol family")),
    };
    Ok(Parsed::Done { header, len })
}

fn v1_address(text: &str, v4: bool) -> Result<IpAddr, HeaderError> {
    let address = if v4 {
        text.parse::<Ipv4Addr>().map(IpAddr::V4)
    } else {
        text.parse::<Ipv6Addr>().map(IpAddr::V6)
    };
    address.map_err(|_| HeaderError::Malformed("an address of the wrong form"))
}

fn v1_port(text: &str) -> Result<u16, HeaderError> {
    // Plain decimal only: `+22` or `022` are not what a proxy writes.
    let plain = !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    plain
        .then(|| text.parse().ok())
        .flatten()
        .ok_or(HeaderError::Malformed("a port of the wrong form"))
}

fn parse_v2(bytes: &[u8]) -> Result<Parsed, HeaderError> {
    if bytes.len() < 16 {
        return Ok(Parsed::Incomplete { at_least: 16 });
    }
    let version = bytes[12] >> 4;
    let command = bytes[12] & 0x0f;
    if version != 2 {
        return Err(HeaderError::Malformed("version is not 2"));
    }
    let length = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    let len = 16 + length;
    if len > V2_MAX {
        return Err(HeaderError::TooLong);
    }
    if bytes.len() < len {
        return Ok(Parsed::Incomplete { at_least: len });
    }
    let body = &bytes[16..len];
    let header = match command {
        0x0 => ProxyHeader::Local,
        0x1 => v2_addresses(bytes[13], body)?,
        _ => return Err(HeaderError::Malformed("unknown command")),
    };
    Ok(Parsed::Done { header, len })
}

fn v2_addresses(family: u8, body: &[u8]) -> Result<ProxyHeader, HeaderError> {
    const STREAM: u8 = 0x1;
    let (address_family, transport) = (family >> 4, family & 0x0f);
    let too_short = HeaderError::Malformed("addresses longer than the header");
    let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
    match (address_family, transport) {
        (0x1, STREAM) => {
            if body.len() < 12 {
                return Err(too_short);
            }
            let ip = |at: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    body[at],
                    body[at + 1],
                    body[at + 2],
                    body[at + 3],
                ))
            };
            Ok(ProxyHeader::Proxied {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            })
        }
        (0x2, STREAM) => {
            if body.len() < 36 {
                return Err(too_short);
            }
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&body[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            Ok(ProxyHeader::Proxied {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            })
        }
        (0x1 | 0x2, _) => Err(HeaderError::Malformed("not a stream (TCP) connection")),
        // UNSPEC and UNIX: nothing sshpod can use; the socket's address stands.
        (0x0 | 0x3, _) => Ok(ProxyHeader::Local),
        _ => Err(HeaderError::Malformed("unknown address family")),
    }
}

/// Why reading a header failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("no PROXY protocol header within {0:?}")]
    TimedOut(Duration),
    #[error("the connection closed before its PROXY protocol header ended")]
    Closed,
    #[error("reading the PROXY protocol header")]
    Io(#[source] std::io::Error),
}

/// Reads a header from the start of `stream` within `deadline`, taking exactly its bytes.
pub(crate) async fn read<S: AsyncRead + Unpin>(
    stream: &mut S,
    deadline: Duration,
) -> Result<ProxyHeader, ReadError> {
    let reading = async {
        let mut bytes = Vec::with_capacity(MIN_HEADER);
        loop {
            let at_least = match parse(&bytes)? {
                Parsed::Done { header, .. } => return Ok(header),
                Parsed::Incomplete { at_least } => at_least,
            };
            let have = bytes.len();
            bytes.resize(at_least, 0);
            match stream.read_exact(&mut bytes[have..]).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(ReadError::Closed)
                }
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    };
    tokio::time::timeout(deadline, reading)
        .await
        .unwrap_or(Err(ReadError::TimedOut(deadline)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v1(header: &ProxyHeader) -> Vec<u8> {
        match header {
            ProxyHeader::Local => b"PROXY UNKNOWN\r\n".to_vec(),
            ProxyHeader::Proxied {
                source,
                destination,
            } => {
                let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
                format!(
                    "PROXY {family} {} {} {} {}\r\n",
                    source.ip(),
                    destination.ip(),
                    source.port(),
                    destination.port()
                )
                .into_bytes()
            }
        }
    }

    fn v2(header: &ProxyHeader, tlvs: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        let mut body = Vec::new();
        match header {
            ProxyHeader::Local => out.extend([0x20, 0x00]),
            ProxyHeader::Proxied {
                source,
                destination,
            } => {
                let family = match (source.ip(), destination.ip()) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        body.extend(s.octets());
                        body.extend(d.octets());
                        0x11
                    }
                    (IpAddr::V6(s), IpAddr::V6(d)) => {
                        body.extend(s.octets());
                        body.extend(d.octets());
                        0x21
                    }
                    _ => panic!("mixed families"),
                };
                body.extend(source.port().to_be_bytes());
                body.extend(destination.port().to_be_bytes());
                out.extend([0x21, family]);
            }
        }
        body.extend(tlvs);
        let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
        out.extend(len.to_be_bytes());
        out.extend(body);
        out
    }

    fn same_family() -> impl Strategy<Value = ProxyHeader> {
        prop_oneof![
            Just(ProxyHeader::Local),
            (
                any::<[u8; 4]>(),
                any::<[u8; 4]>(),
                any::<u16>(),
                any::<u16>()
            )
                .prop_map(|(s, d, sp, dp)| ProxyHeader::Proxied {
                    source: SocketAddr::new(IpAddr::from(s), sp),
                    destination: SocketAddr::new(IpAddr::from(d), dp),
                }),
            (
                any::<[u8; 16]>(),
                any::<[u8; 16]>(),
                any::<u16>(),
                any::<u16>()
            )
                .prop_map(|(s, d, sp, dp)| ProxyHeader::Proxied {
                    source: SocketAddr::new(IpAddr::from(s), sp),
                    destination: SocketAddr::new(IpAddr::from(d), dp),
                }),
        ]
    }

    /// Every strict prefix asks for more, never for more than the header holds; the whole
    /// header parses to what was written, whatever follows it.
    fn parses_exactly(bytes: &[u8], header: ProxyHeader, trailer: &[u8]) {
        for cut in 0..bytes.len() {
            match parse(&bytes[..cut]) {
                Ok(Parsed::Incomplete { at_least }) => {
                    assert!(
                        at_least > cut && at_least <= bytes.len(),
                        "{cut} {at_least}"
                    )
                }
                other => panic!("prefix of {cut} bytes: {other:?}"),
            }
        }
        let mut whole = bytes.to_vec();
        whole.extend(trailer);
        assert_eq!(
            parse(&whole),
            Ok(Parsed::Done {
                header,
                len: bytes.len()
            })
        );
    }

    proptest! {
        #[test]
        fn v1_headers_round_trip(header in same_family(), trailer in proptest::collection::vec(any::<u8>(), 0..64)) {
            parses_exactly(&v1(&header), header, &trailer);
        }

        #[test]
        fn v2_headers_round_trip(
            header in same_family(),
            tlvs in proptest::collection::vec(any::<u8>(), 0..64),
            trailer in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            parses_exactly(&v2(&header, &tlvs), header, &trailer);
        }

        #[test]
        fn any_bytes_are_answered_within_bounds(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            match parse(&bytes) {
                Ok(Parsed::Done { len, .. }) => prop_assert!(len <= bytes.len() && len <= V2_MAX),
                Ok(Parsed::Incomplete { at_least }) => {
                    prop_assert!(at_least > bytes.len() && at_least <= V2_MAX)
                }
                Err(_) => {}
            }
        }

        #[test]
        fn headers_with_noise_never_panic(
            header in same_family(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            v1_form in any::<bool>(),
        ) {
            let mut bytes = if v1_form { v1(&header) } else { v2(&header, &[]) };
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = parse(&bytes);
        }
    }

    #[test]
    fn known_headers() {
        let tcp4 = b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 2222\r\nSSH-2.0-x\r\n";
        assert_eq!(
            parse(tcp4),
            Ok(Parsed::Done {
                header: ProxyHeader::Proxied {
                    source: "203.0.113.7:51234".parse().unwrap_or_else(|_| panic!()),
                    destination: "10.0.0.1:2222".parse().unwrap_or_else(|_| panic!()),
                },
                len: 44
            })
        );
        assert!(matches!(
            parse(b"PROXY UNKNOWN ffff::1 whatever\r\n"),
            Ok(Parsed::Done {
                header: ProxyHeader::Local,
                ..
            })
        ));
    }

    #[test]
    fn bad_headers_are_refused() {
        let refused: &[&[u8]] = &[
            b"SSH-2.0-OpenSSH_9.2p1\r\n",
            b"GET / HTTP/1.1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        ];
        for bytes in refused {
            assert!(
                parse(bytes).is_err(),
                "{:?} was taken",
                String::from_utf8_lossy(bytes)
            );
        }
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 200]].concat();
        assert_eq!(parse(&long), Err(HeaderError::TooLong));
        let mut v2_long = V2_SIGNATURE.to_vec();
        v2_long.extend([0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&v2_long), Err(HeaderError::TooLong));
        let mut v2_version = V2_SIGNATURE.to_vec();
        v2_version.extend([0x11, 0x11, 0, 12]);
        assert!(parse(&v2_version).is_err());
        let mut v2_short = V2_SIGNATURE.to_vec();
        v2_short.extend([0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(parse(&v2_short).is_err(), "addresses cut short");
        let mut v2_udp = V2_SIGNATURE.to_vec();
        v2_udp.extend([0x21, 0x12, 0, 12]);
        v2_udp.extend([0; 12]);
        assert!(parse(&v2_udp).is_err(), "UDP");
    }

    #[tokio::test(start_paused = true)]
    async fn reading_takes_the_header_only_and_gives_up_at_the_deadline() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        tokio::io::AsyncWriteExt::write_all(
            &mut client,
            b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 22\r\nSSH-2.0-x\r\n",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let header = read(&mut server, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(header, ProxyHeader::Proxied { source, .. } if source.port() == 4000));
        let mut rest = [0u8; 11];
        server
            .read_exact(&mut rest)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&rest, b"SSH-2.0-x\r\n", "the client's bytes are left alone");

        let (mut slow, mut server) = tokio::io::duplex(4096);
        tokio::io::AsyncWriteExt::write_all(&mut slow, b"PROXY TCP4 1.2.3.4")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let started = tokio::time::Instant::now();
        let result = read(&mut server, Duration::from_secs(5)).await;
        assert!(matches!(result, Err(ReadError::TimedOut(_))), "{result:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        drop(slow);
    }
}
