//! Typing `pod.metadata` and `pod.spec` with k8s-openapi. Its deserialisers skip unknown
//! fields instead of refusing them, so a typo such as `imagee` would vanish silently;
//! [`unknown_fields`] finds those by comparing what was written with what survived a round trip.

use serde::Serialize;

use crate::check::{join, Checker};

/// Deserialises a Kubernetes object, reporting type errors and keys it does not know.
pub(super) fn typed<T>(check: &mut Checker<'_>, key: &str, value: serde_json::Value) -> Option<T>
where
    T: serde::de::DeserializeOwned + Serialize,
{
    let parsed: T = match serde_path_to_error::deserialize(&value) {
        Ok(parsed) => parsed,
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            let at = if path == "." {
                key.to_owned()
            } else {
                join(key, &path)
            };
            check.shape_error(&at, inner.to_string());
            return None;
        }
    };
    let kept = serde_json::to_value(&parsed).unwrap_or(serde_json::Value::Null);
    for unknown in unknown_fields(&value, &kept, "") {
        check.shape_error_at_key(
            &join(key, &unknown),
            format!(
                "unknown key `{}` in a Kubernetes object",
                last_segment(&unknown)
            ),
        );
    }
    Some(parsed)
}

fn last_segment(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Paths (dotted, `[i]` for list items) of object keys in `written` that are absent from `kept`.
/// Keys whose value was null or empty may be dropped by serialisation; those are not reported.
fn unknown_fields(
    written: &serde_json::Value,
    kept: &serde_json::Value,
    path: &str,
) -> Vec<String> {
    use serde_json::Value;
    let mut out = Vec::new();
    match (written, kept) {
        (Value::Object(w), Value::Object(k)) => {
            for (name, value) in w {
                let child = join(path, name);
                match k.get(name) {
                    Some(kept_value) => out.extend(unknown_fields(value, kept_value, &child)),
                    None if is_empty(value) => {}
                    None => out.push(child),
                }
            }
        }
        (Value::Array(w), Value::Array(k)) => {
            for (index, (value, kept_value)) in w.iter().zip(k).enumerate() {
                out.extend(unknown_fields(
                    value,
                    kept_value,
                    &format!("{path}[{index}]"),
                ));
            }
        }
        _ => {}
    }
    out
}

fn is_empty(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Object(m) => m.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_found_at_any_depth() {
        let written = json!({
            "containers": [{"name": "a", "imagee": "x", "env": []}],
            "hostNetwork": false,
            "nope": {"a": 1},
            "empty": null
        });
        let kept = json!({"containers": [{"name": "a"}], "hostNetwork": false});
        assert_eq!(
            unknown_fields(&written, &kept, ""),
            vec!["containers[0].imagee".to_owned(), "nope".to_owned()]
        );
    }
}
