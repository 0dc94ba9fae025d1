//! OpenSSH's `PerSourcePenalties`: a source network whose connections keep failing to log in
//! (or never try, or run out the clock) is refused for a while.
//!
//! Each connection that ends without logging in adds its penalty to its source's (to at most
//! `max`); a source with `min` or more is refused at accept until its penalty has run down.
//! Guessing passwords therefore slows to a few attempts a minute per source, while a user who
//! mistypes once is never refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sshpod_auth::Cidr;
use sshpod_config::{NetBlockSize, Penalties as Policy, SshConfig};
use tokio::time::Instant;

use crate::server::admission::startups::network_of;

/// How a connection that did not log in ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// It tried to log in and failed.
    AuthFailed,
    /// It never tried.
    NoAuth,
    /// `loginGraceTime` or `handshakeTimeout` ran out.
    GraceExceeded,
}

pub(crate) struct Penalties {
    policy: Option<Policy>,
    exempt: Vec<Cidr>,
    blocks: NetBlockSize,
    /// When each penalised source's penalty runs out.
    until: Mutex<HashMap<IpAddr, Instant>>,
}

impl Penalties {
    pub(crate) fn new(ssh: &SshConfig) -> Arc<Self> {
        let exempt = ssh
            .per_source_penalty_exempt_list
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        Self::with(
            ssh.per_source_penalties,
            exempt,
            ssh.per_source_net_block_size,
        )
    }

    fn with(policy: Option<Policy>, exempt: Vec<Cidr>, blocks: NetBlockSize) -> Arc<Self> {
        Arc::new(Self {
            policy,
            exempt,
            blocks,
            until: Mutex::default(),
        })
    }

    /// How much longer `peer` is refused, if it is.
    pub(crate) fn refused(&self, peer: IpAddr) -> Option<Duration> {
        let policy = self.policy?;
        let source = network_of(peer, self.blocks);
        let until = *self.lock().get(&source)?;
        let left = until.saturating_duration_since(Instant::now());
        (left >= policy.min).then_some(left)
    }

    /// Adds the penalty for a connection from `peer` that ended as `ending`.
    pub(crate) fn penalise(&self, peer: IpAddr, ending: Ending) {
        let Some(policy) = self.policy else {
            return;
        };
        if self.exempt.iter().any(|n| n.contains(peer)) {
            return;
        }
        let amount = match ending {
            Ending::AuthFailed => policy.authfail,
            Ending::NoAuth => policy.noauth,
            Ending::GraceExceeded => policy.grace_exceeded,
        };
        if amount.is_zero() {
            return;
        }
        let source = network_of(peer, self.blocks);
        let now = Instant::now();
        let mut table = self.lock();
        if !table.contains_key(&source) && table.len() >= policy.max_sources as usize {
            table.retain(|_, until| *until > now);
            if table.len() >= policy.max_sources as usize {
                return; // full of live penalties: let this source be (OpenSSH's "permissive")
            }
        }
        let until = table.entry(source).or_insert(now);
        let from = (*until).max(now);
        *until = (from + amount).min(now + policy.max);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Instant>> {
        self.until.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn penalties(exempt: &[&str]) -> Arc<Penalties> {
        Penalties::with(
            Some(Policy::DEFAULT),
            exempt.iter().map(|n| n.parse().unwrap()).collect(),
            NetBlockSize::DEFAULT,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_guesser_is_refused_and_let_back_once_its_penalty_runs_down() {
        let p = penalties(&[]);
        let guesser = ip("192.0.2.1");
        p.penalise(guesser, Ending::AuthFailed);
        p.penalise(guesser, Ending::AuthFailed);
        assert_eq!(p.refused(guesser), None, "10 s is under the 15 s minimum");
        p.penalise(guesser, Ending::AuthFailed);
        assert_eq!(p.refused(guesser), Some(Duration::from_secs(15)));
        assert_eq!(p.refused(ip("192.0.2.2")), None, "others are not affected");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(p.refused(guesser), None, "under the minimum again");
        // It adds up to at most ten minutes.
        for _ in 0..1000 {
            p.penalise(guesser, Ending::GraceExceeded);
        }
        assert_eq!(p.refused(guesser), Some(Duration::from_secs(600)));
        tokio::time::advance(Duration::from_secs(586)).await;
        assert_eq!(p.refused(guesser), None);
    }

    #[tokio::test(start_paused = true)]
    async fn exempt_networks_and_the_policy_off_penalise_nobody() {
        let p = penalties(&["10.0.0.0/8"]);
        for _ in 0..10 {
            p.penalise(ip("10.1.2.3"), Ending::AuthFailed);
        }
        assert_eq!(p.refused(ip("10.1.2.3")), None);
        let off = Penalties::with(None, Vec::new(), NetBlockSize::DEFAULT);
        for _ in 0..10 {
            off.penalise(ip("192.0.2.1"), Ending::AuthFailed);
        }
        assert_eq!(off.refused(ip("192.0.2.1")), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_is_bounded() {
        let policy = Policy {
            max_sources: 2,
            ..Policy::DEFAULT
        };
        let p = Penalties::with(Some(policy), Vec::new(), NetBlockSize::DEFAULT);
        for host in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
            for _ in 0..3 {
                p.penalise(ip(host), Ending::AuthFailed);
            }
        }
        assert!(p.refused(ip("192.0.2.1")).is_some());
        assert!(p.refused(ip("192.0.2.3")).is_none(), "no room: let be");
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            p.penalise(ip("192.0.2.3"), Ending::AuthFailed);
        }
        assert!(
            p.refused(ip("192.0.2.3")).is_some(),
            "room once others expired"
        );
    }
}
