//! How many API requests one connection cost, for the debug log at logout: the figure that
//! decides how many logins a cluster's API server can take.
//!
//! Counted where requests go out, by a tower layer, not by hand at each call: every
//! connection gets a client of its own whose stack is [`CountLayer`] over the process's
//! shared client (rate limit, token file, TLS connections and all). So the count is exact,
//! whatever the code in between does, and belongs to exactly one connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::{Request, Response};
use kube::client::{Body, ClientBuilder};
use kube::Client;
use tower::{Layer, Service};

/// A shared counter of API requests. Cheap to clone; clones count together.
#[derive(Debug, Clone, Default)]
pub(crate) struct Requests(Arc<AtomicUsize>);

impl Requests {
    pub(crate) fn total(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    fn count_one(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
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
        self.requests.count_one();
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
}
