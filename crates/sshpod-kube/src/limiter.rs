//! `qps` and `burst` for the whole sshpod process: one token bucket, shared by every request
//! of the one Kubernetes client, as a tower layer.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tower::{Layer, Service};

/// A token bucket: `burst` tokens, refilled at `qps` per second.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    qps: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    pub(crate) fn new(qps: f32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            qps: f64::from(qps).max(f64::MIN_POSITIVE),
            burst,
            state: Mutex::new(BucketState {
                tokens: burst,
                updated: Instant::now(),
            }),
        }
    }

    /// Waits until a request may go out. Waiters are served in turn (the mutex is fair), so a
    /// burst of logins queues instead of failing.
    pub(crate) async fn acquire(&self) {
        let mut state = self.state.lock().await;
        loop {
            let now = Instant::now();
            let elapsed = now.duration_since(state.updated).as_secs_f64();
            state.tokens = (state.tokens + elapsed * self.qps).min(self.burst);
            state.updated = now;
            if state.tokens >= 1.0 {
                state.tokens -= 1.0;
                return;
            }
            let wait = (1.0 - state.tokens) / self.qps;
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}

/// The layer that puts every request through a shared [`TokenBucket`], or (None) lets it go
/// at once.
#[derive(Debug, Clone)]
pub(crate) struct RateLimitLayer {
    bucket: Option<Arc<TokenBucket>>,
}

impl RateLimitLayer {
    pub(crate) fn new(bucket: Option<Arc<TokenBucket>>) -> Self {
        Self { bucket }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimited {
            inner,
            bucket: self.bucket.clone(),
            pending: None,
            has_token: false,
        }
    }
}

/// A service whose calls each take a token first. The token is taken in `poll_ready`, so the
/// service stays usable behind kube's request buffer (which is what makes it shared).
pub(crate) struct RateLimited<S> {
    inner: S,
    bucket: Option<Arc<TokenBucket>>,
    /// A token being waited for.
    pending: Option<BoxFuture<'static, ()>>,
    /// A token taken and not yet spent on a call.
    has_token: bool,
}

impl<S, R> Service<R> for RateLimited<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if let (false, Some(bucket)) = (self.has_token, &self.bucket) {
            let pending = self.pending.get_or_insert_with(|| {
                let bucket = Arc::clone(bucket);
                Box::pin(async move { bucket.acquire().await })
            });
            if pending.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.pending = None;
            self.has_token = true;
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.has_token = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_qps() {
        let bucket = TokenBucket::new(2.0, 3);
        let start = Instant::now();
        for _ in 0..3 {
            bucket.acquire().await;
        }
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "the burst goes out at once"
        );
        bucket.acquire().await;
        bucket.acquire().await;
        let elapsed = start.elapsed().as_secs_f64();
        assert!(
            (0.99..1.01).contains(&elapsed),
            "two more at 2/s: {elapsed}"
        );
    }
}
