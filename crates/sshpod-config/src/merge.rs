//! Merging a config server's answer into the file configuration, as ContainerSSH does.
//!
//! ContainerSSH deep-merges the answer over a copy of the file configuration with Go's mergo in
//! override mode: a non-zero value in the answer wins, maps merge key by key, lists are replaced
//! whole, and zero values (`false`, `""`, `0`, `null`, empty lists and maps) change nothing.
//! That last rule matters: a config server written in Go marshals a whole configuration struct
//! with every unset field as a zero value, and those must not wipe the file's settings.
//!
//! The merge works on JSON trees. The base is the validated file [`Config`] serialised (it loads
//! back to the same value), the answer is normalised to the same spelling (Docker keys
//! lower-cased, flat resource limits moved under `resources`), and the result is loaded and
//! validated like a file. Only the sections that apply per connection are taken from the answer
//! (`backend`, `docker`, `kubernetes`, `security`, `identity`, and of `audit` only `enable`, `required` and
//! `intercept`: a config server may turn recording on for a user, make it required or record
//! more, but the format, the storage and the recordings page stay the file's; of `ssh` only the
//! idle and session limits). The others are ignored, and reported only when they would change
//! something (by section, or as `audit.<key>`, `ssh.<key>`): a Go config server that marshals the whole configuration struct sends every
//! section, and a notice on every login for sections that say nothing new would drown the ones
//! that matter. Zero values change nothing, so an answer can never turn recording off.
//!
//! One Go zero value is not empty once marshalled: ContainerSSH's log level is a number whose
//! zero, `emerg`, is written as the string `"emerg"`. It counts as zero here, as it does for
//! mergo.

use std::fmt;

use serde_json::{Map, Value};

use crate::docker_api;
use crate::error::ConfigError;
use crate::load::{parse_raw_json, parse_str, Format};
use crate::Config;

/// Sections of an answer that apply to one connection.
const PER_CONNECTION: &[&str] = &[
    "backend",
    "docker",
    "kubernetes",
    "sshproxy",
    "security",
    "audit",
    "identity",
];

/// The keys of `audit` that apply to one connection; its other keys are the file's.
const AUDIT_PER_CONNECTION: &[&str] = &["enable", "required", "intercept"];

/// The keys of `ssh` that apply to one connection (the idle and session limits); its other
/// keys are the file's.
const SSH_PER_CONNECTION: &[&str] = &[
    "unusedConnectionTimeout",
    "channelTimeout",
    "idleTimeout",
    "maxSessionDuration",
    "limitWarning",
];

/// Docker structs (below `docker.execution`) whose keys have two spellings (`Image`, `image`).
const DOCKER_STRUCTS: &[&[&str]] = &[
    &["container"],
    &["host"],
    &["host", "resources"],
    &["network"],
    &["platform"],
    &["auth"],
];

/// Resource limits that Docker's API writes flat in the host config.
const FLAT_RESOURCES: &[&str] = &[
    "memory",
    "memoryswap",
    "nanocpus",
    "cpushares",
    "cpuquota",
    "cpuperiod",
    "cpusetcpus",
    "pidslimit",
];

/// Why a config server's answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeError {
    /// The problems, with key paths in the merged configuration.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .errors
            .iter()
            .map(|e| {
                if e.key.is_empty() {
                    e.message.clone()
                } else {
                    format!("key `{}`: {}", e.key, e.message)
                }
            })
            .collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for MergeError {}

/// The configuration for one connection: `answer` (the `config` object of a config server's
/// response) merged over `base`, then validated. Returns the configuration and the answer's
/// sections that were ignored.
pub fn merge_answer(base: &Config, answer: &Value) -> Result<(Config, Vec<String>), MergeError> {
    let whole = |message: String| MergeError {
        errors: vec![ConfigError {
            file: ORIGIN.to_owned(),
            line: None,
            column: None,
            key: String::new(),
            message,
        }],
    };
    let answer = match answer {
        Value::Null => Value::Object(Map::new()),
        Value::Object(_) => answer.clone(),
        _ => return Err(whole("`config` must be an object".to_owned())),
    };
    let mut answer = answer;
    normalise(&mut answer);
    strip_zero_log_level(&mut answer);
    let answer = strip_zero(answer).unwrap_or_else(|| Value::Object(Map::new()));
    // Unknown keys and wrong types, reported against the answer as sent.
    parse_raw_json(&answer.to_string(), ORIGIN).map_err(|error| MergeError {
        errors: vec![without_position(error)],
    })?;

    // What is ignored, by name, with the answer's tree of it alone.
    let mut others = Vec::new();
    let mut taken = Map::new();
    if let Value::Object(sections) = answer {
        for (name, value) in sections {
            if name == "audit" || name == "ssh" {
                let keys = if name == "audit" {
                    AUDIT_PER_CONNECTION
                } else {
                    SSH_PER_CONNECTION
                };
                let (kept, rest) = split_section(&name, keys, value);
                taken.insert(name, kept);
                others.extend(rest);
            } else if PER_CONNECTION.contains(&name.as_str()) {
                taken.insert(name, value);
            } else {
                others.push((name.clone(), single(&name, value)));
            }
        }
    }

    let mut base_tree = serde_json::to_value(base).map_err(|e| whole(e.to_string()))?;
    normalise(&mut base_tree);
    let mut merged = base_tree.clone();
    merge(&mut merged, Value::Object(taken));
    let config = match parse_str(&merged.to_string(), Format::Json, ORIGIN) {
        Ok(loaded) => loaded.config,
        Err(errors) => {
            return Err(MergeError {
                errors: errors.0.into_iter().map(without_position).collect(),
            })
        }
    };
    let ignored = others
        .into_iter()
        .filter(|(_, tree)| would_change(base, &base_tree, tree))
        .map(|(name, _)| name)
        .collect();
    Ok((config, ignored))
}

/// `{name: value}`.
fn single(name: &str, value: Value) -> Value {
    let mut section = Map::new();
    section.insert(name.to_owned(), value);
    Value::Object(section)
}

/// An answer's section (`audit`, `ssh`) split into the `per_connection` keys and the rest,
/// key by key (`audit.storage`, with its tree).
fn split_section(
    name: &str,
    per_connection: &[&str],
    section: Value,
) -> (Value, Vec<(String, Value)>) {
    let Value::Object(keys) = section else {
        // Not an object: the shape check above has refused it already.
        return (section, Vec::new());
    };
    let mut kept = Map::new();
    let mut rest = Vec::new();
    for (key, value) in keys {
        if per_connection.contains(&key.as_str()) {
            kept.insert(key, value);
        } else {
            rest.push((format!("{name}.{key}"), single(name, single(&key, value))));
        }
    }
    (Value::Object(kept), rest)
}

/// Whether `tree` (part of an answer), merged over the file's configuration, would change it or
/// ask for something sshpod refuses. Sections that sshpod accepts without acting on them
/// (`metrics`, `geoip`, ...) change nothing unless they turn a feature on.
fn would_change(base: &Config, base_tree: &Value, tree: &Value) -> bool {
    let mut trial = base_tree.clone();
    merge(&mut trial, tree.clone());
    match parse_str(&trial.to_string(), Format::Json, ORIGIN) {
        Ok(loaded) => loaded.config != *base,
        Err(_) => true,
    }
}

/// Removes `log.level` when it is ContainerSSH's zero level (`"emerg"`, or 0).
fn strip_zero_log_level(answer: &mut Value) {
    let Some(Value::Object(log)) = answer.get_mut("log") else {
        return;
    };
    let zero = match log.get("level") {
        Some(Value::String(name)) => name == "emerg",
        Some(Value::Number(number)) => number.as_u64() == Some(0),
        _ => false,
    };
    if zero {
        log.remove("level");
    }
}

/// How errors name the merged configuration.
const ORIGIN: &str = "config server answer";

/// Positions in generated JSON mean nothing to an operator; the key path does.
fn without_position(mut error: ConfigError) -> ConfigError {
    error.line = None;
    error.column = None;
    error
}

/// Override-merges `answer` into `base`: objects merge key by key, anything else replaces.
fn merge(base: &mut Value, answer: Value) {
    match (base, answer) {
        (Value::Object(base), Value::Object(answer)) => {
            for (key, value) in answer {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, answer) => *base = answer,
    }
}

/// Removes Go zero values (recursively); `None` when nothing is left.
fn strip_zero(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Bool(b) => b.then_some(Value::Bool(true)),
        Value::Number(n) => {
            let zero = n.as_f64() == Some(0.0);
            (!zero).then_some(Value::Number(n))
        }
        Value::String(s) => (!s.is_empty()).then_some(Value::String(s)),
        Value::Array(items) => (!items.is_empty()).then_some(Value::Array(items)),
        Value::Object(map) => {
            let kept: Map<String, Value> = map
                .into_iter()
                .filter_map(|(k, v)| strip_zero(v).map(|v| (k, v)))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
    }
}

/// Brings Docker keys to one spelling: struct keys lower-cased (`Image` -> `image`), flat
/// resource limits (`Memory`) moved to `host.resources`, and the keys of the API objects nested
/// in them in Docker's spelling (`restartpolicy: {name: ..}` -> `{Name: ..}`), so that a file
/// and an answer that spell one nested object differently merge into one.
fn normalise(config: &mut Value) {
    let Some(execution) = config
        .get_mut("docker")
        .and_then(|d| d.get_mut("execution"))
    else {
        return;
    };
    for (key, object) in [
        ("container", &docker_api::CONTAINER_CONFIG),
        ("host", &docker_api::HOST_CONFIG),
        ("network", &docker_api::NETWORKING_CONFIG),
        ("platform", &docker_api::PLATFORM),
    ] {
        if let Some(Value::Object(fields)) = execution.get_mut(key) {
            nested_in_api_spelling(object, fields);
        }
    }
    for path in DOCKER_STRUCTS {
        let mut node = Some(&mut *execution);
        for segment in *path {
            node = node.and_then(|n| n.get_mut(*segment));
        }
        if let Some(Value::Object(map)) = node {
            let entries = std::mem::take(map);
            for (key, value) in entries {
                let lower = key.to_ascii_lowercase();
                match map.get_mut(&lower) {
                    Some(existing) => merge(existing, value),
                    None => {
                        map.insert(lower, value);
                    }
                }
            }
        }
        if *path == ["host"] {
            if let Some(Value::Object(host)) = execution.get_mut("host") {
                let flat: Vec<(String, Value)> = FLAT_RESOURCES
                    .iter()
                    .filter_map(|name| host.remove(*name).map(|v| ((*name).to_owned(), v)))
                    .collect();
                if !flat.is_empty() {
                    let resources = host
                        .entry("resources")
                        .or_insert_with(|| Value::Object(Map::new()));
                    merge(resources, Value::Object(flat.into_iter().collect()));
                }
            }
        }
    }
}

/// The values of `fields` (an `object`'s, its own keys left as written) with the keys of every
/// API object inside them renamed to Docker's spelling. Free-form keys (labels, ports, paths,
/// network names) and unknown keys are left alone.
fn nested_in_api_spelling(object: &docker_api::Object, fields: &mut Map<String, Value>) {
    for (name, value) in fields.iter_mut() {
        if let Some(field) = object.field(name) {
            in_api_spelling(&field.kind, value);
        } else if name == "resources" {
            if let Value::Object(resources) = value {
                nested_in_api_spelling(&docker_api::RESOURCES, resources);
            }
        }
    }
}

/// A value of `kind` with the keys of the API objects in it in Docker's spelling.
fn in_api_spelling(kind: &docker_api::Kind, value: &mut Value) {
    match (kind, value) {
        (docker_api::Kind::Object(object), Value::Object(fields)) => {
            let written = std::mem::take(fields);
            for (name, mut value) in written {
                let name = match object.field(&name) {
                    Some(field) => {
                        in_api_spelling(&field.kind, &mut value);
                        field.name.to_owned()
                    }
                    None => name,
                };
                match fields.get_mut(&name) {
                    Some(existing) => merge(existing, value),
                    None => {
                        fields.insert(name, value);
                    }
                }
            }
        }
        (docker_api::Kind::List(item), Value::Array(items)) => {
            for value in items {
                in_api_spelling(item, value);
            }
        }
        (docker_api::Kind::Map(item), Value::Object(entries)) => {
            for value in entries.values_mut() {
                in_api_spelling(item, value);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::load::parse_str;

    fn base() -> Config {
        let text = "auth:\n  password:\n    method: htpasswd\n    htpasswd: {file: /h}\n\
                    docker:\n  execution:\n    container:\n      image: base:1\n      \
                    env: [A=1]\n      labels: {team: red}\n    host:\n      resources:\n        \
                    memory: 1000000000\n";
        parse_str(text, Format::Yaml, "base.yaml").unwrap().config
    }

    #[test]
    fn a_nested_docker_object_spelled_differently_in_file_and_answer_merges_into_one() {
        let text = "auth:\n  password:\n    method: htpasswd\n    htpasswd: {file: /h}\n\
                    docker:\n  execution:\n    host:\n      restartpolicy:\n        \
                    name: on-failure\n        maximumretrycount: 3\n      \
                    logconfig: {type: json-file, config: {max-size: 10m}}\n";
        let base = parse_str(text, Format::Yaml, "base.yaml").unwrap().config;
        // Written as ContainerSSH's documentation writes files, all lower case.
        let answer = json!({"docker": {"execution": {"host": {
            "restartpolicy": {"name": "always"},
            "logconfig": {"config": {"max-file": "3"}}
        }}}});
        let (config, _) = merge_answer(&base, &answer).unwrap();
        let host = &config.docker.execution.host.other;
        assert_eq!(
            host["RestartPolicy"],
            json!({"Name": "always", "MaximumRetryCount": 3})
        );
        // Free-form keys (the log driver's options) keep their own spelling.
        assert_eq!(
            host["LogConfig"],
            json!({"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}})
        );
    }

    #[test]
    fn answer_overrides_and_keeps_the_rest() {
        let answer = json!({
            "docker": {"execution": {"container": {"Image": "other:2", "Labels": {"course": "os"}},
                                     "host": {"Memory": 2000000000_i64, "PidsLimit": 64}},
                       "timeouts": {"containerStart": 5_000_000_000_i64}}
        });
        let (config, ignored) = merge_answer(&base(), &answer).unwrap();
        assert!(ignored.is_empty());
        let exec = &config.docker.execution;
        assert_eq!(exec.container.image, "other:2");
        assert_eq!(exec.container.env, ["A=1"]);
        assert_eq!(exec.container.labels["team"], "red");
        assert_eq!(exec.container.labels["course"], "os");
        assert_eq!(exec.host.resources.memory, Some(2_000_000_000));
        assert_eq!(exec.host.resources.pids_limit, Some(64));
        assert_eq!(
            config.docker.timeouts.container_start,
            Duration::from_secs(5)
        );
        assert_eq!(config.auth, base().auth);
    }

    #[test]
    fn zero_values_change_nothing_and_lists_are_replaced() {
        // What a Go config server sends for a struct with only `env` set.
        let answer = json!({
            "ssh": {"listen": "", "hostkeys": null},
            "backend": "",
            "docker": {"execution": {"container": {"Image": "", "Env": ["B=2"], "Cmd": null,
                                                   "Tty": false, "StopTimeout": null},
                                     "host": {"Privileged": false, "Memory": 0}}},
            "log": {"level": ""}
        });
        let (config, ignored) = merge_answer(&base(), &answer).unwrap();
        assert!(ignored.is_empty(), "{ignored:?}");
        let exec = &config.docker.execution;
        assert_eq!(exec.container.image, "base:1");
        assert_eq!(exec.container.env, ["B=2"]);
        assert_eq!(exec.host.resources.memory, Some(1_000_000_000));
    }

    #[test]
    fn other_sections_are_ignored_and_reported() {
        let answer = json!({"ssh": {"banner": "hi"}, "log": {"level": "debug"}});
        let (config, ignored) = merge_answer(&base(), &answer).unwrap();
        assert_eq!(ignored, ["log", "ssh.banner"]);
        assert_eq!(config, base());
    }

    #[test]
    fn the_idle_and_session_limits_apply_per_user() {
        let answer = json!({"ssh": {"idleTimeout": "15m", "maxSessionDuration": "8h",
                                    "channelTimeout": "session=5m", "listen": "0.0.0.0:22"}});
        let (config, ignored) = merge_answer(&base(), &answer).unwrap();
        assert_eq!(ignored, ["ssh.listen"], "the listener stays the file's");
        let limits = &config.ssh.limits;
        assert_eq!(limits.idle_timeout, std::time::Duration::from_secs(900));
        assert_eq!(
            limits.max_session_duration,
            std::time::Duration::from_secs(8 * 3600)
        );
        assert_eq!(
            limits.channel_timeout.for_type("session"),
            Some(std::time::Duration::from_secs(300))
        );
        assert_eq!(config.ssh.listen, base().ssh.listen);
    }

    #[test]
    fn bad_answers_name_the_key() {
        let error = merge_answer(
            &base(),
            &json!({"docker": {"execution": {"container": {"imagee": "x"}}}}),
        )
        .unwrap_err();
        assert_eq!(error.errors.len(), 1);
        assert!(
            error.to_string().contains("did you mean `image`"),
            "{error}"
        );
        assert_eq!(error.errors[0].line, None);

        // A user sent to another SSH server needs the whole `sshproxy` section checked.
        let error = merge_answer(&base(), &json!({"backend": "sshproxy"})).unwrap_err();
        assert!(error.to_string().contains("sshproxy.server"), "{error}");
        let (merged, _) = merge_answer(
            &base(),
            &json!({"kubernetes": {"pod": {"metadata": {"namespace": "course-os"}}}}),
        )
        .unwrap();
        assert_eq!(merged.kubernetes.pod.namespace(), "course-os");

        let error = merge_answer(
            &base(),
            &json!({"docker": {"execution": {"mode": "sometimes"}}}),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("docker.execution.mode"),
            "{error}"
        );

        let error = merge_answer(
            &base(),
            &json!({"docker": {"execution": {"container": {"env": ["NOEQUALS"]}}}}),
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("docker.execution.container.env[0]"),
            "{error}"
        );

        assert!(merge_answer(&base(), &json!([1])).is_err());
    }

    /// A file that records nothing by default, in sshpod's format to a directory.
    fn recording_base(directory: &std::path::Path, enable: bool) -> Config {
        let text = format!(
            "auth:\n  password:\n    method: htpasswd\n    htpasswd: {{file: /h}}\n\
             audit:\n  enable: {enable}\n  format: sshpod\n  storage: file\n  \
             file: {{directory: {}}}\n",
            directory.display()
        );
        parse_str(&text, Format::Yaml, "base.yaml").unwrap().config
    }

    #[test]
    fn an_answer_turns_recording_on_requires_it_and_records_more() {
        let directory = tempfile::tempdir().unwrap();
        let base = recording_base(directory.path(), false);
        let answer = json!({"audit": {"enable": true, "required": true,
                                      "intercept": {"stdin": true, "passwords": false}}});
        let (config, ignored) = merge_answer(&base, &answer).unwrap();
        assert!(ignored.is_empty(), "{ignored:?}");
        assert!(config.audit.enable && config.audit.required);
        assert!(config.audit.intercept.stdin && !config.audit.intercept.passwords);
        assert_eq!(config.audit.format, crate::AuditFormat::Sshpod);
        assert_eq!(config.audit.file, base.audit.file);
    }

    #[test]
    fn an_answer_keeps_the_file_s_format_storage_and_page_and_says_so() {
        let directory = tempfile::tempdir().unwrap();
        let base = recording_base(directory.path(), false);
        let answer = json!({"audit": {
            "enable": true,
            "format": "binary",
            "storage": "s3",
            "file": {"directory": "/elsewhere"},
            "s3": {"bucket": "theirs"},
            "web": {"listen": "0.0.0.0:80", "token": "t"},
        }});
        let (config, ignored) = merge_answer(&base, &answer).unwrap();
        assert_eq!(
            ignored,
            [
                "audit.file",
                "audit.format",
                "audit.s3",
                "audit.storage",
                "audit.web"
            ]
        );
        assert!(config.audit.enable);
        let mut expected = base.audit.clone();
        expected.enable = true;
        assert_eq!(config.audit, expected);

        // The file's own values, sent back, are nothing to report.
        let same = json!({"audit": {"format": "sshpod", "storage": "file"}});
        let (_, ignored) = merge_answer(&base, &same).unwrap();
        assert!(ignored.is_empty(), "{ignored:?}");
    }

    #[test]
    fn an_answer_cannot_turn_recording_off() {
        let directory = tempfile::tempdir().unwrap();
        let base = recording_base(directory.path(), true);
        let answer = json!({"audit": {"enable": false, "required": false,
                                      "intercept": {"stdout": false}}});
        let (config, ignored) = merge_answer(&base, &answer).unwrap();
        assert!(ignored.is_empty(), "{ignored:?}");
        assert_eq!(config.audit, base.audit);
    }

    #[test]
    fn requiring_a_recording_the_file_cannot_make_refuses_the_answer() {
        let error = merge_answer(
            &base(),
            &json!({"audit": {"enable": true, "required": true}}),
        )
        .unwrap_err();
        let keys: Vec<&str> = error.errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["audit.format", "audit.storage"], "{error}");
    }

    #[test]
    fn null_answer_is_the_base() {
        let (config, _) = merge_answer(&base(), &Value::Null).unwrap();
        assert_eq!(config, base());
    }
}
