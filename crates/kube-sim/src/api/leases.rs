//! Leases (`coordination.k8s.io/v1`): create, get, list/watch, replace, delete. sshpod replicas
//! each hold one and renew it. The registry's rules are the apiserver's: a PUT to a missing
//! lease creates it, a PUT to an existing one needs its current resourceVersion, and delete
//! answers with a Status rather than the object.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::lease_spec::{decode, drop_gated_fields, validate, Decoded, FieldValidation};
use super::meta::{ensure_namespace, prepare};
use super::replace::{self, Policy, Replacement};
use super::status::{delete_success, json_response, with_warnings, ApiError, GroupResource};
use crate::app::App;
use crate::query::Params;
use crate::store::{Key, Kind, Written};

/// The lease strategy: `AllowCreateOnUpdate` true, `AllowUnconditionalUpdate` false.
const POLICY: Policy = Policy {
    create_on_update: true,
    unconditional_update: false,
};

fn key(ns: &str, name: &str) -> Key {
    Key::new(Kind::Lease, ns, name)
}

/// Whether new objects may go into the namespace: 404 when it does not exist, 403 while it
/// is being deleted (the NamespaceLifecycle admission plugin).
fn namespace_open(app: &App, ns: &str) -> Result<(), ApiError> {
    super::pods::require_namespace(app, ns)
}

/// `dryRun=All` in the query (or, for delete, the options body).
fn dry_run(params: &Params) -> bool {
    params.get("dryRun").is_some()
}

fn field_validation(params: &Params) -> FieldValidation {
    FieldValidation::from_query(params.get("fieldValidation"))
}

/// A lease about to be created (by POST, or by a PUT to a missing name): gated fields cleared,
/// name and server-set metadata settled, validated; then the namespace must exist (the
/// NamespaceLifecycle admission plugin runs after validation).
fn admit_new(
    mut lease: Value,
    ns: &str,
    namespace_open: &Result<(), ApiError>,
) -> Result<Value, ApiError> {
    drop_gated_fields(&mut lease);
    let name = prepare(&mut lease, Kind::Lease, Some(ns), true)?;
    let causes = validate(&lease);
    if !causes.is_empty() {
        return Err(ApiError::invalid_causes(Kind::Lease, &name, causes));
    }
    namespace_open.clone()?;
    // The lease registry sets no generation.
    if let Some(meta) = lease["metadata"].as_object_mut() {
        meta.remove("generation");
    }
    Ok(lease)
}

pub async fn create(
    State(app): State<App>,
    Path(ns): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    let Decoded { lease, warnings } = decode(&body, field_validation(&params))?;
    // The storage refuses this only after validation and admission.
    let rv_set = lease["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse::<u64>().ok())
        .is_some_and(|rv| rv != 0);
    let lease = admit_new(lease, &ns, &namespace_open(&app, &ns))?;
    if rv_set {
        return Err(ApiError::Unknown(
            "resourceVersion should not be set on objects to be created".to_owned(),
        ));
    }
    let name = lease["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let key = key(&ns, &name);
    let stored = if dry_run(&params) {
        match app.store.get(&key) {
            Some(_) => None,
            None => Some(lease),
        }
    } else {
        app.store.create(key, lease)
    };
    let stored = stored.ok_or_else(|| ApiError::already_exists(Kind::Lease, &name))?;
    Ok(with_warnings(
        json_response(StatusCode::CREATED, &stored),
        &warnings,
    ))
}

/// What a PUT of `incoming` stores over `stored`; pure, run inside the store's write.
fn replaced(
    ns: &str,
    namespace_open: &Result<(), ApiError>,
    stored: Option<&Value>,
    incoming: Value,
) -> Result<Value, ApiError> {
    match replace::decide(Kind::Lease, POLICY, ns, stored, incoming)? {
        Replacement::Create(new) => admit_new(new, ns, namespace_open),
        Replacement::Update(mut new) => {
            drop_gated_fields(&mut new);
            let causes = validate(&new);
            if causes.is_empty() {
                Ok(new)
            } else {
                let name = new["metadata"]["name"].as_str().unwrap_or_default();
                Err(ApiError::invalid_causes(Kind::Lease, name, causes))
            }
        }
    }
}

pub async fn replace(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    let Decoded {
        mut lease,
        warnings,
    } = decode(&body, field_validation(&params))?;
    ensure_namespace(&mut lease, &ns)?;
    let given = lease["metadata"]["name"].as_str().unwrap_or_default();
    if given != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({name})"
        )));
    }
    let key = key(&ns, &name);
    let ns_open = namespace_open(&app, &ns);
    let (stored, created) = if dry_run(&params) {
        let current = app.store.get(&key);
        let new = replaced(&ns, &ns_open, current.as_ref(), lease)?;
        (new, current.is_none())
    } else {
        let (new, written) = app
            .store
            .write(&key, |current| replaced(&ns, &ns_open, current, lease))?;
        (new, written == Written::Created)
    };
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(with_warnings(json_response(code, &stored), &warnings))
}

/// `DeleteOptions` from a delete's body (blank means none).
fn delete_options(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))
}

/// `BeforeDelete`'s precondition checks; its conflicts name the kind, not the resource.
fn check_preconditions(options: &Value, lease: &Value) -> Result<(), ApiError> {
    let meta = &lease["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    for (field, what) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        let actual = meta[field].as_str().unwrap_or_default();
        if let Some(wanted) = options["preconditions"][field].as_str() {
            if wanted != actual {
                return Err(ApiError::conflict(
                    GroupResource::new(Kind::Lease.group(), Kind::Lease.kind()),
                    name,
                    format!(
                        "Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {actual}"
                    ),
                ));
            }
        }
    }
    Ok(())
}

pub async fn delete(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    let options = delete_options(&body)?;
    let key = key(&ns, &name);
    let not_found = || ApiError::not_found(Kind::Lease, &name);
    let body_dry_run = options["dryRun"].as_array().is_some_and(|d| !d.is_empty());
    let last = if dry_run(&params) || body_dry_run {
        let lease = app.store.get(&key).ok_or_else(not_found)?;
        check_preconditions(&options, &lease)?;
        lease
    } else {
        app.store
            .remove_if(&key, |lease| check_preconditions(&options, lease))?
            .ok_or_else(not_found)?
    };
    let uid = last["metadata"]["uid"].as_str().unwrap_or_default();
    Ok(json_response(
        StatusCode::OK,
        &delete_success(&Kind::Lease.into(), &name, uid),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns", "labels": {"app": "sshpod"}},
               "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}})
    }

    #[test]
    fn new_leases_get_server_metadata_and_no_generation() {
        let lease = admit_new(body("sshpod-a"), "ns", &Ok(())).unwrap();
        let meta = &lease["metadata"];
        assert_eq!(lease["apiVersion"], "coordination.k8s.io/v1");
        assert_eq!(lease["kind"], "Lease");
        assert!(meta["uid"].as_str().is_some_and(|u| u.len() == 36));
        assert!(meta["creationTimestamp"].is_string());
        assert!(meta.get("generation").is_none());
        assert_eq!(
            admit_new(
                body("sshpod-a"),
                "ns",
                &Err(ApiError::not_found(Kind::Namespace, "ns"))
            )
            .unwrap_err(),
            ApiError::not_found(Kind::Namespace, "ns")
        );
        assert_eq!(
            admit_new(body("Bad_Name"), "ns", &Ok(()))
                .unwrap_err()
                .code(),
            422
        );
        let mut zero = body("z");
        zero["spec"]["leaseDurationSeconds"] = json!(0);
        // Validation comes before the namespace check.
        let e =
            admit_new(zero, "ns", &Err(ApiError::not_found(Kind::Namespace, "ns"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Lease.coordination.k8s.io \"z\" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
        );
    }

    #[test]
    fn replace_updates_or_creates() {
        let stored = admit_new(body("l"), "ns", &Ok(())).unwrap();
        let mut stored = stored;
        stored["metadata"]["resourceVersion"] = json!("5");
        let mut renewed = body("l");
        renewed["metadata"]["resourceVersion"] = json!("5");
        renewed["spec"]["renewTime"] = json!("2026-12-05T02:21:08.123456Z");
        let new = replaced("ns", &Ok(()), Some(&stored), renewed.clone()).unwrap();
        assert_eq!(new["metadata"]["uid"], stored["metadata"]["uid"]);
        assert_eq!(new["spec"]["renewTime"], "2026-12-05T02:21:08.123456Z");
        let mut invalid = renewed.clone();
        invalid["spec"]["leaseDurationSeconds"] = json!(0);
        assert_eq!(
            replaced("ns", &Ok(()), Some(&stored), invalid)
                .unwrap_err()
                .code(),
            422
        );
        let mut stale = renewed.clone();
        stale["metadata"]["resourceVersion"] = json!("4");
        assert_eq!(
            replaced("ns", &Ok(()), Some(&stored), stale).unwrap_err(),
            ApiError::conflict(Kind::Lease, "l", super::super::status::OPTIMISTIC_LOCK)
        );
        // Missing: the PUT creates it, whatever resourceVersion it carries.
        let created = replaced("ns", &Ok(()), None, renewed).unwrap();
        assert_ne!(created["metadata"]["uid"], stored["metadata"]["uid"]);
        assert!(created["metadata"].get("resourceVersion").is_none());
    }

    #[test]
    fn delete_preconditions() {
        let lease = json!({"metadata": {"name": "l", "uid": "u-1", "resourceVersion": "9"}});
        assert!(check_preconditions(&Value::Null, &lease).is_ok());
        assert!(check_preconditions(
            &json!({"preconditions": {"uid": "u-1", "resourceVersion": "9"}}),
            &lease
        )
        .is_ok());
        let e = check_preconditions(&json!({"preconditions": {"resourceVersion": "8"}}), &lease)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Operation cannot be fulfilled on Lease.coordination.k8s.io \"l\": Precondition failed: \
             ResourceVersion in precondition: 8, ResourceVersion in object meta: 9"
        );
        assert_eq!(delete_options(b" ").unwrap(), Value::Null);
        assert_eq!(delete_options(b"{").unwrap_err().code(), 400);
    }
}
