//! `metav1.Status` bodies and the one error type of every API handler, answering the way the
//! apiserver does (code, reason, message, details).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::store::Kind;

/// A resource as the apiserver names it in errors: `pods` in the core group,
/// `leases.coordination.k8s.io` in another (`schema.GroupResource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn new(group: &str, resource: &str) -> Self {
        Self {
            group: group.to_owned(),
            resource: resource.to_owned(),
        }
    }
}

impl From<&str> for GroupResource {
    /// A core-group resource.
    fn from(resource: &str) -> Self {
        Self::new("", resource)
    }
}

impl From<Kind> for GroupResource {
    fn from(kind: Kind) -> Self {
        Self::new(kind.group(), kind.resource())
    }
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// A failed API request, rendered as a Status body.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized,
    Forbidden(String),
    NotFound {
        resource: GroupResource,
        name: String,
    },
    /// A path the server does not serve.
    NoRoute,
    MethodNotAllowed,
    /// 405 for a verb the apiserver serves but kube-sim does not emulate, saying so.
    NotEmulated(String),
    AlreadyExists {
        resource: GroupResource,
        name: String,
    },
    /// 409 Conflict: "Operation cannot be fulfilled on `resource` "`name`": `cause`".
    Conflict {
        resource: GroupResource,
        name: String,
        cause: String,
    },
    Expired(String),
    /// 415: a body in a media type kube-sim does not decode for this resource.
    UnsupportedMediaType(String),
    /// 422: the object's group and kind (the generic registry puts a resource name in `kind`
    /// for some errors), its name, then (field, message) causes.
    Invalid {
        group: String,
        kind: String,
        name: String,
        causes: Vec<(String, String)>,
    },
    Internal(String),
    /// An error the apiserver does not classify: 500 with the bare message and no reason.
    Unknown(String),
}

/// The cause message every optimistic-concurrency conflict carries.
pub const OPTIMISTIC_LOCK: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// A cause's `reason`, from the `field.Error` type its message starts with.
fn cause_reason(message: &str) -> &'static str {
    const REASONS: &[(&str, &str)] = &[
        ("Required value", "FieldValueRequired"),
        ("Unsupported value", "FieldValueNotSupported"),
        ("Forbidden", "FieldValueForbidden"),
        ("Duplicate value", "FieldValueDuplicate"),
        ("Too long", "FieldValueTooLong"),
        ("Too many", "FieldValueTooMany"),
        ("Not found", "FieldValueNotFound"),
        ("Internal error", "InternalError"),
    ];
    REASONS
        .iter()
        .find(|(prefix, _)| message.starts_with(prefix))
        .map_or("FieldValueInvalid", |(_, reason)| reason)
}

/// `details` naming one object: name, group (only when not core), kind.
fn details(name: &str, group: &str, kind: &str) -> Map<String, Value> {
    let mut d = Map::new();
    d.insert("name".to_owned(), json!(name));
    if !group.is_empty() {
        d.insert("group".to_owned(), json!(group));
    }
    d.insert("kind".to_owned(), json!(kind));
    d
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    pub fn not_found(resource: impl Into<GroupResource>, name: &str) -> Self {
        Self::NotFound {
            resource: resource.into(),
            name: name.to_owned(),
        }
    }

    pub fn already_exists(resource: impl Into<GroupResource>, name: &str) -> Self {
        Self::AlreadyExists {
            resource: resource.into(),
            name: name.to_owned(),
        }
    }

    pub fn conflict(
        resource: impl Into<GroupResource>,
        name: &str,
        cause: impl Into<String>,
    ) -> Self {
        Self::Conflict {
            resource: resource.into(),
            name: name.to_owned(),
            cause: cause.into(),
        }
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::Internal(message.to_string())
    }

    /// 422 with one cause, for an object of `kind`.
    pub fn invalid(kind: Kind, name: &str, field: &str, message: impl Into<String>) -> Self {
        Self::invalid_causes(kind, name, vec![(field.to_owned(), message.into())])
    }

    /// 422 with every cause found, for an object of `kind`.
    pub fn invalid_causes(kind: Kind, name: &str, causes: Vec<(String, String)>) -> Self {
        Self::Invalid {
            group: kind.group().to_owned(),
            kind: kind.kind().to_owned(),
            name: name.to_owned(),
            causes,
        }
    }

    pub fn code(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Unauthorized => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound { .. } | Self::NoRoute => 404,
            Self::MethodNotAllowed | Self::NotEmulated(_) => 405,
            Self::AlreadyExists { .. } | Self::Conflict { .. } => 409,
            Self::Expired(_) => 410,
            Self::UnsupportedMediaType(_) => 415,
            Self::Invalid { .. } => 422,
            Self::Internal(_) | Self::Unknown(_) => 500,
        }
    }

    /// The Status object (with kind and apiVersion).
    pub fn body(&self) -> Value {
        let (reason, message, details) = match self {
            Self::BadRequest(m) => (Some("BadRequest"), m.clone(), None),
            Self::Unauthorized => (Some("Unauthorized"), "Unauthorized".to_owned(), None),
            Self::Forbidden(m) => (Some("Forbidden"), m.clone(), None),
            Self::NotFound { resource, name } => (
                Some("NotFound"),
                format!("{resource} \"{name}\" not found"),
                Some(details(name, &resource.group, &resource.resource)),
            ),
            Self::NoRoute => (
                Some("NotFound"),
                "the server could not find the requested resource".to_owned(),
                None,
            ),
            Self::MethodNotAllowed => (
                Some("MethodNotAllowed"),
                "the server does not allow this method on the requested resource".to_owned(),
                None,
            ),
            Self::NotEmulated(m) => (Some("MethodNotAllowed"), m.clone(), None),
            Self::AlreadyExists { resource, name } => (
                Some("AlreadyExists"),
                format!("{resource} \"{name}\" already exists"),
                Some(details(name, &resource.group, &resource.resource)),
            ),
            Self::Conflict {
                resource,
                name,
                cause,
            } => (
                Some("Conflict"),
                format!("Operation cannot be fulfilled on {resource} \"{name}\": {cause}"),
                Some(details(name, &resource.group, &resource.resource)),
            ),
            Self::Expired(m) => (Some("Expired"), m.clone(), None),
            Self::UnsupportedMediaType(m) => (Some("UnsupportedMediaType"), m.clone(), None),
            Self::Invalid {
                group,
                kind,
                name,
                causes,
            } => {
                let text: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
                let qualified = GroupResource::new(group, kind);
                let message = match text.as_slice() {
                    [one] => format!("{qualified} \"{name}\" is invalid: {one}"),
                    many => format!("{qualified} \"{name}\" is invalid: [{}]", many.join(", ")),
                };
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|(f, m)| json!({"reason": cause_reason(m), "message": m, "field": f}))
                    .collect();
                let mut d = details(name, group, kind);
                d.insert("causes".to_owned(), json!(causes));
                (Some("Invalid"), message, Some(d))
            }
            Self::Internal(m) => {
                let mut d = Map::new();
                d.insert("causes".to_owned(), json!([{"message": m}]));
                (
                    Some("InternalError"),
                    format!("Internal error occurred: {m}"),
                    Some(d),
                )
            }
            Self::Unknown(m) => (None, m.clone(), None),
        };
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "code": self.code(),
        });
        if let (Some(r), Some(map)) = (reason, body.as_object_mut()) {
            map.insert("reason".to_owned(), json!(r));
        }
        if let (Some(d), Some(map)) = (details, body.as_object_mut()) {
            map.insert("details".to_owned(), Value::Object(d));
        }
        body
    }
}

/// The Status a successful delete answers with when the registry does not return the object
/// (as for leases): `details` names the object and carries its uid.
pub fn delete_success(resource: &GroupResource, name: &str, uid: &str) -> Value {
    let mut d = details(name, &resource.group, &resource.resource);
    d.insert("uid".to_owned(), json!(uid));
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": d,
    })
}

/// Adds one `Warning: 299 - "..."` header per message, as the apiserver reports dropped fields.
pub fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = self.body();
        f.write_str(body["message"].as_str().unwrap_or("error"))
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(m) = &self {
            tracing::warn!(error = %m, "internal error");
        }
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(code, &self.body())
    }
}

/// A JSON response with the apiserver's content type.
pub fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The Status written on the error channel (3) of exec: success.
pub fn exec_success() -> Value {
    json!({"metadata": {}, "status": "Success"})
}

/// The Status written on the error channel of exec when the command exits non-zero.
pub fn exec_exit_code(code: i64) -> Value {
    let code = code.clamp(0, 255);
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command, exit status {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The Status written on the error channel when the process could not run.
pub fn exec_internal(message: &str) -> Value {
    let cause = format!("error executing command in container: {message}");
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {cause}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": cause}]},
        "code": 500,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_the_resource() {
        let body = ApiError::not_found("pods", "nope").body();
        assert_eq!(body["code"], 404);
        assert_eq!(body["reason"], "NotFound");
        assert_eq!(body["message"], "pods \"nope\" not found");
        assert_eq!(body["details"]["kind"], "pods");
        assert_eq!(body["kind"], "Status");
    }

    #[test]
    fn grouped_resources_are_qualified() {
        let body = ApiError::not_found(Kind::Lease, "l").body();
        assert_eq!(
            body["message"],
            "leases.coordination.k8s.io \"l\" not found"
        );
        assert_eq!(
            body["details"],
            json!({"name": "l", "group": "coordination.k8s.io", "kind": "leases"})
        );
        let body = ApiError::conflict(Kind::Lease, "l", OPTIMISTIC_LOCK).body();
        assert_eq!(
            (body["code"].as_u64(), body["reason"].as_str()),
            (Some(409), Some("Conflict"))
        );
        assert_eq!(
            body["message"],
            "Operation cannot be fulfilled on leases.coordination.k8s.io \"l\": the object has \
             been modified; please apply your changes to the latest version and try again"
        );
        let body = ApiError::already_exists(Kind::Lease, "l").body();
        assert_eq!(
            body["message"],
            "leases.coordination.k8s.io \"l\" already exists"
        );
        let body = ApiError::invalid(
            Kind::Lease,
            "l",
            "spec.leaseDurationSeconds",
            "Invalid value: 0: must be greater than 0",
        )
        .body();
        assert_eq!(
            body["message"],
            "Lease.coordination.k8s.io \"l\" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
        );
        assert_eq!(body["details"]["group"], "coordination.k8s.io");
        assert_eq!(body["details"]["kind"], "Lease");
    }

    #[test]
    fn unclassified_errors_have_no_reason() {
        let body =
            ApiError::Unknown("resourceVersion should not be set on objects to be created".into())
                .body();
        assert_eq!(body["code"], 500);
        assert!(body.get("reason").is_none());
    }

    #[test]
    fn delete_status_carries_the_uid() {
        let body = delete_success(&Kind::Lease.into(), "l", "u-1");
        assert_eq!(body["status"], "Success");
        assert_eq!(
            body["details"],
            json!({"name": "l", "group": "coordination.k8s.io", "kind": "leases", "uid": "u-1"})
        );
    }

    #[test]
    fn invalid_lists_causes() {
        let body =
            ApiError::invalid(Kind::Pod, "Bad_Name", "metadata.name", "Invalid value").body();
        assert_eq!(body["code"], 422);
        assert_eq!(body["reason"], "Invalid");
        assert_eq!(
            body["message"],
            "Pod \"Bad_Name\" is invalid: metadata.name: Invalid value"
        );
        assert_eq!(body["details"]["causes"][0]["field"], "metadata.name");
        assert_eq!(body["details"]["causes"][0]["reason"], "FieldValueInvalid");
        assert!(body["details"].get("group").is_none());
        let body = ApiError::invalid(Kind::Pod, "", "metadata.name", "Required value: x").body();
        assert_eq!(body["details"]["causes"][0]["reason"], "FieldValueRequired");
    }

    #[test]
    fn exit_code_status_uses_reason_key() {
        let body = exec_exit_code(7);
        assert_eq!(body["reason"], "NonZeroExitCode");
        assert_eq!(body["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(body["details"]["causes"][0]["message"], "7");
    }
}
