//! How many API requests one connection cost, for the debug log at logout: the figure that
//! decides how many logins a cluster's API server can take; and, for the whole process, how
//! many of each kind (verb and resource) the connections made, for the metrics.
//!
//! Counted where requests go out, by a tower layer, not by hand at each call: a connection's
//! requests go through a client whose stack is [`CountLayer`] over the process's shared
//! client (rate limit, token file, TLS connections and all). So the count is exact, whatever
//! the code in between does, and belongs to exactly one connection. The connection holds a
//! [`PodsApi`], which makes that client for each use rather than keeping one.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::{Method, Request, Response, Uri};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::client::{Body, ClientBuilder};
use kube::{Api, Client};
use tower::{Layer, Service};

/// The kinds of request the connections make, as `verb resource` (Kubernetes' words); any
/// other request counts as `other`.
pub const API_REQUEST_KINDS: [&str; 12] = [
    "create pods",
    "get pods",
    "list pods",
    "watch pods",
    "delete pods",
    "patch pods",
    "exec pods",
    "attach pods",
    "portforward pods",
    "create persistentvolumeclaims",
    "get persistentvolumeclaims",
    "other",
];

/// The connections' API requests by kind, for the whole process. Shared; cheap to read.
#[derive(Debug, Default)]
pub struct ApiRequests([AtomicU64; API_REQUEST_KINDS.len()]);

impl ApiRequests {
    /// Each kind of [`API_REQUEST_KINDS`] with its count so far.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        API_REQUEST_KINDS
            .iter()
            .zip(&self.0)
            .map(|(kind, count)| (*kind, count.load(Ordering::Relaxed)))
            .collect()
    }

    fn count(&self, method: &Method, uri: &Uri) {
        let kind = kind_of(method, uri);
        let index = API_REQUEST_KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(API_REQUEST_KINDS.len() - 1);
        if let Some(count) = self.0.get(index) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `verb resource` of a request, from its method and path (`/api/v1/namespaces/NS/pods/NAME/
/// exec`); a pod's subresources are their own verb.
fn kind_of(method: &Method, uri: &Uri) -> String {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // After `api/v1` or `apis/GROUP/VERSION`, and `namespaces/NS` when there.
    let skip = match segments.first() {
        Some(&"api") => 2,
        Some(&"apis") => 3,
        _ => return "other".to_owned(),
    };
    let mut rest = segments.get(skip..).unwrap_or_default();
    if rest.first() == Some(&"namespaces") && rest.len() > 2 {
        rest = &rest[2..];
    }
    let (resource, name, subresource) = (rest.first(), rest.get(1), rest.get(2));
    let Some(resource) = resource else {
        return "other".to_owned();
    };
    let watch = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match (subresource, method) {
        (Some(sub), _) => return format!("{sub} {resource}"),
        (None, &Method::GET) if watch => "watch",
        (None, &Method::GET) if name.is_some() => "get",
        (None, &Method::GET) => "list",
        (None, &Method::POST) => "create",
        (None, &Method::DELETE) => "delete",
        (None, &Method::PATCH) => "patch",
        (None, &Method::PUT) => "update",
        _ => "other",
    };
    format!("{verb} {resource}")
}

/// A shared counter of API requests. Cheap to clone; clones count together.
#[derive(Debug, Clone, Default)]
pub(crate) struct Requests {
    total: Arc<AtomicUsize>,
    /// The process's counts by kind.
    kinds: Arc<ApiRequests>,
}

impl Requests {
    /// A connection's counter, also counting into the process's `kinds`.
    pub(crate) fn sharing(kinds: &Arc<ApiRequests>) -> Self {
        Self {
            total: Arc::default(),
            kinds: Arc::clone(kinds),
        }
    }

    pub(crate) fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    fn count_one(&self) {
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    fn count<B>(&self, request: &Request<B>) {
        self.count_one();
        self.kinds.count(request.method(), request.uri());
    }
}

/// The pods (and claims) of one namespace, as a connection or the process reaches them.
///
/// A connection's is counted: each [`PodsApi::pods`] is a client of its own over the shared
/// one, counting into the connection's [`Requests`], made when asked for and dropped after
/// use. Not one client for the connection's whole life: kube's client keeps a queue with room
/// for 32 requests (about 11 KiB) for as long as it lives, and a connection holds its pod for
/// hours and talks to the API server a few times. Cheap to clone.
#[derive(Clone)]
pub(crate) struct PodsApi {
    shared: Client,
    /// `None`: the process's own requests (the pool's), not counted per connection.
    requests: Option<Requests>,
    namespace: Arc<str>,
}

impl PodsApi {
    /// One connection's, counted in `requests`.
    pub(crate) fn counted(shared: &Client, requests: Requests, namespace: &str) -> Self {
        Self {
            shared: shared.clone(),
            requests: Some(requests),
            namespace: namespace.into(),
        }
    }

    /// The process's own, through the shared client as it is.
    pub(crate) fn shared(shared: &Client, namespace: &str) -> Self {
        Self {
            shared: shared.clone(),
            requests: None,
            namespace: namespace.into(),
        }
    }

    /// The same namespace, counted in `requests` from now on (a pooled pod a login claims).
    pub(crate) fn counting(&self, requests: Requests) -> Self {
        Self {
            requests: Some(requests),
            ..self.clone()
        }
    }

    fn client(&self) -> Client {
        match &self.requests {
            Some(requests) => counted_client(&self.shared, requests.clone()),
            None => self.shared.clone(),
        }
    }

    /// The namespace's pods. Keep it for one task, not for the connection's life.
    pub(crate) fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client(), &self.namespace)
    }

    /// The namespace's persistent volume claims, on the same terms as [`Self::pods`].
    pub(crate) fn claims(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.client(), &self.namespace)
    }
}

/// A client for one connection: the process's `shared` client (its stack and connection
/// pool), with every request counted in `requests`.
pub(crate) fn counted_client(shared: &Client, requests: Requests) -> Client {
    ClientBuilder::new(SharedClient(shared.clone()), shared.default_namespace())
        .with_layer(&CountLayer(requests))
        .build()
}

/// Counts every request that passes, into its [`Requests`].
#[derive(Debug, Clone)]
pub(crate) struct CountLayer(pub(crate) Requests);

impl<S> Layer<S> for CountLayer {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            requests: self.0.clone(),
        }
    }
}

/// See [`CountLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Counted<S> {
    inner: S,
    requests: Requests,
}

impl<S, B> Service<Request<B>> for Counted<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.requests.count(&request);
        self.inner.call(request)
    }
}

/// The process's client as the bottom of a connection's stack. Its errors pass through
/// unchanged: kube's client unwraps a `kube::Error` coming out of a stack.
#[derive(Clone)]
struct SharedClient(Client);

impl Service<Request<Body>> for SharedClient {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, kube::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The shared client waits for its own readiness in `send`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let client = self.0.clone();
        Box::pin(async move { client.send(request).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use k8s_openapi::api::core::v1::Pod;
    use kube::Api;
    use serde_json::json;

    /// A shared client answering every request with the same pod (or a 404), and how many
    /// requests reached it.
    fn shared(found: bool) -> (Client, Requests) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let reached = Requests::default();
        let seen = reached.clone();
        tokio::spawn(async move {
            while let Some((_request, send)) = handle.next_request().await {
                seen.count_one();
                let (status, body) = if found {
                    (
                        StatusCode::OK,
                        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}),
                    )
                } else {
                    (
                        StatusCode::NOT_FOUND,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "not found", "reason": "NotFound", "code": 404}),
                    )
                };
                let response = Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap();
                send.send_response(response);
            }
        });
        (Client::new(service, "default"), reached)
    }

    #[tokio::test]
    async fn each_connection_counts_its_own_requests() {
        let (client, reached) = shared(true);
        let (one, two) = (Requests::default(), Requests::default());
        let first: Api<Pod> = Api::default_namespaced(counted_client(&client, one.clone()));
        let second: Api<Pod> = Api::default_namespaced(counted_client(&client, two.clone()));
        first.get("p").await.unwrap();
        first.get("p").await.unwrap();
        second.get("p").await.unwrap();
        assert_eq!((one.total(), two.total(), reached.total()), (2, 1, 3));
    }

    #[tokio::test]
    async fn api_errors_come_through_unchanged_and_still_count() {
        let (client, _) = shared(false);
        let requests = Requests::default();
        let pods: Api<Pod> = Api::default_namespaced(counted_client(&client, requests.clone()));
        match pods.get("p").await {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 404),
            other => panic!("expected a 404, got {other:?}"),
        }
        assert_eq!(pods.get_opt("p").await.unwrap(), None);
        assert_eq!(requests.total(), 2);
    }

    #[tokio::test]
    async fn the_process_counts_each_kind_over_every_connection() {
        let (client, _) = shared(true);
        let kinds = Arc::new(ApiRequests::default());
        let one: Api<Pod> =
            Api::default_namespaced(counted_client(&client, Requests::sharing(&kinds)));
        let two: Api<Pod> =
            Api::default_namespaced(counted_client(&client, Requests::sharing(&kinds)));
        one.get("p").await.unwrap();
        two.get("p").await.unwrap();
        let counts: std::collections::HashMap<_, _> = kinds.snapshot().into_iter().collect();
        assert_eq!(counts["get pods"], 2);
        assert_eq!(counts["create pods"], 0);
    }

    #[tokio::test]
    async fn a_connections_pods_count_as_its_own_and_the_pools_as_nobodys() {
        let (client, reached) = shared(true);
        let login = Requests::default();
        let pool = PodsApi::shared(&client, "ns");
        pool.pods().get("p").await.unwrap();
        let claimed = pool.counting(login.clone());
        claimed.pods().get("p").await.unwrap();
        // The stand-in answers with a pod: only the count matters here.
        let _ = claimed.claims().get_opt("c").await;
        assert_eq!((login.total(), reached.total()), (2, 3));
    }

    /// Between requests a connection holds no client, and so none of its queues.
    #[tokio::test]
    async fn a_connections_pods_hold_no_client_between_requests() {
        let (client, _) = shared(true);
        let tasks = || {
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
        };
        let before = tasks();
        let pods = PodsApi::counted(&client, Requests::default(), "ns");
        pods.pods().get("p").await.unwrap();
        // The request's client ends its queue's task once dropped.
        for _ in 0..1000 {
            if tasks() == before {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(tasks(), before, "a client outlived its request");
        // Held until here: what it holds is what was measured.
        drop(pods);
    }

    #[test]
    fn kinds_come_from_the_method_and_the_path() {
        let kind = |method: Method, uri: &str| kind_of(&method, &uri.parse().unwrap());
        let pods = "/api/v1/namespaces/sshpod-guests/pods";
        assert_eq!(kind(Method::POST, pods), "create pods");
        assert_eq!(
            kind(Method::GET, &format!("{pods}?labelSelector=a%3Db")),
            "list pods"
        );
        assert_eq!(
            kind(Method::GET, &format!("{pods}?fieldSelector=x&watch=true")),
            "watch pods"
        );
        assert_eq!(kind(Method::GET, &format!("{pods}/p1")), "get pods");
        assert_eq!(kind(Method::DELETE, &format!("{pods}/p1")), "delete pods");
        assert_eq!(
            kind(Method::GET, &format!("{pods}/p1/exec?command=sh")),
            "exec pods"
        );
        assert_eq!(
            kind(Method::POST, &format!("{pods}/p1/portforward")),
            "portforward pods"
        );
        assert_eq!(
            kind(
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/x/leases/l"
            ),
            "update leases"
        );
        assert_eq!(kind(Method::GET, "/version"), "other");
    }
}
