//! A Lease body as the apiserver reads it and the rules it checks: the typed decoder (known
//! fields type-checked, `null`s and unknown fields dropped or, with `fieldValidation=Strict`,
//! refused; MicroTimes parsed into their stored form), the fields a disabled feature gate
//! clears, and `ValidateLease`.

use serde_json::{Map, Value};

use super::meta::{label_causes, parse_body};
use super::status::ApiError;
use crate::microtime;
use crate::store::Kind;

/// What the decoder does with fields the schema does not know (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    /// The default: drop them, with a warning each.
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn from_query(value: Option<&str>) -> Self {
        match value {
            Some("Strict") => Self::Strict,
            Some("Ignore") => Self::Ignore,
            _ => Self::Warn,
        }
    }
}

/// A field's Go type, as far as decoding needs it.
#[derive(Debug, Clone, Copy)]
enum Type {
    Str,
    Int32,
    Int64,
    /// `metav1.MicroTime`.
    MicroTime,
    /// `metav1.Time` (only its JSON type is checked).
    Time,
    StringMap,
    StringList,
    /// A list of objects whose inside kube-sim does not check.
    ObjectList(&'static str),
    /// A struct: its Go type, its name in errors, its fields.
    Struct(&'static str, &'static str, &'static [(&'static str, Type)]),
}

const OBJECT_META: &[(&str, Type)] = &[
    ("annotations", Type::StringMap),
    ("creationTimestamp", Type::Time),
    ("deletionGracePeriodSeconds", Type::Int64),
    ("deletionTimestamp", Type::Time),
    ("finalizers", Type::StringList),
    ("generateName", Type::Str),
    ("generation", Type::Int64),
    ("labels", Type::StringMap),
    ("managedFields", Type::ObjectList("[]v1.ManagedFieldsEntry")),
    ("name", Type::Str),
    ("namespace", Type::Str),
    ("ownerReferences", Type::ObjectList("[]v1.OwnerReference")),
    ("resourceVersion", Type::Str),
    ("selfLink", Type::Str),
    ("uid", Type::Str),
];

const LEASE_SPEC: &[(&str, Type)] = &[
    ("acquireTime", Type::MicroTime),
    ("holderIdentity", Type::Str),
    ("leaseDurationSeconds", Type::Int32),
    ("leaseTransitions", Type::Int32),
    ("preferredHolder", Type::Str),
    ("renewTime", Type::MicroTime),
    ("strategy", Type::Str),
];

const LEASE: &[(&str, Type)] = &[
    ("apiVersion", Type::Str),
    ("kind", Type::Str),
    (
        "metadata",
        Type::Struct("v1.ObjectMeta", "ObjectMeta", OBJECT_META),
    ),
    (
        "spec",
        Type::Struct("v1.LeaseSpec", "LeaseSpec", LEASE_SPEC),
    ),
];

/// How encoding/json names a JSON value in a type error.
fn json_type(value: &Value, with_number: bool) -> String {
    match value {
        Value::String(_) => "string".to_owned(),
        Value::Bool(_) => "bool".to_owned(),
        Value::Array(_) => "array".to_owned(),
        Value::Object(_) => "object".to_owned(),
        Value::Number(n) if with_number => format!("number {n}"),
        Value::Number(_) | Value::Null => "number".to_owned(),
    }
}

fn type_error(value: &Value, owner: &str, path: &str, go_type: &str) -> String {
    let numeric = go_type.starts_with("int");
    format!(
        "json: cannot unmarshal {} into Go struct field {owner}.{path} of type {go_type}",
        json_type(value, numeric)
    )
}

/// Decodes the fields of one struct in place. `owner` is the struct's name in errors.
fn decode_struct(
    object: &mut Map<String, Value>,
    fields: &[(&str, Type)],
    owner: &str,
    path: &str,
    unknown: &mut Vec<String>,
) -> Result<(), String> {
    let keys: Vec<String> = object.keys().cloned().collect();
    for key in keys {
        let full = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let Some(&(_, ty)) = fields.iter().find(|(name, _)| *name == key) else {
            unknown.push(full);
            object.remove(&key);
            continue;
        };
        let Some(value) = object.get_mut(&key) else {
            continue;
        };
        if value.is_null() || !decode_value(value, ty, owner, &full, unknown)? {
            object.remove(&key);
        }
    }
    Ok(())
}

/// Decodes one non-null value in place; false when it decodes to nothing (drops out).
fn decode_value(
    value: &mut Value,
    ty: Type,
    owner: &str,
    path: &str,
    unknown: &mut Vec<String>,
) -> Result<bool, String> {
    let not_a_string = |v: &Value| {
        format!(
            "json: cannot unmarshal {} into Go value of type string",
            json_type(v, false)
        )
    };
    match ty {
        Type::Str if !value.is_string() => Err(type_error(value, owner, path, "string")),
        Type::Int32 if value.as_i64().and_then(|n| i32::try_from(n).ok()).is_none() => {
            Err(type_error(value, owner, path, "int32"))
        }
        Type::Int64 if value.as_i64().is_none() => Err(type_error(value, owner, path, "int64")),
        Type::Str | Type::Int32 | Type::Int64 => Ok(true),
        Type::MicroTime => {
            let text = value.as_str().ok_or_else(|| not_a_string(value))?;
            match microtime::parse(text)? {
                Some(stored) => {
                    *value = Value::String(stored);
                    Ok(true)
                }
                None => Ok(false),
            }
        }
        Type::Time if !value.is_string() => Err(not_a_string(value)),
        Type::Time => Ok(true),
        Type::StringMap => {
            let Some(map) = value.as_object_mut() else {
                return Err(type_error(value, owner, path, "map[string]string"));
            };
            for item in map.values_mut() {
                match item {
                    // A null element decodes to the zero value.
                    Value::Null => *item = Value::String(String::new()),
                    Value::String(_) => {}
                    other => return Err(type_error(other, owner, path, "string")),
                }
            }
            Ok(true)
        }
        Type::StringList => {
            let Some(list) = value.as_array_mut() else {
                return Err(type_error(value, owner, path, "[]string"));
            };
            for item in list {
                match item {
                    Value::Null => *item = Value::String(String::new()),
                    Value::String(_) => {}
                    other => return Err(type_error(other, owner, path, "string")),
                }
            }
            Ok(true)
        }
        Type::ObjectList(go_type) => match value.as_array() {
            Some(items) if items.iter().all(|i| i.is_object() || i.is_null()) => Ok(true),
            _ => Err(type_error(value, owner, path, go_type)),
        },
        Type::Struct(go_type, name, fields) => {
            let Some(map) = value.as_object_mut() else {
                return Err(type_error(value, owner, path, go_type));
            };
            decode_struct(map, fields, name, path, unknown)?;
            Ok(true)
        }
    }
}

/// The 400 every decoding failure of a Lease body becomes.
fn cannot_handle(why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Lease in version \"v1\" cannot be handled as a Lease: {why}"
    ))
}

/// A decoded Lease and the warnings for the response (dropped unknown fields).
#[derive(Debug)]
pub struct Decoded {
    pub lease: Value,
    pub warnings: Vec<String>,
}

/// Decodes a request body into a Lease as the apiserver's typed decoder would.
pub fn decode(body: &[u8], validation: FieldValidation) -> Result<Decoded, ApiError> {
    let mut lease = parse_body(body, Kind::Lease.kind())?;
    let expected = Kind::Lease.api_version();
    match lease["apiVersion"].as_str() {
        None | Some("") => {}
        Some(v) if v == expected => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected})"
            )))
        }
    }
    let mut unknown = Vec::new();
    if let Some(map) = lease.as_object_mut() {
        decode_struct(map, LEASE, "Lease", "", &mut unknown).map_err(|e| cannot_handle(&e))?;
    }
    let unknown: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    if validation == FieldValidation::Strict && !unknown.is_empty() {
        return Err(cannot_handle(&format!(
            "strict decoding error: {}",
            unknown.join(", ")
        )));
    }
    for part in ["metadata", "spec"] {
        if !lease[part].is_object() {
            lease[part] = Value::Object(Map::new());
        }
    }
    let warnings = match validation {
        FieldValidation::Warn => unknown,
        FieldValidation::Ignore | FieldValidation::Strict => Vec::new(),
    };
    Ok(Decoded { lease, warnings })
}

/// `spec.strategy` and `spec.preferredHolder` belong to the CoordinatedLeaderElection feature
/// gate, off by default in 1.32: create and update clear them (no stored lease has them).
pub fn drop_gated_fields(lease: &mut Value) {
    if let Some(spec) = lease["spec"].as_object_mut() {
        spec.remove("strategy");
        spec.remove("preferredHolder");
    }
}

/// Field errors of a Lease, as `ValidateLease` reports them: label values, then the spec.
/// (The name is checked where it is settled, by `meta::prepare`.)
pub fn validate(lease: &Value) -> Vec<(String, String)> {
    let mut causes = label_causes(lease);
    let spec = &lease["spec"];
    if let Some(d) = spec["leaseDurationSeconds"].as_i64().filter(|d| *d <= 0) {
        causes.push((
            "spec.leaseDurationSeconds".to_owned(),
            format!("Invalid value: {d}: must be greater than 0"),
        ));
    }
    if let Some(t) = spec["leaseTransitions"].as_i64().filter(|t| *t < 0) {
        causes.push((
            "spec.leaseTransitions".to_owned(),
            format!("Invalid value: {t}: must be greater than or equal to 0"),
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode_json(body: Value, validation: FieldValidation) -> Result<Decoded, ApiError> {
        decode(body.to_string().as_bytes(), validation)
    }

    fn message(e: ApiError) -> (u16, String) {
        (e.code(), e.to_string())
    }

    #[test]
    fn decoding_keeps_known_fields_and_stores_microtimes_in_utc() {
        let d = decode_json(
            json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "l", "labels": {"app": "sshpod", "empty": null}, "annotations": null},
                "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": null,
                         "renewTime": "2026-12-05T03:21:08.123456+01:00", "acquireTime": "0001-01-01T00:00:00.000000Z"},
            }),
            FieldValidation::Strict,
        )
        .unwrap();
        assert!(d.warnings.is_empty());
        assert_eq!(
            d.lease,
            json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "l", "labels": {"app": "sshpod", "empty": ""}},
                "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                         "renewTime": "2026-12-05T02:21:08.123456Z"},
            })
        );
        let bare = decode_json(json!({"metadata": {"name": "l"}}), FieldValidation::Warn).unwrap();
        assert_eq!(bare.lease["spec"], json!({}));
    }

    #[test]
    fn unknown_fields_warn_by_default_and_fail_when_strict() {
        let body = json!({"metadata": {"name": "l", "colour": "red"}, "spec": {"holder": "a"}, "status": {}});
        let d = decode_json(body.clone(), FieldValidation::Warn).unwrap();
        assert_eq!(
            d.warnings,
            vec![
                "unknown field \"metadata.colour\"",
                "unknown field \"spec.holder\"",
                "unknown field \"status\""
            ]
        );
        assert_eq!(d.lease["spec"], json!({}));
        assert!(d.lease.get("status").is_none());
        assert!(decode_json(body.clone(), FieldValidation::Ignore)
            .unwrap()
            .warnings
            .is_empty());
        assert_eq!(
            message(decode_json(body, FieldValidation::Strict).unwrap_err()),
            (
                400,
                "Lease in version \"v1\" cannot be handled as a Lease: strict decoding error: \
                 unknown field \"metadata.colour\", unknown field \"spec.holder\", unknown field \"status\""
                    .to_owned()
            )
        );
    }

    #[test]
    fn type_errors_are_bad_requests() {
        let cases = [
            (
                json!({"spec": {"leaseDurationSeconds": "15"}}),
                "json: cannot unmarshal string into Go struct field LeaseSpec.spec.leaseDurationSeconds of type int32",
            ),
            (
                json!({"spec": {"leaseTransitions": 3_000_000_000_i64}}),
                "json: cannot unmarshal number 3000000000 into Go struct field LeaseSpec.spec.leaseTransitions of type int32",
            ),
            (
                json!({"spec": {"holderIdentity": 7}}),
                "json: cannot unmarshal number into Go struct field LeaseSpec.spec.holderIdentity of type string",
            ),
            (
                json!({"spec": "x"}),
                "json: cannot unmarshal string into Go struct field Lease.spec of type v1.LeaseSpec",
            ),
            (
                json!({"metadata": {"labels": {"a": 1}}}),
                "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string",
            ),
            (
                json!({"spec": {"renewTime": 5}}),
                "json: cannot unmarshal number into Go value of type string",
            ),
            (
                json!({"spec": {"renewTime": "2026-12-05T02:21:08Z"}}),
                "parsing time \"2026-12-05T02:21:08Z\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse \"Z\" as \".000000\"",
            ),
        ];
        for (body, why) in cases {
            assert_eq!(
                message(decode_json(body, FieldValidation::Warn).unwrap_err()),
                (
                    400,
                    format!("Lease in version \"v1\" cannot be handled as a Lease: {why}")
                )
            );
        }
        let e = decode_json(
            json!({"apiVersion": "v1", "kind": "Lease"}),
            FieldValidation::Warn,
        )
        .unwrap_err();
        assert_eq!(
            message(e),
            (400, "the API version in the data (v1) does not match the expected API version (coordination.k8s.io/v1)".to_owned())
        );
        let e = decode_json(json!({"kind": "Pod"}), FieldValidation::Warn).unwrap_err();
        assert_eq!(e.code(), 400);
    }

    #[test]
    fn validation() {
        let lease = json!({"metadata": {"name": "l", "labels": {"a": "-x"}},
                           "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}});
        let fields: Vec<String> = validate(&lease).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "metadata.labels",
                "spec.leaseDurationSeconds",
                "spec.leaseTransitions"
            ]
        );
        let causes =
            validate(&json!({"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0}}));
        assert_eq!(
            causes,
            vec![(
                "spec.leaseDurationSeconds".to_owned(),
                "Invalid value: 0: must be greater than 0".to_owned()
            )]
        );
        let good = json!({"metadata": {"name": "sshpod-a.b"}, "spec": {"leaseDurationSeconds": 1, "leaseTransitions": 0}});
        assert!(validate(&good).is_empty());
    }

    #[test]
    fn gated_fields_are_cleared() {
        let mut lease = json!({"spec": {"strategy": "OldestEmulationVersion", "preferredHolder": "x", "holderIdentity": "a"}});
        drop_gated_fields(&mut lease);
        assert_eq!(lease["spec"], json!({"holderIdentity": "a"}));
    }
}
