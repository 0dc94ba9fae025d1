//! The namespaced kinds kube-sim stores with little behaviour of their own: ConfigMaps,
//! Secrets, ServiceAccounts, Services, Deployments (run by [`crate::controller`]), Roles,
//! RoleBindings, NetworkPolicies and PodDisruptionBudgets. Create validates what the apiserver
//! would refuse and sets its defaults; delete answers a `Success` Status. Secrets and
//! ConfigMaps also take `PUT` (Helm keeps its release records in Secrets and updates them).
//! What kube-sim stores but does not act on (a Service's addresses, a NetworkPolicy's rules, a
//! PodDisruptionBudget) is said in a `Warning` header, as the apiserver reports things a client
//! should know.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{post, MethodRouter};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::meta::{ensure_namespace, label_causes, parse_body, prepare};
use super::pods::require_namespace;
use super::replace::{self, Replacement};
use super::status::{delete_success, json_response, with_warnings, ApiError, GroupResource};
use super::{list, protobuf};
use crate::app::App;
use crate::query::Params;
use crate::store::{Key, Kind};

/// `POST` on the collection (create), with list and watch.
pub fn collection(kind: Kind) -> MethodRouter<App> {
    list::in_namespace(kind).merge(post(
        move |State(app): State<App>,
              Path(ns): Path<String>,
              RawQuery(q): RawQuery,
              headers: HeaderMap,
              body: Bytes| async move {
            let body = protobuf::json_body(kind.kind(), &headers, body)?;
            create(&app, kind, &ns, q.as_deref(), &body)
        },
    ))
}

/// `PATCH` and `PUT`, which kube-sim does not emulate for these kinds: 405 saying what to do.
pub async fn not_emulated() -> ApiError {
    ApiError::NotEmulated(
        "kube-sim does not emulate PATCH or PUT of this resource (kubectl apply of a changed \
         object, edit, scale, label, annotate): delete the object and create it again"
            .to_owned(),
    )
}

/// `GET` and `DELETE` of one object, `PUT` of Secrets and ConfigMaps (other kinds' `PUT` and
/// every `PATCH` refused with 405).
pub fn item(kind: Kind) -> MethodRouter<App> {
    let router = list::named(kind).patch(not_emulated);
    let router = if replaceable(kind) {
        router.put(
            move |State(app): State<App>,
                  Path((ns, name)): Path<(String, String)>,
                  RawQuery(q): RawQuery,
                  headers: HeaderMap,
                  body: Bytes| async move {
                let body = protobuf::json_body(kind.kind(), &headers, body)?;
                replace(&app, kind, &ns, &name, q.as_deref(), &body)
            },
        )
    } else {
        router.put(not_emulated)
    };
    router.delete(
        move |State(app): State<App>,
              Path((ns, name)): Path<(String, String)>,
              RawQuery(q): RawQuery,
              body: Bytes| async move {
            if kind == Kind::Deployment && propagation(&body, q.as_deref())? == "Orphan" {
                orphan_pods(&app, &ns, &name);
            }
            let last = delete(&app, kind, &ns, &name)?;
            let uid = last["metadata"]["uid"].as_str().unwrap_or_default();
            Ok::<_, ApiError>(json_response(
                StatusCode::OK,
                &delete_success(&GroupResource::from(kind), &name, uid),
            ))
        },
    )
}

/// The DeleteOptions' `propagationPolicy` (body, else query); `Background` when unset.
/// `Foreground` is treated as `Background` (no foregroundDeletion finalizer): the dependents
/// go either way, only not before their owner.
fn propagation(body: &[u8], query: Option<&str>) -> Result<String, ApiError> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        let options: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
        if let Some(p) = options["propagationPolicy"].as_str() {
            return Ok(p.to_owned());
        }
    }
    Ok(Params::parse(query)
        .get("propagationPolicy")
        .unwrap_or("Background")
        .to_owned())
}

/// What the garbage collector does for `propagationPolicy: Orphan`: the Deployment, marked as
/// being deleted (so the controller leaves it alone), lets its pods go; they lose their owner
/// reference and stay.
fn orphan_pods(app: &App, ns: &str, deployment: &str) {
    let Some(d) = app
        .store
        .update(&Key::new(Kind::Deployment, ns, deployment), |d| {
            d["metadata"]["deletionTimestamp"] = json!(crate::kubelet::status::now());
        })
    else {
        return;
    };
    let uid = d["metadata"]["uid"].clone();
    for pod in app.store.list(Kind::Pod, Some(ns)).0 {
        let owned = pod["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid));
        let Some(name) = pod["metadata"]["name"].as_str().filter(|_| owned) else {
            continue;
        };
        app.store.update(&Key::new(Kind::Pod, ns, name), |p| {
            if let Some(refs) = p["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"] != uid);
            }
        });
    }
}

fn create(
    app: &App,
    kind: Kind,
    ns: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let mut object = parse_body(body, kind.kind())?;
    require_namespace(app, ns)?;
    let name = prepare(&mut object, kind, Some(ns), true)?;
    let mut causes = label_causes(&object);
    let warnings = settle(kind, &mut object, &mut causes)?;
    if !causes.is_empty() {
        return Err(ApiError::invalid_causes(kind, &name, causes));
    }
    if Params::parse(query).get("dryRun").is_some() {
        return Ok(with_warnings(
            json_response(StatusCode::CREATED, &object),
            &warnings,
        ));
    }
    let stored = app
        .store
        .create(Key::new(kind, ns, &name), object)
        .ok_or_else(|| ApiError::already_exists(kind, &name))?;
    if kind == Kind::ServiceAccount {
        app.accounts.issue(ns, &name);
    }
    Ok(with_warnings(
        json_response(StatusCode::CREATED, &stored),
        &warnings,
    ))
}

/// The kinds whose `PUT` kube-sim emulates.
fn replaceable(kind: Kind) -> bool {
    matches!(kind, Kind::Secret | Kind::ConfigMap)
}

/// The apiserver's update strategy for Secrets and ConfigMaps: no create on update, and a body
/// without a resourceVersion overwrites (last writer wins).
const REPLACE_POLICY: replace::Policy = replace::Policy {
    create_on_update: false,
    unconditional_update: true,
};

/// `PUT`: the stored object replaced by the body, validated and defaulted as at create, with
/// the resourceVersion check and server-set metadata of the generic registry.
fn replace(
    app: &App,
    kind: Kind,
    ns: &str,
    name: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let mut incoming = parse_body(body, kind.kind())?;
    ensure_namespace(&mut incoming, ns)?;
    let given = incoming["metadata"]["name"].as_str().unwrap_or_default();
    if given != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({name})"
        )));
    }
    let mut warnings = Vec::new();
    let replaced = |stored: Option<&Value>| -> Result<Value, ApiError> {
        // Without create-on-update a missing object is NotFound, so this is always an update.
        let (Replacement::Update(mut new) | Replacement::Create(mut new)) =
            replace::decide(kind, REPLACE_POLICY, ns, stored, incoming)?;
        let mut causes = label_causes(&new);
        warnings = settle(kind, &mut new, &mut causes)?;
        if kind == Kind::Secret && stored.is_some_and(|s| s["type"] != new["type"]) {
            causes.push((
                "type".to_owned(),
                format!("Invalid value: {}: field is immutable", new["type"]),
            ));
        }
        if causes.is_empty() {
            Ok(new)
        } else {
            Err(ApiError::invalid_causes(kind, name, causes))
        }
    };
    let key = Key::new(kind, ns, name);
    let stored = if Params::parse(query).get("dryRun").is_some() {
        replaced(app.store.get(&key).as_ref())?
    } else {
        app.store.write(&key, replaced)?.0
    };
    Ok(with_warnings(
        json_response(StatusCode::OK, &stored),
        &warnings,
    ))
}

/// Removes one object (a Deployment's pods go with it: the controller collects them; a
/// ServiceAccount's token stops working). Returns its last state.
pub fn delete(app: &App, kind: Kind, ns: &str, name: &str) -> Result<Value, ApiError> {
    let last = app
        .store
        .remove(&Key::new(kind, ns, name))
        .ok_or_else(|| ApiError::not_found(kind, name))?;
    if kind == Kind::ServiceAccount {
        app.accounts.revoke(ns, name);
    }
    Ok(last)
}

/// Kind-specific validation (into `causes`) and defaults; returns the warnings to send.
/// Err for a body the decoder would refuse (400).
fn settle(
    kind: Kind,
    object: &mut Value,
    causes: &mut Vec<(String, String)>,
) -> Result<Vec<String>, ApiError> {
    let mut warnings = Vec::new();
    match kind {
        Kind::ConfigMap => {
            check_keys(object, "data", causes);
            check_keys(object, "binaryData", causes);
        }
        Kind::Secret => settle_secret(object, causes)?,
        Kind::ServiceAccount => {}
        Kind::Service => {
            settle_service(object, causes);
            warnings.push(
                "kube-sim does not implement Services: no cluster IP, node port or load balancer \
                 is allocated and nothing is routed; connect to a pod's status.podIP"
                    .to_owned(),
            );
        }
        Kind::Deployment => warnings.extend(crate::controller::settle_deployment(object, causes)),
        Kind::Role => {
            for (i, rule) in object["rules"].as_array().into_iter().flatten().enumerate() {
                if rule["verbs"].as_array().is_none_or(Vec::is_empty) {
                    causes.push((format!("rules[{i}].verbs"), "Required value".to_owned()));
                }
                if rule.get("resourceNames").is_some() || rule.get("nonResourceURLs").is_some() {
                    warnings.push(format!(
                        "kube-sim does not support resourceNames or nonResourceURLs: rules[{i}] \
                         grants nothing"
                    ));
                }
            }
        }
        Kind::RoleBinding => {
            let role_ref = &object["roleRef"];
            if role_ref["name"].as_str().is_none_or(str::is_empty) {
                causes.push(("roleRef.name".to_owned(), "Required value".to_owned()));
            }
            match role_ref["kind"].as_str() {
                Some("Role") => {}
                Some("ClusterRole") => warnings
                    .push("kube-sim has no ClusterRoles: this binding grants nothing".to_owned()),
                other => causes.push((
                    "roleRef.kind".to_owned(),
                    format!(
                        "Unsupported value: \"{}\": supported values: \"Role\", \"ClusterRole\"",
                        other.unwrap_or("")
                    ),
                )),
            }
        }
        Kind::NetworkPolicy => {
            if !object["spec"]["podSelector"].is_object() {
                causes.push(("spec.podSelector".to_owned(), "Required value".to_owned()));
            }
            warnings.push(
                "kube-sim does not enforce NetworkPolicies: this one is stored only".to_owned(),
            );
        }
        Kind::PodDisruptionBudget => {
            settle_disruption_budget(object, causes);
            warnings.push(
                "kube-sim has no eviction API: this PodDisruptionBudget is stored only".to_owned(),
            );
        }
        Kind::Pod | Kind::PersistentVolumeClaim | Kind::Namespace | Kind::Lease => {}
    }
    Ok(warnings)
}

/// ConfigMap and Secret keys: `[-._a-zA-Z0-9]+`, at most 253 characters.
fn check_keys(object: &Value, field: &str, causes: &mut Vec<(String, String)>) {
    for key in object[field]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        let ok = !key.is_empty()
            && key.len() <= 253
            && key
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            && key != "."
            && key != "..";
        if !ok {
            causes.push((
                format!("{field}[{key}]"),
                format!(
                    "Invalid value: \"{key}\": a valid config key must consist of alphanumeric \
                     characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or \
                     'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
                ),
            ));
        }
    }
}

/// Secrets: `data` must be base64 (decoded as the typed decoder does: else 400), `stringData`
/// is folded into `data` and dropped, `type` defaults to `Opaque`.
fn settle_secret(object: &mut Value, causes: &mut Vec<(String, String)>) -> Result<(), ApiError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut data = Map::new();
    for (k, v) in object["data"].as_object().into_iter().flatten() {
        let text = v.as_str().ok_or_else(|| {
            ApiError::bad_request(format!(
                "Secret in version \"v1\" cannot be handled as a Secret: json: cannot unmarshal \
                 {} into Go struct field Secret.data of type []uint8",
                json_type(v)
            ))
        })?;
        b64.decode(text).map_err(|e| {
            ApiError::bad_request(format!(
                "Secret in version \"v1\" cannot be handled as a Secret: {e}"
            ))
        })?;
        data.insert(k.clone(), v.clone());
    }
    if let Some(strings) = object.as_object_mut().and_then(|o| o.remove("stringData")) {
        for (k, v) in strings.as_object().into_iter().flatten() {
            let text = v.as_str().unwrap_or_default();
            data.insert(k.clone(), json!(b64.encode(text)));
        }
    }
    let has_data = !data.is_empty();
    if has_data {
        object["data"] = Value::Object(data);
    }
    check_keys(object, "data", causes);
    if object["type"].as_str().is_none_or(str::is_empty) {
        object["type"] = json!("Opaque");
    }
    Ok(())
}

/// PodDisruptionBudgets: exactly one of `minAvailable` and `maxUnavailable` (a count or a
/// percentage), as the apiserver's validation demands; the status a fresh budget reports.
fn settle_disruption_budget(object: &mut Value, causes: &mut Vec<(String, String)>) {
    let spec = &object["spec"];
    let given: Vec<&str> = ["minAvailable", "maxUnavailable"]
        .into_iter()
        .filter(|f| !spec[*f].is_null())
        .collect();
    if given.len() == 2 {
        causes.push((
            "spec".to_owned(),
            "Invalid value: \"minAvailable and maxUnavailable\": minAvailable and maxUnavailable \
             cannot be both set"
                .to_owned(),
        ));
    }
    for field in given {
        let ok = match &spec[field] {
            Value::Number(n) => n.as_u64().is_some(),
            Value::String(s) => s
                .strip_suffix('%')
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|p| p <= 100),
            _ => false,
        };
        if !ok {
            causes.push((
                format!("spec.{field}"),
                format!(
                    "Invalid value: {}: must be a non-negative integer or a percentage from 0% to 100%",
                    spec[field]
                ),
            ));
        }
    }
    object["status"] = json!({
        "observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 0,
        "desiredHealthy": 0, "expectedPods": 0,
    });
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Services: ports are required and must name a protocol the apiserver knows; defaults as the
/// apiserver sets them, except that no cluster IP is allocated (none would be routed).
fn settle_service(object: &mut Value, causes: &mut Vec<(String, String)>) {
    let spec = &mut object["spec"];
    if !spec.is_object() {
        *spec = json!({});
    }
    let typ = spec["type"].as_str().unwrap_or("ClusterIP").to_owned();
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&typ.as_str()) {
        causes.push((
            "spec.type".to_owned(),
            format!(
                "Unsupported value: \"{typ}\": supported values: \"ClusterIP\", \
                 \"ExternalName\", \"LoadBalancer\", \"NodePort\""
            ),
        ));
    }
    spec["type"] = json!(typ);
    let ports = spec["ports"].as_array_mut();
    match ports {
        Some(ports) if !ports.is_empty() => {
            for (i, port) in ports.iter_mut().enumerate() {
                if port["port"]
                    .as_i64()
                    .is_none_or(|p| !(1..=65535).contains(&p))
                {
                    causes.push((
                        format!("spec.ports[{i}].port"),
                        "Invalid value: must be between 1 and 65535, inclusive".to_owned(),
                    ));
                }
                if port["protocol"].is_null() {
                    port["protocol"] = json!("TCP");
                }
                if port["targetPort"].is_null() {
                    port["targetPort"] = port["port"].clone();
                }
            }
        }
        _ if typ != "ExternalName" => {
            causes.push(("spec.ports".to_owned(), "Required value".to_owned()));
        }
        _ => {}
    }
    if spec["sessionAffinity"].is_null() {
        spec["sessionAffinity"] = json!("None");
    }
    object["status"] = json!({"loadBalancer": {}});
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_fold_string_data_and_refuse_bad_base64() {
        let mut causes = Vec::new();
        let mut s = json!({"data": {"a": "aGk="}, "stringData": {"b": "hi"}});
        settle(Kind::Secret, &mut s, &mut causes).unwrap();
        assert_eq!(
            s,
            json!({"data": {"a": "aGk=", "b": "aGk="}, "type": "Opaque"})
        );
        assert!(causes.is_empty());
        let mut bad = json!({"data": {"a": "not base64!"}});
        let e = settle(Kind::Secret, &mut bad, &mut causes).unwrap_err();
        assert_eq!(e.code(), 400);
        let mut bad_key = json!({"data": {"a/b": "aGk="}});
        settle(Kind::Secret, &mut bad_key, &mut causes).unwrap();
        assert_eq!(causes[0].0, "data[a/b]");
    }

    #[test]
    fn services_need_ports_and_get_no_cluster_ip() {
        let mut causes = Vec::new();
        let mut s =
            json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 22, "targetPort": "ssh"}]}});
        let warnings = settle(Kind::Service, &mut s, &mut causes).unwrap();
        assert!(causes.is_empty());
        assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
        assert!(s["spec"]["clusterIP"].is_null());
        assert!(warnings[0].contains("does not implement Services"));
        let mut s = json!({"spec": {}});
        settle(Kind::Service, &mut s, &mut causes).unwrap();
        assert_eq!(causes[0].0, "spec.ports");
    }

    #[test]
    fn disruption_budgets_take_one_of_min_available_and_max_unavailable() {
        let mut causes = Vec::new();
        let mut ok = json!({"spec": {"maxUnavailable": 1, "selector": {}}});
        let warnings = settle(Kind::PodDisruptionBudget, &mut ok, &mut causes).unwrap();
        assert!(causes.is_empty(), "{causes:?}");
        assert!(warnings[0].contains("stored only"));
        assert_eq!(ok["status"]["disruptionsAllowed"], 0);
        let mut percent = json!({"spec": {"minAvailable": "50%"}});
        settle(Kind::PodDisruptionBudget, &mut percent, &mut causes).unwrap();
        assert!(causes.is_empty(), "{causes:?}");
        let mut both = json!({"spec": {"minAvailable": 1, "maxUnavailable": "150%"}});
        settle(Kind::PodDisruptionBudget, &mut both, &mut causes).unwrap();
        let fields: Vec<&str> = causes.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["spec", "spec.maxUnavailable"]);
    }

    #[test]
    fn role_bindings_need_a_role() {
        let mut causes = Vec::new();
        let mut b = json!({"roleRef": {"kind": "Group", "name": ""}});
        settle(Kind::RoleBinding, &mut b, &mut causes).unwrap();
        let fields: Vec<&str> = causes.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["roleRef.name", "roleRef.kind"]);
    }
}
