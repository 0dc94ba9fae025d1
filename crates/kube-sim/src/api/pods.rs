//! Pods: create (validation, defaults, generateName), get, list/watch, delete with a grace
//! period (MODIFIED with deletionTimestamp, then DELETED once the containers are gone).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::meta::{parse_body, prepare};
use super::pod_spec::{apply_defaults, validate};
use super::status::{json_response, ApiError};
use crate::app::App;
use crate::query::Params;
use crate::store::{Key, Kind};

/// 404 unless the namespace exists; 403 while it is being deleted (for creations).
pub fn require_namespace(app: &App, ns: &str) -> Result<(), ApiError> {
    match app.store.get(&Key::new(Kind::Namespace, "", ns)) {
        Some(n) if n["metadata"]["deletionTimestamp"].is_string() => {
            Err(ApiError::Forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            )))
        }
        Some(_) => Ok(()),
        None => Err(ApiError::not_found("namespaces", ns)),
    }
}

/// The stored pod, or 404.
pub fn get_pod(app: &App, ns: &str, name: &str) -> Result<Value, ApiError> {
    app.store
        .get(&Key::new(Kind::Pod, ns, name))
        .ok_or_else(|| ApiError::not_found("pods", name))
}

pub async fn create(
    State(app): State<App>,
    Path(ns): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let pod = parse_body(&body, "Pod")?;
    let dry_run = Params::parse(q.as_deref()).get("dryRun").is_some();
    let stored = create_pod(&app, &ns, pod, dry_run)?;
    Ok(json_response(StatusCode::CREATED, &stored))
}

/// Admits, stores and starts a pod (unless `dry_run`); shared with the Deployment controller.
pub fn create_pod(app: &App, ns: &str, mut pod: Value, dry_run: bool) -> Result<Value, ApiError> {
    require_namespace(app, ns)?;
    let name = prepare(&mut pod, Kind::Pod, Some(ns), true)?;
    let causes = validate(&pod);
    if !causes.is_empty() {
        return Err(ApiError::invalid_causes(Kind::Pod, &name, causes));
    }
    admit_service_account(app, ns, &name, &mut pod)?;
    apply_defaults(&mut pod, &app.kubelet.node_name);
    if dry_run {
        return Ok(pod);
    }
    let key = Key::new(Kind::Pod, ns, &name);
    let stored = app
        .store
        .create(key.clone(), pod)
        .ok_or_else(|| ApiError::already_exists(Kind::Pod, &name))?;
    app.kubelet.start(key, stored.clone());
    Ok(stored)
}

/// Where Kubernetes mounts a pod's service-account credentials.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The ServiceAccount admission plugin: a named account must exist (403 otherwise); unless
/// `automountServiceAccountToken` is false (pod, else account), the pod gets the projected
/// `kube-api-access-*` volume (token, `ca.crt`, namespace) mounted in every container. The
/// `default` account is not created by kube-sim: a pod that uses it runs without credentials.
fn admit_service_account(app: &App, ns: &str, name: &str, pod: &mut Value) -> Result<(), ApiError> {
    let spec = &mut pod["spec"];
    let account = spec["serviceAccountName"]
        .as_str()
        .or_else(|| spec["serviceAccount"].as_str())
        .filter(|a| !a.is_empty())
        .unwrap_or("default")
        .to_owned();
    let Some(stored) = app.store.get(&Key::new(Kind::ServiceAccount, ns, &account)) else {
        if account == "default" {
            return Ok(());
        }
        return Err(ApiError::Forbidden(format!(
            "pods \"{name}\" is forbidden: error looking up service account {ns}/{account}: \
             serviceaccount \"{account}\" not found"
        )));
    };
    spec["serviceAccountName"] = json!(account);
    spec["serviceAccount"] = json!(account);
    let automount = spec["automountServiceAccountToken"]
        .as_bool()
        .or_else(|| stored["automountServiceAccountToken"].as_bool())
        .unwrap_or(true);
    let mounted = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["mountPath"].as_str() == Some(SERVICE_ACCOUNT_DIR))
        });
    if !automount || mounted {
        return Ok(());
    }
    let volume = crate::names::generate("kube-api-access-");
    if !spec["volumes"].is_array() {
        spec["volumes"] = json!([]);
    }
    if let Some(volumes) = spec["volumes"].as_array_mut() {
        volumes.push(json!({
            "name": volume,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ],
            },
        }));
    }
    for c in spec["containers"].as_array_mut().into_iter().flatten() {
        if !c["volumeMounts"].is_array() {
            c["volumeMounts"] = json!([]);
        }
        if let Some(mounts) = c["volumeMounts"].as_array_mut() {
            mounts
                .push(json!({"name": volume, "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": true}));
        }
    }
    Ok(())
}

/// gracePeriodSeconds from the DeleteOptions body, else the query.
fn requested_grace(body: &[u8], params: &Params) -> Result<Option<i64>, ApiError> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        let options: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
        if let Some(g) = options["gracePeriodSeconds"].as_i64() {
            return Ok(Some(g));
        }
        if options
            .get("dryRun")
            .is_some_and(|d| d.as_array().is_some_and(|a| !a.is_empty()))
        {
            return Ok(Some(-1));
        }
    }
    match params.get("gracePeriodSeconds") {
        Some(g) => g
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds \"{g}\""))),
        None => Ok(None),
    }
}

/// The grace period the registry would use (`CheckGracefulDelete`).
pub fn grace_period(pod: &Value, requested: Option<i64>) -> i64 {
    let phase = pod["status"]["phase"].as_str().unwrap_or("");
    if pod["spec"]["nodeName"].as_str().unwrap_or("").is_empty()
        || phase == "Succeeded"
        || phase == "Failed"
    {
        return 0;
    }
    let grace = requested.unwrap_or_else(|| {
        pod["spec"]["terminationGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(30)
    });
    grace.max(0)
}

/// Deletes a pod; shared with namespace deletion.
pub fn delete_pod(
    app: &App,
    ns: &str,
    name: &str,
    requested: Option<i64>,
) -> Result<Value, ApiError> {
    let key = Key::new(Kind::Pod, ns, name);
    let pod = get_pod(app, ns, name)?;
    let grace = grace_period(&pod, requested);
    let already = pod["metadata"]["deletionTimestamp"].is_string();
    if grace == 0 {
        let last = app
            .store
            .remove(&key)
            .ok_or_else(|| ApiError::not_found("pods", name))?;
        app.kubelet.delete(key, 0, false);
        return Ok(last);
    }
    if already {
        return Ok(pod);
    }
    let at = (chrono::Utc::now() + chrono::Duration::seconds(grace))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let marked = app
        .store
        .update(&key, |p| {
            p["metadata"]["deletionTimestamp"] = json!(at);
            p["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        })
        .ok_or_else(|| ApiError::not_found("pods", name))?;
    app.kubelet.delete(key, grace, true);
    Ok(marked)
}

pub async fn delete(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    let requested = requested_grace(&body, &params)?;
    if requested == Some(-1) || params.get("dryRun").is_some() {
        return Ok(json_response(StatusCode::OK, &get_pod(&app, &ns, &name)?));
    }
    let object = delete_pod(&app, &ns, &name, requested)?;
    Ok(json_response(StatusCode::OK, &object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_periods() {
        let running = json!({"spec": {"nodeName": "n", "terminationGracePeriodSeconds": 30}, "status": {"phase": "Running"}});
        assert_eq!(grace_period(&running, None), 30);
        assert_eq!(grace_period(&running, Some(2)), 2);
        assert_eq!(grace_period(&running, Some(-5)), 0);
        let done = json!({"spec": {"nodeName": "n"}, "status": {"phase": "Succeeded"}});
        assert_eq!(grace_period(&done, Some(10)), 0);
    }

    #[test]
    fn delete_options() {
        let p = Params::parse(Some("gracePeriodSeconds=3"));
        assert_eq!(requested_grace(b"", &p).unwrap(), Some(3));
        assert_eq!(
            requested_grace(
                br#"{"gracePeriodSeconds":0,"propagationPolicy":"Background"}"#,
                &p
            )
            .unwrap(),
            Some(0)
        );
        assert_eq!(
            requested_grace(br#"{"propagationPolicy":"Background"}"#, &Params::default()).unwrap(),
            None
        );
    }
}
