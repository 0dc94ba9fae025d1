//! The recordings page: an HTTP(S) server that lists recordings and plays their terminal
//! sessions in the browser with asciinema-player, the event log beside the player.
//!
//! `mod.rs` binds and serves (plain HTTP, or TLS with optional client certificates, through
//! `crate::http`); `auth.rs` decides who gets in (never everyone); `api.rs` answers the page's
//! requests from a [`Store`], through `listing.rs` and `log.rs`; `page.rs` serves the page, the
//! player's files and the security headers.
//!
//! Routes: `GET /` (the page, `/app.js`, `/app.css`), `POST /login`, `POST /logout`,
//! `GET /assets/{name}` (the player), and behind authentication `GET /api/recordings`,
//! `GET /api/recordings/{id}/events`, `GET /api/recordings/{id}/files/{name}`.

mod api;
mod auth;
mod listing;
mod log;
mod page;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{middleware, Router};
use sshpod_audit::store::Store;
use sshpod_config::AuditWebConfig;
use sshpod_core::Lifecycle;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::http::tls::{self, ServerTls};

use auth::Access;
use listing::Summaries;

/// The largest request body (the login form).
const MAX_BODY_BYTES: usize = 4096;

/// What every request shares.
#[derive(Clone)]
struct AppState {
    store: Arc<dyn Store>,
    access: Arc<Access>,
    assets: Arc<PathBuf>,
    summaries: Arc<Summaries>,
}

/// A recordings page that is serving.
#[derive(Debug, Clone)]
pub struct BoundWeb {
    local_addr: SocketAddr,
    tls: bool,
}

impl BoundWeb {
    /// The address it listens on (with the port chosen when `listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Its URL (`http://` or `https://`).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/", self.local_addr)
    }
}

/// Serves the recordings of `store` on `config.listen` until `lifecycle` is cancelled (its
/// connections run on a child of it). Refuses to start with neither a token nor client
/// certificates, or with half a TLS configuration. Without the player's script in
/// `config.assets` it starts with a warning: the page lists recordings and shows their events
/// but cannot play them.
pub async fn serve(
    config: &AuditWebConfig,
    store: Arc<dyn Store>,
    lifecycle: &Lifecycle,
) -> Result<BoundWeb> {
    if config.listen.is_empty() {
        bail!("audit.web.listen is empty: no address to serve the recordings page on");
    }
    let tls = tls::server_config(&ServerTls {
        section: "audit.web",
        cert: &config.cert,
        key: &config.key,
        clientcacert: &config.clientcacert,
        tls_version: None,
        curves: &[],
        cipher: &[],
    })?;
    let access = Access::from_config(config, tls.is_some())?;
    let player = config.assets.join(page::PLAYER_SCRIPT);
    if !player.is_file() {
        tracing::warn!(
            path = %player.display(),
            "recordings page: the player is missing (audit.web.assets), recordings are listed but not played"
        );
    }
    let listener = TcpListener::bind(listen_address(&config.listen).as_ref())
        .await
        .with_context(|| format!("listening on {} (audit.web.listen)", config.listen))?;
    let local_addr = listener
        .local_addr()
        .context("reading the recordings page's address")?;
    let bound = BoundWeb {
        local_addr,
        tls: tls.is_some(),
    };
    let state = AppState {
        store,
        access: Arc::new(access),
        assets: Arc::new(config.assets.clone()),
        summaries: Arc::default(),
    };
    let connections = lifecycle.child();
    lifecycle.spawn(crate::http::serve::accept(
        listener,
        tls.map(TlsAcceptor::from),
        router(state),
        connections,
        "recordings page",
    ));
    tracing::info!(
        code = crate::log_codes::RECORDINGS_PAGE,
        url = %bound.url(),
        "recordings page listening"
    );
    Ok(bound)
}

/// `listen` as the socket API takes it: `:8443` (ContainerSSH's way of saying every
/// interface) becomes `0.0.0.0:8443`; `host:port` is resolved by the bind.
fn listen_address(listen: &str) -> std::borrow::Cow<'_, str> {
    if listen.starts_with(':') {
        format!("0.0.0.0{listen}").into()
    } else {
        listen.into()
    }
}

/// The page's routes.
fn router(state: AppState) -> Router {
    let recordings = Router::new()
        .route("/api/recordings", get(api::list))
        .route("/api/recordings/{id}/events", get(api::events))
        .route("/api/recordings/{id}/files/{name}", get(api::file))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require));
    Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/app.css", get(page::style))
        .route("/assets/{name}", get(page::asset))
        .route("/login", post(auth::login))
        .route("/logout", post(auth::logout))
        .merge(recordings)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::map_response(page::secure))
        .with_state(state)
}

#[cfg(test)]
mod tests;
