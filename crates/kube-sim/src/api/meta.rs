//! Metadata common to every created object: name or generateName (validated), namespace
//! checks, uid, creationTimestamp, kind and apiVersion.

use serde_json::{json, Value};

use super::status::ApiError;
use crate::kubelet::status::now;
use crate::names;

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

/// Settles name, namespace and the server-set metadata; `namespace` is None for
/// cluster-scoped kinds. Returns the final name.
pub fn prepare(
    object: &mut Value,
    kind: &str,
    namespace: Option<&str>,
    subdomain: bool,
) -> Result<String, ApiError> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let meta = &mut object["metadata"];
    if let Some(ns) = namespace {
        match meta["namespace"].as_str() {
            None | Some("") => meta["namespace"] = json!(ns),
            Some(given) if given == ns => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
        }
    }
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
    object["kind"] = json!(kind);
    object["apiVersion"] = json!("v1");
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_namespaces() {
        let mut o = json!({"metadata": {"generateName": "web-"}});
        let name = prepare(&mut o, "Pod", Some("default"), true).unwrap();
        assert!(name.starts_with("web-") && name.len() == 9);
        assert_eq!(o["metadata"]["namespace"], "default");
        assert_eq!(o["kind"], "Pod");
        let mut o = json!({"metadata": {"name": "a", "namespace": "other"}});
        assert_eq!(
            prepare(&mut o, "Pod", Some("default"), true)
                .unwrap_err()
                .code(),
            400
        );
        let mut o = json!({"metadata": {"name": "Bad_Name"}});
        assert_eq!(
            prepare(&mut o, "Pod", Some("default"), true)
                .unwrap_err()
                .code(),
            422
        );
        let mut o = json!({"metadata": {}});
        assert_eq!(
            prepare(&mut o, "Pod", Some("default"), true)
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
