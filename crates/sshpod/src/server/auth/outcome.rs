//! What a login's webhook answers hand to provisioning: the environment, the files, and the
//! metadata exposed as environment, labels or annotations where the configuration asks
//! (never sensitive entries as labels or annotations).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use sshpod_config::Config;
use sshpod_core::{ConnectionContext, ContainerFile};
use sshpod_webhook::protocol::Metadata;

/// What a successful login hands to provisioning.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    environment: Vec<(String, String)>,
    files: Vec<ContainerFile>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    config: Option<Arc<Config>>,
}

impl Outcome {
    /// Fills the webhook parts of a backend context.
    pub(crate) fn apply(&self, ctx: &mut ConnectionContext) {
        ctx.environment = self.environment.clone();
        ctx.files = self.files.clone();
        ctx.labels = self.labels.clone();
        ctx.annotations = self.annotations.clone();
        ctx.config = self.config.clone();
    }
}

/// Why the webhooks' answers cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadAnswer {
    #[error("invalid environment variable name `{0}`")]
    EnvName(String),
    #[error("file path `{0}` is not absolute")]
    RelativePath(String),
    #[error("file path `{0}` contains a NUL byte")]
    NulInPath(String),
    #[error("the content of file `{0}` is not base64")]
    NotBase64(String),
}

/// What provisioning needs from the metadata: environment (plus metadata as environment when
/// `exposeAuthMetadataAsEnv` is on), labels (`exposeAuthMetadataAsLabels`, never from
/// sensitive entries) and decoded files.
pub(super) fn outcome(
    metadata: &Metadata,
    config: &Config,
    per_connection: Option<Arc<Config>>,
) -> Result<Outcome, BadAnswer> {
    let mut environment: Vec<(String, String)> = Vec::new();
    let kubernetes = config.backend == sshpod_config::Backend::Kubernetes;
    if kubernetes {
        // Kubernetes names each exposed entry (metadata key to variable name).
        environment.extend(
            config
                .kubernetes
                .pod
                .expose_auth_metadata_as_env
                .iter()
                .filter_map(|(key, name)| {
                    metadata
                        .metadata
                        .get(key)
                        .map(|v| (name.clone(), v.value.clone()))
                }),
        );
    } else if config.docker.execution.expose_auth_metadata_as_env {
        environment.extend(
            metadata
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone())),
        );
    }
    for (name, value) in &metadata.environment {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(BadAnswer::EnvName(name.clone()));
        }
        environment.retain(|(k, _)| k != name);
        environment.push((name.clone(), value.value.clone()));
    }
    let mut files = Vec::new();
    for (path, value) in &metadata.files {
        if !path.starts_with('/') {
            return Err(BadAnswer::RelativePath(path.clone()));
        }
        if path.contains('\0') {
            return Err(BadAnswer::NulInPath(path.escape_debug().to_string()));
        }
        let content = base64::engine::general_purpose::STANDARD
            .decode(value.value.trim())
            .map_err(|_| BadAnswer::NotBase64(path.clone()))?;
        files.push(ContainerFile {
            path: path.clone(),
            content,
        });
    }
    // Metadata key to label (or annotation) name; sensitive entries never.
    let exposed = |map: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        map.iter()
            .filter_map(|(key, name)| {
                metadata
                    .metadata
                    .get(key)
                    .filter(|v| !v.sensitive)
                    .map(|v| (name.clone(), v.value.clone()))
            })
            .collect()
    };
    let (labels, annotations) = if kubernetes {
        let pod = &config.kubernetes.pod;
        (
            exposed(&pod.expose_auth_metadata_as_labels),
            exposed(&pod.expose_auth_metadata_as_annotations),
        )
    } else {
        (
            exposed(&config.docker.execution.expose_auth_metadata_as_labels),
            BTreeMap::new(),
        )
    };
    Ok(Outcome {
        environment,
        files,
        labels,
        annotations,
        config: per_connection,
    })
}

#[cfg(test)]
mod tests {
    use sshpod_webhook::protocol::MetadataValue;

    use super::*;

    fn value(v: &str, sensitive: bool) -> MetadataValue {
        MetadataValue {
            value: v.to_owned(),
            sensitive,
        }
    }

    fn config(expose: bool) -> Config {
        let text = format!(
            "auth: {{password: {{method: htpasswd, htpasswd: {{file: /h}}}}}}\n\
             docker: {{execution: {{exposeAuthMetadataAsEnv: {expose}, \
             exposeAuthMetadataAsLabels: {{TEAM: lab.team, SECRET: lab.secret}}}}}}\n"
        );
        sshpod_config::parse_str(&text, sshpod_config::Format::Yaml, "t.yaml")
            .unwrap()
            .config
    }

    #[test]
    fn environment_files_and_metadata_as_env() {
        let mut metadata = Metadata::default();
        metadata
            .metadata
            .insert("TEAM".into(), value("blue", false));
        metadata.metadata.insert("SECRET".into(), value("x", true));
        metadata
            .environment
            .insert("TEAM".into(), value("red", false));
        metadata
            .environment
            .insert("TOKEN".into(), value("s3cret", true));
        metadata
            .files
            .insert("/home/u/.token".into(), value("aGVsbG8=", true));
        let out = outcome(&metadata, &config(true), None).unwrap();
        assert_eq!(
            out.environment,
            [
                ("SECRET".to_owned(), "x".to_owned()),
                ("TEAM".to_owned(), "red".to_owned()),
                ("TOKEN".to_owned(), "s3cret".to_owned())
            ]
        );
        assert_eq!(out.labels.len(), 1);
        assert_eq!(out.labels["lab.team"], "blue");
        assert_eq!(out.files[0].content, b"hello");
        let out = outcome(&metadata, &config(false), None).unwrap();
        assert_eq!(out.environment.len(), 2);

        metadata.files.insert("relative".into(), value("", false));
        assert!(outcome(&metadata, &config(false), None).is_err());
        metadata.files.clear();
        metadata
            .files
            .insert("/x".into(), value("not base64!", false));
        assert_eq!(
            outcome(&metadata, &config(false), None).unwrap_err(),
            BadAnswer::NotBase64("/x".into())
        );
    }
}
