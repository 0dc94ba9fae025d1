//! ContainerSSH 0.5/0.6 configurations as real installations have them: files ContainerSSH saved
//! itself, the 0.4 authentication layout, `null` values, the `security` policy, ContainerSSH's
//! log levels, and a config-server answer from a Go server that marshals the whole
//! configuration struct. The files in `tests/containerssh/` are written from ContainerSSH's
//! documented schema.

// Test helpers outside `#[test]` functions are test code too.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use sshpod_config::{
    load, merge_answer, parse_str, Config, Format, Loaded, LogLevel, PasswordMethod,
    PublicKeyMethod, SecurityMode, DEFAULT_DOCKER_HOST, DEFAULT_LISTEN,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/containerssh")
        .join(name)
}

fn load_fixture(name: &str) -> Loaded {
    load(&fixture(name)).unwrap_or_else(|errors| panic!("{name}:\n{errors}"))
}

#[test]
fn every_fixture_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/containerssh");
    let mut loaded = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.starts_with("config-server-answer") {
            continue;
        }
        load_fixture(&name);
        loaded += 1;
    }
    assert!(loaded >= 7, "{loaded}");
}

#[test]
fn a_file_saved_by_containerssh_loads_quietly() {
    let loaded = load_fixture("saved-by-containerssh.yaml");
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let config = loaded.config;
    assert_eq!(config.auth.password.method, PasswordMethod::Webhook);
    assert_eq!(config.auth.public_key.method, PublicKeyMethod::Off);
    assert_eq!(config.ssh.server_version, "SSH-2.0-ContainerSSH");
    assert_eq!(config.log.level, LogLevel::Notice);
    assert_eq!(config.security.max_sessions, None);
    assert_eq!(
        config.security.forwarding.forwarding_mode,
        SecurityMode::Disable
    );
    assert_eq!(config.security, Default::default());
    assert_eq!(
        config.docker.execution.container.image,
        "containerssh/containerssh-guest-image"
    );
    // It prints and reloads to the same configuration.
    let printed = config.to_yaml();
    let again = parse_str(&printed, Format::Yaml, "printed.yaml")
        .unwrap_or_else(|errors| panic!("{errors}\n---\n{printed}"));
    assert_eq!(again.config, config);
}

#[test]
fn the_0_4_auth_layout_becomes_both_webhooks_with_a_warning() {
    let loaded = load_fixture("legacy-0.4-auth.yaml");
    let auth = &loaded.config.auth;
    assert_eq!(auth.password.method, PasswordMethod::Webhook);
    assert_eq!(auth.public_key.method, PublicKeyMethod::Webhook);
    let webhook = auth.password.webhook.as_ref().unwrap();
    assert_eq!(
        webhook.client.url.expose_secret(),
        "http://auth.example:8080"
    );
    assert_eq!(webhook.client.timeout, Duration::from_secs(5));
    assert_eq!(webhook.auth_timeout, Duration::from_secs(30));
    assert_eq!(auth.public_key.webhook.as_ref(), Some(webhook));
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let warning = &loaded.warnings[0];
    assert!(
        warning.starts_with(&format!(
            "{}:3:3: `auth.url` is ContainerSSH 0.4's webhook layout, deprecated",
            fixture("legacy-0.4-auth.yaml").display()
        )),
        "{warning}"
    );

    // `pubkey: false` keeps public keys off; JSON works the same way.
    let loaded = load_fixture("legacy-0.4-auth-password-only.json");
    assert_eq!(loaded.config.auth.password.method, PasswordMethod::Webhook);
    assert_eq!(loaded.config.auth.public_key.method, PublicKeyMethod::Off);
    assert_eq!(loaded.warnings.len(), 1);
}

#[test]
fn the_0_4_layout_yields_to_the_new_one_and_keeps_its_checks() {
    let loaded = parse_str(
        "auth:\n  url: http://old:8080\n  password:\n    method: htpasswd\n    \
         htpasswd: {file: /h}\n",
        Format::Yaml,
        "c.yaml",
    )
    .unwrap();
    assert_eq!(loaded.config.auth.password.method, PasswordMethod::Htpasswd);
    assert_eq!(loaded.config.auth.public_key.method, PublicKeyMethod::Off);
    assert!(
        loaded.warnings[0].contains("is ignored"),
        "{:?}",
        loaded.warnings
    );

    let errors = parse_str(
        "auth:\n  url: ftp://old\n  timeout: 1ms\n  password: true\n",
        Format::Yaml,
        "c.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(errors.contains("c.yaml:2:8: key `auth.url`"), "{errors}");
    assert!(
        errors.contains("c.yaml:3:12: key `auth.timeout`"),
        "{errors}"
    );

    // Without a URL the 0.4 switches ask for nothing.
    let errors = parse_str(
        "auth:\n  password: true\n  pubkey: true\n",
        Format::Yaml,
        "c.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(errors.contains("no authentication method"), "{errors}");
    let errors = parse_str("auth:\n  password: yes please\n", Format::Yaml, "c.yaml")
        .unwrap_err()
        .to_string();
    assert!(errors.contains("c.yaml:2:"), "{errors}");
}

#[test]
fn null_and_empty_values_mean_default() {
    for name in ["nulls-and-empties.yaml", "nulls-and-empties.json"] {
        let loaded = load_fixture(name);
        let config = &loaded.config;
        assert_eq!(config.ssh.listen, DEFAULT_LISTEN, "{name}");
        assert_eq!(config.docker.connection.host, DEFAULT_DOCKER_HOST, "{name}");
        assert_eq!(config.log.level, LogLevel::Notice, "{name}");
        assert_eq!(config.security, Default::default(), "{name}");
        assert!(config.configserver.is_none(), "{name}");
        let webhook = config.auth.password.webhook.as_ref().unwrap();
        assert!(webhook.client.cert.is_empty(), "{name}");
        assert_eq!(webhook.client.curves.len(), 4, "{name}");
        let defaults = parse_str(
            "auth: {password: {method: webhook, webhook: {url: 'http://127.0.0.1:8080'}}}\n",
            Format::Yaml,
            "d.yaml",
        )
        .unwrap()
        .config;
        assert_eq!(config.docker, defaults.docker, "{name}");
    }
}

#[test]
fn typos_are_refused_even_with_a_null_value() {
    let base = "auth: {password: {method: webhook, webhook: {url: 'http://a:1'}}}\n";
    for (text, key, suggestion) in [
        (
            "security:\n  maxSesions: 3\n",
            "security.maxSesions",
            "maxSessions",
        ),
        (
            "security:\n  forwarding:\n    forwardMode: null\n",
            "security.forwarding.forwardMode",
            "forwardingMode",
        ),
        ("metrics:\n  enabel:\n", "metrics.enabel", "enable"),
        (
            "docker:\n  conection: null\n",
            "docker.conection",
            "connection",
        ),
    ] {
        let errors = parse_str(&format!("{base}{text}"), Format::Yaml, "c.yaml").unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        let error = &errors.0[0];
        assert_eq!(error.key, key);
        assert!(error.line.is_some(), "{error}");
        assert!(
            error
                .message
                .contains(&format!("did you mean `{suggestion}`?")),
            "{error}"
        );
    }
}

#[test]
fn the_security_policy_is_read_with_containerssh_s_keys() {
    let security = load_fixture("security.yaml").config.security;
    assert_eq!(security.default_mode, SecurityMode::Disable);
    assert_eq!(security.force_command, "/usr/local/bin/menu");
    assert_eq!(security.env.mode, SecurityMode::Filter);
    assert_eq!(security.env.allow, ["LANG", "TERM"]);
    assert_eq!(security.env.deny, ["LD_PRELOAD"]);
    assert_eq!(security.command.allow, ["/usr/bin/uptime"]);
    assert_eq!(security.shell.mode, SecurityMode::Enable);
    assert_eq!(security.subsystem.deny, ["x11"]);
    let forwarding = &security.forwarding;
    assert_eq!(forwarding.reverse_forwarding_mode, SecurityMode::Enable);
    assert_eq!(forwarding.forwarding_mode, SecurityMode::Filter);
    assert_eq!(forwarding.socket_forwarding_mode, SecurityMode::Disable);
    assert_eq!(forwarding.socket_listen_mode, SecurityMode::Disable);
    assert_eq!(forwarding.x11_forwarding_mode, SecurityMode::Enable);
    assert_eq!(security.tty.mode, SecurityMode::Disable);
    assert_eq!(security.signal.allow, ["TERM", "INT"]);
    assert_eq!(security.signal.deny, ["KILL"]);
    assert_eq!(security.max_sessions, Some(10));
    assert_eq!(security.effective(security.tty.mode), SecurityMode::Disable);
    assert_eq!(
        security.effective(Default::default()),
        SecurityMode::Disable
    );

    let base = "auth: {password: {method: webhook, webhook: {url: 'http://a:1'}}}\n";
    let errors = parse_str(
        &format!("{base}security:\n  maxSessions: -2\n  tty: {{mode: allow}}\n"),
        Format::Yaml,
        "c.yaml",
    )
    .unwrap_err();
    let error = &errors.0[0];
    assert_eq!(error.key, "security.tty.mode");
    assert_eq!((error.line, error.column), (Some(4), Some(15)));
    let errors = parse_str(
        &format!("{base}security:\n  maxSessions: -2\n"),
        Format::Yaml,
        "c.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        errors.starts_with("c.yaml:3:16: key `security.maxSessions`: `-2` is not a session limit"),
        "{errors}"
    );
}

#[test]
fn containerssh_log_levels() {
    assert_eq!(
        load_fixture("log-levels.yaml").config.log.level,
        LogLevel::Critical
    );
    let base = "auth: {password: {method: webhook, webhook: {url: 'http://a:1'}}}\n";
    for (written, level) in [
        ("debug", LogLevel::Debug),
        ("info", LogLevel::Info),
        ("notice", LogLevel::Notice),
        ("warning", LogLevel::Warning),
        ("error", LogLevel::Error),
        ("crit", LogLevel::Critical),
        ("alert", LogLevel::Alert),
        ("emerg", LogLevel::Emergency),
        ("7", LogLevel::Debug),
        ("5", LogLevel::Notice),
        ("0", LogLevel::Emergency),
    ] {
        let text = format!("{base}log:\n  level: {written}\n");
        let config = parse_str(&text, Format::Yaml, "c.yaml").unwrap().config;
        assert_eq!(config.log.level, level, "{written}");
        let json = format!(
            r#"{{"auth": {{"password": {{"method": "webhook", "webhook": {{"url": "http://a:1"}}}}}},
                "log": {{"level": {}}}}}"#,
            if written.parse::<u8>().is_ok() {
                written.to_owned()
            } else {
                format!("\"{written}\"")
            }
        );
        let config = parse_str(&json, Format::Json, "c.json").unwrap().config;
        assert_eq!(config.log.level, level, "{written}");
    }
    let error = parse_str(&format!("{base}log:\n  level: 8\n"), Format::Yaml, "c.yaml")
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("c.yaml:3:10: key `log.level`"), "{error}");
}

fn answer(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let response: serde_json::Value = serde_json::from_str(&text).unwrap();
    response["config"].clone()
}

fn base() -> Config {
    load_fixture("saved-by-containerssh.yaml").config
}

#[test]
fn a_whole_struct_answer_at_zero_values_changes_nothing() {
    let base = base();
    let (merged, ignored) = merge_answer(&base, &answer("config-server-answer-whole-struct.json"))
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(ignored.is_empty(), "{ignored:?}");
    assert_eq!(merged, base);
}

#[test]
fn a_whole_struct_answer_with_settings_applies_the_per_connection_ones() {
    let base = base();
    let mut config = answer("config-server-answer-whole-struct.json");
    config["docker"]["execution"]["container"]["Image"] = "course/os:1".into();
    config["security"]["forwarding"]["forwardingMode"] = "enable".into();
    config["security"]["env"]["allow"] = serde_json::json!(["LANG"]);
    config["security"]["maxSessions"] = 3.into();
    config["log"]["level"] = "debug".into();
    config["metrics"]["listen"] = "0.0.0.0:9100".into();
    config["ssh"]["banner"] = "hello".into();
    let (merged, ignored) = merge_answer(&base, &config).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(merged.docker.execution.container.image, "course/os:1");
    assert_eq!(
        merged.security.forwarding.forwarding_mode,
        SecurityMode::Enable
    );
    assert_eq!(
        merged.security.forwarding.reverse_forwarding_mode,
        SecurityMode::Disable
    );
    assert_eq!(merged.security.env.allow, ["LANG"]);
    assert_eq!(merged.security.max_sessions, Some(3));
    assert_eq!(merged.log, base.log);
    // `metrics` with a listen address asks for nothing; `log` and `ssh.banner` would change
    // things (of `ssh`, only the idle and session limits apply per connection).
    assert_eq!(ignored, ["log", "ssh.banner"]);

    // Sections that ask for something unsupported are reported, not refused: they are ignored.
    let mut config = answer("config-server-answer-whole-struct.json");
    config["metrics"]["enable"] = true.into();
    let (merged, ignored) = merge_answer(&base, &config).unwrap();
    assert_eq!(ignored, ["metrics"]);
    assert_eq!(merged, base);

    // The whole-struct answer carries the file's own values: nothing to report either.
    let same = serde_json::json!({"log": {"level": "notice", "format": "ljson"},
                                  "ssh": {"serverVersion": "SSH-2.0-ContainerSSH"},
                                  "geoip": {"provider": "dummy"}});
    let (_, ignored) = merge_answer(&base, &same).unwrap();
    assert!(ignored.is_empty(), "{ignored:?}");
}

#[test]
fn answers_keep_refusing_typos_and_bad_policy() {
    let base = base();
    let error = merge_answer(&base, &serde_json::json!({"security": {"maxSesions": 3}}))
        .unwrap_err()
        .to_string();
    assert!(error.contains("did you mean `maxSessions`?"), "{error}");
    let error = merge_answer(
        &base,
        &serde_json::json!({"security": {"shell": {"mode": "allow"}}}),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("security.shell.mode"), "{error}");
    let error = merge_answer(&base, &serde_json::json!({"log": {"level": "loud"}}))
        .unwrap_err()
        .to_string();
    assert!(error.contains("log.level"), "{error}");
}
