//! This instance's Lease (`coordination.k8s.io/v1`): how other sshpod instances sharing the
//! namespace tell a live instance from a dead one, so they can delete a killed instance's pods
//! without ever touching a live one's.
//!
//! The Lease is named `sshpod-INSTANCE`, created at start, renewed every third of
//! `timeouts.instanceLease` (sooner again while renewals fail) and deleted at shutdown.
//! It costs a few requests a minute for the whole process, none per login, on a client of its
//! own that does not queue behind the connections' requests. Whether another instance's Lease
//! is still renewed is judged by the observer's own clock (see `orphans`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::Api;
use sshpod_core::Lifecycle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::orphans::Sweeper;
use crate::pod::LABEL_INSTANCE;

/// How soon a failed renewal is tried again first; the pause doubles while renewals fail, up
/// to a third of the lease.
const RETRY: Duration = Duration::from_secs(1);
/// How long shutdown waits for the Lease's deletion; if it fails, other instances remove the
/// Lease once it expires.
const RELEASE_LIMIT: Duration = Duration::from_secs(5);

/// Why a renewal failed. Logged, and retried; never shown to users.
#[derive(Debug, thiserror::Error)]
enum RenewError {
    /// The API server refused or failed a request of the renewal.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// The renewal took longer than a renewal period.
    #[error("no answer in time")]
    NoAnswer,
}

/// The name of an instance's Lease.
fn lease_name(instance: &str) -> String {
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

/// Whole seconds, rounded up: others must never judge the Lease by less than its holder's
/// duration.
fn seconds(duration: Duration) -> i32 {
    let whole = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i32::try_from(whole).unwrap_or(i32::MAX).max(1)
}

/// `lease` with a new renew time, written if its resourceVersion is still the stored one.
async fn write_renewed(leases: &Api<Lease>, mut lease: Lease) -> Result<Lease, kube::Error> {
    if let Some(spec) = lease.spec.as_mut() {
        spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
    }
    let name = lease.metadata.name.clone().unwrap_or_default();
    leases.replace(&name, &PostParams::default(), &lease).await
}

/// A Lease this instance holds, kept renewed (and other instances' pods swept) by tasks of
/// its own until [`HeldLease::release`].
pub(crate) struct HeldLease {
    leases: Api<Lease>,
    name: String,
    /// False while the Lease has gone unrenewed for its whole duration: others may take this
    /// instance for dead, so new pods must not rely on it.
    fresh: Arc<AtomicBool>,
    /// The renewer's and the sweeper's: a child of the process's.
    lifecycle: Lifecycle,
}

impl HeldLease {
    /// Creates the Lease and proves, by renewing, reading and listing once, that the instance
    /// may do what holding it takes. An error means it cannot (no rights on leases,
    /// an API server without them); the caller falls back to lifelines.
    pub(crate) async fn acquire(
        leases: Api<Lease>,
        instance: &str,
        duration: Duration,
        sweeper: Sweeper,
        lifecycle: &Lifecycle,
    ) -> Result<Self, kube::Error> {
        let created = leases
            .create(&PostParams::default(), &describe(instance, duration))
            .await?;
        let name = lease_name(instance);
        let proven = async {
            write_renewed(&leases, created).await?;
            leases.list(&ListParams::default().limit(1)).await?;
            leases.get(&name).await
        };
        let current = match proven.await {
            Ok(current) => current,
            Err(e) => {
                let _ = leases.delete(&name, &DeleteParams::default()).await;
                return Err(e);
            }
        };
        let lifecycle = lifecycle.child();
        let fresh = Arc::new(AtomicBool::new(true));
        let renewer = Renewer {
            leases: leases.clone(),
            instance: instance.to_owned(),
            duration,
            current,
            renewed: Instant::now(),
            failing: false,
            fresh: Arc::clone(&fresh),
        };
        lifecycle.spawn(renewer.run(lifecycle.token().clone()));
        lifecycle.spawn(sweeper.run_every(duration, lifecycle.token().clone()));
        Ok(Self {
            leases,
            name,
            fresh,
            lifecycle,
        })
    }

    /// The Lease's name, to put on a new pod; None while it is not renewed (see `fresh`).
    pub(crate) fn vouching_name(&self) -> Option<&str> {
        self.fresh
            .load(Ordering::Relaxed)
            .then_some(self.name.as_str())
    }

    /// Stops renewing and deletes the Lease, so other instances may sweep at once whatever
    /// this one could not delete itself. Takes at most a few seconds.
    pub(crate) async fn release(&self) {
        self.lifecycle.cancel();
        self.lifecycle.wait().await;
        let deleted = tokio::time::timeout(
            RELEASE_LIMIT,
            self.leases.delete(&self.name, &DeleteParams::default()),
        )
        .await;
        match deleted {
            Ok(Ok(_)) => tracing::debug!(lease = %self.name, "instance lease released"),
            Ok(Err(kube::Error::Api(e))) if e.code == 404 => {}
            Ok(Err(e)) => tracing::warn!(
                lease = %self.name,
                error = &e as &dyn std::error::Error,
                "could not delete the instance lease; other instances remove it once it expires"
            ),
            Err(_) => tracing::warn!(
                lease = %self.name,
                "the instance lease was not deleted in time; other instances remove it once it \
                 expires"
            ),
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.lifecycle.cancel();
    }
}

/// The task that renews a [`HeldLease`].
struct Renewer {
    leases: Api<Lease>,
    instance: String,
    duration: Duration,
    /// The Lease as last written, with the resourceVersion the next renewal must match.
    current: Lease,
    renewed: Instant,
    /// Whether the last renewal failed (its warning is logged once per run of failures).
    failing: bool,
    /// Shared with the [`HeldLease`]: false once the Lease has gone unrenewed for its whole
    /// duration (said once, as an error), true again at the next renewal.
    fresh: Arc<AtomicBool>,
}

impl Renewer {
    async fn run(mut self, stop: CancellationToken) {
        let period = self.duration / 3;
        let mut next = Instant::now() + period;
        let mut retry = RETRY;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(next) => {}
            }
            // A renewal that hangs must not outlast the next one's turn.
            let outcome = tokio::select! {
                () = stop.cancelled() => return,
                outcome = tokio::time::timeout(period, self.renew()) => {
                    outcome.unwrap_or(Err(RenewError::NoAnswer))
                }
            };
            let pause = if outcome.is_ok() {
                retry = RETRY;
                period
            } else {
                // An API server that refuses at once (429) must not be asked every second.
                let pause = retry.min(period);
                retry = retry.saturating_mul(2);
                pause
            };
            self.report(outcome);
            next = Instant::now() + pause;
        }
    }

    async fn renew(&mut self) -> Result<(), RenewError> {
        let name = lease_name(&self.instance);
        let mut requests = 1;
        let written = match write_renewed(&self.leases, self.current.clone()).await {
            // Someone changed it, or deleted it (the stored uid then fails as a precondition,
            // 409, rather than 404): renew what is there now, or hold a new one.
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                requests += 2;
                match self.leases.get_opt(&name).await? {
                    Some(latest) => write_renewed(&self.leases, latest).await,
                    None => {
                        tracing::warn!(
                            lease = %name,
                            "the instance lease had been deleted (another instance took this \
                             one for dead and may have deleted its pods); holding a new one"
                        );
                        self.leases
                            .create(
                                &PostParams::default(),
                                &describe(&self.instance, self.duration),
                            )
                            .await
                    }
                }
            }
            other => other,
        };
        tracing::debug!(requests, lease = %name, "instance API");
        self.current = written?;
        Ok(())
    }

    fn report(&mut self, outcome: Result<(), RenewError>) {
        let name = lease_name(&self.instance);
        match outcome {
            Ok(()) => {
                if self.failing {
                    tracing::info!(lease = %name, "the instance lease is renewed again");
                }
                self.renewed = Instant::now();
                self.failing = false;
                self.fresh.store(true, Ordering::Relaxed);
            }
            Err(e) => {
                let stale = self.renewed.elapsed();
                let fresh = self.fresh.load(Ordering::Relaxed);
                if stale >= self.duration && fresh {
                    self.fresh.store(false, Ordering::Relaxed);
                    tracing::error!(
                        lease = %name,
                        error = %e,
                        seconds = stale.as_secs(),
                        "the instance lease has not been renewed for as long as it lasts: \
                         other sshpod instances may now delete this instance's pods; new pods \
                         get a lifeline until it is renewed"
                    );
                } else if !self.failing {
                    tracing::warn!(
                        lease = %name,
                        error = %e,
                        "could not renew the instance lease; trying again shortly"
                    );
                } else {
                    tracing::debug!(lease = %name, error = %e, "instance lease renewal failed");
                }
                self.failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::{json, Value};
    use tower_test::mock::{self, Handle};

    use super::*;

    type Server = Handle<Request<Body>, Response<Body>>;

    /// A renewer holding version 5 (uid `old`) of `sshpod-abc`, and the API server it talks to.
    fn renewer() -> (Renewer, Server) {
        let (service, server) = mock::pair::<Request<Body>, Response<Body>>();
        let mut current = describe("abc", Duration::from_secs(30));
        current.metadata.resource_version = Some("5".to_owned());
        current.metadata.uid = Some("old".to_owned());
        if let Some(spec) = current.spec.as_mut() {
            spec.renew_time = Some(MicroTime("2026-01-01T00:00:00Z".parse().unwrap()));
        }
        let renewer = Renewer {
            leases: Api::namespaced(kube::Client::new(service, "ns"), "ns"),
            instance: "abc".to_owned(),
            duration: Duration::from_secs(30),
            current,
            renewed: Instant::now(),
            failing: false,
            fresh: Arc::new(AtomicBool::new(true)),
        };
        (renewer, server)
    }

    fn lease_json(version: &str, uid: &str) -> Value {
        let mut lease = serde_json::to_value(describe("abc", Duration::from_secs(30))).unwrap();
        lease["metadata"]["resourceVersion"] = json!(version);
        lease["metadata"]["uid"] = json!(uid);
        lease
    }

    fn status(code: u16, reason: &str) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": reason, "reason": reason, "code": code})
    }

    /// One renewal against an API server that expects `script`'s requests in order (method)
    /// and gives its answers; returns the renewer and the bodies it sent.
    async fn renew_against(script: Vec<(Method, StatusCode, Value)>) -> (Renewer, Vec<Value>) {
        let (mut renewer, mut server) = renewer();
        let api = tokio::spawn(async move {
            let mut sent = Vec::new();
            for (method, code, answer) in script {
                let (request, respond) = server.next_request().await.expect("a request");
                assert_eq!(request.method(), method, "{}", request.uri());
                assert!(request
                    .uri()
                    .path()
                    .starts_with("/apis/coordination.k8s.io/v1/namespaces/ns/leases"));
                let body = request.into_body().collect_bytes().await.unwrap();
                sent.push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                let body = Body::from(serde_json::to_vec(&answer).unwrap());
                respond.send_response(Response::builder().status(code).body(body).unwrap());
            }
            sent
        });
        renewer.renew().await.unwrap();
        (renewer, api.await.unwrap())
    }

    #[tokio::test]
    async fn a_renewal_writes_a_new_renew_time_over_the_version_it_holds() {
        let (renewer, sent) =
            renew_against(vec![(Method::PUT, StatusCode::OK, lease_json("6", "old"))]).await;
        assert_eq!(sent[0]["metadata"]["resourceVersion"], "5");
        assert_eq!(sent[0]["metadata"]["uid"], "old");
        assert_ne!(sent[0]["spec"]["renewTime"], "2026-01-01T00:00:00.000000Z");
        let version = renewer.current.metadata.resource_version;
        assert_eq!(version.as_deref(), Some("6"));
    }

    #[tokio::test]
    async fn a_lease_someone_deleted_is_held_anew() {
        let (renewer, sent) = renew_against(vec![
            // The stored uid fails as a precondition: 409, not 404.
            (Method::PUT, StatusCode::CONFLICT, status(409, "Conflict")),
            (Method::GET, StatusCode::NOT_FOUND, status(404, "NotFound")),
            (Method::POST, StatusCode::CREATED, lease_json("9", "new")),
        ])
        .await;
        assert_eq!(sent[2]["spec"]["holderIdentity"], "abc");
        assert_eq!(renewer.current.metadata.uid.as_deref(), Some("new"));
    }

    #[tokio::test]
    async fn a_lease_someone_changed_is_renewed_in_its_new_version() {
        let (renewer, sent) = renew_against(vec![
            (Method::PUT, StatusCode::CONFLICT, status(409, "Conflict")),
            (Method::GET, StatusCode::OK, lease_json("7", "old")),
            (Method::PUT, StatusCode::OK, lease_json("8", "old")),
        ])
        .await;
        assert_eq!(sent[2]["metadata"]["resourceVersion"], "7");
        let version = renewer.current.metadata.resource_version;
        assert_eq!(version.as_deref(), Some("8"));
    }

    #[tokio::test]
    async fn failures_are_reported_once_and_staleness_once() {
        let (mut renewer, _server) = renewer();
        let fresh = |renewer: &Renewer| renewer.fresh.load(Ordering::Relaxed);
        renewer.report(Err(RenewError::NoAnswer));
        assert!(renewer.failing && fresh(&renewer));
        renewer.renewed = Instant::now() - Duration::from_secs(31);
        renewer.report(Err(RenewError::NoAnswer));
        assert!(
            !fresh(&renewer),
            "after a whole lease without renewal, new pods no longer rely on it"
        );
        renewer.report(Ok(()));
        assert!(!renewer.failing && fresh(&renewer));
    }

    #[test]
    fn a_lease_never_says_it_lasts_less_than_configured() {
        assert_eq!(seconds(Duration::from_secs(60)), 60);
        assert_eq!(seconds(Duration::from_millis(3900)), 4);
    }
}
