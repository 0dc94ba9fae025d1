//! The `ssh` section: listener, server identity, algorithms and connection limits.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::algorithms::{Cipher, Kex, Mac, INSECURE};
use crate::check::Checker;
use crate::duration;
use crate::error::unknown_message;
use crate::proxy_protocol::{ProxyProtocolConfig, RawProxyProtocol};
use crate::session_limits::{
    ChannelTimeoutText, RawSessionLimits, SessionLimits, DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_LIMIT_WARNING,
};

/// Default `ssh.listen`.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 2222));
/// Default `ssh.serverVersion`.
pub const DEFAULT_SERVER_VERSION: &str = "SSH-2.0-sshpod";

/// The `ssh` section as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct RawSsh {
    listen: String,
    server_version: String,
    banner: String,
    hostkeys: Vec<String>,
    host_certificates: Vec<String>,
    ciphers: Vec<String>,
    kex: Vec<String>,
    macs: Vec<String>,
    #[serde(deserialize_with = "duration::deserialize")]
    client_alive_interval: Duration,
    client_alive_count_max: u32,
    #[serde(deserialize_with = "duration::deserialize")]
    login_grace_time: Duration,
    #[serde(deserialize_with = "text_or_number")]
    max_startups: String,
    #[serde(deserialize_with = "text_or_number")]
    per_source_max_startups: String,
    #[serde(deserialize_with = "text_or_number")]
    per_source_net_block_size: String,
    #[serde(deserialize_with = "duration::deserialize")]
    handshake_timeout: Duration,
    per_source_penalties: String,
    per_source_penalty_exempt_list: Vec<String>,
    max_auth_tries: u32,
    #[serde(deserialize_with = "duration::deserialize")]
    shutdown_timeout: Duration,
    rekey_limit: String,
    accept_env: Vec<String>,
    max_sessions: u32,
    proxy_protocol: RawProxyProtocol,
    #[serde(deserialize_with = "duration::deserialize")]
    unused_connection_timeout: Duration,
    channel_timeout: ChannelTimeoutText,
    #[serde(deserialize_with = "duration::deserialize")]
    idle_timeout: Duration,
    #[serde(deserialize_with = "duration::deserialize")]
    max_session_duration: Duration,
    #[serde(deserialize_with = "duration::deserialize")]
    limit_warning: Duration,
    #[serde(deserialize_with = "duration::deserialize")]
    drain_timeout: Duration,
}

impl Default for RawSsh {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_string(),
            server_version: DEFAULT_SERVER_VERSION.to_string(),
            banner: String::new(),
            hostkeys: Vec::new(),
            host_certificates: Vec::new(),
            ciphers: Cipher::DEFAULT
                .iter()
                .map(|c| c.name().to_string())
                .collect(),
            kex: Kex::DEFAULT.iter().map(|k| k.name().to_string()).collect(),
            macs: Mac::DEFAULT.iter().map(|m| m.name().to_string()).collect(),
            client_alive_interval: Duration::ZERO,
            client_alive_count_max: 3,
            login_grace_time: Duration::from_secs(120),
            max_startups: "100".to_owned(),
            per_source_max_startups: DEFAULT_PER_SOURCE_MAX_STARTUPS.to_string(),
            per_source_net_block_size: NetBlockSize::DEFAULT.to_string(),
            handshake_timeout: Duration::from_secs(15),
            per_source_penalties: "yes".to_owned(),
            per_source_penalty_exempt_list: Vec::new(),
            max_auth_tries: 6,
            shutdown_timeout: Duration::from_secs(20),
            rekey_limit: RekeyLimit::DEFAULT.to_string(),
            accept_env: DEFAULT_ACCEPT_ENV.iter().map(|p| p.to_string()).collect(),
            max_sessions: 10,
            proxy_protocol: RawProxyProtocol::default(),
            unused_connection_timeout: Duration::ZERO,
            channel_timeout: ChannelTimeoutText::default(),
            idle_timeout: Duration::ZERO,
            max_session_duration: Duration::ZERO,
            limit_warning: DEFAULT_LIMIT_WARNING,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// SSH server settings (`ssh`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SshConfig {
    /// Address to listen on (default `0.0.0.0:2222`; port 0 picks a free port). A Go-style
    /// `:2222` means all IPv4 interfaces.
    pub listen: SocketAddr,
    /// Identification string sent to clients (default `SSH-2.0-sshpod`).
    pub server_version: String,
    /// Text shown to clients before authentication (default empty).
    pub banner: String,
    /// Host keys: each a file path or an inline PEM block. Empty means the server picks a
    /// default key file.
    pub hostkeys: Vec<String>,
    /// Host certificate files (OpenSSH `HostCertificate`): each certifies one of the host keys,
    /// so clients that trust the CA (`@cert-authority` in known_hosts) need no host-key prompt.
    pub host_certificates: Vec<String>,
    /// Ciphers offered, in order of preference.
    pub ciphers: Vec<Cipher>,
    /// Key-exchange methods offered, in order of preference.
    pub kex: Vec<Kex>,
    /// MACs offered, in order of preference.
    pub macs: Vec<Mac>,
    /// Keep-alive probe interval; zero (the default) turns probes off.
    #[serde(serialize_with = "duration::serialize")]
    pub client_alive_interval: Duration,
    /// Unanswered keep-alive probes before disconnecting (default 3).
    pub client_alive_count_max: u32,
    /// Time a client has to authenticate (default 120s).
    #[serde(serialize_with = "duration::serialize")]
    pub login_grace_time: Duration,
    /// Cap on concurrent unauthenticated connections (default 100), with random early drop
    /// when written as OpenSSH's `start:rate:full`.
    #[serde(serialize_with = "serialize_display")]
    pub max_startups: MaxStartups,
    /// Cap on unauthenticated connections from one source network (default 20); None: no cap.
    #[serde(serialize_with = "serialize_per_source")]
    pub per_source_max_startups: Option<u32>,
    /// The prefix lengths that make one source network (default `32:128`).
    #[serde(serialize_with = "serialize_display")]
    pub per_source_net_block_size: NetBlockSize,
    /// Time from connect until the key exchange is done and the first login request arrives
    /// (default 15s); separate from, and shorter than, `loginGraceTime`.
    #[serde(serialize_with = "duration::serialize")]
    pub handshake_timeout: Duration,
    /// Penalties for sources that fail to log in (OpenSSH's `PerSourcePenalties`); None: off.
    #[serde(serialize_with = "serialize_penalties")]
    pub per_source_penalties: Option<Penalties>,
    /// Addresses and networks never penalised (OpenSSH's `PerSourcePenaltyExemptList`).
    pub per_source_penalty_exempt_list: Vec<String>,
    /// Authentication attempts per connection (default 6).
    pub max_auth_tries: u32,
    /// How long to wait for sessions to finish after SIGTERM (default 20s).
    #[serde(serialize_with = "duration::serialize")]
    pub shutdown_timeout: Duration,
    /// When the server starts a new key exchange (OpenSSH's `RekeyLimit`).
    #[serde(serialize_with = "serialize_display")]
    pub rekey_limit: RekeyLimit,
    /// Environment variables a client may set (OpenSSH's `AcceptEnv`): names with `*` and `?`
    /// wildcards (default `LANG`, `LC_*`).
    pub accept_env: Vec<String>,
    /// Sessions (shells, commands, subsystems) open at once on one connection (OpenSSH's
    /// `MaxSessions`, default 10).
    pub max_sessions: u32,
    /// PROXY protocol headers from trusted load balancers (`ssh.proxyProtocol`).
    pub proxy_protocol: ProxyProtocolConfig,
    /// Idle and session limits (flat in `ssh`); a config server's answer may set them per
    /// user.
    #[serde(flatten)]
    pub limits: SessionLimits,
    /// After SIGTERM: how long connected users are warned (and new connections refused)
    /// before the shutdown runs (default 5s; 0 shuts down at once).
    #[serde(serialize_with = "duration::serialize")]
    pub drain_timeout: Duration,
}

/// OpenSSH's `PerSourcePenalties`: how long a source network is penalised when one of its
/// connections ends a given way. Penalties add up (to at most `max`); once a source has `min`
/// or more, its new connections are refused until the penalty has run down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Penalties {
    /// A connection that failed to authenticate and ended without logging in.
    pub authfail: Duration,
    /// A connection that ended without trying to log in at all.
    pub noauth: Duration,
    /// A connection closed by `loginGraceTime` or `handshakeTimeout`.
    pub grace_exceeded: Duration,
    pub max: Duration,
    pub min: Duration,
    /// Sources tracked at most; more are not penalised (OpenSSH's `overflow:permissive`).
    pub max_sources: u32,
}

impl Penalties {
    /// OpenSSH 9.8's defaults.
    pub const DEFAULT: Penalties = Penalties {
        authfail: Duration::from_secs(5),
        noauth: Duration::from_secs(1),
        grace_exceeded: Duration::from_secs(10),
        max: Duration::from_secs(600),
        min: Duration::from_secs(15),
        max_sources: 65536,
    };

    fn parse(text: &str) -> Result<Option<Penalties>, String> {
        match text.trim() {
            "no" => return Ok(None),
            "yes" | "" => return Ok(Some(Self::DEFAULT)),
            _ => {}
        }
        let mut p = Self::DEFAULT;
        for word in text.split_whitespace() {
            let (key, value) = word.split_once(':').ok_or_else(|| {
                format!("`{word}`: write `name:value`, like `authfail:5s`, or `yes`/`no`")
            })?;
            let duration = || {
                humantime::parse_duration(value)
                    .or_else(|_| value.parse::<u64>().map(Duration::from_secs))
                    .map_err(|_| format!("`{word}`: `{value}` is not a time like `5s`"))
            };
            match key {
                "authfail" => p.authfail = duration()?,
                "noauth" => p.noauth = duration()?,
                "grace-exceeded" => p.grace_exceeded = duration()?,
                "max" => p.max = duration()?,
                "min" => p.min = duration()?,
                "max-sources" | "max-sources4" | "max-sources6" => {
                    p.max_sources = value
                        .parse()
                        .map_err(|_| format!("`{word}`: `{value}` is not a number"))?
                }
                _ => {
                    return Err(format!(
                        "`{key}` is not a penalty; known: authfail, noauth, grace-exceeded, max, min, max-sources"
                    ))
                }
            }
        }
        Ok(Some(p))
    }
}

impl std::fmt::Display for Penalties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = |d: Duration| humantime::format_duration(d).to_string();
        write!(
            f,
            "authfail:{} noauth:{} grace-exceeded:{} max:{} min:{} max-sources:{}",
            d(self.authfail),
            d(self.noauth),
            d(self.grace_exceeded),
            d(self.max),
            d(self.min),
            self.max_sources
        )
    }
}

fn serialize_penalties<S: serde::Serializer>(
    value: &Option<Penalties>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(p) => serializer.collect_str(p),
        None => serializer.serialize_str("no"),
    }
}

/// `address` or `address/prefix`, IPv4 or IPv6.
fn check_network(text: &str) -> Result<(), String> {
    let (address, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let address: std::net::IpAddr = address
        .parse()
        .map_err(|_| format!("`{text}` is not an address or network like `10.0.0.0/8`"))?;
    let (bits, max) = match address {
        std::net::IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32u32),
        std::net::IpAddr::V6(v6) => (u128::from(v6), 128),
    };
    let prefix = match prefix.map(str::parse::<u32>) {
        None => return Ok(()),
        Some(Ok(p)) if p <= max => p,
        Some(_) => return Err(format!("`{text}`: the prefix length must be 0 to {max}")),
    };
    let host_bits = u128::MAX.checked_shr(128 - (max - prefix)).unwrap_or(0);
    if bits & host_bits != 0 {
        return Err(format!(
            "`{text}` has bits set after the prefix; did you mean the network it is in?"
        ));
    }
    Ok(())
}

/// Default `ssh.perSourceMaxStartups`.
pub const DEFAULT_PER_SOURCE_MAX_STARTUPS: u32 = 20;

/// OpenSSH's `MaxStartups start:rate:full`: from `start` unauthenticated connections on, new
/// ones are refused with `rate` percent probability, rising linearly to all at `full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxStartups {
    pub start: u32,
    pub rate: u32,
    pub full: u32,
}

impl MaxStartups {
    /// A plain cap: no early drop.
    pub fn fixed(full: u32) -> Self {
        Self {
            start: full,
            rate: 100,
            full,
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        let numbers: Result<Vec<u32>, _> = text.trim().split(':').map(str::parse).collect();
        let parsed = match numbers.as_deref() {
            Ok([full]) => Self::fixed(*full),
            Ok([start, rate, full]) => Self {
                start: *start,
                rate: *rate,
                full: *full,
            },
            _ => {
                return Err(format!(
                    "`{text}` is neither a number nor `start:rate:full` (like `10:30:100`)"
                ))
            }
        };
        if parsed.full < 1 || parsed.start < 1 || parsed.start > parsed.full || parsed.rate > 100 {
            return Err(format!(
                "`{text}`: need 1 <= start <= full and a rate of at most 100 (percent)"
            ));
        }
        Ok(parsed)
    }
}

impl std::fmt::Display for MaxStartups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.start == self.full {
            write!(f, "{}", self.full)
        } else {
            write!(f, "{}:{}:{}", self.start, self.rate, self.full)
        }
    }
}

/// OpenSSH's `PerSourceNetBlockSize v4:v6`: the prefix lengths that group addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetBlockSize {
    pub v4: u8,
    pub v6: u8,
}

impl NetBlockSize {
    pub const DEFAULT: NetBlockSize = NetBlockSize { v4: 32, v6: 128 };

    fn parse(text: &str) -> Result<Self, String> {
        let invalid =
            || format!("`{text}` is not `v4:v6` prefix lengths (0-32 and 0-128), like `32:128`");
        let mut parts = text.trim().split(':');
        let v4: u8 = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(invalid)?;
        let v6: u8 = match parts.next() {
            Some(p) => p.parse().map_err(|_| invalid())?,
            None => Self::DEFAULT.v6,
        };
        if v4 > 32 || v6 > 128 || parts.next().is_some() {
            return Err(invalid());
        }
        Ok(Self { v4, v6 })
    }
}

impl std::fmt::Display for NetBlockSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.v4, self.v6)
    }
}

fn parse_per_source(text: &str) -> Result<Option<u32>, String> {
    match text.trim() {
        "none" => Ok(None),
        n => match n.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(format!("`{text}` is not a number of at least 1, or `none`")),
        },
    }
}

fn serialize_per_source<S: serde::Serializer>(
    value: &Option<u32>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(n) => serializer.serialize_u32(*n),
        None => serializer.serialize_str("none"),
    }
}

/// A setting written as a number or as text (`100` or `10:30:100`).
fn text_or_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct TextOrNumber;
    impl serde::de::Visitor<'_> for TextOrNumber {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a number or a string")
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<String, E> {
            Ok(n.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<String, E> {
            Ok(n.to_string())
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<String, E> {
            Ok(text.to_owned())
        }
    }
    deserializer.deserialize_any(TextOrNumber)
}

/// Default `ssh.acceptEnv`, as Debian's sshd ships.
pub const DEFAULT_ACCEPT_ENV: &[&str] = &["LANG", "LC_*"];

/// Data and time after which the server renews the session keys, written as OpenSSH's
/// `RekeyLimit`: `1G 1h`, `512M`, `default none`. The client may rekey sooner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RekeyLimit {
    /// Bytes sent or received (each direction counted apart).
    pub bytes: u64,
    /// Time since the last exchange; None means no time limit.
    pub interval: Option<Duration>,
}

impl RekeyLimit {
    /// The most the SSH library allows, and what it uses by default: 1 GiB, one hour.
    pub const MAX_BYTES: u64 = 1 << 30;
    /// The smallest amount accepted: rekeying more often only costs.
    pub const MIN_BYTES: u64 = 16 * 1024;
    pub const DEFAULT: RekeyLimit = RekeyLimit {
        bytes: Self::MAX_BYTES,
        interval: Some(Duration::from_secs(3600)),
    };

    fn parse(text: &str) -> Result<RekeyLimit, String> {
        let mut words = text.split_whitespace();
        let amount = words
            .next()
            .ok_or("must give an amount of data, like `1G`")?;
        let bytes = if amount == "default" {
            Self::MAX_BYTES
        } else {
            parse_bytes(amount)?
        };
        if !(Self::MIN_BYTES..=Self::MAX_BYTES).contains(&bytes) {
            return Err(format!(
                "`{amount}` is out of range: between 16K and 1G (bytes, or with a K, M or G suffix)"
            ));
        }
        let interval = match words.next() {
            None => Self::DEFAULT.interval,
            Some("none") => None,
            Some(time) => Some(
                humantime::parse_duration(time)
                    .ok()
                    .filter(|d| *d >= Duration::from_secs(1))
                    .ok_or_else(|| format!("`{time}` is not a time of at least 1s, or `none`"))?,
            ),
        };
        if let Some(extra) = words.next() {
            return Err(format!(
                "unexpected `{extra}`: write `AMOUNT [TIME]`, like `1G 1h`"
            ));
        }
        Ok(RekeyLimit { bytes, interval })
    }
}

fn parse_bytes(text: &str) -> Result<u64, String> {
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], Some(c.to_ascii_uppercase())),
        _ => (text, None),
    };
    let multiplier = match unit {
        None => 1,
        Some('K') => 1 << 10,
        Some('M') => 1 << 20,
        Some('G') => 1 << 30,
        Some(_) => return Err(format!("`{text}`: the suffix must be K, M or G")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| format!("`{text}` is not an amount of data like `512M`"))
}

impl std::fmt::Display for RekeyLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.bytes;
        if bytes % (1 << 30) == 0 {
            write!(f, "{}G", bytes >> 30)?;
        } else if bytes % (1 << 20) == 0 {
            write!(f, "{}M", bytes >> 20)?;
        } else if bytes % (1 << 10) == 0 {
            write!(f, "{}K", bytes >> 10)?;
        } else {
            write!(f, "{bytes}")?;
        }
        match self.interval {
            None => write!(f, " none"),
            Some(d) => write!(f, " {}", humantime::format_duration(d)),
        }
    }
}

fn serialize_display<S: serde::Serializer, T: std::fmt::Display>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

impl RawSsh {
    pub(crate) fn resolve(self, check: &mut Checker<'_>) -> SshConfig {
        let listen = parse_listen(&self.listen).unwrap_or_else(|message| {
            check.error("ssh.listen", message);
            DEFAULT_LISTEN
        });
        if let Err(message) = check_server_version(&self.server_version) {
            check.error("ssh.serverVersion", message);
        }
        for (index, key) in self.hostkeys.iter().enumerate() {
            if key.trim().is_empty() {
                check.error(&format!("ssh.hostkeys[{index}]"), "must not be empty");
            }
        }
        for (index, path) in self.host_certificates.iter().enumerate() {
            if path.trim().is_empty() {
                check.error(
                    &format!("ssh.hostCertificates[{index}]"),
                    "must not be empty",
                );
            }
        }
        let ciphers = algorithms(
            check,
            "ssh.ciphers",
            &self.ciphers,
            Cipher::from_name,
            &Cipher::names(),
        );
        let kex = algorithms(check, "ssh.kex", &self.kex, Kex::from_name, &Kex::names());
        let macs = algorithms(check, "ssh.macs", &self.macs, Mac::from_name, &Mac::names());
        if !self.client_alive_interval.is_zero()
            && self.client_alive_interval < Duration::from_secs(1)
        {
            check.error("ssh.clientAliveInterval", "must be 0 (off) or at least 1s");
        }
        let at_least_one = [
            ("ssh.clientAliveCountMax", self.client_alive_count_max),
            ("ssh.maxAuthTries", self.max_auth_tries),
            ("ssh.maxSessions", self.max_sessions),
        ];
        for (key, value) in at_least_one {
            if value < 1 {
                check.error(key, "must be at least 1");
            }
        }
        if self.login_grace_time.is_zero() {
            check.error("ssh.loginGraceTime", "must be greater than 0");
        }
        for (index, pattern) in self.accept_env.iter().enumerate() {
            let valid = !pattern.is_empty()
                && pattern
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'*' | b'?'));
            if !valid {
                check.error(
                    &format!("ssh.acceptEnv[{index}]"),
                    format!("`{pattern}` is not a variable name pattern (letters, digits, `_`, and the wildcards `*` and `?`)"),
                );
            }
        }
        let max_startups = MaxStartups::parse(&self.max_startups).unwrap_or_else(|message| {
            check.error("ssh.maxStartups", message);
            MaxStartups::fixed(100)
        });
        let per_source_max_startups = parse_per_source(&self.per_source_max_startups)
            .unwrap_or_else(|message| {
                check.error("ssh.perSourceMaxStartups", message);
                None
            });
        let per_source_net_block_size = NetBlockSize::parse(&self.per_source_net_block_size)
            .unwrap_or_else(|message| {
                check.error("ssh.perSourceNetBlockSize", message);
                NetBlockSize::DEFAULT
            });
        let per_source_penalties =
            Penalties::parse(&self.per_source_penalties).unwrap_or_else(|message| {
                check.error("ssh.perSourcePenalties", message);
                None
            });
        for (index, network) in self.per_source_penalty_exempt_list.iter().enumerate() {
            if let Err(message) = check_network(network.trim()) {
                check.error(&format!("ssh.perSourcePenaltyExemptList[{index}]"), message);
            }
        }
        if self.handshake_timeout.is_zero() {
            check.error("ssh.handshakeTimeout", "must be greater than 0");
        }
        let rekey_limit = RekeyLimit::parse(&self.rekey_limit).unwrap_or_else(|message| {
            check.error("ssh.rekeyLimit", message);
            RekeyLimit::DEFAULT
        });
        SshConfig {
            listen,
            server_version: self.server_version,
            banner: self.banner,
            hostkeys: self.hostkeys,
            host_certificates: self.host_certificates,
            ciphers,
            kex,
            macs,
            client_alive_interval: self.client_alive_interval,
            client_alive_count_max: self.client_alive_count_max,
            login_grace_time: self.login_grace_time,
            max_startups,
            per_source_max_startups,
            per_source_net_block_size,
            handshake_timeout: self.handshake_timeout,
            per_source_penalties,
            per_source_penalty_exempt_list: self
                .per_source_penalty_exempt_list
                .iter()
                .map(|n| n.trim().to_owned())
                .collect(),
            max_auth_tries: self.max_auth_tries,
            shutdown_timeout: self.shutdown_timeout,
            rekey_limit,
            accept_env: self.accept_env,
            max_sessions: self.max_sessions,
            proxy_protocol: self.proxy_protocol.resolve(check),
            limits: RawSessionLimits {
                unused_connection_timeout: self.unused_connection_timeout,
                channel_timeout: self.channel_timeout,
                idle_timeout: self.idle_timeout,
                max_session_duration: self.max_session_duration,
                limit_warning: self.limit_warning,
            }
            .resolve(check),
            drain_timeout: self.drain_timeout,
        }
    }
}

pub(crate) fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let owned;
    let text = match text.strip_prefix(':') {
        Some(port) => {
            owned = format!("0.0.0.0:{port}");
            owned.as_str()
        }
        None => text,
    };
    text.parse().map_err(|_| {
        format!("`{text}` is not a socket address; write it like `0.0.0.0:2222` or `[::]:2222`")
    })
}

/// The ContainerSSH rule `^SSH-2.0-[!-,.-~]+( [a-zA-Z0-9- _.]+)?$`, at most 253 characters.
fn check_server_version(version: &str) -> Result<(), String> {
    const HELP: &str = "must look like `SSH-2.0-software` or `SSH-2.0-software comment`";
    if version.len() > 253 {
        return Err(format!(
            "is {} characters long; at most 253 are allowed",
            version.len()
        ));
    }
    let Some(rest) = version.strip_prefix("SSH-2.0-") else {
        return Err(format!("`{version}` {HELP}"));
    };
    let (software, comment) = match rest.split_once(' ') {
        Some((software, comment)) => (software, Some(comment)),
        None => (rest, None),
    };
    let software_ok = !software.is_empty()
        && software
            .bytes()
            .all(|b| (b'!'..=b'~').contains(&b) && b != b'-');
    let comment_ok = comment.is_none_or(|comment| {
        !comment.is_empty()
            && comment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b' ' | b'_' | b'.'))
    });
    if software_ok && comment_ok {
        Ok(())
    } else {
        Err(format!(
            "`{version}` {HELP}: the software part uses printable ASCII without `-` or spaces, \
             the comment letters, digits, spaces, `-`, `_` and `.`"
        ))
    }
}

pub(crate) fn algorithms<T: Copy + PartialEq>(
    check: &mut Checker<'_>,
    key: &str,
    names: &[String],
    lookup: fn(&str) -> Option<T>,
    expected: &[&str],
) -> Vec<T> {
    if names.is_empty() {
        check.error(key, "must list at least one algorithm");
    }
    let mut out = Vec::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        let item_key = format!("{key}[{index}]");
        match lookup(name) {
            Some(algorithm) if out.contains(&algorithm) => {
                check.error(&item_key, format!("`{name}` is listed twice"));
            }
            Some(algorithm) => out.push(algorithm),
            None if INSECURE.contains(&name.as_str()) => check.error(
                &item_key,
                format!("`{name}` is considered insecure and sshpod does not offer it"),
            ),
            None => check.error(&item_key, unknown_message("algorithm", name, expected)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_version_rule() {
        assert!(check_server_version("SSH-2.0-sshpod").is_ok());
        assert!(check_server_version("SSH-2.0-sshpod_1.0 my server-1.2").is_ok());
        assert!(check_server_version("SSH-2.0-").is_err());
        assert!(check_server_version("SSH-1.99-x").is_err());
        assert!(check_server_version("SSH-2.0-a-b").is_err());
        assert!(check_server_version("SSH-2.0-ab ").is_err());
        assert!(check_server_version("SSH-2.0-ab c!").is_err());
        assert!(check_server_version(&format!("SSH-2.0-{}", "a".repeat(250))).is_err());
    }

    #[test]
    fn rekey_limits_as_openssh_writes_them() {
        let parse = RekeyLimit::parse;
        assert_eq!(parse("default none").map(|r| r.interval), Ok(None));
        assert_eq!(parse("default"), Ok(RekeyLimit::DEFAULT));
        assert_eq!(
            parse("1M 30m"),
            Ok(RekeyLimit {
                bytes: 1 << 20,
                interval: Some(Duration::from_secs(1800))
            })
        );
        assert_eq!(parse("512k").map(|r| r.bytes), Ok(512 << 10));
        assert!(parse("2G").is_err(), "over what the library allows");
        assert!(parse("1000").is_err(), "too small");
        assert!(parse("1X").is_err());
        assert!(parse("1G soon").is_err());
        assert!(parse("1G 1h extra").is_err());
        assert!(parse("").is_err());
        for text in ["1G 1h", "16K none", "3M 10s"] {
            assert_eq!(parse(text).map(|r| r.to_string()).as_deref(), Ok(text));
        }
    }

    #[test]
    fn startup_limits_as_openssh_writes_them() {
        assert_eq!(MaxStartups::parse("100"), Ok(MaxStartups::fixed(100)));
        assert_eq!(
            MaxStartups::parse("10:30:100"),
            Ok(MaxStartups {
                start: 10,
                rate: 30,
                full: 100
            })
        );
        for bad in ["0", "10:30", "20:30:10", "10:101:100", "x", ""] {
            assert!(MaxStartups::parse(bad).is_err(), "{bad}");
        }
        for text in ["100", "10:30:60"] {
            assert_eq!(MaxStartups::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(parse_per_source("none"), Ok(None));
        assert_eq!(parse_per_source("5"), Ok(Some(5)));
        assert!(parse_per_source("0").is_err());
        assert_eq!(
            NetBlockSize::parse("24:64"),
            Ok(NetBlockSize { v4: 24, v6: 64 })
        );
        assert_eq!(
            NetBlockSize::parse("24"),
            Ok(NetBlockSize { v4: 24, v6: 128 })
        );
        assert!(NetBlockSize::parse("33:128").is_err());
        assert!(NetBlockSize::parse("32:129").is_err());
    }

    #[test]
    fn penalties_as_openssh_writes_them() {
        assert_eq!(Penalties::parse("yes"), Ok(Some(Penalties::DEFAULT)));
        assert_eq!(Penalties::parse("no"), Ok(None));
        let p = Penalties::parse("authfail:30s min:1m max-sources:10")
            .unwrap()
            .unwrap();
        assert_eq!(p.authfail, Duration::from_secs(30));
        assert_eq!(p.min, Duration::from_secs(60));
        assert_eq!(p.max_sources, 10);
        assert_eq!(p.noauth, Penalties::DEFAULT.noauth);
        assert!(Penalties::parse("crash").is_err());
        assert!(Penalties::parse("bogus:5s").is_err());
        assert!(Penalties::parse("authfail:soon").is_err());
        let printed = Penalties::DEFAULT.to_string();
        assert_eq!(Penalties::parse(&printed), Ok(Some(Penalties::DEFAULT)));
        assert!(check_network("10.0.0.0/8").is_ok());
        assert!(check_network("2001:db8::/32").is_ok());
        assert!(check_network("127.0.0.1").is_ok());
        assert!(check_network("10.0.0.0/33").is_err());
        assert!(check_network("10.0.0.1/8").is_err());
        assert!(check_network("10.0.0.1/32").is_ok());
        assert!(check_network("0.0.0.0/0").is_ok());
        assert!(check_network("example.com").is_err());
    }

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen("0.0.0.0:2222"), Ok(DEFAULT_LISTEN));
        assert_eq!(parse_listen(":2222"), Ok(DEFAULT_LISTEN));
        assert!(parse_listen("[::1]:0").is_ok());
        assert!(parse_listen("localhost:22").is_err());
        assert!(parse_listen("0.0.0.0").is_err());
    }
}
