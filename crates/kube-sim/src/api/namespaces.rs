//! Namespaces: create, get, list/watch, delete (which deletes the pods, PVCs and leases inside).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::list::{get_one, list_or_watch};
use super::meta::{parse_body, prepare};
use super::status::{json_response, ApiError};
use crate::app::App;
use crate::query::Params;
use crate::store::{Key, Kind};

/// A namespace object as the apiserver stores it.
pub fn make(name: &str) -> Result<Value, ApiError> {
    let mut ns = json!({"metadata": {"name": name}});
    prepare(&mut ns, Kind::Namespace, None, false)?;
    finish(&mut ns, name);
    Ok(ns)
}

fn finish(ns: &mut Value, name: &str) {
    ns["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
    ns["spec"] = json!({"finalizers": ["kubernetes"]});
    ns["status"] = json!({"phase": "Active"});
}

pub async fn list(
    State(app): State<App>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    list_or_watch(
        &app,
        Kind::Namespace,
        None,
        &Params::parse(q.as_deref()),
        &headers,
    )
}

pub async fn get(
    State(app): State<App>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let ns = app
        .store
        .get(&Key::new(Kind::Namespace, "", &name))
        .ok_or_else(|| ApiError::not_found("namespaces", &name))?;
    Ok(get_one(ns, Kind::Namespace, app.store.rv(), &headers))
}

pub async fn create(State(app): State<App>, body: Bytes) -> Result<Response, ApiError> {
    let mut ns = parse_body(&body, "Namespace")?;
    let name = prepare(&mut ns, Kind::Namespace, None, false)?;
    finish(&mut ns, &name);
    let stored = app
        .store
        .create(Key::new(Kind::Namespace, "", &name), ns)
        .ok_or_else(|| ApiError::already_exists(Kind::Namespace, &name))?;
    Ok(json_response(StatusCode::CREATED, &stored))
}

pub async fn delete(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let key = Key::new(Kind::Namespace, "", &name);
    if app.store.get(&key).is_none() {
        return Err(ApiError::not_found("namespaces", &name));
    }
    if matches!(name.as_str(), "default" | "kube-system" | "kube-public") {
        return Err(ApiError::Forbidden(format!(
            "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
        )));
    }
    let (pods, _) = app.store.list(Kind::Pod, Some(&name));
    for pod in pods {
        if let Some(p) = pod["metadata"]["name"].as_str() {
            let _ = super::pods::delete_pod(&app, &name, p, Some(0));
        }
    }
    let (pvcs, _) = app.store.list(Kind::PersistentVolumeClaim, Some(&name));
    for pvc in pvcs {
        if let Some(p) = pvc["metadata"]["name"].as_str() {
            let _ = super::pvcs::delete_pvc(&app, &name, p).await;
        }
    }
    let (leases, _) = app.store.list(Kind::Lease, Some(&name));
    for lease in leases {
        if let Some(l) = lease["metadata"]["name"].as_str() {
            app.store.remove(&Key::new(Kind::Lease, &name, l));
        }
    }
    let mut last = app
        .store
        .remove(&key)
        .ok_or_else(|| ApiError::not_found("namespaces", &name))?;
    last["status"]["phase"] = json!("Terminating");
    Ok(json_response(StatusCode::OK, &last))
}
