//! Namespaces: create (with the `kube-root-ca.crt` ConfigMap every namespace gets), get,
//! list/watch, delete (which deletes every object inside).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::list::{get_one, list_or_watch};
use super::meta::{parse_body, prepare};
use super::status::{json_response, ApiError};
use crate::app::App;
use crate::kubelet::status::now;
use crate::query::Params;
use crate::store::{Key, Kind, Store};

/// Publishes the cluster CA in `namespace` as the `kube-root-ca.crt` ConfigMap, as the
/// apiserver's root-CA publisher does; service-account volumes take `ca.crt` from it.
pub fn publish_root_ca(store: &Store, namespace: &str, ca_pem: &str) {
    let mut cm = json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": ca_pem}});
    if prepare(&mut cm, Kind::ConfigMap, Some(namespace), true).is_ok() {
        store.create(Key::new(Kind::ConfigMap, namespace, "kube-root-ca.crt"), cm);
    }
}

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

pub async fn create(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = super::protobuf::json_body("Namespace", &headers, body)?;
    let mut ns = parse_body(&body, "Namespace")?;
    let name = prepare(&mut ns, Kind::Namespace, None, false)?;
    finish(&mut ns, &name);
    let stored = app
        .store
        .create(Key::new(Kind::Namespace, "", &name), ns)
        .ok_or_else(|| ApiError::already_exists(Kind::Namespace, &name))?;
    publish_root_ca(&app.store, &name, &app.ca_pem);
    Ok(json_response(StatusCode::CREATED, &stored))
}

/// How long the namespace controller takes to start emptying a namespace being deleted: a
/// client deleting a namespace and the objects in it together (`kubectl delete -k`) finds
/// them still there, as it would on a cluster, where the controller first runs discovery.
const NAMESPACE_CONTROLLER_DELAY: Duration = Duration::from_secs(2);

/// How long the namespace controller waits for the pods' grace periods before removing the
/// namespace anyway.
const POD_WAIT: Duration = Duration::from_secs(120);

/// Deletion is the apiserver's two steps: the namespace is marked (`deletionTimestamp`,
/// phase `Terminating`; new content is refused with 403) and answered; then the namespace
/// controller deletes everything inside (Deployments first, pods with their grace periods) and
/// removes the namespace once its pods are gone.
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
    let mut already = false;
    let marked = app
        .store
        .update(&key, |ns| {
            already = ns["metadata"]["deletionTimestamp"].is_string();
            if !already {
                ns["metadata"]["deletionTimestamp"] = json!(now());
                ns["status"]["phase"] = json!("Terminating");
            }
        })
        .ok_or_else(|| ApiError::not_found("namespaces", &name))?;
    if !already {
        let tasks = app.tasks();
        let app = app.clone();
        tasks.spawn(async move {
            tokio::time::sleep(NAMESPACE_CONTROLLER_DELAY).await;
            empty_and_remove(&app, &name).await;
        });
    }
    Ok(json_response(StatusCode::OK, &marked))
}

/// The namespace controller's work for one namespace being deleted.
async fn empty_and_remove(app: &App, name: &str) {
    for kind in Kind::NAMESPACED {
        let (objects, _) = app.store.list(kind, Some(name));
        for object in objects {
            let Some(o) = object["metadata"]["name"].as_str() else {
                continue;
            };
            match kind {
                Kind::Pod => drop(super::pods::delete_pod(app, name, o, None)),
                Kind::PersistentVolumeClaim => {
                    drop(super::pvcs::delete_pvc(app, name, o).await);
                }
                _ => drop(super::objects::delete(app, kind, name, o)),
            }
        }
    }
    let deadline = tokio::time::Instant::now() + POD_WAIT;
    while !app.store.list(Kind::Pod, Some(name)).0.is_empty()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Anything created meanwhile (a lease renewed by a pod shutting down) goes too.
    for kind in Kind::NAMESPACED {
        for object in app.store.list(kind, Some(name)).0 {
            if let Some(o) = object["metadata"]["name"].as_str() {
                app.store.remove(&Key::new(kind, name, o));
            }
        }
    }
    app.store.remove(&Key::new(Kind::Namespace, "", name));
}
