//! The page itself (our HTML, script and style, compiled in), the player's files from
//! `audit.web.assets`, and the headers every response carries.
//!
//! The page runs no inline script and loads nothing from elsewhere, which lets the
//! Content-Security-Policy forbid both: recordings hold what attackers typed, and the page
//! shows it, so a string that slipped into the DOM as markup must still not run.

use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sshpod_audit::store::is_plain_name;

use super::AppState;

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/app.css");

/// The player's script: what the page loads from `/assets/`.
pub(super) const PLAYER_SCRIPT: &str = "asciinema-player.min.js";

/// The largest asset served (the player's script is a few hundred KiB).
const MAX_ASSET_BYTES: u64 = 16 * 1024 * 1024;

/// Scripts and styles from this origin only, nothing inline, no frames, no plugins. The player
/// runs its terminal emulator as WebAssembly compiled from bytes in its script, which
/// `'wasm-unsafe-eval'` allows (it does not allow JavaScript `eval`).
pub(super) const POLICY: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn text(content_type: &'static str, body: &'static str) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// `GET /`.
pub(super) async fn index() -> Response {
    text("text/html; charset=utf-8", INDEX)
}

/// `GET /app.js`.
pub(super) async fn script() -> Response {
    text("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /app.css`.
pub(super) async fn style() -> Response {
    text("text/css; charset=utf-8", STYLE)
}

fn asset_type(name: &str) -> &'static str {
    match Path::new(name).extension().and_then(|e| e.to_str()) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// `GET /assets/{name}`: a file of the player's directory (its published script and style,
/// the same for everyone, so it needs no login).
pub(super) async fn asset(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    if !is_plain_name(&name) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = state.assets.join(&name);
    let file = match tokio::fs::metadata(&path).await {
        Ok(m) if m.is_file() && m.len() <= MAX_ASSET_BYTES => tokio::fs::read(&path).await,
        Ok(_) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => Err(e),
    };
    match file {
        Ok(bytes) => (
            [(CONTENT_TYPE, HeaderValue::from_static(asset_type(&name)))],
            bytes,
        )
            .into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = &e as &dyn std::error::Error, "reading a player asset");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Adds the security headers to every response (and `no-store`: recordings are not for caches).
pub(super) async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let fixed: [(HeaderName, &'static str); 6] = [
        (CONTENT_SECURITY_POLICY, POLICY),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "no-referrer"),
        (X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
