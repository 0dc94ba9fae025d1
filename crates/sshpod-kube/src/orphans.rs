//! Removing pods that dead sshpod instances left behind, safely when several instances share
//! a namespace. A pod of another instance is an orphan when:
//! - it names its instance's Lease (`sshpod.lease`) and that Lease is gone, or has not been
//!   renewed for as long as it lasts, as seen by this instance's own clock;
//! - it names no Lease (its instance tied it with a lifeline) and it ended (the lifeline
//!   closed when the instance died), or it has been stuck before running for longer than any
//!   start could take.
//!
//! - or, whatever its Lease says, it was made by an earlier process of this process's seat
//!   (host and listening address, in the instance id: one that no longer listens there and
//!   makes no more pods, such as this container's previous run after a `kill -9`) and is not
//!   running: it has no session, and nobody is left to start one in it.
//!
//! Pods of live instances are never touched. A dead instance's Lease is deleted first, and
//! its pods only once that worked.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Preconditions};
use kube::Api;
use sshpod_core::{same_seat, BackendError};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::lifecycle::delete;
use crate::pod::{LABEL_INSTANCE, LABEL_LEASE};

/// Finds and deletes other instances' orphans; clones share what they have observed.
#[derive(Clone)]
pub(crate) struct Sweeper {
    inner: Arc<Inner>,
}

struct Inner {
    pods: Api<Pod>,
    leases: Api<Lease>,
    instance: String,
    stuck_after: Duration,
    stop: Duration,
    observed: Mutex<Observed>,
    /// Whether listing Leases was refused already (warned about once).
    lease_list_refused: AtomicBool,
    /// Whether deleting a dead Lease was refused already (warned about once).
    lease_delete_refused: AtomicBool,
}

impl Sweeper {
    /// `stuck_after`: how long a pod without a Lease may be pending; `stop`: how long a
    /// deletion is retried (`timeouts.podStop`).
    pub(crate) fn new(
        pods: Api<Pod>,
        leases: Api<Lease>,
        instance: &str,
        stuck_after: Duration,
        stop: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                pods,
                leases,
                instance: instance.to_owned(),
                stuck_after,
                stop,
                observed: Mutex::new(Observed::default()),
                lease_list_refused: AtomicBool::new(false),
                lease_delete_refused: AtomicBool::new(false),
            }),
        }
    }

    /// One sweep; returns how many pods it deleted.
    pub(crate) async fn sweep(&self) -> Result<usize, BackendError> {
        let inner = &self.inner;
        let others = ListParams::default().labels(&format!(
            "{LABEL_INSTANCE},{LABEL_INSTANCE}!={}",
            inner.instance
        ));
        // Pods first: a pod listed here names a Lease that existed before it (an instance
        // takes its Lease before it makes pods), so a Lease missing from the later list is
        // gone, not yet to come.
        let pods = inner
            .pods
            .list(&others)
            .await
            .map_err(|e| BackendError::Engine(Box::new(e)))?;
        let asked = Instant::now();
        let mut requests = 2;
        // Without the Leases nothing can be said of pods that name one; the others can still
        // be judged by their phase.
        let mut liveness = match inner.leases.list(&others).await {
            Ok(list) => {
                let mut observed = inner
                    .observed
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                Some(observed.update(&list.items, asked, Instant::now()))
            }
            Err(e) => {
                warn_once(
                    &inner.lease_list_refused,
                    &e,
                    "cannot list sshpod instance leases; pods that name one are left alone",
                );
                None
            }
        };
        if let Some(liveness) = liveness.as_mut() {
            requests += self.delete_dead_leases(liveness).await;
        }
        let now = k8s_openapi::jiff::Timestamp::now();
        let mut removed = 0;
        for pod in &pods.items {
            let Some(name) = pod.metadata.name.as_deref() else {
                continue;
            };
            if is_earlier_lifes(pod, &inner.instance)
                || is_orphan(pod, liveness.as_ref(), now, inner.stuck_after)
            {
                tracing::info!(pod = name, "deleting a pod of an sshpod instance that died");
                requests += delete(&inner.pods, name, inner.stop).await;
                removed += 1;
            }
        }
        tracing::debug!(requests, "swept for orphans");
        Ok(removed)
    }

    /// Deletes the Leases `liveness` judged dead, each only in the version judged dead: one its
    /// holder renewed meanwhile stays, and so do its pods (it moves to `live`). Returns the
    /// requests made.
    async fn delete_dead_leases(&self, liveness: &mut Liveness) -> usize {
        let inner = &self.inner;
        let dead = std::mem::take(&mut liveness.dead);
        let requests = dead.len();
        for (lease, version) in dead {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: Some(version),
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            match inner.leases.delete(&lease, &params).await {
                Ok(_) => tracing::info!(lease, "deleted the lease of an sshpod instance that died"),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    if matches!(&e, kube::Error::Api(a) if a.code == 403) {
                        warn_once(
                            &inner.lease_delete_refused,
                            &e,
                            "cannot delete the leases of dead sshpod instances, so their pods \
                             stay: sshpod needs delete on leases.coordination.k8s.io",
                        );
                    } else {
                        tracing::debug!(
                            lease,
                            error = &e as &dyn std::error::Error,
                            "a dead instance's lease could not be deleted; its pods stay for now"
                        );
                    }
                    liveness.live.insert(lease);
                }
            }
        }
        requests
    }

    /// Sweeps every `period` until `stop`; the first sweep is start-up's, done already.
    pub(crate) async fn run_every(self, period: Duration, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let outcome = tokio::select! {
                () = stop.cancelled() => return,
                outcome = self.sweep() => outcome,
            };
            match outcome {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed pods left by instances that died"),
                Err(e) => tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    "could not look for pods left by instances that died"
                ),
            }
        }
    }
}

/// Logs a refusal that every sweep would meet again: as a warning the first time `said` is
/// raised, at debug level after that.
fn warn_once(said: &AtomicBool, error: &kube::Error, message: &str) {
    let error = error as &dyn std::error::Error;
    if said.swap(true, Ordering::Relaxed) {
        tracing::debug!(error, "{message}");
    } else {
        tracing::warn!(error, "{message}");
    }
}

/// Which Leases of other instances are alive, as far as this instance has seen.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Liveness {
    live: HashSet<String>,
    /// Dead Leases, with the resourceVersion they were judged dead at.
    dead: Vec<(String, String)>,
}

/// When each Lease was last seen to change. A Lease is renewed by changing it, so one whose
/// resourceVersion stays the same for its whole duration by this clock was not renewed: no
/// clock of another machine is trusted.
#[derive(Debug, Default)]
struct Observed {
    leases: HashMap<String, Seen>,
}

#[derive(Debug)]
struct Seen {
    version: String,
    since: Instant,
}

impl Observed {
    /// `leases` was asked for at `asked` and answered at `received`. A version is taken to be
    /// new when the answer came, and to be unchanged until the question went: the interval
    /// judged is never longer than the one the holder really missed.
    fn update(&mut self, leases: &[Lease], asked: Instant, received: Instant) -> Liveness {
        let mut liveness = Liveness::default();
        let mut still_there = HashMap::new();
        for lease in leases {
            let (Some(name), Some(version)) = (
                lease.metadata.name.clone(),
                lease.metadata.resource_version.clone(),
            ) else {
                continue;
            };
            let seen = match self.leases.remove(&name) {
                Some(seen) if seen.version == version => seen,
                _ => Seen {
                    version: version.clone(),
                    since: received,
                },
            };
            let lasts = lease
                .spec
                .as_ref()
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .map_or(Duration::ZERO, Duration::from_secs);
            if lasts.is_zero() || asked.saturating_duration_since(seen.since) < lasts {
                liveness.live.insert(name.clone());
            } else {
                liveness.dead.push((name.clone(), version));
            }
            still_there.insert(name, seen);
        }
        self.leases = still_there;
        liveness
    }
}

/// Whether `pod` was made by an earlier process of the seat of `instance` (this process) and is
/// not running.
fn is_earlier_lifes(pod: &Pod, instance: &str) -> bool {
    let owner = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_INSTANCE));
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    owner.is_some_and(|owner| owner != instance && same_seat(owner, instance))
        && phase != Some("Running")
}

/// Whether `pod`, made by another instance, is an orphan (see the module docs). `liveness` is
/// None when the Leases could not be read.
fn is_orphan(
    pod: &Pod,
    liveness: Option<&Liveness>,
    now: k8s_openapi::jiff::Timestamp,
    stuck_after: Duration,
) -> bool {
    let lease = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_LEASE));
    if let Some(lease) = lease {
        return liveness.is_some_and(|l| !l.live.contains(lease));
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let ended = matches!(phase, Some("Succeeded") | Some("Failed"));
    let stuck = phase == Some("Pending")
        && pod
            .metadata
            .creation_timestamp
            .as_ref()
            .is_some_and(|t| now.duration_since(t.0).as_secs_f64() > stuck_after.as_secs_f64());
    ended || stuck
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::{SignedDuration, Timestamp};

    use super::*;

    fn lease(name: &str, version: &str, seconds: i32) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                resource_version: Some(version.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                lease_duration_seconds: Some(seconds),
                ..LeaseSpec::default()
            }),
        }
    }

    fn pod(lease: Option<&str>, phase: &str, age: i64) -> Pod {
        let labels = lease.map(|l| [(LABEL_LEASE.to_owned(), l.to_owned())].into());
        Pod {
            metadata: ObjectMeta {
                labels,
                creation_timestamp: Some(Time(Timestamp::now() - SignedDuration::from_secs(age))),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.to_owned()),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn a_lease_is_dead_only_after_a_whole_duration_without_a_change_seen_here() {
        let mut observed = Observed::default();
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        // First seen: alive, whatever its renew time says (other clocks are not trusted).
        let first = observed.update(&[lease("a", "1", 30), lease("b", "7", 30)], at(0), at(0));
        assert_eq!(first.live, HashSet::from(["a".to_owned(), "b".to_owned()]));
        // `a` is renewed, `b` is not; at 29 s both are still alive.
        let later = observed.update(&[lease("a", "2", 30), lease("b", "7", 30)], at(29), at(29));
        assert!(later.dead.is_empty());
        // At 30 s `b` has gone its whole duration unchanged; `a` changed at 29 s.
        let dead = observed.update(&[lease("a", "2", 30), lease("b", "7", 30)], at(30), at(30));
        assert_eq!(dead.live, HashSet::from(["a".to_owned()]));
        assert_eq!(dead.dead, vec![("b".to_owned(), "7".to_owned())]);
        // A renewal brings it back, and the clock starts again.
        let back = observed.update(&[lease("a", "2", 30), lease("b", "8", 30)], at(31), at(31));
        assert!(back.dead.is_empty() && back.live.contains("b"));
        // Leases that went are forgotten.
        observed.update(&[], at(32), at(32));
        assert!(observed.leases.is_empty());
    }

    #[test]
    fn the_time_a_list_took_never_counts_against_a_lease() {
        let mut observed = Observed::default();
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        // First seen in an answer that took 5 s: unchanged only from then on.
        observed.update(&[lease("a", "1", 30)], at(0), at(5));
        let asked_at_30 = observed.update(&[lease("a", "1", 30)], at(30), at(40));
        assert!(
            asked_at_30.live.contains("a"),
            "25 s between answer and question"
        );
        let asked_at_35 = observed.update(&[lease("a", "1", 30)], at(35), at(35));
        assert_eq!(asked_at_35.dead, vec![("a".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn pods_naming_a_lease_are_judged_by_it_and_only_by_it() {
        let mut observed = Observed::default();
        let now = Instant::now();
        let liveness = observed.update(&[lease("live", "1", 30)], now, now);
        let stuck = Duration::from_secs(120);
        let now = Timestamp::now();
        // A live instance's pods stay, even ended or long pending (it deals with them).
        assert!(!is_orphan(
            &pod(Some("live"), "Succeeded", 0),
            Some(&liveness),
            now,
            stuck
        ));
        assert!(!is_orphan(
            &pod(Some("live"), "Pending", 999),
            Some(&liveness),
            now,
            stuck
        ));
        // A pod whose Lease is gone is an orphan, running or not.
        assert!(is_orphan(
            &pod(Some("gone"), "Running", 0),
            Some(&liveness),
            now,
            stuck
        ));
        // Leases that cannot be read: nothing is said of pods that name one.
        assert!(!is_orphan(
            &pod(Some("gone"), "Running", 0),
            None,
            now,
            stuck
        ));
    }

    #[test]
    fn an_earlier_lifes_pods_are_orphans_at_once_unless_running() {
        let instance = "0123456789abcdef-1111111111111111";
        let labelled = |owner: &str, phase: &str| {
            let mut pod = pod(Some("sshpod-lease"), phase, 0);
            pod.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(LABEL_INSTANCE.to_owned(), owner.to_owned());
            pod
        };
        let earlier = "0123456789abcdef-2222222222222222";
        assert!(is_earlier_lifes(&labelled(earlier, "Pending"), instance));
        assert!(is_earlier_lifes(&labelled(earlier, "Failed"), instance));
        assert!(!is_earlier_lifes(&labelled(earlier, "Running"), instance));
        let elsewhere = "fedcba9876543210-2222222222222222";
        assert!(!is_earlier_lifes(&labelled(elsewhere, "Pending"), instance));
        assert!(!is_earlier_lifes(&labelled(instance, "Pending"), instance));
        assert!(!is_earlier_lifes(&pod(None, "Pending", 0), instance));
    }

    #[test]
    fn pods_without_a_lease_are_orphans_once_ended_or_stuck() {
        let stuck = Duration::from_secs(120);
        let now = Timestamp::now();
        for (phase, age, orphan) in [
            ("Running", 999, false),
            ("Succeeded", 0, true),
            ("Failed", 0, true),
            ("Pending", 60, false),
            ("Pending", 121, true),
        ] {
            let pod = pod(None, phase, age);
            assert_eq!(is_orphan(&pod, None, now, stuck), orphan, "{phase} {age}s");
        }
    }
}
