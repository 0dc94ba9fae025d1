//! Matching the client's address the way OpenSSH does: certificates' `source-address` (a list
//! of CIDR networks) and authorized_keys' `from=` (a pattern list with negation, wildcards and
//! CIDR networks).
//!
//! sshpod never resolves the client's address to a host name (OpenSSH's default `UseDNS no`),
//! so a `from=` pattern is matched against the address written as text, like `10.1.*`.

use std::net::IpAddr;
use std::str::FromStr;

/// An address with a prefix length: `10.0.0.0/8`, `2001:db8::/32`; a bare address is a
/// single host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR entry was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CidrError {
    /// Not an address at all (it may still be a wildcard pattern).
    NotAnAddress,
    /// An address with a prefix that is out of range, or with host bits set after the prefix.
    BadPrefix,
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network = canonical(address.parse().map_err(|_| CidrError::NotAnAddress)?);
        let max = match network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| CidrError::BadPrefix)?
            }
            Some(_) => return Err(CidrError::BadPrefix),
        };
        if prefix > max {
            return Err(CidrError::BadPrefix);
        }
        let cidr = Self { network, prefix };
        // Like OpenSSH: `10.0.0.1/8` is a mistake, not a network.
        if bits(network) & !cidr.mask() != 0 {
            return Err(CidrError::BadPrefix);
        }
        Ok(cidr)
    }
}

impl Cidr {
    fn mask(&self) -> u128 {
        let width = match self.network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let ones = u128::MAX
            .checked_shl(u32::from(width - self.prefix))
            .unwrap_or(0);
        match self.network {
            IpAddr::V4(_) => ones & u128::from(u32::MAX),
            IpAddr::V6(_) => ones,
        }
    }

    /// Whether `ip` is inside this network. IPv4 and IPv6 never match each other, except
    /// IPv4-mapped IPv6 addresses, which count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if ip.is_ipv4() != self.network.is_ipv4() {
            return false;
        }
        bits(ip) & self.mask() == bits(self.network) & self.mask()
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// `::ffff:10.0.0.1` is `10.0.0.1`: a dual-stack listener reports IPv4 clients that way.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// A certificate's `source-address`: comma-separated CIDR networks. `Err` when an entry is
/// malformed; the certificate is then refused, as OpenSSH does.
pub(crate) fn source_address_allows(list: &str, ip: IpAddr) -> Result<bool, String> {
    let mut allowed = false;
    for entry in list.split(',') {
        let cidr: Cidr = entry
            .trim()
            .parse()
            .map_err(|_| format!("malformed network {entry:?}"))?;
        allowed |= cidr.contains(ip);
    }
    Ok(allowed)
}

/// An authorized_keys `from=` pattern list: entries separated by commas, `!` negates, `*` and
/// `?` are wildcards, an address or CIDR network matches by address. A negated match refuses
/// whatever else matches; a malformed network refuses too.
pub(crate) fn from_pattern_allows(list: &str, ip: IpAddr) -> bool {
    let ip = canonical(ip);
    let text = ip.to_string();
    let mut allowed = false;
    for entry in list.split(',') {
        let (negated, pattern) = match entry.trim().strip_prefix('!') {
            Some(pattern) => (true, pattern),
            None => (false, entry.trim()),
        };
        let hit = match pattern.parse::<Cidr>() {
            Ok(cidr) => cidr.contains(ip),
            Err(CidrError::BadPrefix) => return false,
            Err(CidrError::NotAnAddress) => wildcard_match(pattern, &text),
        };
        if hit && negated {
            return false;
        }
        allowed |= hit;
    }
    allowed
}

/// OpenSSH's `match_pattern`: `*` is any run of characters, `?` one character; case-insensitive.
pub(crate) fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.to_lowercase().chars().collect();
    let text: Vec<char> = text.to_lowercase().chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was and which text position it is currently standing in for.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || text.get(t) == Some(&c) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn cidr_matching() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.2.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(
            net.contains(ip("::ffff:10.1.9.9")),
            "IPv4-mapped counts as IPv4"
        );
        assert!(!net.contains(ip("::1")));
        let host: Cidr = "127.0.0.1".parse().unwrap();
        assert!(host.contains(ip("127.0.0.1")) && !host.contains(ip("127.0.0.2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("192.0.2.1")) && !all.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        let v6_all: Cidr = "::/0".parse().unwrap();
        assert!(v6_all.contains(ip("::1")));
    }

    #[test]
    fn malformed_networks() {
        assert_eq!("10.0.0.1/8".parse::<Cidr>(), Err(CidrError::BadPrefix));
        assert_eq!("10.0.0.0/33".parse::<Cidr>(), Err(CidrError::BadPrefix));
        assert_eq!("10.0.0.0/".parse::<Cidr>(), Err(CidrError::BadPrefix));
        assert_eq!("10.0.0.0/+8".parse::<Cidr>(), Err(CidrError::BadPrefix));
        assert_eq!("10.*".parse::<Cidr>(), Err(CidrError::NotAnAddress));
        assert_eq!("host.example".parse::<Cidr>(), Err(CidrError::NotAnAddress));
    }

    #[test]
    fn source_address_lists() {
        let peer = ip("192.0.2.7");
        assert_eq!(source_address_allows("192.0.2.0/24", peer), Ok(true));
        assert_eq!(
            source_address_allows("10.0.0.0/8,192.0.2.7", peer),
            Ok(true)
        );
        assert_eq!(source_address_allows("10.0.0.0/8", peer), Ok(false));
        assert!(source_address_allows("10.0.0.0/8,bogus", peer).is_err());
        assert!(source_address_allows("10.0.0.1/8", peer).is_err());
    }

    #[test]
    fn from_patterns() {
        let peer = ip("10.1.2.3");
        assert!(from_pattern_allows("10.1.2.3", peer));
        assert!(from_pattern_allows("10.1.*", peer));
        assert!(from_pattern_allows("10.1.2.?", peer));
        assert!(from_pattern_allows("192.0.2.1,10.0.0.0/8", peer));
        assert!(!from_pattern_allows("192.0.2.*", peer));
        assert!(
            !from_pattern_allows("10.0.0.0/8,!10.1.2.3", peer),
            "negation wins"
        );
        assert!(!from_pattern_allows("!10.1.2.3,*", peer));
        assert!(from_pattern_allows("!192.0.2.1,*", peer));
        assert!(
            !from_pattern_allows("!192.0.2.1", peer),
            "only negative entries"
        );
        assert!(!from_pattern_allows("client.example.com", peer), "no DNS");
        assert!(
            !from_pattern_allows("10.1.0.1/16,*", peer),
            "a malformed network refuses"
        );
        assert!(from_pattern_allows("127.0.0.1", ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "aXXbYc"));
        assert!(!wildcard_match("a*b*c", "aXXbY"));
        assert!(wildcard_match("A?C", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("*.example.com", "host.EXAMPLE.com"));
    }
}
