//! The engine requests the process makes, by kind, for the metrics endpoint
//! (`sshpod_backend_api_requests_total{backend="docker",kind}`). Counted as bollard builds each
//! request, so every call site is counted without wrapping it.

use std::sync::atomic::{AtomicU64, Ordering};

use http::Method;

/// The kinds [`EngineRequests`] counts, as `verb object` (the last one catches the rest).
pub const ENGINE_REQUEST_KINDS: &[&str] = &[
    "create containers",
    "start containers",
    "inspect containers",
    "list containers",
    "wait containers",
    "attach containers",
    "kill containers",
    "remove containers",
    "archive containers",
    "create exec",
    "start exec",
    "inspect exec",
    "resize exec",
    "inspect images",
    "pull images",
    "ping",
    "version",
    "other",
];

/// The process's engine requests by kind. Shared; cheap to read.
#[derive(Debug, Default)]
pub struct EngineRequests([AtomicU64; ENGINE_REQUEST_KINDS.len()]);

impl EngineRequests {
    /// Each kind of [`ENGINE_REQUEST_KINDS`] with its count so far.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        ENGINE_REQUEST_KINDS
            .iter()
            .zip(&self.0)
            .map(|(kind, count)| (*kind, count.load(Ordering::Relaxed)))
            .collect()
    }

    pub(crate) fn count(&self, method: &Method, path: &str) {
        let kind = kind_of(method, path);
        let index = ENGINE_REQUEST_KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(ENGINE_REQUEST_KINDS.len() - 1);
        if let Some(count) = self.0.get(index) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The kind of a Docker API request from its method and path (`/v1.41/containers/ID/start`).
fn kind_of(method: &Method, path: &str) -> &'static str {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // The API version prefix is optional.
    let rest = match segments.first() {
        Some(first)
            if first.starts_with('v') && first[1..].starts_with(|c: char| c.is_ascii_digit()) =>
        {
            &segments[1..]
        }
        _ => &segments[..],
    };
    match (method, rest) {
        (_, ["_ping"]) => "ping",
        (_, ["version"]) => "version",
        (&Method::POST, ["containers", "create"]) => "create containers",
        (&Method::GET, ["containers", "json"]) => "list containers",
        (&Method::POST, ["containers", _, "start"]) => "start containers",
        (&Method::GET, ["containers", _, "json"]) => "inspect containers",
        (&Method::POST, ["containers", _, "wait"]) => "wait containers",
        (&Method::POST, ["containers", _, "attach"]) => "attach containers",
        (&Method::POST, ["containers", _, "kill"]) => "kill containers",
        (&Method::DELETE, ["containers", _]) => "remove containers",
        (_, ["containers", _, "archive"]) => "archive containers",
        (&Method::POST, ["containers", _, "exec"]) => "create exec",
        (&Method::POST, ["exec", _, "start"]) => "start exec",
        (&Method::GET, ["exec", _, "json"]) => "inspect exec",
        (&Method::POST, ["exec", _, "resize"]) => "resize exec",
        (&Method::GET, ["images", .., "json"]) => "inspect images",
        (&Method::POST, ["images", "create"]) => "pull images",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_what_they_ask_of_the_engine() {
        let requests = EngineRequests::default();
        requests.count(&Method::POST, "/v1.41/containers/create");
        requests.count(&Method::POST, "/v1.41/containers/abc/start");
        requests.count(&Method::POST, "/containers/abc/exec");
        requests.count(&Method::POST, "/v1.41/exec/e1/start");
        requests.count(&Method::POST, "/v1.41/exec/e1/start");
        requests.count(&Method::DELETE, "/v1.41/containers/abc");
        requests.count(&Method::GET, "/v1.41/images/sshpod-guest:latest/json");
        requests.count(&Method::GET, "/_ping");
        requests.count(&Method::GET, "/v1.41/networks");
        let counts: Vec<_> = requests
            .snapshot()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        assert_eq!(
            counts,
            [
                ("create containers", 1),
                ("start containers", 1),
                ("remove containers", 1),
                ("create exec", 1),
                ("start exec", 2),
                ("inspect images", 1),
                ("ping", 1),
                ("other", 1),
            ]
        );
    }
}
