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

/// 404 unless the namespace exists.
pub fn require_namespace(app: &App, ns: &str) -> Result<(), ApiError> {
    match app.store.get(&Key::new(Kind::Namespace, "", ns)) {
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
    let mut pod = parse_body(&body, "Pod")?;
    require_namespace(&app, &ns)?;
    let name = prepare(&mut pod, Kind::Pod, Some(&ns), true)?;
    let causes = validate(&pod);
    if !causes.is_empty() {
        return Err(ApiError::invalid_causes(Kind::Pod, &name, causes));
    }
    apply_defaults(&mut pod, &app.kubelet.node_name);
    if Params::parse(q.as_deref()).get("dryRun").is_some() {
        return Ok(json_response(StatusCode::CREATED, &pod));
    }
    let key = Key::new(Kind::Pod, &ns, &name);
    let stored = app
        .store
        .create(key.clone(), pod)
        .ok_or_else(|| ApiError::already_exists(Kind::Pod, &name))?;
    app.kubelet.start(key, stored.clone());
    Ok(json_response(StatusCode::CREATED, &stored))
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
