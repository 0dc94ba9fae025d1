//! `ssh.proxyProtocol`: which load balancers may tell sshpod the client's address with a
//! PROXY protocol header (HAProxy's v1 text or v2 binary form, as AWS NLB and others send it).

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::check::Checker;
use crate::duration;

/// `ssh.proxyProtocol` as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct RawProxyProtocol {
    enable: bool,
    trusted_networks: Vec<String>,
    #[serde(deserialize_with = "duration::deserialize")]
    header_timeout: Duration,
}

impl Default for RawProxyProtocol {
    fn default() -> Self {
        Self {
            enable: false,
            trusted_networks: Vec::new(),
            header_timeout: DEFAULT_HEADER_TIMEOUT,
        }
    }
}

/// Default `ssh.proxyProtocol.headerTimeout`.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The PROXY protocol (`ssh.proxyProtocol`). Off by default. When on, a connection from one
/// of `trusted_networks` must start with a valid header, whose client address then stands for
/// the connection everywhere (admission, logs, webhooks, events); a connection from anywhere
/// else is served as if no proxy were configured, and a header it sends is not honoured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyProtocolConfig {
    /// Whether headers are read at all (default false).
    pub enable: bool,
    /// The proxies' networks (addresses or `address/prefix`, IPv4 or IPv6).
    pub trusted_networks: Vec<Network>,
    /// How long a trusted proxy has to send its header (default 5s).
    #[serde(serialize_with = "duration::serialize")]
    pub header_timeout: Duration,
}

impl ProxyProtocolConfig {
    /// Whether a connection from `source` must start with a PROXY header.
    pub fn trusts(&self, source: IpAddr) -> bool {
        self.enable && self.trusted_networks.iter().any(|n| n.contains(source))
    }
}

impl RawProxyProtocol {
    pub(crate) fn resolve(self, check: &mut Checker<'_>) -> ProxyProtocolConfig {
        let mut trusted_networks = Vec::with_capacity(self.trusted_networks.len());
        for (index, text) in self.trusted_networks.iter().enumerate() {
            match Network::parse(text) {
                Ok(network) => trusted_networks.push(network),
                Err(message) => check.error(
                    &format!("ssh.proxyProtocol.trustedNetworks[{index}]"),
                    message,
                ),
            }
        }
        if self.enable && self.trusted_networks.is_empty() {
            check.error(
                "ssh.proxyProtocol.trustedNetworks",
                "must list the load balancers' networks (like `10.0.0.0/8`) when `enable` is true",
            );
        }
        if self.header_timeout.is_zero() {
            check.error("ssh.proxyProtocol.headerTimeout", "must be greater than 0");
        }
        ProxyProtocolConfig {
            enable: self.enable,
            trusted_networks,
            header_timeout: self.header_timeout,
        }
    }
}

/// An address or a network (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// Reads `address` or `address/prefix`; host bits after the prefix are refused (they
    /// usually mean a typo).
    pub fn parse(text: &str) -> Result<Network, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("`{text}` is not an address or network like `10.0.0.0/8`"))?;
        let max = max_prefix(address);
        let prefix = match prefix.map(str::parse::<u8>) {
            None => max,
            Some(Ok(p)) if p <= max => p,
            Some(_) => return Err(format!("`{text}`: the prefix length must be 0 to {max}")),
        };
        let network = Network { address, prefix };
        if network.masked(address) != bits(address) {
            return Err(format!(
                "`{text}` has bits set after the prefix; did you mean the network it is in?"
            ));
        }
        Ok(network)
    }

    /// Whether `ip` is in the network. An IPv4 address written as IPv6 (`::ffff:10.0.0.1`,
    /// as a dual-stack socket reports it) counts as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.address.is_ipv4() && self.masked(ip) == bits(self.address)
    }

    fn masked(&self, ip: IpAddr) -> u128 {
        let host_bits = max_prefix(ip) - self.prefix;
        let mask = u128::MAX.checked_shl(u32::from(host_bits)).unwrap_or(0);
        bits(ip) & mask
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl Serialize for Network {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|_| panic!("{text} is an address"))
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let ten = Network::parse("10.0.0.0/8").unwrap_or_else(|e| panic!("{e}"));
        assert!(ten.contains(ip("10.1.2.3")));
        assert!(
            ten.contains(ip("::ffff:10.1.2.3")),
            "IPv4 seen by a v6 socket"
        );
        assert!(!ten.contains(ip("11.0.0.1")));
        assert!(!ten.contains(ip("::a01:203")), "not an IPv4-mapped address");
        let one = Network::parse("192.0.2.7").unwrap_or_else(|e| panic!("{e}"));
        assert!(one.contains(ip("192.0.2.7")));
        assert!(!one.contains(ip("192.0.2.8")));
        let all = Network::parse("0.0.0.0/0").unwrap_or_else(|e| panic!("{e}"));
        assert!(all.contains(ip("203.0.113.9")));
        let v6 = Network::parse("2001:db8::/32").unwrap_or_else(|e| panic!("{e}"));
        assert!(v6.contains(ip("2001:db8::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert_eq!(ten.to_string(), "10.0.0.0/8");
    }

    fn errors(ssh: &str) -> Vec<(String, Option<usize>, String)> {
        let text = format!(
            "auth:\n  password:\n    method: htpasswd\n    htpasswd: {{file: /h}}\nssh:\n{ssh}"
        );
        match crate::parse_str(&text, crate::Format::Yaml, "c.yaml") {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .0
                .into_iter()
                .map(|e| (e.key, e.line, e.message))
                .collect(),
        }
    }

    #[test]
    fn configuration_errors_name_line_and_key() {
        let found = errors(
            "  proxyProtocol:\n    enable: true\n    trustedNetworks: [10.0.0.0/8, 10.0.0.1/8]\n",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "ssh.proxyProtocol.trustedNetworks[1]");
        assert_eq!(found[0].1, Some(8));
        let found = errors("  proxyProtocol:\n    enable: true\n");
        assert_eq!(found[0].0, "ssh.proxyProtocol.trustedNetworks", "{found:?}");
        let found = errors("  proxyProtocol:\n    enabled: true\n");
        assert!(found[0].2.contains("enable"), "an unknown key: {found:?}");
        let found = errors("  channelTimeout: shell=5m\n");
        assert_eq!(
            (found[0].0.as_str(), found[0].1),
            ("ssh.channelTimeout", Some(6)),
            "{found:?}"
        );
        assert!(errors("  proxyProtocol: {enable: true, trustedNetworks: [10.0.0.0/8, \"::1\"]}\n  channelTimeout: [session=5m, \"*=10m\"]\n").is_empty());
    }

    #[test]
    fn bad_networks_are_refused() {
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "::/129",
            "example.com",
            "",
            "10.0.0.0/x",
        ] {
            assert!(Network::parse(bad).is_err(), "{bad}");
        }
    }
}
