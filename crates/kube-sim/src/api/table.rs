//! `meta.k8s.io/v1` Tables for `kubectl get`: pods (the usual columns, IP and node with
//! -o wide), leases (name, holder, age) and deployments (ready, up-to-date, available, age),
//! as the apiserver's printers make them.

use serde_json::{json, Value};

use crate::store::Kind;

/// The Table of `items` of `kind`, if kube-sim prints that kind (else the client gets a list).
pub fn of(kind: Kind, items: &[Value], rv: u64) -> Option<Value> {
    match kind {
        Kind::Pod => Some(pods(items, rv)),
        Kind::Lease => Some(leases(items, rv)),
        Kind::Deployment => Some(deployments(items, rv)),
        _ => None,
    }
}

fn column(name: &str, format: &str, priority: u8) -> Value {
    json!({"name": name, "type": "string", "format": format, "description": "", "priority": priority})
}

/// A row: its cells, and the object's metadata (kubectl reads namespace and labels there).
fn row(cells: Value, object: &Value) -> Value {
    json!({
        "cells": cells,
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]},
    })
}

fn table(columns: Vec<Value>, rows: Vec<Value>, rv: u64) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// Whether the client asked for a Table.
pub fn wants_table(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("as=Table"))
}

/// "5s", "3m", "2h", "4d" like kubectl's HumanDuration (coarsely).
pub fn age(created: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(created) else {
        return "<unknown>".to_owned();
    };
    let secs = (now - t.with_timezone(&chrono::Utc)).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 2 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The STATUS column: Terminating, a waiting/terminated reason, or the phase.
pub fn pod_reason(pod: &Value) -> String {
    if pod["metadata"]["deletionTimestamp"].is_string() {
        return "Terminating".to_owned();
    }
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut reason = pod["status"]["phase"]
        .as_str()
        .unwrap_or("Pending")
        .to_owned();
    for s in &statuses {
        if let Some(r) = s["state"]["waiting"]["reason"].as_str() {
            return r.to_owned();
        }
        if let Some(r) = s["state"]["terminated"]["reason"].as_str() {
            reason = r.to_owned();
        }
    }
    if statuses.iter().any(|s| s["state"]["running"].is_object()) {
        return "Running".to_owned();
    }
    reason
}

/// A Table of pods.
pub fn pods(items: &[Value], rv: u64) -> Value {
    let now = chrono::Utc::now();
    let rows: Vec<Value> = items
        .iter()
        .map(|pod| {
            let statuses = pod["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|s| s["ready"] == true).count();
            let restarts: i64 = statuses
                .iter()
                .filter_map(|s| s["restartCount"].as_i64())
                .sum();
            let meta = &pod["metadata"];
            row(
                json!([
                    meta["name"],
                    format!("{ready}/{total}"),
                    pod_reason(pod),
                    restarts.to_string(),
                    age(meta["creationTimestamp"].as_str().unwrap_or(""), now),
                    pod["status"]["podIP"].as_str().unwrap_or("<none>"),
                    pod["spec"]["nodeName"].as_str().unwrap_or("<none>"),
                    "<none>",
                    "<none>",
                ]),
                pod,
            )
        })
        .collect();
    table(
        vec![
            column("Name", "name", 0),
            column("Ready", "", 0),
            column("Status", "", 0),
            column("Restarts", "", 0),
            column("Age", "", 0),
            column("IP", "", 1),
            column("Node", "", 1),
            column("Nominated Node", "", 1),
            column("Readiness Gates", "", 1),
        ],
        rows,
        rv,
    )
}

/// A Table of leases: Name, Holder (empty when nobody holds it), Age.
pub fn leases(items: &[Value], rv: u64) -> Value {
    let now = chrono::Utc::now();
    let rows: Vec<Value> = items
        .iter()
        .map(|lease| {
            let meta = &lease["metadata"];
            row(
                json!([
                    meta["name"],
                    lease["spec"]["holderIdentity"].as_str().unwrap_or(""),
                    age(meta["creationTimestamp"].as_str().unwrap_or(""), now),
                ]),
                lease,
            )
        })
        .collect();
    table(
        vec![
            column("Name", "name", 0),
            column("Holder", "", 0),
            column("Age", "", 0),
        ],
        rows,
        rv,
    )
}

/// A Table of deployments: Name, Ready (ready/desired), Up-to-date, Available, Age.
pub fn deployments(items: &[Value], rv: u64) -> Value {
    let now = chrono::Utc::now();
    let count = |d: &Value, field: &str| d["status"][field].as_i64().unwrap_or(0);
    let rows: Vec<Value> = items
        .iter()
        .map(|d| {
            let meta = &d["metadata"];
            row(
                json!([
                    meta["name"],
                    format!(
                        "{}/{}",
                        count(d, "readyReplicas"),
                        d["spec"]["replicas"].as_i64().unwrap_or(0)
                    ),
                    count(d, "updatedReplicas"),
                    count(d, "availableReplicas"),
                    age(meta["creationTimestamp"].as_str().unwrap_or(""), now),
                ]),
                d,
            )
        })
        .collect();
    table(
        vec![
            column("Name", "name", 0),
            column("Ready", "", 0),
            json!({"name": "Up-to-date", "type": "integer", "format": "", "description": "", "priority": 0}),
            json!({"name": "Available", "type": "integer", "format": "", "description": "", "priority": 0}),
            column("Age", "", 0),
        ],
        rows,
        rv,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        let now = chrono::DateTime::parse_from_rfc3339("2024-01-01T01:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(age("2024-01-01T00:59:55Z", now), "5s");
        assert_eq!(age("2024-01-01T00:30:00Z", now), "30m");
        assert_eq!(age("bad", now), "<unknown>");
    }

    #[test]
    fn lease_rows() {
        let held = json!({"metadata": {"name": "sshpod-a", "namespace": "ns", "creationTimestamp": "2024-01-01T00:00:00Z"},
                          "spec": {"holderIdentity": "replica-a"}});
        let free = json!({"metadata": {"name": "free"}, "spec": {}});
        let t = of(Kind::Lease, &[held, free], 9).unwrap();
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["Name", "Holder", "Age"]);
        assert_eq!(t["rows"][0]["cells"][0], "sshpod-a");
        assert_eq!(t["rows"][0]["cells"][1], "replica-a");
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "ns");
        assert_eq!(t["rows"][1]["cells"][1], "");
        assert_eq!(t["metadata"]["resourceVersion"], "9");
        assert!(of(Kind::Namespace, &[], 1).is_none());
    }

    #[test]
    fn status_column() {
        let pod = json!({"status": {"phase": "Pending", "containerStatuses": [
            {"state": {"waiting": {"reason": "ImagePullBackOff"}}}]}});
        assert_eq!(pod_reason(&pod), "ImagePullBackOff");
        let pod = json!({"metadata": {"deletionTimestamp": "x"}, "status": {"phase": "Running"}});
        assert_eq!(pod_reason(&pod), "Terminating");
        let pod = json!({"status": {"phase": "Succeeded", "containerStatuses": [
            {"state": {"terminated": {"reason": "Completed"}}}]}});
        assert_eq!(pod_reason(&pod), "Completed");
    }
}
