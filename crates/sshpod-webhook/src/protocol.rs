//! ContainerSSH's webhook wire format (auth `/password`, `/pubkey`, `/authz`, the config
//! server) and sshpod's additions: certificate details in `/pubkey` requests and the
//! `/keyboard-interactive` conversation.
//!
//! Requests carry the same field names as ContainerSSH's. Responses are decoded strictly: a
//! field this crate does not know (a typo such as `sucess`) makes the answer malformed, as in
//! ContainerSSH, except that the shared connection fields a server may echo back are accepted.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One metadata, environment or file entry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataValue {
    /// The value (for files: the content, base64-encoded).
    pub value: String,
    /// Sensitive entries are never logged and never sent to later webhooks.
    #[serde(default)]
    pub sensitive: bool,
}

impl fmt::Debug for MetadataValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sensitive {
            f.write_str("<sensitive>")
        } else {
            write!(f, "{:?}", self.value)
        }
    }
}

/// Entries by name (metadata key, environment variable, or file path).
pub type MetadataMap = BTreeMap<String, MetadataValue>;

/// What the webhooks of one connection have said about it so far: metadata, environment and
/// files, merged in order (auth, authz, config), later answers overriding earlier ones key by
/// key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Free-form metadata.
    pub metadata: MetadataMap,
    /// Environment variables for the user's processes.
    pub environment: MetadataMap,
    /// Files to write into the container (values base64-encoded).
    pub files: MetadataMap,
}

impl Metadata {
    /// Copies every entry of `other` over this one (ContainerSSH's `Merge`: override, never
    /// delete).
    pub fn merge(&mut self, other: Metadata) {
        self.metadata.extend(other.metadata);
        self.environment.extend(other.environment);
        self.files.extend(other.files);
    }

    /// Moves the three maps of an answer out (absent ones are empty).
    fn taken(
        metadata: &mut Option<MetadataMap>,
        environment: &mut Option<MetadataMap>,
        files: &mut Option<MetadataMap>,
    ) -> Metadata {
        Metadata {
            metadata: metadata.take().unwrap_or_default(),
            environment: environment.take().unwrap_or_default(),
            files: files.take().unwrap_or_default(),
        }
    }

    /// The entries that may be sent to a webhook: the sensitive ones are left out.
    pub fn shareable(&self) -> Metadata {
        fn keep(map: &MetadataMap) -> MetadataMap {
            map.iter()
                .filter(|(_, v)| !v.sensitive)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }
        Metadata {
            metadata: keep(&self.metadata),
            environment: keep(&self.environment),
            files: keep(&self.files),
        }
    }
}

/// The fields every request carries (ContainerSSH's `ConnectionMetadata`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionMetadata {
    /// `ip:port` of the client.
    pub remote_address: String,
    /// The connection's id: 32 lower-case hex characters.
    pub connection_id: String,
    /// Metadata so far (sensitive entries left out).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: MetadataMap,
    /// Environment so far (sensitive entries left out).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: MetadataMap,
    /// Files so far (sensitive entries left out).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub files: MetadataMap,
    /// The client's version string (`SSH-2.0-OpenSSH_9.2p1 ...`).
    pub client_version: String,
    /// The login name the client asked for.
    pub username: String,
    /// The name chosen by the authentication webhook (authz and config requests only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authenticated_username: Option<String>,
}

impl ConnectionMetadata {
    /// Puts the shareable part of `metadata` into the request.
    pub fn with_metadata(mut self, metadata: &Metadata) -> Self {
        let shareable = metadata.shareable();
        self.metadata = shareable.metadata;
        self.environment = shareable.environment;
        self.files = shareable.files;
        self
    }
}

/// `POST <url>/password`.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordRequest {
    /// Shared fields.
    #[serde(flatten)]
    pub connection: ConnectionMetadata,
    /// The password's bytes, standard base64.
    pub password_base64: String,
}

impl fmt::Debug for PasswordRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordRequest")
            .field("connection", &self.connection)
            .field("password_base64", &"<secret>")
            .finish()
    }
}

/// `POST <url>/pubkey`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyRequest {
    /// Shared fields.
    #[serde(flatten)]
    pub connection: ConnectionMetadata,
    /// The key in authorized_keys format without a comment (`ssh-ed25519 AAAA...`); for a
    /// certificate, the certificate (`ssh-ed25519-cert-v01@openssh.com AAAA...`).
    pub public_key: String,
    /// sshpod extension: the certificate's details, when the client presented one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateInfo>,
}

/// The details of an OpenSSH user certificate (sshpod extension to `/pubkey`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateInfo {
    /// `user` or `host`.
    pub cert_type: String,
    /// The key id the CA wrote.
    pub key_id: String,
    /// The serial number.
    pub serial: u64,
    /// The principals (empty: any).
    pub principals: Vec<String>,
    /// The signing CA's key fingerprint (`SHA256:...`).
    pub ca_fingerprint: String,
    /// The signing CA's public key in authorized_keys format.
    pub ca_key: String,
    /// Start of validity (RFC 3339, UTC).
    pub valid_after: String,
    /// End of validity (RFC 3339, UTC; `forever` when unbounded).
    pub valid_before: String,
    /// Critical options (`force-command`, `source-address`, ...).
    pub critical_options: BTreeMap<String, String>,
    /// Extensions (`permit-pty`, ...).
    pub extensions: BTreeMap<String, String>,
    /// The certified public key (authorized_keys format).
    pub public_key: String,
}

/// The answer of `/password`, `/pubkey` and `/authz`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthResponse {
    /// Whether the login is allowed.
    pub success: bool,
    /// The name the user is known by from now on; empty or missing: unchanged.
    #[serde(default)]
    pub authenticated_username: Option<String>,
    /// Metadata to add.
    #[serde(default)]
    pub metadata: Option<MetadataMap>,
    /// Environment to add.
    #[serde(default)]
    pub environment: Option<MetadataMap>,
    /// Files to add.
    #[serde(default)]
    pub files: Option<MetadataMap>,
    #[serde(default, rename = "remoteAddress")]
    _remote_address: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "connectionId")]
    _connection_id: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "clientVersion")]
    _client_version: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "username")]
    _username: Option<serde::de::IgnoredAny>,
}

impl AuthResponse {
    /// The name the answer gives the user, taken out of it. ContainerSSH's rule: a
    /// non-empty `authenticatedUsername` replaces the name so far; an empty one does not.
    pub fn authenticated_as(&mut self) -> Option<String> {
        self.authenticated_username.take().filter(|n| !n.is_empty())
    }

    /// The metadata, environment and files of the answer.
    pub fn take_metadata(&mut self) -> Metadata {
        Metadata::taken(&mut self.metadata, &mut self.environment, &mut self.files)
    }
}

/// The config server's answer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigResponse {
    /// A partial configuration to merge over the file's.
    #[serde(default)]
    pub config: serde_json::Value,
    /// The name the user is known by from now on; empty or missing: unchanged.
    #[serde(default)]
    pub authenticated_username: Option<String>,
    /// Metadata to add.
    #[serde(default)]
    pub metadata: Option<MetadataMap>,
    /// Environment to add.
    #[serde(default)]
    pub environment: Option<MetadataMap>,
    /// Files to add.
    #[serde(default)]
    pub files: Option<MetadataMap>,
    #[serde(default, rename = "remoteAddress")]
    _remote_address: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "connectionId")]
    _connection_id: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "clientVersion")]
    _client_version: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "username")]
    _username: Option<serde::de::IgnoredAny>,
}

impl ConfigResponse {
    /// The name the answer gives the user, taken out of it. ContainerSSH's rule: a
    /// non-empty `authenticatedUsername` replaces the name so far; an empty one does not.
    pub fn authenticated_as(&mut self) -> Option<String> {
        self.authenticated_username.take().filter(|n| !n.is_empty())
    }

    /// The metadata, environment and files of the answer.
    pub fn take_metadata(&mut self) -> Metadata {
        Metadata::taken(&mut self.metadata, &mut self.environment, &mut self.files)
    }
}

/// `POST <url>/keyboard-interactive` (sshpod extension): one step of a conversation driven by
/// the auth server.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyboardInteractiveRequest {
    /// Shared fields.
    #[serde(flatten)]
    pub connection: ConnectionMetadata,
    /// 1 for the first request of a conversation, then 2, 3, ...
    pub round: u32,
    /// `state` from the previous answer (empty in round 1).
    pub state: String,
    /// The user's answers to the previous answer's questions, in order (empty in round 1).
    pub answers: Vec<String>,
}

impl fmt::Debug for KeyboardInteractiveRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyboardInteractiveRequest")
            .field("connection", &self.connection)
            .field("round", &self.round)
            .field("answers", &self.answers.len())
            .finish_non_exhaustive()
    }
}

/// One question to show the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// The prompt, such as `Password: `.
    pub prompt: String,
    /// Whether the user's typing is shown.
    #[serde(default)]
    pub echo: bool,
}

/// The answer to a keyboard-interactive request: more questions, or a decision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyboardInteractiveResponse {
    /// The decision, when `questions` is empty.
    #[serde(default)]
    pub success: bool,
    /// Questions to ask next; when non-empty the conversation goes on.
    #[serde(default)]
    pub questions: Vec<Question>,
    /// Title of the prompt (may be empty).
    #[serde(default)]
    pub name: String,
    /// Instruction shown above the questions (may be empty).
    #[serde(default)]
    pub instruction: String,
    /// Opaque value sent back with the answers.
    #[serde(default)]
    pub state: String,
    /// The name the user is known by from now on (with `success`).
    #[serde(default)]
    pub authenticated_username: Option<String>,
    /// Metadata to add (with `success`).
    #[serde(default)]
    pub metadata: Option<MetadataMap>,
    /// Environment to add (with `success`).
    #[serde(default)]
    pub environment: Option<MetadataMap>,
    /// Files to add (with `success`).
    #[serde(default)]
    pub files: Option<MetadataMap>,
}

impl KeyboardInteractiveResponse {
    /// The name the answer gives the user, taken out of it. ContainerSSH's rule: a
    /// non-empty `authenticatedUsername` replaces the name so far; an empty one does not.
    pub fn authenticated_as(&mut self) -> Option<String> {
        self.authenticated_username.take().filter(|n| !n.is_empty())
    }

    /// The metadata, environment and files of the answer.
    pub fn take_metadata(&mut self) -> Metadata {
        Metadata::taken(&mut self.metadata, &mut self.environment, &mut self.files)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn connection() -> ConnectionMetadata {
        ConnectionMetadata {
            remote_address: "203.0.113.5:51234".into(),
            connection_id: "9f1c2a0e5b7d4c3a8e6f0a1b2c3d4e5f".into(),
            client_version: "SSH-2.0-OpenSSH_9.6".into(),
            username: "alice".into(),
            ..Default::default()
        }
    }

    #[test]
    fn password_request_as_containerssh_sends_it() {
        let request = PasswordRequest {
            connection: connection(),
            password_base64: "c2VjcmV0".into(),
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "remoteAddress": "203.0.113.5:51234",
                "connectionId": "9f1c2a0e5b7d4c3a8e6f0a1b2c3d4e5f",
                "clientVersion": "SSH-2.0-OpenSSH_9.6",
                "username": "alice",
                "passwordBase64": "c2VjcmV0"
            })
        );
        assert!(!format!("{request:?}").contains("c2VjcmV0"));
    }

    #[test]
    fn only_a_non_empty_authenticated_username_renames_the_user() {
        let mut answer: AuthResponse =
            serde_json::from_value(json!({"success": true, "authenticatedUsername": ""})).unwrap();
        assert_eq!(answer.authenticated_as(), None);
        let mut answer: AuthResponse =
            serde_json::from_value(json!({"success": true, "authenticatedUsername": "bob"}))
                .unwrap();
        assert_eq!(answer.authenticated_as().as_deref(), Some("bob"));
        assert_eq!(answer.authenticated_as(), None, "taken once");
    }

    #[test]
    fn authz_request_carries_metadata_but_not_sensitive_entries() {
        let mut metadata = Metadata::default();
        metadata.metadata.insert(
            "TEAM".into(),
            MetadataValue {
                value: "blue".into(),
                sensitive: false,
            },
        );
        metadata.files.insert(
            "/home/alice/.token".into(),
            MetadataValue {
                value: "c2VjcmV0".into(),
                sensitive: true,
            },
        );
        let mut request = connection().with_metadata(&metadata);
        request.authenticated_username = Some("alice".into());
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "remoteAddress": "203.0.113.5:51234",
                "connectionId": "9f1c2a0e5b7d4c3a8e6f0a1b2c3d4e5f",
                "metadata": {"TEAM": {"value": "blue", "sensitive": false}},
                "clientVersion": "SSH-2.0-OpenSSH_9.6",
                "username": "alice",
                "authenticatedUsername": "alice"
            })
        );
        assert_eq!(
            format!("{:?}", metadata.files["/home/alice/.token"]),
            "<sensitive>"
        );
    }

    #[test]
    fn documented_auth_response_decodes() {
        let text = r#"{
          "success": true,
          "authenticatedUsername": "alice",
          "metadata": {"TEAM": {"value": "blue", "sensitive": false}},
          "environment": {"FOO": {"value": "bar", "sensitive": false}},
          "files": {"/home/alice/.token": {"value": "c2VjcmV0", "sensitive": true}}
        }"#;
        let mut response: AuthResponse = serde_json::from_str(text).unwrap();
        assert!(response.success);
        assert_eq!(response.authenticated_username.as_deref(), Some("alice"));
        let metadata = response.take_metadata();
        assert_eq!(metadata.environment["FOO"].value, "bar");
        assert!(metadata.files["/home/alice/.token"].sensitive);

        let minimal: AuthResponse = serde_json::from_str(r#"{"success": false}"#).unwrap();
        assert!(!minimal.success);
        let echoed: AuthResponse = serde_json::from_str(
            r#"{"success": true, "username": "a", "connectionId": "x", "clientVersion": "v",
                "remoteAddress": "1.2.3.4:5"}"#,
        )
        .unwrap();
        assert!(echoed.success);
    }

    #[test]
    fn unknown_or_missing_fields_are_malformed() {
        assert!(serde_json::from_str::<AuthResponse>(r#"{"sucess": true}"#).is_err());
        assert!(serde_json::from_str::<AuthResponse>(r#"{}"#).is_err());
        assert!(serde_json::from_str::<AuthResponse>(r#"{"success": "yes"}"#).is_err());
        assert!(serde_json::from_str::<ConfigResponse>(r#"{"cfg": {}}"#).is_err());
    }

    #[test]
    fn documented_config_response_decodes() {
        let text = r#"{
          "config": {"backend": "docker", "docker": {"execution": {"container": {"image": "x"}}}},
          "metadata": {}, "environment": {"E": {"value": "1"}}, "files": {}
        }"#;
        let mut response: ConfigResponse = serde_json::from_str(text).unwrap();
        assert_eq!(response.config["backend"], "docker");
        assert_eq!(response.take_metadata().environment["E"].value, "1");
        let empty: ConfigResponse = serde_json::from_str("{}").unwrap();
        assert!(empty.config.is_null());
    }

    #[test]
    fn keyboard_interactive_round_trip() {
        let request = KeyboardInteractiveRequest {
            connection: connection(),
            round: 2,
            state: "s1".into(),
            answers: vec!["hunter2".into()],
        };
        let value = serde_json::to_value(&request).unwrap();
        assert_eq!(value["round"], 2);
        assert_eq!(value["answers"], json!(["hunter2"]));
        assert_eq!(value["username"], "alice");
        assert!(!format!("{request:?}").contains("hunter2"));
        let response: KeyboardInteractiveResponse = serde_json::from_str(
            r#"{"questions": [{"prompt": "Code: ", "echo": true}], "state": "s2"}"#,
        )
        .unwrap();
        assert_eq!(response.questions[0].prompt, "Code: ");
        assert!(!response.success);
    }
}
