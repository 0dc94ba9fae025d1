//! Metadata common to every created object: name or generateName (validated), namespace
//! checks, uid, creationTimestamp, kind and apiVersion.

use serde_json::{json, Value};

use super::status::ApiError;
use crate::kubelet::status::now;
use crate::names;
use crate::store::Kind;

/// Parses a request body as a JSON object of `kind`.
pub fn parse_body(body: &[u8], kind: &str) -> Result<Value, ApiError> {
    let object: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the object provided is unrecognized: {e}")))?;
    if !object.is_object() {
        return Err(ApiError::bad_request("the object provided is unrecognized"));
    }
    match object["kind"].as_str() {
        None | Some("") => {}
        Some(k) if k == kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind of the object ({k}) does not match the resource ({kind})"
            )))
        }
    }
    Ok(object)
}

/// Sets `metadata.namespace` to the request's namespace when empty; 400 when it differs
/// (`EnsureObjectNamespaceMatchesRequestNamespace`).
pub fn ensure_namespace(object: &mut Value, namespace: &str) -> Result<(), ApiError> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let meta = &mut object["metadata"];
    match meta["namespace"].as_str() {
        None | Some("") => meta["namespace"] = json!(namespace),
        Some(given) if given == namespace => {}
        Some(_) => return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
    }
    Ok(())
}

/// Settles name, namespace and the server-set metadata, kind and apiVersion; `namespace` is
/// None for cluster-scoped kinds. Returns the final name.
pub fn prepare(
    object: &mut Value,
    kind: Kind,
    namespace: Option<&str>,
    subdomain: bool,
) -> Result<String, ApiError> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    if let Some(ns) = namespace {
        ensure_namespace(object, ns)?;
    }
    let meta = &mut object["metadata"];
    let name = match (meta["name"].as_str(), meta["generateName"].as_str()) {
        (Some(n), _) if !n.is_empty() => n.to_owned(),
        (_, Some(base)) if !base.is_empty() => names::generate(base),
        _ => {
            return Err(ApiError::invalid(
                kind,
                "",
                "metadata.name",
                "Required value: name or generateName is required",
            ))
        }
    };
    let problem = if subdomain {
        names::dns1123_subdomain(&name)
    } else {
        names::dns1123_label(&name)
    };
    if let Some(why) = problem {
        return Err(ApiError::invalid(
            kind,
            &name,
            "metadata.name",
            format!("Invalid value: \"{name}\": {why}"),
        ));
    }
    meta["name"] = json!(name);
    meta["uid"] = json!(names::uid());
    meta["creationTimestamp"] = json!(now());
    if let Some(map) = meta.as_object_mut() {
        map.remove("resourceVersion");
        map.remove("deletionTimestamp");
        map.entry("generation").or_insert(json!(1));
    }
    object["kind"] = json!(kind.kind());
    object["apiVersion"] = json!(kind.api_version());
    Ok(name)
}

/// Causes for label values that are not valid label values.
pub fn label_causes(object: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    for (k, v) in object["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if let Some(why) = v.as_str().and_then(names::label_value) {
            causes.push((
                "metadata.labels".to_owned(),
                format!(
                    "Invalid value: \"{}\": {why} (key {k})",
                    v.as_str().unwrap_or("")
                ),
            ));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_namespaces() {
        let mut o = json!({"metadata": {"generateName": "web-"}});
        let name = prepare(&mut o, Kind::Pod, Some("default"), true).unwrap();
        assert!(name.starts_with("web-") && name.len() == 9);
        assert_eq!(o["metadata"]["namespace"], "default");
        assert_eq!(o["kind"], "Pod");
        assert_eq!(o["apiVersion"], "v1");
        let mut o = json!({"metadata": {"name": "l"}});
        prepare(&mut o, Kind::Lease, Some("default"), true).unwrap();
        assert_eq!(o["apiVersion"], "coordination.k8s.io/v1");
        assert_eq!(o["kind"], "Lease");
        let mut o = json!({"metadata": {"name": "a", "namespace": "other"}});
        assert_eq!(
            prepare(&mut o, Kind::Pod, Some("default"), true)
                .unwrap_err()
                .code(),
            400
        );
        let mut o = json!({"metadata": {"name": "Bad_Name"}});
        assert_eq!(
            prepare(&mut o, Kind::Pod, Some("default"), true)
                .unwrap_err()
                .code(),
            422
        );
        let mut o = json!({"metadata": {}});
        assert_eq!(
            prepare(&mut o, Kind::Pod, Some("default"), true)
                .unwrap_err()
                .code(),
            422
        );
    }

    #[test]
    fn wrong_kind_is_bad_request() {
        assert_eq!(
            parse_body(br#"{"kind":"Service"}"#, "Pod")
                .unwrap_err()
                .code(),
            400
        );
        assert_eq!(parse_body(b"nope", "Pod").unwrap_err().code(), 400);
        assert!(parse_body(br#"{"kind":"Pod"}"#, "Pod").is_ok());
    }
}
