//! The JSON API the page reads: the list of recordings, one recording's event log, and its
//! files. Every id and file name from a URL goes through
//! [`is_plain_name`](sshpod_audit::store::is_plain_name) before the store sees it, so no URL
//! reaches outside the recordings.

use std::io;

use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sshpod_audit::store::is_plain_name;

use super::listing::{EVENT_LOG, MAX_LOG_BYTES};
use super::log;
use super::AppState;

/// The most events sent for one recording; the response says when there were more.
pub(super) const MAX_EVENTS: usize = 100_000;

/// The largest file served (the store reads a file whole).
pub(super) const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Set (`true`) when the event log was cut at [`MAX_EVENTS`].
pub(super) const TRUNCATED: &str = "x-sshpod-truncated";

/// What a request can fail with: a status and a short message; the cause is logged, never sent.
#[derive(Debug)]
pub(super) enum ApiError {
    /// No such recording or file (or a name that cannot be one).
    NotFound,
    /// A file too large to serve.
    TooLarge,
    /// The store failed.
    Store(io::Error),
}

impl From<io::Error> for ApiError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => ApiError::NotFound,
            _ => ApiError::Store(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::NotFound => (StatusCode::NOT_FOUND, "no such recording or file"),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too large to serve here: use `sshpod audit export`",
            ),
            ApiError::Store(e) => {
                tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    "recordings page: reading the store"
                );
                (StatusCode::BAD_GATEWAY, "the recordings store failed")
            }
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// `GET /api/recordings`: every recording, newest first.
pub(super) async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let summaries = state.summaries.list(state.store.as_ref()).await?;
    Ok(Json(summaries).into_response())
}

/// The size of `name` in recording `id`, if both exist and are plain names.
async fn size_of(state: &AppState, id: &str, name: &str) -> Result<u64, ApiError> {
    if !is_plain_name(id) || !is_plain_name(name) {
        return Err(ApiError::NotFound);
    }
    let files = state.store.files(id).await?;
    files
        .iter()
        .find(|(file, _)| file == name)
        .map(|(_, size)| *size)
        .ok_or(ApiError::NotFound)
}

/// `GET /api/recordings/{id}/events`: the event log's lines as a JSON array (without their
/// chain links).
pub(super) async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if size_of(&state, &id, EVENT_LOG).await? > MAX_LOG_BYTES {
        return Err(ApiError::TooLarge);
    }
    let bytes = state.store.read(&id, EVENT_LOG).await?;
    let (events, truncated) = log::events(&bytes, MAX_EVENTS);
    let mut response = Json(events).into_response();
    if truncated {
        response.headers_mut().insert(
            HeaderName::from_static(TRUNCATED),
            HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// `GET /api/recordings/{id}/files/{name}`: one file, as a download.
pub(super) async fn file(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    if size_of(&state, &id, &name).await? > MAX_FILE_BYTES {
        return Err(ApiError::TooLarge);
    }
    let bytes = state.store.read(&id, &name).await?;
    // A plain name needs no quoting.
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    Ok((
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static(sshpod_audit::store::content_type(&name)),
            ),
            (CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}
