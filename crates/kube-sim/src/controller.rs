//! The Deployment controller: keeps `spec.replicas` pods made from each Deployment's template
//! and reports them in its status; collects pods whose Deployment is gone (what the garbage
//! collector does for `propagationPolicy: Background`).
//!
//! There is no ReplicaSet in between: pods are owned by the Deployment itself (an
//! `ownerReference` of kind Deployment), named `<deployment>-<template hash>-<5 characters>`
//! and labelled `pod-template-hash` as a ReplicaSet's pods would be. A Deployment's template
//! cannot change after creation (no PUT or PATCH), so there are no rollouts.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::api::pod_spec;
use crate::api::pods::{create_pod, delete_pod};
use crate::app::App;
use crate::kubelet::status::now;
use crate::store::{Key, Kind};

/// How often every namespace is reconciled even without a change (retries failed creations).
const RESYNC: Duration = Duration::from_secs(2);

/// Validation (into `causes`, the apiserver's fields and messages) and defaults of a new
/// Deployment; returns warnings for the fields the controller does not apply.
pub fn settle_deployment(d: &mut Value, causes: &mut Vec<(String, String)>) -> Vec<String> {
    let mut warnings = Vec::new();
    if d["spec"]["paused"] == true {
        warnings.push("kube-sim does not pause Deployments: its pods are made anyway".to_owned());
    }
    if d["spec"]["minReadySeconds"].as_i64().is_some_and(|s| s > 0) {
        warnings.push(
            "kube-sim does not apply minReadySeconds: a ready pod counts as available at once"
                .to_owned(),
        );
    }
    if !d["spec"].is_object() {
        d["spec"] = json!({});
    }
    let spec = &mut d["spec"];
    match &spec["replicas"] {
        Value::Null => spec["replicas"] = json!(1),
        r if r.as_i64().is_some_and(|r| r >= 0) => {}
        r => causes.push((
            "spec.replicas".to_owned(),
            format!("Invalid value: {r}: must be greater than or equal to 0"),
        )),
    }
    let selector = spec["selector"]["matchLabels"].as_object().cloned();
    if spec["selector"]
        .get("matchExpressions")
        .is_some_and(|e| e.as_array().is_some_and(|a| !a.is_empty()))
    {
        causes.push((
            "spec.selector.matchExpressions".to_owned(),
            "Forbidden: kube-sim supports only matchLabels selectors".to_owned(),
        ));
    }
    match &selector {
        None => causes.push(("spec.selector".to_owned(), "Required value".to_owned())),
        Some(m) if m.is_empty() => causes.push((
            "spec.selector".to_owned(),
            "Invalid value: \"\": empty selector is invalid for deployment".to_owned(),
        )),
        Some(m) => {
            let labels = &spec["template"]["metadata"]["labels"];
            if m.iter().any(|(k, v)| labels[k] != *v) {
                causes.push((
                    "spec.template.metadata.labels".to_owned(),
                    format!("Invalid value: {labels}: `selector` does not match template `labels`"),
                ));
            }
        }
    }
    let template = json!({
        "metadata": spec["template"]["metadata"].clone(),
        "spec": spec["template"]["spec"].clone(),
    });
    for (field, message) in pod_spec::validate(&template) {
        causes.push((format!("spec.template.{field}"), message));
    }
    match spec["template"]["spec"]["restartPolicy"].as_str() {
        None => {
            if spec["template"]["spec"].is_object() {
                spec["template"]["spec"]["restartPolicy"] = json!("Always");
            }
        }
        Some("Always") => {}
        Some(other) => causes.push((
            "spec.template.spec.restartPolicy".to_owned(),
            format!("Unsupported value: \"{other}\": supported values: \"Always\""),
        )),
    }
    let defaults = [
        (
            "strategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
        ),
        ("revisionHistoryLimit", json!(10)),
        ("progressDeadlineSeconds", json!(600)),
    ];
    if let Some(map) = spec.as_object_mut() {
        for (key, value) in defaults {
            map.entry(key).or_insert(value);
        }
    }
    d["status"] = json!({});
    warnings
}

/// Reconciles Deployments whenever a Deployment or pod changes, and every [`RESYNC`].
pub async fn run(app: App, cancel: CancellationToken) {
    let (_, _, mut changes) = app.store.snapshot_and_subscribe(Kind::Deployment);
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        let mut dirty = BTreeSet::new();
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = resync.tick() => {
                let (deployments, _) = app.store.list(Kind::Deployment, None);
                let (pods, _) = app.store.list(Kind::Pod, None);
                for o in deployments.iter().chain(pods.iter().filter(|p| owner_uid(p).is_some())) {
                    dirty.insert(o["metadata"]["namespace"].as_str().unwrap_or_default().to_owned());
                }
            }
            event = changes.recv() => match event {
                Ok(e) => {
                    if matches!(e.key.kind, Kind::Deployment | Kind::Pod) {
                        dirty.insert(e.key.namespace.clone());
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
        }
        // Take whatever else is queued, so a burst of pod updates is one pass.
        while let Ok(e) = changes.try_recv() {
            if matches!(e.key.kind, Kind::Deployment | Kind::Pod) {
                dirty.insert(e.key.namespace.clone());
            }
        }
        for ns in dirty {
            reconcile(&app, &ns);
        }
    }
}

/// The uid of the Deployment that controls this pod, if one does.
fn owner_uid(pod: &Value) -> Option<&str> {
    pod["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == "Deployment" && r["controller"] == true)?["uid"]
        .as_str()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Counts as one of the replicas: not being deleted, not finished.
fn is_active(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null()
        && !matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        )
}

fn reconcile(app: &App, ns: &str) {
    let (deployments, _) = app.store.list(Kind::Deployment, Some(ns));
    let (pods, _) = app.store.list(Kind::Pod, Some(ns));
    // Pods whose Deployment is gone are collected in the background.
    for pod in &pods {
        let Some(uid) = owner_uid(pod) else { continue };
        if pod["metadata"]["deletionTimestamp"].is_null()
            && !deployments.iter().any(|d| d["metadata"]["uid"] == uid)
        {
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            let _ = delete_pod(app, ns, name, None);
        }
    }
    for d in &deployments {
        if d["metadata"]["deletionTimestamp"].is_string() {
            continue; // going away: its pods are the garbage collector's business
        }
        let uid = d["metadata"]["uid"].as_str().unwrap_or_default();
        let mut owned: Vec<&Value> = pods
            .iter()
            .filter(|p| owner_uid(p) == Some(uid) && is_active(p))
            .collect();
        let want = usize::try_from(d["spec"]["replicas"].as_i64().unwrap_or(1)).unwrap_or(0);
        let mut failure = None;
        for _ in owned.len()..want {
            if let Err(e) = create_pod(app, ns, pod_from_template(d), false) {
                failure = Some(e.to_string());
                break;
            }
        }
        if owned.len() > want {
            // The newest go first.
            owned.sort_by_key(|p| p["metadata"]["creationTimestamp"].as_str().unwrap_or(""));
            for extra in owned.split_off(want) {
                let name = extra["metadata"]["name"].as_str().unwrap_or_default();
                let _ = delete_pod(app, ns, name, None);
            }
        }
        let ready = owned.iter().filter(|p| is_ready(p)).count();
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        app.store
            .update(&Key::new(Kind::Deployment, ns, name), |d| {
                let status = status(d, owned.len(), ready, want, failure.as_deref());
                d["status"] = status;
            });
    }
}

/// A pod of the Deployment: its template, named and labelled as a ReplicaSet's pod.
fn pod_from_template(d: &Value) -> Value {
    let template = &d["spec"]["template"];
    let name = d["metadata"]["name"].as_str().unwrap_or_default();
    let hash = template_hash(template);
    let mut metadata = template["metadata"].clone();
    if !metadata.is_object() {
        metadata = json!({});
    }
    metadata["labels"]["pod-template-hash"] = json!(hash);
    metadata["generateName"] = json!(format!("{name}-{hash}-"));
    if let Some(map) = metadata.as_object_mut() {
        map.remove("name");
        map.remove("namespace");
    }
    metadata["ownerReferences"] = json!([{
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": name,
        "uid": d["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    }]);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]})
}

/// A stable hash of the template, spelled with the alphabet of generated names (as
/// `pod-template-hash` values are).
fn template_hash(template: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hash: u32 = 0x811c_9dc5;
    for b in template.to_string().bytes() {
        hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    hash.to_string()
        .bytes()
        .map(|digit| ALPHABET[usize::from(digit - b'0')] as char)
        .collect()
}

/// maxUnavailable of a RollingUpdate strategy, as a number of pods (percentages round down).
fn max_unavailable(d: &Value, want: usize) -> usize {
    match &d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0),
        Value::String(s) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<usize>().ok())
            .map_or(0, |p| want * p / 100),
        _ => 0,
    }
}

/// The Deployment's status: counts, observedGeneration, and the Available (and, when pods
/// cannot be made, ReplicaFailure) conditions, keeping transition times while a condition's
/// status stays the same.
fn status(d: &Value, active: usize, ready: usize, want: usize, failure: Option<&str>) -> Value {
    let available = ready + max_unavailable(d, want) >= want;
    let mut conditions = vec![condition(
        d,
        "Available",
        available,
        if available {
            (
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        } else {
            (
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        },
    )];
    if let Some(message) = failure {
        conditions.push(condition(
            d,
            "ReplicaFailure",
            true,
            ("FailedCreate", message),
        ));
    }
    let mut status = json!({
        "observedGeneration": d["metadata"]["generation"].clone(),
        "replicas": active,
        "updatedReplicas": active,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "conditions": conditions,
    });
    if active > ready {
        status["unavailableReplicas"] = json!(active - ready);
    }
    // The apiserver omits zero counts.
    if let Some(map) = status.as_object_mut() {
        map.retain(|_, v| v != &json!(0));
    }
    status
}

fn condition(d: &Value, typ: &str, state: bool, (reason, message): (&str, &str)) -> Value {
    let state = if state { "True" } else { "False" };
    let previous = d["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == typ && c["status"] == state && c["reason"] == reason);
    let since = previous
        .and_then(|c| c["lastTransitionTime"].as_str())
        .map_or_else(now, str::to_owned);
    json!({
        "type": typ,
        "status": state,
        "reason": reason,
        "message": message,
        "lastUpdateTime": since,
        "lastTransitionTime": since,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names;

    fn deployment() -> Value {
        json!({"metadata": {"name": "web", "uid": "u1", "generation": 1},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    }

    #[test]
    fn validation_and_defaults() {
        let mut d = deployment();
        let mut causes = Vec::new();
        assert!(settle_deployment(&mut d, &mut causes).is_empty());
        assert!(causes.is_empty(), "{causes:?}");
        assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let mut d = deployment();
        d["spec"]["template"]["metadata"]["labels"]["app"] = json!("other");
        d["spec"]["replicas"] = json!(-1);
        settle_deployment(&mut d, &mut causes);
        let fields: Vec<&str> = causes.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["spec.replicas", "spec.template.metadata.labels"]);
    }

    #[test]
    fn pods_are_owned_and_named_like_a_replica_sets() {
        let d = deployment();
        let pod = pod_from_template(&d);
        let hash = pod["metadata"]["labels"]["pod-template-hash"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(hash, template_hash(&d["spec"]["template"]));
        assert_eq!(pod["metadata"]["generateName"], format!("web-{hash}-"));
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        assert_eq!(owner_uid(&pod), Some("u1"));
        assert!(names::dns1123_label(&hash).is_none());
    }

    #[test]
    fn status_counts_ready_pods() {
        let d = deployment();
        let s = status(&d, 2, 1, 2, None);
        assert_eq!(s["replicas"], 2);
        assert_eq!(s["readyReplicas"], 1);
        assert_eq!(s["unavailableReplicas"], 1);
        assert_eq!(s["conditions"][0]["status"], "False");
        let s = status(&d, 2, 2, 2, None);
        assert_eq!(s["availableReplicas"], 2);
        assert_eq!(s["conditions"][0]["reason"], "MinimumReplicasAvailable");
        let s = status(&d, 0, 0, 2, Some("no"));
        assert!(s.get("replicas").is_none());
        assert_eq!(s["conditions"][1]["type"], "ReplicaFailure");
    }
}
