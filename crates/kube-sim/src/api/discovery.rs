//! Discovery: `/version` (minor "32", which the kubectl dispatcher picks its binary by),
//! legacy (unaggregated) `/api`, `/api/v1`, `/apis` with the groups kube-sim serves (`apps`,
//! `coordination.k8s.io`, `networking.k8s.io`, `policy`, `rbac.authorization.k8s.io`, each `v1`),
//! `/apis/<group>[/v1]`, and the minimal `/openapi/v3` that lets `kubectl create -f` and
//! `kubectl apply` validate on the server.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::status::{json_response, ApiError};
use crate::store::Kind;

pub async fn version() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": "32",
            "gitVersion": "v1.32.4-kube-sim",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2025-04-22T00:00:00Z",
            "goVersion": "go1.23.6",
            "compiler": "gc",
            "platform": "linux/amd64",
        }),
    )
}

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn api() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
        }),
    )
}

/// The API groups kube-sim serves, each with its one version `v1`, and the kinds in it.
const GROUPS: [(&str, &[Kind]); 5] = [
    ("apps", &[Kind::Deployment]),
    ("coordination.k8s.io", &[Kind::Lease]),
    ("networking.k8s.io", &[Kind::NetworkPolicy]),
    ("policy", &[Kind::PodDisruptionBudget]),
    (
        "rbac.authorization.k8s.io",
        &[Kind::Role, Kind::RoleBinding],
    ),
];

fn kinds_of(group: &str) -> Option<&'static [Kind]> {
    GROUPS.iter().find(|(g, _)| *g == group).map(|(_, k)| *k)
}

/// An API group: its one version, which is also the preferred one.
fn group_entry(name: &str) -> Value {
    let version = json!({"groupVersion": format!("{name}/v1"), "version": "v1"});
    json!({"name": name, "versions": [version], "preferredVersion": version})
}

pub async fn apis() -> Response {
    let groups: Vec<Value> = GROUPS.iter().map(|(g, _)| group_entry(g)).collect();
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    )
}

pub async fn group(Path(name): Path<String>) -> Result<Response, ApiError> {
    kinds_of(&name).ok_or(ApiError::NoRoute)?;
    let mut group = group_entry(&name);
    group["kind"] = json!("APIGroup");
    group["apiVersion"] = json!("v1");
    Ok(json_response(StatusCode::OK, &group))
}

/// The verbs kube-sim serves for `kind` (leases, secrets and configmaps also take PUT).
fn verbs(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Lease | Kind::Secret | Kind::ConfigMap => {
            &["create", "delete", "get", "list", "update", "watch"]
        }
        _ => &["create", "delete", "get", "list", "watch"],
    }
}

fn short_names(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Pod => &["po"],
        Kind::PersistentVolumeClaim => &["pvc"],
        Kind::Namespace => &["ns"],
        Kind::ConfigMap => &["cm"],
        Kind::ServiceAccount => &["sa"],
        Kind::Service => &["svc"],
        Kind::Deployment => &["deploy"],
        Kind::NetworkPolicy => &["netpol"],
        Kind::PodDisruptionBudget => &["pdb"],
        Kind::Lease | Kind::Secret | Kind::Role | Kind::RoleBinding => &[],
    }
}

fn resource_of(kind: Kind) -> Value {
    let singular = kind.kind().to_lowercase();
    resource(
        kind.resource(),
        &singular,
        kind.kind(),
        kind != Kind::Namespace,
        verbs(kind),
        short_names(kind),
    )
}

pub async fn group_v1(Path(name): Path<String>) -> Result<Response, ApiError> {
    let kinds = kinds_of(&name).ok_or(ApiError::NoRoute)?;
    let resources: Vec<Value> = kinds.iter().map(|k| resource_of(*k)).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": format!("{name}/v1"),
            "resources": resources,
        }),
    ))
}

fn resource(
    name: &str,
    singular: &str,
    kind: &str,
    namespaced: bool,
    verbs: &[&str],
    short: &[&str],
) -> Value {
    let mut r = json!({
        "name": name,
        "singularName": singular,
        "namespaced": namespaced,
        "kind": kind,
        "verbs": verbs,
    });
    if !short.is_empty() {
        r["shortNames"] = json!(short);
    }
    r
}

/// The core kinds, in discovery order.
const CORE: [Kind; 7] = [
    Kind::Pod,
    Kind::PersistentVolumeClaim,
    Kind::Namespace,
    Kind::ConfigMap,
    Kind::Secret,
    Kind::ServiceAccount,
    Kind::Service,
];

pub async fn api_v1() -> Response {
    let mut resources: Vec<Value> = CORE.iter().map(|k| resource_of(*k)).collect();
    resources.extend([
        resource(
            "pods/attach",
            "",
            "PodAttachOptions",
            true,
            &["create", "get"],
            &[],
        ),
        resource(
            "pods/exec",
            "",
            "PodExecOptions",
            true,
            &["create", "get"],
            &[],
        ),
        resource("pods/log", "", "Pod", true, &["get"], &[]),
        resource(
            "pods/portforward",
            "",
            "PodPortForwardOptions",
            true,
            &["create", "get"],
            &[],
        ),
    ]);
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources}),
    )
}

pub async fn openapi_v3() -> Response {
    let mut paths = serde_json::Map::new();
    paths.insert(
        "api/v1".to_owned(),
        json!({"serverRelativeURL": format!("/openapi/v3/api/v1?hash={}", document_hash("api/v1"))}),
    );
    for (group, _) in GROUPS {
        let path = format!("apis/{group}/v1");
        let url = format!("/openapi/v3/{path}?hash={}", document_hash(&path));
        paths.insert(path, json!({"serverRelativeURL": url}));
    }
    json_response(StatusCode::OK, &json!({"paths": paths}))
}

/// The hash clients cache a document by: fixed per document, as kube-sim's never change
/// while it runs (hex of the path's bytes, folded).
fn document_hash(path: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016X}")
}

/// The path of one object of `kind` in an OpenAPI document.
fn object_url(kind: Kind) -> String {
    let base = match kind.group() {
        "" => "/api/v1".to_owned(),
        group => format!("/apis/{group}/v1"),
    };
    match kind {
        Kind::Namespace => format!("{base}/namespaces/{{name}}"),
        _ => format!(
            "{base}/namespaces/{{namespace}}/{}/{{name}}",
            kind.resource()
        ),
    }
}

/// An object path whose `patch` names its kind and takes `fieldValidation`: what kubectl
/// looks for before it asks the server to validate.
fn object_path(kind: Kind) -> Value {
    json!({
        "patch": {
            "x-kubernetes-group-version-kind": {"group": kind.group(), "version": "v1", "kind": kind.kind()},
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "OK"}},
        }
    })
}

/// An OpenAPI v3 document of one group version: just the paths `kubectl create -f` looks up
/// to learn that the server validates fields.
fn openapi_document(paths: Value) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.32.4"},
            "paths": paths,
            "components": {"schemas": {}},
        }),
    )
}

fn openapi_paths(kinds: &[Kind]) -> Response {
    let paths: serde_json::Map<String, Value> = kinds
        .iter()
        .map(|k| (object_url(*k), object_path(*k)))
        .collect();
    openapi_document(Value::Object(paths))
}

pub async fn openapi_v3_api_v1() -> Response {
    openapi_paths(&CORE)
}

pub async fn openapi_v3_group(Path(group): Path<String>) -> Result<Response, ApiError> {
    Ok(openapi_paths(kinds_of(&group).ok_or(ApiError::NoRoute)?))
}

pub async fn not_found() -> ApiError {
    ApiError::NoRoute
}
