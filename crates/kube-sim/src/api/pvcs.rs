//! PersistentVolumeClaims, each backed by a Docker named volume: data outlives the pods that
//! mount it. Bound at once (there is one implicit storage class).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::meta::{parse_body, prepare};
use super::pods::require_namespace;
use super::status::{json_response, ApiError};
use crate::app::App;
use crate::store::{Key, Kind};

fn bind(pvc: &mut Value) {
    let uid = pvc["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let access = pvc["spec"]["accessModes"].clone();
    let storage = pvc["spec"]["resources"]["requests"]["storage"].clone();
    let spec = &mut pvc["spec"];
    if !spec.is_object() {
        *spec = json!({});
    }
    spec["volumeMode"] = spec
        .get("volumeMode")
        .cloned()
        .unwrap_or(json!("Filesystem"));
    spec["storageClassName"] = spec
        .get("storageClassName")
        .cloned()
        .unwrap_or(json!("standard"));
    spec["volumeName"] = json!(format!("pvc-{uid}"));
    pvc["status"] =
        json!({"phase": "Bound", "accessModes": access, "capacity": {"storage": storage}});
}

pub async fn create(
    State(app): State<App>,
    Path(ns): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut pvc = parse_body(&body, "PersistentVolumeClaim")?;
    require_namespace(&app, &ns)?;
    let name = prepare(&mut pvc, Kind::PersistentVolumeClaim, Some(&ns), true)?;
    if pvc["spec"]["resources"]["requests"]["storage"]
        .as_str()
        .is_none()
    {
        return Err(ApiError::invalid(
            Kind::PersistentVolumeClaim,
            &name,
            "spec.resources[storage]",
            "Required value",
        ));
    }
    if pvc["spec"]["accessModes"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        return Err(ApiError::invalid(
            Kind::PersistentVolumeClaim,
            &name,
            "spec.accessModes",
            "Required value: at least 1 access mode is required",
        ));
    }
    if let Some(map) = pvc["metadata"].as_object_mut() {
        map.insert(
            "finalizers".to_owned(),
            json!(["kubernetes.io/pvc-protection"]),
        );
    }
    bind(&mut pvc);
    let key = Key::new(Kind::PersistentVolumeClaim, &ns, &name);
    if app.store.get(&key).is_some() {
        return Err(ApiError::already_exists(Kind::PersistentVolumeClaim, &name));
    }
    app.kubelet
        .create_pvc_volume(&ns, &name)
        .await
        .map_err(ApiError::internal)?;
    let stored = app
        .store
        .create(key, pvc)
        .ok_or_else(|| ApiError::already_exists(Kind::PersistentVolumeClaim, &name))?;
    Ok(json_response(StatusCode::CREATED, &stored))
}

/// Removes a PVC and (now or once unused) its volume.
pub async fn delete_pvc(app: &App, ns: &str, name: &str) -> Result<Value, ApiError> {
    let last = app
        .store
        .remove(&Key::new(Kind::PersistentVolumeClaim, ns, name))
        .ok_or_else(|| ApiError::not_found("persistentvolumeclaims", name))?;
    app.kubelet.remove_pvc_volume(ns, name).await;
    Ok(last)
}

pub async fn delete(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let last = delete_pvc(&app, &ns, &name).await?;
    Ok(json_response(StatusCode::OK, &last))
}
