//! This instance's Lease (`coordination.k8s.io/v1`): how other sshpod instances sharing the
//! namespace tell a live instance from a dead one, so they can delete a killed instance's pods
//! without ever touching a live one's.
//!
//! The Lease is named `sshpod-INSTANCE`, created at start, renewed every third of
//! `timeouts.instanceLease` and deleted at shutdown. It costs a few requests a minute for the
//! whole process, none per login. Whether another instance's Lease is still renewed is judged
//! by the observer's own clock (see `orphans`), so clocks need not agree.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::orphans::Sweeper;
use crate::pod::LABEL_INSTANCE;

/// The name of an instance's Lease.
pub(crate) fn lease_name(instance: &str) -> String {
    format!("sshpod-{instance}")
}

/// The Lease as this instance writes it.
fn describe(instance: &str, duration: Duration) -> Lease {
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    Lease {
        metadata: ObjectMeta {
            name: Some(lease_name(instance)),
            labels: Some([(LABEL_INSTANCE.to_owned(), instance.to_owned())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(instance.to_owned()),
            lease_duration_seconds: Some(seconds(duration)),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..LeaseSpec::default()
        }),
    }
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX).max(1)
}

/// A Lease this instance holds, kept renewed (and other instances' pods swept) by a task of
/// its own until [`HeldLease::release`].
pub(crate) struct HeldLease {
    leases: Api<Lease>,
    name: String,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl HeldLease {
    /// Creates the Lease. An error means the instance cannot hold one (no rights on leases,
    /// an API server without them); the caller falls back to lifelines.
    pub(crate) async fn acquire(
        leases: Api<Lease>,
        instance: &str,
        duration: Duration,
        sweeper: Sweeper,
    ) -> Result<Self, kube::Error> {
        let created = leases
            .create(&PostParams::default(), &describe(instance, duration))
            .await?;
        let name = lease_name(instance);
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let keeper = Keeper {
            leases: leases.clone(),
            instance: instance.to_owned(),
            duration,
            current: created,
            renewed: Instant::now(),
            warned: false,
        };
        tasks.spawn(keeper.run(sweeper, stop.clone()));
        tasks.close();
        Ok(Self {
            leases,
            name,
            stop,
            tasks,
        })
    }

    /// The Lease's name, as put on this instance's pods.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Stops renewing and deletes the Lease, so other instances may sweep at once whatever
    /// this one could not delete itself.
    pub(crate) async fn release(&self) {
        self.stop.cancel();
        self.tasks.wait().await;
        match self
            .leases
            .delete(&self.name, &DeleteParams::default())
            .await
        {
            Ok(_) => tracing::debug!(lease = %self.name, "instance lease released"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => tracing::warn!(
                lease = %self.name,
                error = &e as &dyn std::error::Error,
                "could not delete the instance lease; other instances remove it once it expires"
            ),
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The task behind a [`HeldLease`]: renews it, and sweeps other instances' orphans once per
/// lease duration.
struct Keeper {
    leases: Api<Lease>,
    instance: String,
    duration: Duration,
    /// The Lease as last written, with the resourceVersion the next renewal must match.
    current: Lease,
    renewed: Instant,
    /// Whether the "others may take this instance for dead" error was logged since the last
    /// renewal that worked.
    warned: bool,
}

impl Keeper {
    /// Writes `lease` with a new renew time, if its resourceVersion is still the stored one.
    async fn write(&self, name: &str, mut lease: Lease) -> Result<Lease, kube::Error> {
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
        }
        self.leases
            .replace(name, &PostParams::default(), &lease)
            .await
    }

    async fn run(mut self, sweeper: Sweeper, stop: CancellationToken) {
        let mut renew = tokio::time::interval(self.duration / 3);
        let mut sweep = tokio::time::interval(self.duration);
        // A slow API server delays the next renewal; it must not cause a burst of them.
        renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
        sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Both fire at once first: the Lease was just written, and start-up swept already.
        renew.tick().await;
        sweep.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = renew.tick() => self.renew().await,
                _ = sweep.tick() => sweeper.sweep_logged().await,
            }
        }
    }

    async fn renew(&mut self) {
        let name = lease_name(&self.instance);
        let mut requests = 1;
        let written = match self.write(&name, self.current.clone()).await {
            // Someone changed it, or deleted it (an instance that took this one for dead; the
            // stored uid then fails as a precondition, 409, rather than 404): renew what is
            // there now, or hold a new one.
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                requests += 2;
                match self.leases.get_opt(&name).await {
                    Ok(Some(latest)) => self.write(&name, latest).await,
                    Ok(None) => {
                        self.leases
                            .create(
                                &PostParams::default(),
                                &describe(&self.instance, self.duration),
                            )
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        tracing::debug!(requests, lease = %name, "instance API");
        match written {
            Ok(lease) => {
                self.current = lease;
                self.renewed = Instant::now();
                self.warned = false;
            }
            Err(e) => {
                let stale = self.renewed.elapsed();
                if stale >= self.duration && !self.warned {
                    self.warned = true;
                    tracing::error!(
                        lease = %name,
                        error = &e as &dyn std::error::Error,
                        seconds = stale.as_secs(),
                        "the instance lease has not been renewed for as long as it lasts: \
                         other sshpod instances may now delete this instance's pods"
                    );
                } else {
                    tracing::warn!(
                        lease = %name,
                        error = &e as &dyn std::error::Error,
                        "could not renew the instance lease; trying again"
                    );
                }
            }
        }
    }
}
