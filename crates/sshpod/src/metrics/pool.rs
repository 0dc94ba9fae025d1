//! The warm pool's metrics (`sshpod_pool_*`): read from the backend's [`PoolStats`] at each
//! scrape, as the backend's request counts are.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sshpod_core::pool::PoolSnapshot;

/// Reads the pool's counts.
pub type PoolSource = Box<dyn Fn() -> PoolSnapshot + Send + Sync>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SkipLabels {
    /// From [`sshpod_core::pool::Skip::as_str`], a fixed list.
    reason: &'static str,
}

/// The pool's metric families.
#[derive(Debug, Default)]
pub(super) struct PoolMetrics {
    ready: Gauge,
    target: Gauge,
    claims: Counter,
    skips: Family<SkipLabels, Counter>,
}

impl PoolMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "sshpod_pool_ready",
            "Pooled containers (or pods) started and waiting for a login",
            self.ready.clone(),
        );
        registry.register(
            "sshpod_pool_target",
            "How many pooled containers the pool aims for now (adaptive sizing)",
            self.target.clone(),
        );
        registry.register(
            "sshpod_pool_claims",
            "Logins that got a pooled container",
            self.claims.clone(),
        );
        registry.register(
            "sshpod_pool_misses",
            "Logins that started their own container, by reason (empty: none was ready)",
            self.skips.clone(),
        );
    }

    /// Brings the families up to `now`.
    pub(super) fn update(&self, now: &PoolSnapshot) {
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.ready.set(gauge(now.ready));
        self.target.set(gauge(now.target));
        catch_up(&self.claims, now.claims);
        for (reason, count) in &now.skips {
            catch_up(&self.skips.get_or_create(&SkipLabels { reason }), *count);
        }
    }
}

/// The counts only grow: brings `counter` up to `count`.
fn catch_up(counter: &Counter, count: u64) {
    let shown = counter.get();
    if count > shown {
        counter.inc_by(count - shown);
    }
}
