//! The HTTP API: the routes kube-sim serves, behind authentication and authorization.

pub mod discovery;
pub mod lease_spec;
pub mod leases;
pub mod list;
pub mod logs;
pub mod meta;
pub mod namespaces;
pub mod objects;
pub mod pod_spec;
pub mod pods;
pub mod protobuf;
pub mod pvcs;
pub mod replace;
pub mod status;
pub mod table;
pub mod watch;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;

use crate::app::App;
use crate::auth::{self, Authenticator};
use crate::store::Kind;
use crate::ws;

/// The collections and objects of the kinds `api::objects` handles, in and across namespaces.
fn stored_kinds() -> Router<App> {
    let mut router = Router::new();
    for kind in [
        Kind::ConfigMap,
        Kind::Secret,
        Kind::ServiceAccount,
        Kind::Service,
        Kind::Deployment,
        Kind::Role,
        Kind::RoleBinding,
        Kind::NetworkPolicy,
        Kind::PodDisruptionBudget,
    ] {
        let base = match kind.group() {
            "" => "/api/v1".to_owned(),
            group => format!("/apis/{group}/v1"),
        };
        let resource = kind.resource();
        router = router
            .route(&format!("{base}/{resource}"), list::across_namespaces(kind))
            .route(
                &format!("{base}/namespaces/{{ns}}/{resource}"),
                objects::collection(kind),
            )
            .route(
                &format!("{base}/namespaces/{{ns}}/{resource}/{{name}}"),
                objects::item(kind),
            );
    }
    router
}

/// Every route, wrapped in the auth middleware.
pub fn router(app: App, auth: Arc<Authenticator>) -> Router {
    Router::new()
        .route("/version", get(discovery::version))
        .route("/healthz", get(discovery::healthz))
        .route("/readyz", get(discovery::healthz))
        .route("/livez", get(discovery::healthz))
        // Discovery answers with or without the trailing slash (the Python client sends it).
        .route("/api", get(discovery::api))
        .route("/api/", get(discovery::api))
        .route("/apis", get(discovery::apis))
        .route("/apis/", get(discovery::apis))
        .route("/api/v1", get(discovery::api_v1))
        .route("/api/v1/", get(discovery::api_v1))
        .route("/openapi/v3", get(discovery::openapi_v3))
        .route("/openapi/v3/api/v1", get(discovery::openapi_v3_api_v1))
        .route(
            "/openapi/v3/apis/{group}/v1",
            get(discovery::openapi_v3_group),
        )
        .route("/apis/{group}", get(discovery::group))
        .route("/apis/{group}/", get(discovery::group))
        .route("/apis/{group}/v1", get(discovery::group_v1))
        .route("/apis/{group}/v1/", get(discovery::group_v1))
        .route(
            "/api/v1/namespaces",
            get(namespaces::list).post(namespaces::create),
        )
        .route(
            "/api/v1/namespaces/{name}",
            get(namespaces::get)
                .delete(namespaces::delete)
                .patch(objects::not_emulated)
                .put(objects::not_emulated),
        )
        .route("/api/v1/pods", list::across_namespaces(Kind::Pod))
        .route(
            "/api/v1/persistentvolumeclaims",
            list::across_namespaces(Kind::PersistentVolumeClaim),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods",
            list::in_namespace(Kind::Pod).post(pods::create),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            list::named(Kind::Pod)
                .delete(pods::delete)
                .patch(objects::not_emulated)
                .put(objects::not_emulated),
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
            list::in_namespace(Kind::PersistentVolumeClaim).post(pvcs::create),
        )
        .route(
            "/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}",
            list::named(Kind::PersistentVolumeClaim).delete(pvcs::delete),
        )
        .route(
            "/apis/coordination.k8s.io/v1/leases",
            list::across_namespaces(Kind::Lease),
        )
        .route(
            "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
            list::in_namespace(Kind::Lease).post(leases::create),
        )
        .route(
            "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}",
            list::named(Kind::Lease)
                .put(leases::replace)
                .delete(leases::delete),
        )
        .merge(stored_kinds())
        .fallback(discovery::not_found)
        .method_not_allowed_fallback(|| async { status::ApiError::MethodNotAllowed })
        .with_state(app)
        .layer(axum::middleware::from_fn_with_state(auth, auth::middleware))
}
