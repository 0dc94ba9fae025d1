//! Admission of new connections until they log in: OpenSSH's `MaxStartups` (with random early
//! drop), `PerSourceMaxStartups` and `PerSourceNetBlockSize`.
//!
//! A connection holds a [`Startup`] from accept until it authenticates (or ends). Counting per
//! source network keeps one address (or one /64) from filling every slot with idle sockets
//! and locking everybody else out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use rand::Rng;
use sshpod_config::{MaxStartups, NetBlockSize, SshConfig};

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `maxStartups` reached, or dropped early on the way there.
    Full { unauthenticated: u32 },
    /// The source's network has `perSourceMaxStartups` unauthenticated connections.
    Source { unauthenticated: u32 },
}

/// The admission policy and its counts, shared by the accept loop and every connection.
pub(crate) struct Startups {
    /// Random early drop starts at `start`, with `rate` percent, rising to all at `full`.
    start: u32,
    rate: u32,
    full: u32,
    per_source: Option<u32>,
    /// Prefix lengths that make a "source" of an address.
    blocks: NetBlockSize,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: u32,
    by_source: HashMap<IpAddr, u32>,
}

/// A connection's place among the unauthenticated; given back when dropped.
pub(crate) struct Startup {
    startups: Arc<Startups>,
    source: IpAddr,
}

impl Startups {
    /// From `ssh.maxStartups`, `ssh.perSourceMaxStartups` and `ssh.perSourceNetBlockSize`.
    pub(crate) fn new(ssh: &SshConfig) -> Arc<Self> {
        Self::with(
            ssh.max_startups,
            ssh.per_source_max_startups,
            ssh.per_source_net_block_size,
        )
    }

    fn with(max: MaxStartups, per_source: Option<u32>, blocks: NetBlockSize) -> Arc<Self> {
        Arc::new(Self {
            start: max.start,
            rate: max.rate,
            full: max.full,
            per_source,
            blocks,
            counts: Mutex::default(),
        })
    }

    /// Admits a connection from `peer`, or says why not.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Startup, Refused> {
        let source = network_of(peer, self.blocks);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let total = counts.total;
        if total >= self.full || (total >= self.start && self.drop_early(total)) {
            return Err(Refused::Full {
                unauthenticated: total,
            });
        }
        let from_source = counts.by_source.get(&source).copied().unwrap_or(0);
        if self.per_source.is_some_and(|limit| from_source >= limit) {
            return Err(Refused::Source {
                unauthenticated: from_source,
            });
        }
        counts.total += 1;
        *counts.by_source.entry(source).or_default() += 1;
        Ok(Startup {
            startups: Arc::clone(self),
            source,
        })
    }

    /// OpenSSH's rule: refuse with `rate` percent at `start`, rising linearly to 100 at `full`.
    fn drop_early(&self, total: u32) -> bool {
        let span = self.full.saturating_sub(self.start).max(1);
        let over = total - self.start;
        let percent = self.rate + (100 - self.rate.min(100)) * over / span;
        rand::thread_rng().gen_range(0..100) < percent
    }
}

/// The source network `peer` belongs to: its address with the bits after the prefix cleared
/// (an IPv4-mapped IPv6 address counts as IPv4).
pub(crate) fn network_of(peer: IpAddr, blocks: NetBlockSize) -> IpAddr {
    match peer {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = u32::MAX.checked_shl(32 - u32::from(blocks.v4)).unwrap_or(0);
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network_of(IpAddr::V4(v4), blocks),
            None => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(blocks.v6))
                    .unwrap_or(0);
                IpAddr::V6((bits & mask).into())
            }
        },
    }
}

impl Drop for Startup {
    fn drop(&mut self) {
        let mut counts = self
            .startups
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                counts.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startups(max: MaxStartups, per_source: Option<u32>, blocks: NetBlockSize) -> Arc<Startups> {
        Startups::with(max, per_source, blocks)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn one_source_cannot_take_every_slot() {
        let s = startups(
            MaxStartups::fixed(100),
            Some(3),
            NetBlockSize { v4: 32, v6: 64 },
        );
        let held: Vec<_> = (0..3).map(|_| s.admit(ip("192.0.2.7")).unwrap()).collect();
        assert_eq!(
            s.admit(ip("192.0.2.7")).err(),
            Some(Refused::Source { unauthenticated: 3 })
        );
        assert!(
            s.admit(ip("192.0.2.8")).is_ok(),
            "another address is let in"
        );
        // One /64 is one source; a v4-mapped address counts as its v4 address.
        let _a = s.admit(ip("2001:db8::1")).unwrap();
        let _b = s.admit(ip("2001:db8::2")).unwrap();
        let _c = s.admit(ip("2001:db8::3")).unwrap();
        assert!(s.admit(ip("2001:db8::4")).is_err());
        assert!(s.admit(ip("2001:db8:0:1::1")).is_ok());
        assert!(s.admit(ip("::ffff:192.0.2.7")).is_err());
        drop(held);
        assert!(s.admit(ip("192.0.2.7")).is_ok(), "slots come back");
    }

    #[test]
    fn net_blocks_group_addresses() {
        let s = startups(
            MaxStartups::fixed(100),
            Some(1),
            NetBlockSize { v4: 24, v6: 128 },
        );
        let _held = s.admit(ip("198.51.100.1")).unwrap();
        assert!(s.admit(ip("198.51.100.200")).is_err(), "same /24");
        assert!(s.admit(ip("198.51.101.1")).is_ok());
    }

    #[test]
    fn random_early_drop_between_start_and_full() {
        let s = startups(
            MaxStartups {
                start: 10,
                rate: 30,
                full: 20,
            },
            None,
            NetBlockSize { v4: 32, v6: 128 },
        );
        let held: Vec<_> = (0..10)
            .map(|_| s.admit(ip("203.0.113.1")).unwrap())
            .collect();
        // At start, about 30 % are refused: of 1,000 tries (each given back), 200 to 400.
        let refused = (0..1000)
            .filter(|_| s.admit(ip("203.0.113.2")).is_err())
            .count();
        assert!((200..=400).contains(&refused), "{refused} of 1000 refused");
        let more: Vec<_> = std::iter::repeat_with(|| s.admit(ip("203.0.113.3")))
            .take(10_000)
            .filter_map(Result::ok)
            .take(10)
            .collect();
        assert_eq!(more.len(), 10);
        assert_eq!(
            s.admit(ip("203.0.113.4")).err(),
            Some(Refused::Full {
                unauthenticated: 20
            })
        );
        drop(held);
    }
}
