//! PUT (replace) as the apiserver's generic registry does it (`Store.Update`): the uid
//! precondition, create-on-update, the resourceVersion check (optimistic concurrency) and the
//! server-set metadata an update cannot change. Pure: the caller runs it inside
//! [`Store::write`](crate::store::Store::write), so check and write are one step.

use serde_json::Value;

use super::status::{ApiError, GroupResource, OPTIMISTIC_LOCK};
use crate::store::Kind;

/// A kind's update strategy (`AllowCreateOnUpdate`, `AllowUnconditionalUpdate`).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// A PUT to a missing object creates it.
    pub create_on_update: bool,
    /// A PUT without `metadata.resourceVersion` overwrites whatever is stored.
    pub unconditional_update: bool,
}

/// What a PUT turns into.
#[derive(Debug, PartialEq)]
pub enum Replacement {
    /// Nothing is stored: the body, still to be prepared and validated as a new object.
    Create(Value),
    /// The body with the stored object's server-set metadata, still to be validated.
    Update(Value),
}

fn meta_str<'a>(object: &'a Value, field: &str) -> &'a str {
    object["metadata"][field].as_str().unwrap_or("")
}

/// The storage layer's `StorageError` text for a failed precondition, as a conflict cause.
fn precondition_failed(key: &str, what: &str, wanted: &str, actual: &str) -> String {
    format!(
        "StorageError: invalid object, Code: 4, Key: {key}, ResourceVersion: 0, \
         AdditionalErrorMsg: Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {actual}"
    )
}

/// Decides a PUT of `incoming` (decoded, its name and namespace already checked against the
/// URL) over `stored` (None when absent).
pub fn decide(
    kind: Kind,
    policy: Policy,
    namespace: &str,
    stored: Option<&Value>,
    mut incoming: Value,
) -> Result<Replacement, ApiError> {
    let resource = GroupResource::from(kind);
    let name = meta_str(&incoming, "name").to_owned();
    // A uid in the body is a precondition, checked before anything else (even creation).
    let uid = meta_str(&incoming, "uid");
    let stored_uid = stored.map_or("", |s| meta_str(s, "uid"));
    if !uid.is_empty() && uid != stored_uid {
        let key = format!("/registry/{}/{namespace}/{name}", kind.resource());
        let cause = precondition_failed(&key, "UID", uid, stored_uid);
        return Err(ApiError::conflict(resource, &name, cause));
    }
    let Some(stored) = stored else {
        return if policy.create_on_update {
            Ok(Replacement::Create(incoming))
        } else {
            Err(ApiError::not_found(resource, &name))
        };
    };
    let invalid_rv = |message: String| ApiError::Invalid {
        group: resource.group.clone(),
        kind: resource.resource.clone(),
        name: name.clone(),
        causes: vec![("metadata.resourceVersion".to_owned(), message)],
    };
    match meta_str(&incoming, "resourceVersion") {
        "" | "0" if policy.unconditional_update => {}
        // Go prints the uint64 zero with %#v.
        "" | "0" => {
            return Err(invalid_rv(
                "Invalid value: 0x0: must be specified for an update".to_owned(),
            ))
        }
        rv if rv.parse::<u64>().is_err() => {
            let why = if !rv.is_empty() && rv.bytes().all(|b| b.is_ascii_digit()) {
                "value out of range"
            } else {
                "invalid syntax"
            };
            return Err(ApiError::Invalid {
                group: resource.group.clone(),
                kind: resource.resource.clone(),
                name: name.clone(),
                causes: vec![(
                    "resourceVersion".to_owned(),
                    format!("Invalid value: \"{rv}\": strconv.ParseUint: parsing \"{rv}\": {why}"),
                )],
            });
        }
        rv if rv != meta_str(stored, "resourceVersion") => {
            return Err(ApiError::conflict(resource, &name, OPTIMISTIC_LOCK));
        }
        _ => {}
    }
    // Server-set fields stay as stored, whatever the body says.
    if let (Some(meta), Some(old)) = (
        incoming["metadata"].as_object_mut(),
        stored["metadata"].as_object(),
    ) {
        for field in [
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
        ] {
            match old.get(field) {
                Some(v) => meta.insert(field.to_owned(), v.clone()),
                None => meta.remove(field),
            };
        }
    }
    incoming["kind"] = stored["kind"].clone();
    incoming["apiVersion"] = stored["apiVersion"].clone();
    Ok(Replacement::Update(incoming))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LEASES: Policy = Policy {
        create_on_update: true,
        unconditional_update: false,
    };

    fn stored() -> Value {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "l", "namespace": "ns", "uid": "u-1", "resourceVersion": "7",
                            "creationTimestamp": "2026-01-01T00:00:00Z"},
               "spec": {"holderIdentity": "a"}})
    }

    fn body(rv: Option<&str>) -> Value {
        let mut b = json!({"metadata": {"name": "l", "namespace": "ns", "creationTimestamp": "1999-01-01T00:00:00Z"},
                           "spec": {"holderIdentity": "b"}});
        if let Some(rv) = rv {
            b["metadata"]["resourceVersion"] = json!(rv);
        }
        b
    }

    fn decide_lease(stored: Option<&Value>, incoming: Value) -> Result<Replacement, ApiError> {
        decide(Kind::Lease, LEASES, "ns", stored, incoming)
    }

    #[test]
    fn current_resource_version_updates_and_keeps_server_fields() {
        let Replacement::Update(new) = decide_lease(Some(&stored()), body(Some("7"))).unwrap()
        else {
            panic!("expected an update");
        };
        assert_eq!(new["spec"]["holderIdentity"], "b");
        assert_eq!(new["metadata"]["uid"], "u-1");
        assert_eq!(new["metadata"]["creationTimestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(new["apiVersion"], "coordination.k8s.io/v1");
        assert_eq!(new["kind"], "Lease");
    }

    #[test]
    fn stale_resource_version_conflicts() {
        let e = decide_lease(Some(&stored()), body(Some("6"))).unwrap_err();
        assert_eq!(e, ApiError::conflict(Kind::Lease, "l", OPTIMISTIC_LOCK));
        assert_eq!(e.body()["details"]["kind"], "leases");
    }

    #[test]
    fn leases_need_a_resource_version_to_update() {
        let e = decide_lease(Some(&stored()), body(None)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "leases.coordination.k8s.io \"l\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
        );
        assert_eq!(e.code(), 422);
        let e = decide_lease(Some(&stored()), body(Some("x7"))).unwrap_err();
        assert_eq!(e.code(), 422);
        assert!(e.to_string().ends_with(
            "resourceVersion: Invalid value: \"x7\": strconv.ParseUint: parsing \"x7\": invalid syntax"
        ));
        // A kind that allows unconditional updates takes the body as it is.
        let anything = Policy {
            create_on_update: false,
            unconditional_update: true,
        };
        assert!(matches!(
            decide(Kind::Lease, anything, "ns", Some(&stored()), body(None)),
            Ok(Replacement::Update(_))
        ));
    }

    #[test]
    fn missing_object_is_created_or_not_found_by_policy() {
        assert_eq!(
            decide_lease(None, body(Some("6"))).unwrap(),
            Replacement::Create(body(Some("6")))
        );
        let strict = Policy {
            create_on_update: false,
            unconditional_update: false,
        };
        let e = decide(Kind::Lease, strict, "ns", None, body(None)).unwrap_err();
        assert_eq!(e, ApiError::not_found(Kind::Lease, "l"));
    }

    #[test]
    fn uid_is_a_precondition() {
        let mut b = body(Some("7"));
        b["metadata"]["uid"] = json!("u-2");
        let e = decide_lease(Some(&stored()), b.clone()).unwrap_err();
        assert_eq!(e.code(), 409);
        assert_eq!(
            e.to_string(),
            "Operation cannot be fulfilled on leases.coordination.k8s.io \"l\": StorageError: invalid object, \
             Code: 4, Key: /registry/leases/ns/l, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: \
             UID in precondition: u-2, UID in object meta: u-1"
        );
        assert_eq!(decide_lease(None, b).unwrap_err().code(), 409);
        b = body(Some("7"));
        b["metadata"]["uid"] = json!("u-1");
        assert!(decide_lease(Some(&stored()), b).is_ok());
    }
}
