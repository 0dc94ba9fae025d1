//! Request bodies in the Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! which typed clients send: `kubectl create secret|configmap|serviceaccount|namespace` do.
//! Only those kinds are decoded: the `k8s\0` envelope (`runtime.Unknown`) around a v1 Secret,
//! ConfigMap, ServiceAccount or Namespace, into the JSON object the JSON decoder would have
//! produced. Other kinds are refused by the caller with 415.
//!
//! Field numbers are those of `k8s.io/api/core/v1/generated.proto` and
//! `k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto`. Fields kube-sim does not read are
//! skipped, as the apiserver would ignore fields it does not know.

use base64::Engine as _;
use serde_json::{json, Map, Value};

/// The media type of protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The kinds [`decode`] reads.
pub const KINDS: [&str; 4] = ["Secret", "ConfigMap", "ServiceAccount", "Namespace"];

/// The body as JSON: a protobuf body of one of [`KINDS`] is decoded (400 when it cannot be),
/// of another kind refused with 415; other bodies are passed on as they are.
pub fn json_body(
    kind: &str,
    headers: &axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::body::Bytes, super::status::ApiError> {
    use super::status::ApiError;
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with(MEDIA_TYPE) {
        return Ok(body);
    }
    if !KINDS.contains(&kind) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json (kube-sim decodes {MEDIA_TYPE} only for {})",
            KINDS.join(", ")
        )));
    }
    let object = decode(&body, kind).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"v1\" cannot be handled as a {kind}: {}",
            e.0
        ))
    })?;
    serde_json::to_vec(&object)
        .map(axum::body::Bytes::from)
        .map_err(ApiError::internal)
}

/// Why a body could not be decoded.
#[derive(Debug, PartialEq)]
pub struct DecodeError(pub String);

/// One field of a message: its number and value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .data
                .split_first()
                .ok_or_else(|| DecodeError("truncated varint".into()))?;
            self.data = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError("varint too long".into()))
    }

    /// The next (number, value), or None at the end.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, DecodeError> {
        if self.data.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| DecodeError("length too large".into()))?;
                if len > self.data.len() {
                    return Err(DecodeError("truncated field".into()));
                }
                let (bytes, rest) = self.data.split_at(len);
                self.data = rest;
                Field::Bytes(bytes)
            }
            1 => Field::Bytes(self.take(8)?),
            5 => Field::Bytes(self.take(4)?),
            w => return Err(DecodeError(format!("unsupported wire type {w}"))),
        };
        Ok(Some((key >> 3, field)))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.data.len() {
            return Err(DecodeError("truncated field".into()));
        }
        let (bytes, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(bytes)
    }
}

fn fields(data: &[u8]) -> impl Iterator<Item = Result<(u64, Field<'_>), DecodeError>> {
    let mut reader = Reader { data };
    std::iter::from_fn(move || reader.next().transpose())
}

fn text(bytes: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError("invalid UTF-8 in a string".into()))
}

/// A `map<string, string>` or `map<string, bytes>` entry: key 1, value 2.
fn entry(data: &[u8]) -> Result<(String, Vec<u8>), DecodeError> {
    let (mut key, mut value) = (String::new(), Vec::new());
    for f in fields(data) {
        match f? {
            (1, Field::Bytes(b)) => key = text(b)?,
            (2, Field::Bytes(b)) => value = b.to_vec(),
            _ => {}
        }
    }
    Ok((key, value))
}

/// ObjectMeta: the fields a client sets on create.
fn object_meta(data: &[u8]) -> Result<Value, DecodeError> {
    let mut meta = Map::new();
    let (mut labels, mut annotations) = (Map::new(), Map::new());
    for f in fields(data) {
        match f? {
            (1, Field::Bytes(b)) => drop(meta.insert("name".into(), json!(text(b)?))),
            (2, Field::Bytes(b)) => drop(meta.insert("generateName".into(), json!(text(b)?))),
            (3, Field::Bytes(b)) => drop(meta.insert("namespace".into(), json!(text(b)?))),
            (6, Field::Bytes(b)) => {
                drop(meta.insert("resourceVersion".into(), json!(text(b)?)));
            }
            (11, Field::Bytes(b)) => {
                let (k, v) = entry(b)?;
                labels.insert(k, json!(text(&v)?));
            }
            (12, Field::Bytes(b)) => {
                let (k, v) = entry(b)?;
                annotations.insert(k, json!(text(&v)?));
            }
            _ => {}
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    Ok(Value::Object(meta))
}

/// A v1 Secret message as its JSON form (`data` base64, as JSON carries bytes).
fn secret(data: &[u8]) -> Result<Value, DecodeError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut secret = json!({"apiVersion": "v1", "kind": "Secret"});
    let (mut values, mut strings) = (Map::new(), Map::new());
    for f in fields(data) {
        match f? {
            (1, Field::Bytes(b)) => secret["metadata"] = object_meta(b)?,
            (2, Field::Bytes(b)) => {
                let (k, v) = entry(b)?;
                values.insert(k, json!(b64.encode(v)));
            }
            (3, Field::Bytes(b)) => secret["type"] = json!(text(b)?),
            (4, Field::Bytes(b)) => {
                let (k, v) = entry(b)?;
                strings.insert(k, json!(text(&v)?));
            }
            (5, Field::Varint(v)) => secret["immutable"] = json!(v != 0),
            _ => {}
        }
    }
    if !values.is_empty() {
        secret["data"] = Value::Object(values);
    }
    if !strings.is_empty() {
        secret["stringData"] = Value::Object(strings);
    }
    Ok(secret)
}

/// A v1 ConfigMap message: metadata 1, data 2, binaryData 3, immutable 4.
fn config_map(data: &[u8]) -> Result<Value, DecodeError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap"});
    let (mut strings, mut binary) = (Map::new(), Map::new());
    for f in fields(data) {
        match f? {
            (1, Field::Bytes(b)) => cm["metadata"] = object_meta(b)?,
            (2, Field::Bytes(b)) => {
                let (k, v) = entry(b)?;
                strings.insert(k, json!(text(&v)?));
            }
            (3, Field::Bytes(b)) => {
                let (k, v) = entry(b)?;
                binary.insert(k, json!(b64.encode(v)));
            }
            (4, Field::Varint(v)) => cm["immutable"] = json!(v != 0),
            _ => {}
        }
    }
    if !strings.is_empty() {
        cm["data"] = Value::Object(strings);
    }
    if !binary.is_empty() {
        cm["binaryData"] = Value::Object(binary);
    }
    Ok(cm)
}

/// A message of which kube-sim reads the metadata (field 1) and, for ServiceAccounts,
/// `automountServiceAccountToken` (field 4).
fn metadata_only(data: &[u8], kind: &str) -> Result<Value, DecodeError> {
    let mut object = json!({"apiVersion": "v1", "kind": kind});
    for f in fields(data) {
        match f? {
            (1, Field::Bytes(b)) => object["metadata"] = object_meta(b)?,
            (4, Field::Varint(v)) if kind == "ServiceAccount" => {
                object["automountServiceAccountToken"] = json!(v != 0);
            }
            _ => {}
        }
    }
    Ok(object)
}

/// Decodes a protobuf request body holding a v1 `kind` (Secret, ConfigMap, ServiceAccount or
/// Namespace). Err names what is wrong, for a 400.
pub fn decode(body: &[u8], kind: &str) -> Result<Value, DecodeError> {
    let envelope = body
        .strip_prefix(b"k8s\0")
        .ok_or_else(|| DecodeError("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]".into()))?;
    let (mut type_meta, mut raw) = ((String::new(), String::new()), None);
    for f in fields(envelope) {
        match f? {
            (1, Field::Bytes(b)) => {
                for g in fields(b) {
                    match g? {
                        (1, Field::Bytes(v)) => type_meta.0 = text(v)?,
                        (2, Field::Bytes(v)) => type_meta.1 = text(v)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = Some(b),
            _ => {}
        }
    }
    if type_meta != ("v1".to_owned(), kind.to_owned()) {
        return Err(DecodeError(format!(
            "the kind of the object ({}/{}) does not match the resource (v1/{kind})",
            type_meta.0, type_meta.1
        )));
    }
    let raw = raw.ok_or_else(|| DecodeError("the envelope has no object".into()))?;
    match kind {
        "Secret" => secret(raw),
        "ConfigMap" => config_map(raw),
        "ServiceAccount" | "Namespace" => metadata_only(raw, kind),
        _ => Err(DecodeError(format!(
            "kube-sim does not decode {kind} from protobuf"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![u8::try_from(number << 3 | 2).unwrap()];
        out.push(u8::try_from(bytes.len()).unwrap());
        out.extend_from_slice(bytes);
        out
    }

    fn map_entry(number: u64, k: &str, v: &[u8]) -> Vec<u8> {
        field(number, &[field(1, k.as_bytes()), field(2, v)].concat())
    }

    #[test]
    fn decodes_a_secret_in_its_envelope() {
        let meta = [
            field(1, b"hostkey"),
            field(3, b"sshpod"),
            map_entry(11, "a", b"b"),
        ]
        .concat();
        let secret = [
            field(1, &meta),
            map_entry(2, "key", b"\x00\xffbytes"),
            field(3, b"Opaque"),
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &secret)].concat();
        let decoded = decode(&body, "Secret").unwrap();
        assert_eq!(
            decoded,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                   "metadata": {"name": "hostkey", "namespace": "sshpod", "labels": {"a": "b"}},
                   "data": {"key": "AP9ieXRlcw=="}})
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(decode(b"{}", "Secret").is_err());
        let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta)].concat();
        assert!(decode(&body, "Secret")
            .unwrap_err()
            .0
            .contains("does not match"));
        // A length running past the end is an error, not a panic.
        assert!(decode(b"k8s\0\x0a\x7f", "Secret").is_err());
        assert!(decode(b"k8s\0\x80", "Secret").is_err());
    }
}
