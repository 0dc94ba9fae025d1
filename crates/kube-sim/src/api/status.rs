//! `metav1.Status` bodies and the one error type of every API handler, answering the way the
//! apiserver does (code, reason, message, details).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// A failed API request, rendered as a Status body.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized,
    Forbidden(String),
    NotFound {
        resource: String,
        name: String,
    },
    /// A path the server does not serve.
    NoRoute,
    MethodNotAllowed,
    AlreadyExists {
        resource: String,
        name: String,
    },
    Expired(String),
    /// 422: `kind` and `name` of the object, then (field, message) causes.
    Invalid {
        kind: String,
        name: String,
        causes: Vec<(String, String)>,
    },
    Internal(String),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    pub fn not_found(resource: &str, name: &str) -> Self {
        Self::NotFound {
            resource: resource.to_owned(),
            name: name.to_owned(),
        }
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::Internal(message.to_string())
    }

    pub fn invalid(kind: &str, name: &str, field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            kind: kind.to_owned(),
            name: name.to_owned(),
            causes: vec![(field.to_owned(), message.into())],
        }
    }

    pub fn code(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Unauthorized => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound { .. } | Self::NoRoute => 404,
            Self::MethodNotAllowed => 405,
            Self::AlreadyExists { .. } => 409,
            Self::Expired(_) => 410,
            Self::Invalid { .. } => 422,
            Self::Internal(_) => 500,
        }
    }

    /// The Status object (with kind and apiVersion).
    pub fn body(&self) -> Value {
        let (reason, message, details) = match self {
            Self::BadRequest(m) => ("BadRequest", m.clone(), None),
            Self::Unauthorized => ("Unauthorized", "Unauthorized".to_owned(), None),
            Self::Forbidden(m) => ("Forbidden", m.clone(), None),
            Self::NotFound { resource, name } => (
                "NotFound",
                format!("{resource} \"{name}\" not found"),
                Some(json!({"name": name, "kind": resource})),
            ),
            Self::NoRoute => (
                "NotFound",
                "the server could not find the requested resource".to_owned(),
                None,
            ),
            Self::MethodNotAllowed => (
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource".to_owned(),
                None,
            ),
            Self::AlreadyExists { resource, name } => (
                "AlreadyExists",
                format!("{resource} \"{name}\" already exists"),
                Some(json!({"name": name, "kind": resource})),
            ),
            Self::Expired(m) => ("Expired", m.clone(), None),
            Self::Invalid { kind, name, causes } => {
                let text: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
                let message = match text.as_slice() {
                    [one] => format!("{kind} \"{name}\" is invalid: {one}"),
                    many => format!("{kind} \"{name}\" is invalid: [{}]", many.join(", ")),
                };
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": m, "field": f}))
                    .collect();
                (
                    "Invalid",
                    message,
                    Some(json!({"name": name, "kind": kind, "causes": causes})),
                )
            }
            Self::Internal(m) => (
                "InternalError",
                format!("Internal error occurred: {m}"),
                Some(json!({"causes": [{"message": m}]})),
            ),
        };
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": self.code(),
        });
        if let (Some(d), Some(map)) = (details, body.as_object_mut()) {
            map.insert("details".to_owned(), d);
        }
        body
    }
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
    fn invalid_lists_causes() {
        let body = ApiError::invalid("Pod", "Bad_Name", "metadata.name", "Invalid value").body();
        assert_eq!(body["code"], 422);
        assert_eq!(body["reason"], "Invalid");
        assert_eq!(
            body["message"],
            "Pod \"Bad_Name\" is invalid: metadata.name: Invalid value"
        );
        assert_eq!(body["details"]["causes"][0]["field"], "metadata.name");
    }

    #[test]
    fn exit_code_status_uses_reason_key() {
        let body = exec_exit_code(7);
        assert_eq!(body["reason"], "NonZeroExitCode");
        assert_eq!(body["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(body["details"]["causes"][0]["message"], "7");
    }
}
