//! The HTTP API: the routes kube-sim serves, behind authentication and authorization.

pub mod discovery;
pub mod list;
pub mod logs;
pub mod meta;
pub mod namespaces;
pub mod pod_spec;
pub mod pods;
pub mod pvcs;
pub mod status;
pub mod table;
pub mod watch;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;

use crate::app::App;
use crate::auth::{self, Authenticator};
use crate::ws;

/// Every route, wrapped in the auth middleware.
pub fn router(app: App, auth: Arc<Authenticator>) -> Router {
    Router::new()
        .route("/version", get(discovery::version))
        .route("/healthz", get(discovery::healthz))
        .route("/readyz", get(discovery::healthz))
        .route("/livez", get(discovery::healthz))
        .route("/api", get(discovery::api))
        .route("/apis", get(discovery::apis))
        .route("/api/v1", get(discovery::api_v1))
        .route("/openapi/v3", get(discovery::openapi_v3))
        .route("/openapi/v3/api/v1", get(discovery::openapi_v3_api_v1))
        .route(
            "/api/v1/namespaces",
            get(namespaces::list).post(namespaces::create),
        )
        .route(
            "/api/v1/namespaces/{name}",
            get(namespaces::get).delete(namespaces::delete),
        )
        .route("/api/v1/pods", get(pods::list_all))
        .route("/api/v1/persistentvolumeclaims", get(pvcs::list_all))
        .route(
            "/api/v1/namespaces/{ns}/pods",
            get(pods::list).post(pods::create),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            get(pods::get).delete(pods::delete),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/exec",
            get(ws::exec::exec).post(ws::exec::exec),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/attach",
            get(ws::exec::attach).post(ws::exec::attach),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/portforward",
            get(ws::portforward::portforward).post(ws::portforward::portforward),
        )
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(logs::logs))
        .route(
            "/api/v1/namespaces/{ns}/persistentvolumeclaims",
            get(pvcs::list).post(pvcs::create),
        )
        .route(
            "/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}",
            get(pvcs::get).delete(pvcs::delete),
        )
        .fallback(discovery::not_found)
        .method_not_allowed_fallback(|| async { status::ApiError::MethodNotAllowed })
        .with_state(app)
        .layer(axum::middleware::from_fn_with_state(auth, auth::middleware))
}
