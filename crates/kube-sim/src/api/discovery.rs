//! Discovery: `/version` (minor "32", which the kubectl dispatcher picks its binary by),
//! legacy (unaggregated) `/api`, `/api/v1`, `/apis` with the one group kube-sim serves
//! (`coordination.k8s.io`), `/apis/coordination.k8s.io[/v1]`, and the minimal `/openapi/v3`
//! that lets `kubectl create -f` validate on the server.

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

/// The `coordination.k8s.io` group: its one version, which is also the preferred one.
fn coordination() -> Value {
    let version = json!({"groupVersion": Kind::Lease.api_version(), "version": "v1"});
    json!({
        "name": Kind::Lease.group(),
        "versions": [version],
        "preferredVersion": version,
    })
}

pub async fn apis() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [coordination()]}),
    )
}

pub async fn coordination_group() -> Response {
    let mut group = coordination();
    group["kind"] = json!("APIGroup");
    group["apiVersion"] = json!("v1");
    json_response(StatusCode::OK, &group)
}

pub async fn coordination_v1() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": Kind::Lease.api_version(),
            "resources": [
                resource("leases", "lease", "Lease", true, &["create", "delete", "get", "list", "update", "watch"], &[]),
            ],
        }),
    )
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

pub async fn api_v1() -> Response {
    let crud = ["create", "delete", "get", "list", "watch"];
    json_response(
        StatusCode::OK,
        &json!({
            "kind": "APIResourceList",
            "groupVersion": "v1",
            "resources": [
                resource("pods", "pod", "Pod", true, &crud, &["po"]),
                resource("pods/attach", "", "PodAttachOptions", true, &["create", "get"], &[]),
                resource("pods/exec", "", "PodExecOptions", true, &["create", "get"], &[]),
                resource("pods/log", "", "Pod", true, &["get"], &[]),
                resource("pods/portforward", "", "PodPortForwardOptions", true, &["create", "get"], &[]),
                resource("persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true, &crud, &["pvc"]),
                resource("namespaces", "namespace", "Namespace", false, &crud, &["ns"]),
            ],
        }),
    )
}

pub async fn openapi_v3() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"paths": {
            "api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=4B1D0C0FFEE0CAFE"},
            "apis/coordination.k8s.io/v1": {"serverRelativeURL": "/openapi/v3/apis/coordination.k8s.io/v1?hash=1EA5E0C0FFEE0001"},
        }}),
    )
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

pub async fn openapi_v3_api_v1() -> Response {
    openapi_document(json!({
        "/api/v1/namespaces/{namespace}/pods/{name}": object_path(Kind::Pod),
        "/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}": object_path(Kind::PersistentVolumeClaim),
        "/api/v1/namespaces/{name}": object_path(Kind::Namespace),
    }))
}

pub async fn openapi_v3_coordination_v1() -> Response {
    openapi_document(json!({
        "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}": object_path(Kind::Lease),
    }))
}

pub async fn not_found() -> ApiError {
    ApiError::NoRoute
}
