//! Watch streams: newline-delimited JSON events, resourceVersion semantics (unset or "0":
//! synthetic ADDED first; "n": changes after n; too old: one ERROR 410 event), selector
//! transitions, bookmarks when asked, and `sendInitialEvents`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::list::Filter;
use super::status::ApiError;
use crate::app::App;
use crate::query::Params;
use crate::store::{Event, EventType, Kind};

fn line(kind: &str, object: &Value) -> Bytes {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

fn bookmark(kind: Kind, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"kind": kind.kind(), "apiVersion": kind.api_version(), "metadata": meta}),
    )
}

/// What a watcher with `filter` sees of a store event, if anything.
pub fn translate(filter: &Filter, event: &Event) -> Option<(EventType, Value)> {
    if event.key.kind != filter.kind {
        return None;
    }
    let old_matches = event.old.as_ref().is_some_and(|o| filter.matches(o));
    let new_matches = filter.matches(&event.new);
    match event.kind {
        EventType::Added if new_matches => Some((EventType::Added, event.new.clone())),
        EventType::Modified => match (old_matches, new_matches) {
            (true, true) => Some((EventType::Modified, event.new.clone())),
            (false, true) => Some((EventType::Added, event.new.clone())),
            (true, false) => Some((EventType::Deleted, event.new.clone())),
            (false, false) => None,
        },
        EventType::Deleted if old_matches || new_matches => {
            Some((EventType::Deleted, event.new.clone()))
        }
        _ => None,
    }
}

fn parse_rv(value: Option<&str>) -> Result<Option<u64>, ApiError> {
    match value {
        None | Some("") | Some("0") => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version \"{v}\""))),
    }
}

/// Serves a watch of `filter` per the request's parameters.
pub fn serve(app: &App, filter: Filter, params: &Params) -> Result<Response, ApiError> {
    let bookmarks = params.flag("allowWatchBookmarks");
    let send_initial = params.flag("sendInitialEvents");
    if send_initial && !bookmarks {
        return Err(ApiError::bad_request(
            "sendInitialEvents requires allowWatchBookmarks=true",
        ));
    }
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let requested = parse_rv(params.get("resourceVersion"))?;
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut first: Vec<Bytes> = Vec::new();
    let (mut last_rv, subscription, replay): (
        u64,
        broadcast::Receiver<Arc<Event>>,
        Vec<Arc<Event>>,
    ) = match (requested, send_initial) {
        (Some(rv), false) => match app.store.watch_from(rv) {
            Ok((past, sub)) => (rv, sub, past),
            Err(expired) => {
                let status = ApiError::Expired(format!(
                    "too old resource version: {} ({})",
                    expired.requested, expired.oldest
                ))
                .body();
                return Ok(stream_response(futures_util::stream::iter([Ok(line(
                    "ERROR", &status,
                ))])));
            }
        },
        _ => {
            let (items, rv, sub) = app.store.snapshot_and_subscribe(filter.kind);
            for item in items.iter().filter(|i| filter.matches(i)) {
                first.push(line("ADDED", item));
            }
            if send_initial {
                first.push(bookmark(filter.kind, rv, true));
            }
            (rv, sub, Vec::new())
        }
    };
    let interval = app.bookmark_interval;
    let shutdown = app.shutdown.clone();
    app.tracker.spawn(async move {
        let mut subscription = subscription;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        for bytes in first {
            if tx.send(bytes).await.is_err() {
                return;
            }
        }
        for event in replay {
            last_rv = event.rv;
            if let Some((kind, object)) = translate(&filter, &event) {
                if tx.send(line(kind.as_str(), &object)).await.is_err() {
                    return;
                }
            }
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tx.closed() => return,
                () = &mut deadline => {
                    if bookmarks {
                        let _ = tx.send(bookmark(filter.kind, last_rv, false)).await;
                    }
                    return;
                }
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(bookmark(filter.kind, last_rv, false)).await.is_err() {
                        return;
                    }
                }
                received = subscription.recv() => {
                    let Ok(event) = received else { return };
                    if event.rv <= last_rv {
                        continue;
                    }
                    last_rv = event.rv;
                    if let Some((kind, object)) = translate(&filter, &event) {
                        if tx.send(line(kind.as_str(), &object)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    Ok(stream_response(stream))
}

fn stream_response<S>(stream: S) -> Response
where
    S: futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
{
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selectors::{FieldSelector, LabelSelector};
    use crate::store::Key;

    fn pod(app: &str) -> Value {
        json!({"metadata": {"name": "p", "namespace": "default", "labels": {"app": app}}})
    }

    fn event(kind: EventType, old: Option<Value>, new: Value) -> Event {
        Event {
            key: Key::new(Kind::Pod, "default", "p"),
            rv: 5,
            kind,
            old,
            new,
        }
    }

    #[test]
    fn selector_transitions() {
        let filter = Filter {
            kind: Kind::Pod,
            namespace: None,
            labels: LabelSelector::parse("app=web").unwrap(),
            fields: FieldSelector::default(),
        };
        let t = |e: &Event| translate(&filter, e).map(|(k, _)| k);
        assert_eq!(
            t(&event(EventType::Added, None, pod("web"))),
            Some(EventType::Added)
        );
        assert_eq!(t(&event(EventType::Added, None, pod("db"))), None);
        assert_eq!(
            t(&event(EventType::Modified, Some(pod("db")), pod("web"))),
            Some(EventType::Added)
        );
        assert_eq!(
            t(&event(EventType::Modified, Some(pod("web")), pod("db"))),
            Some(EventType::Deleted)
        );
        assert_eq!(
            t(&event(EventType::Modified, Some(pod("web")), pod("web"))),
            Some(EventType::Modified)
        );
        assert_eq!(
            t(&event(EventType::Deleted, Some(pod("web")), pod("web"))),
            Some(EventType::Deleted)
        );
    }

    #[test]
    fn resource_versions() {
        assert_eq!(parse_rv(None), Ok(None));
        assert_eq!(parse_rv(Some("0")), Ok(None));
        assert_eq!(parse_rv(Some("12")), Ok(Some(12)));
        assert!(parse_rv(Some("x")).is_err());
    }
}
