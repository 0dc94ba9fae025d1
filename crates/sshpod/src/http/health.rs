//! Health and readiness: ContainerSSH's health endpoint (any path answers `ok` with 200 when
//! the server is ready, `not ok` with 503 otherwise), plus `/healthz` (the process answers) and
//! `/readyz` (ready, or why not) for Kubernetes probes.
//!
//! Ready means: the start-up orphan sweep is done, the server is not draining, and the
//! backend answers. [`Readiness`] is the handle the rest of the process sets.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::time::Instant;

/// How long a backend check's answer is reused: probes and scrapes cannot flood the backend.
const BACKEND_CHECK_REUSE: Duration = Duration::from_secs(2);
/// How long a backend check may take before it counts as failed.
const BACKEND_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Asks the backend whether it answers; the error says why not.
pub type BackendCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Whether the server should be sent new connections. Cheap to clone; clones share the state.
#[derive(Clone, Default)]
pub struct Readiness(Arc<Inner>);

#[derive(Default)]
struct Inner {
    swept: AtomicBool,
    draining: AtomicBool,
    backend: std::sync::OnceLock<BackendCheck>,
    /// The last backend check: when, and what it said.
    last: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("swept", &self.0.swept.load(Ordering::Relaxed))
            .field("draining", &self.0.draining.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Why the server is not ready.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// Start-up has not finished (the orphan sweep runs).
    #[error("starting: the start-up sweep has not finished")]
    Starting,
    /// The server is shutting down and takes no new connections.
    #[error("draining: the server is shutting down")]
    Draining,
    /// The backend does not answer.
    #[error("the backend does not answer: {0}")]
    Backend(String),
}

impl Readiness {
    /// Not ready until [`mark_swept`](Self::mark_swept).
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on the backend must answer `check` too (set once; later calls are ignored).
    pub fn set_backend_check(&self, check: BackendCheck) {
        let _ = self.0.backend.set(check);
    }

    /// The start-up sweep of orphans is done.
    pub fn mark_swept(&self) {
        self.0.swept.store(true, Ordering::Relaxed);
    }

    /// The server is shutting down: not ready from now on, whatever else says.
    pub fn set_draining(&self) {
        self.0.draining.store(true, Ordering::Relaxed);
    }

    /// Whether the server is ready, and if not, why.
    pub async fn check(&self) -> Result<(), NotReady> {
        if self.0.draining.load(Ordering::Relaxed) {
            return Err(NotReady::Draining);
        }
        if !self.0.swept.load(Ordering::Relaxed) {
            return Err(NotReady::Starting);
        }
        let Some(backend) = self.0.backend.get() else {
            return Ok(());
        };
        // One check at a time; the others wait for its answer.
        let mut last = self.0.last.lock().await;
        let fresh = last
            .as_ref()
            .filter(|(at, _)| at.elapsed() < BACKEND_CHECK_REUSE)
            .map(|(_, result)| result.clone());
        let result = match fresh {
            Some(result) => result,
            None => {
                let result = match tokio::time::timeout(BACKEND_CHECK_TIMEOUT, backend()).await {
                    Ok(result) => result,
                    Err(_) => Err(format!("no answer within {BACKEND_CHECK_TIMEOUT:?}")),
                };
                *last = Some((Instant::now(), result.clone()));
                result
            }
        };
        result.map_err(NotReady::Backend)
    }
}

/// `/healthz`, `/readyz`, and ContainerSSH's answer on every other path.
pub(crate) fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(alive))
        .route("/readyz", get(ready))
        .fallback(containerssh)
        .with_state(readiness)
}

async fn alive() -> &'static str {
    "ok\n"
}

async fn ready(State(readiness): State<Readiness>) -> Response {
    match readiness.check().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

/// ContainerSSH's health answer: `ok` or `not ok`, as text or, when the client asks for JSON,
/// as a JSON string.
async fn containerssh(State(readiness): State<Readiness>, headers: HeaderMap) -> Response {
    let (status, word) = match readiness.check().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ok"),
    };
    let json = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    if json {
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            format!("\"{word}\""),
        )
            .into_response()
    } else {
        (status, [(header::CONTENT_TYPE, "text/plain")], word).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend check that answers as `state` says.
    fn switchable_backend() -> (BackendCheck, Arc<std::sync::Mutex<Result<(), String>>>) {
        let state = Arc::new(std::sync::Mutex::new(Ok(())));
        let read = Arc::clone(&state);
        let check: BackendCheck = Arc::new(move || {
            let answer = read.lock().map(|s| s.clone()).unwrap_or(Ok(()));
            Box::pin(async move { answer })
        });
        (check, state)
    }

    async fn get(router: &Router, path: &str, accept: &str) -> (StatusCode, String) {
        crate::http::request(router, path, accept).await
    }

    #[tokio::test(start_paused = true)]
    async fn probes_answer_per_state() {
        let (backend, state) = switchable_backend();
        let readiness = Readiness::new();
        readiness.set_backend_check(backend);
        let router = router(readiness.clone());
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;

        // Starting: alive, not ready.
        assert_eq!(
            get(&router, "/healthz", "*/*").await,
            (StatusCode::OK, "ok\n".into())
        );
        assert_eq!(
            get(&router, "/readyz", "*/*").await,
            (
                unavailable,
                "not ready: starting: the start-up sweep has not finished\n".into()
            )
        );
        assert_eq!(
            get(&router, "/", "*/*").await,
            (unavailable, "not ok".into())
        );

        readiness.mark_swept();
        assert_eq!(
            get(&router, "/readyz", "*/*").await,
            (StatusCode::OK, "ready\n".into())
        );
        assert_eq!(
            get(&router, "/any/path", "*/*").await,
            (StatusCode::OK, "ok".into())
        );
        assert_eq!(
            get(&router, "/", "application/json").await,
            (StatusCode::OK, "\"ok\"".into())
        );

        // The backend stops answering: seen once the last answer is old.
        *state.lock().unwrap_or_else(|e| e.into_inner()) = Err("engine down".into());
        assert_eq!(get(&router, "/readyz", "*/*").await.0, StatusCode::OK);
        tokio::time::advance(BACKEND_CHECK_REUSE).await;
        assert_eq!(
            get(&router, "/readyz", "*/*").await,
            (
                unavailable,
                "not ready: the backend does not answer: engine down\n".into()
            )
        );
        *state.lock().unwrap_or_else(|e| e.into_inner()) = Ok(());
        tokio::time::advance(BACKEND_CHECK_REUSE).await;
        assert_eq!(get(&router, "/readyz", "*/*").await.0, StatusCode::OK);

        // Draining wins over everything, and is for good.
        readiness.set_draining();
        assert_eq!(
            get(&router, "/readyz", "*/*").await,
            (
                unavailable,
                "not ready: draining: the server is shutting down\n".into()
            )
        );
        assert_eq!(
            get(&router, "/", "application/json").await,
            (unavailable, "\"not ok\"".into())
        );
        assert_eq!(get(&router, "/healthz", "*/*").await.0, StatusCode::OK);
    }
}
