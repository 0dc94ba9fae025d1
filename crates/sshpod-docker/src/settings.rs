//! The Docker backend's view of the configuration: what every container of this process is
//! made from, resolved once at start-up.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig};
use serde_json::Value;
use sshpod_config::{DockerConfig, ExecutionMode, ImagePullPolicy};
use sshpod_core::{
    labels, BackendError, Command, CommandPolicy, CommandTable, ConnectionContext, TtySpec,
};

pub(crate) use sshpod_config::ImagePullPolicy as PullPolicy;

/// Timeouts that bound engine operations.
#[derive(Debug, Clone)]
pub(crate) struct Timeouts {
    pub(crate) container_start: Duration,
    /// Bounds helper commands (signals) and reading an exit status.
    pub(crate) command_start: Duration,
}

/// Resolved Docker settings.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) image: String,
    pub(crate) pull_policy: ImagePullPolicy,
    pub(crate) mode: ExecutionMode,
    pub(crate) idle_command: Vec<String>,
    pub(crate) shell_command: Vec<String>,
    pub(crate) subsystems: BTreeMap<String, String>,
    pub(crate) timeouts: Timeouts,
    container_name: String,
    /// The image platform for the create call (`linux/arm64`), empty for the engine's own.
    pub(crate) platform: String,
    /// The create body before per-connection parts (command, labels, I/O flags).
    template: ContainerCreateBody,
}

impl Settings {
    /// The settings for `config`. Every field of `docker.execution.container`, `host` and
    /// `network` reaches the create body (the configuration has already checked them against
    /// Docker's API and spelled them as it does); sshpod's own parts (command, labels, I/O
    /// flags, auto-removal) are set over them per container in [`Settings::container_body`].
    pub(crate) fn from_config(config: &DockerConfig) -> Result<Self, BackendError> {
        let exec = &config.execution;
        let c = &exec.container;
        let mut body = c.to_api();
        body.insert("HostConfig".to_owned(), Value::Object(exec.host.to_api()));
        let network = exec.network.to_api();
        if !network.is_empty() {
            body.insert("NetworkingConfig".to_owned(), Value::Object(network));
        }
        let template: ContainerCreateBody =
            serde_json::from_value(Value::Object(body)).map_err(|e| BackendError::Settings {
                setting: "docker.execution",
                reason: format!("Docker's API cannot take it: {e}"),
            })?;
        Ok(Self {
            image: c.image.clone(),
            pull_policy: exec.image_pull_policy,
            mode: exec.mode,
            idle_command: exec.idle_command.clone(),
            shell_command: exec.shell_command.clone(),
            subsystems: exec.subsystems.clone(),
            timeouts: Timeouts {
                container_start: config.timeouts.container_start,
                command_start: config.timeouts.command_start,
            },
            container_name: exec.containername.clone(),
            platform: exec.platform.to_api(),
            template,
        })
    }

    /// The create body for one container. `tty` is set in session mode, where the session's
    /// program is the main process; `None` means a connection container running `cmd` idle.
    pub(crate) fn container_body(
        &self,
        ctx: &ConnectionContext,
        instance: &str,
        cmd: Vec<String>,
        tty: Option<&TtySpec>,
    ) -> ContainerCreateBody {
        let mut body = self.template.clone();
        let labels = body.labels.get_or_insert_with(HashMap::new);
        labels.insert(labels::INSTANCE.to_owned(), instance.to_owned());
        labels.insert(labels::CONNECTION.to_owned(), ctx.connection_id.to_string());
        labels.insert(labels::USER.to_owned(), ctx.user.clone());
        for (key, value) in &ctx.labels {
            labels.entry(key.clone()).or_insert_with(|| value.clone());
        }
        if !ctx.environment.is_empty() {
            let env = body.env.get_or_insert_with(Vec::new);
            env.extend(ctx.environment.iter().map(|(k, v)| format!("{k}={v}")));
        }
        if let Some(hostname) = &ctx.hostname {
            body.hostname = Some(hostname.clone());
        }
        if ctx.identity.is_some() {
            // The setup needs root's capabilities, which Docker gives an exec as root only in a
            // container started as root; the user's processes run as the user whatever it is.
            body.user = Some("0:0".to_owned());
        }
        body.cmd = Some(cmd);
        body.open_stdin = Some(true);
        body.stdin_once = Some(true);
        body.attach_stdin = Some(true);
        let host = body.host_config.get_or_insert_with(HostConfig::default);
        if ctx.identity.is_some() {
            keep_setup_capability(host);
        }
        if self.mode == ExecutionMode::User {
            labels.insert(labels::USER_CONTAINER.to_owned(), ctx.user.clone());
        }
        if ctx.identity.as_ref().is_some_and(|i| i.sudo) {
            // `sudo` is set-uid: under no-new-privileges it cannot raise anyone to root.
            if let Some(options) = host.security_opt.as_mut() {
                options.retain(|o| !o.starts_with("no-new-privileges"));
            }
        }
        match self.mode {
            ExecutionMode::Connection | ExecutionMode::User => {
                body.tty = Some(false);
                // The idle process exits when sshpod's attach stream closes; the engine then
                // removes the container even if sshpod is gone.
                host.auto_remove = Some(true);
            }
            ExecutionMode::Session => {
                body.tty = Some(tty.is_some());
                body.attach_stdout = Some(true);
                body.attach_stderr = Some(true);
                // An init process forwards signals: the program as PID 1 would ignore most.
                host.init = Some(host.init.unwrap_or(true));
            }
        }
        body
    }

    /// The labels of the configuration's container (`docker.execution.container.labels`), also
    /// put on the volumes sshpod creates.
    pub(crate) fn base_labels(&self) -> HashMap<String, String> {
        self.template.labels.clone().unwrap_or_default()
    }

    /// The container name: the configured one, or one that says whose it is.
    pub(crate) fn container_name(&self, ctx: &ConnectionContext) -> String {
        if self.container_name.is_empty() {
            let id = ctx.connection_id.to_string();
            let short = id.get(..12).unwrap_or(&id);
            labels::container_name("sshpod-", &ctx.user, short)
        } else {
            self.container_name.clone()
        }
    }

    /// Whether each container gets a name of its own (`containername` is not set).
    pub(crate) fn has_generated_names(&self) -> bool {
        self.container_name.is_empty()
    }

    /// The program and arguments for a session's command.
    pub(crate) fn argv(&self, command: &Command) -> Result<Vec<String>, BackendError> {
        CommandTable {
            shell: &self.shell_command,
            subsystems: &self.subsystems,
            policy: CommandPolicy::Any,
        }
        .argv(command)
    }

    /// The `K=V` environment of a process from the client's env requests.
    pub(crate) fn process_env(&self, env: &[(String, String)]) -> Vec<String> {
        env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// A start failure with a reason fit for the user; the cause goes to the log.
    pub(crate) fn start_error(
        &self,
        what: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> BackendError {
        BackendError::StartContainer {
            image: self.image.clone(),
            reason: what.to_owned(),
            source: Some(Box::new(source)),
        }
    }

    /// The container did not start within `timeouts.containerStart`.
    pub(crate) fn start_timeout(&self) -> BackendError {
        BackendError::StartTimeout {
            image: self.image.clone(),
            seconds: self.timeouts.container_start.as_secs(),
        }
    }

    /// A start failure reported by the engine: its message is the reason.
    pub(crate) fn start_error_engine(&self, e: bollard::errors::Error) -> BackendError {
        match e {
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message,
            } if message.contains("image") => BackendError::ImageUnavailable {
                image: self.image.clone(),
                source: message.into(),
            },
            bollard::errors::Error::DockerResponseServerError { message, .. } => {
                BackendError::StartContainer {
                    image: self.image.clone(),
                    reason: short_reason(&message),
                    source: None,
                }
            }
            other => BackendError::Engine(Box::new(other)),
        }
    }
}

/// The engine's message, trimmed of the runtime's long preamble so the user sees the point.
fn short_reason(message: &str) -> String {
    let tail = message.rsplit(": ").next().unwrap_or(message).trim();
    let reason = if tail.len() >= 8 {
        tail
    } else {
        message.trim()
    };
    reason.chars().take(200).collect()
}

/// The user's setup (run as root) gives the home to the user: `CAP_CHOWN` stays in the
/// container's bounding set even where the configuration drops every capability. The user's
/// own processes run as the user, without effective capabilities and, unless `sudo` is on,
/// without a way to gain any (no-new-privileges).
fn keep_setup_capability(host: &mut HostConfig) {
    const SETUP: &str = "CHOWN";
    let named = |c: &String| {
        let c = c.trim_start_matches("CAP_");
        c.eq_ignore_ascii_case(SETUP)
    };
    if let Some(dropped) = host.cap_drop.as_mut() {
        dropped.retain(|c| !named(c));
        let all_dropped = dropped.iter().any(|c| c.eq_ignore_ascii_case("ALL"));
        let added = host.cap_add.as_ref().is_some_and(|a| a.iter().any(named));
        if all_dropped && !added {
            host.cap_add
                .get_or_insert_with(Vec::new)
                .push(SETUP.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshpod_core::ConnectionId;

    fn ctx() -> ConnectionContext {
        ConnectionContext::new(
            ConnectionId::random(),
            "al/ice".into(),
            "127.0.0.1:1".parse().unwrap(),
        )
    }

    fn settings(mode: ExecutionMode) -> Settings {
        let text = "auth: {password: {method: htpasswd, htpasswd: {file: /x}}}\n\
                    docker: {execution: {container: {labels: {team: a}}}}\n";
        let mut config = sshpod_config::parse_str(text, sshpod_config::Format::Yaml, "t.yaml")
            .unwrap()
            .config
            .docker;
        config.execution.mode = mode;
        Settings::from_config(&config).unwrap()
    }

    #[test]
    fn webhook_environment_and_labels_reach_the_container() {
        let s = settings(ExecutionMode::Connection);
        let mut ctx = ctx();
        ctx.environment.push(("COURSE".into(), "os".into()));
        ctx.labels.insert("team".into(), "overridden?".into());
        ctx.labels.insert("course".into(), "os".into());
        ctx.labels.insert(labels::USER.into(), "mallory".into());
        let body = s.container_body(&ctx, "inst", vec!["idle".into()], None);
        assert!(body.env.unwrap().contains(&"COURSE=os".to_owned()));
        let labels = body.labels.unwrap();
        assert_eq!(labels["course"], "os");
        assert_eq!(labels["team"], "a", "configured labels win");
        assert_eq!(labels[labels::USER], "al/ice", "sshpod's labels win");
    }

    #[test]
    fn connection_containers_are_labelled_idle_and_auto_removed() {
        let s = settings(ExecutionMode::Connection);
        let ctx = ctx();
        let body = s.container_body(&ctx, "inst", vec!["idle".into()], None);
        let labels = body.labels.unwrap();
        assert_eq!(labels[labels::INSTANCE], "inst");
        assert_eq!(labels[labels::CONNECTION], ctx.connection_id.to_string());
        assert_eq!(labels[labels::USER], "al/ice");
        assert_eq!(labels["team"], "a");
        assert_eq!(body.cmd.unwrap(), ["idle"]);
        assert_eq!(body.open_stdin, Some(true));
        assert_eq!(body.stdin_once, Some(true));
        let host = body.host_config.unwrap();
        assert_eq!(host.auto_remove, Some(true));
        assert_eq!(host.privileged, Some(false));
        assert!(host.memory.unwrap_or(0) > 0, "a memory limit by default");
        assert!(host.pids_limit.unwrap_or(0) > 0, "a PID limit by default");
    }

    #[test]
    fn session_containers_get_an_init_and_the_tty() {
        let s = settings(ExecutionMode::Session);
        let tty = TtySpec {
            term: "xterm".into(),
            size: sshpod_core::TerminalSize { cols: 80, rows: 24 },
            stty_modes: vec![],
        };
        let body = s.container_body(&ctx(), "inst", vec!["sh".into()], Some(&tty));
        assert_eq!(body.tty, Some(true));
        assert_eq!(body.host_config.unwrap().init, Some(true));
    }

    #[test]
    fn names_say_whose_container_it_is_and_stay_valid() {
        let s = settings(ExecutionMode::Connection);
        let name = s.container_name(&ctx());
        assert!(name.starts_with("sshpod-al-ice-"), "{name}");
        assert_eq!(name.len(), "sshpod-al-ice-".len() + 12);
    }

    #[test]
    fn commands_map_to_programs() {
        let s = settings(ExecutionMode::Connection);
        assert_eq!(
            s.argv(&Command::Exec("echo hi".into())).unwrap(),
            ["/bin/sh", "-c", "echo hi"]
        );
        assert_eq!(
            s.argv(&Command::Subsystem("sftp".into())).unwrap(),
            ["/usr/lib/openssh/sftp-server"]
        );
        assert!(s.argv(&Command::Subsystem("nope".into())).is_err());
        assert_eq!(s.argv(&Command::Shell).unwrap(), s.shell_command);
    }

    #[test]
    fn engine_messages_are_shortened() {
        assert_eq!(
            short_reason("failed to create shim task: OCI runtime create failed: exec: \"/nope\": stat /nope: no such file or directory"),
            "no such file or directory"
        );
    }

    /// The field names of a bollard model, as serde sees them (its API names).
    fn bollard_fields<T: serde::de::DeserializeOwned>() -> Vec<&'static str> {
        use serde::de::{value::Error, Error as _, Visitor};
        struct Introspect<'a>(&'a mut &'static [&'static str]);
        impl<'de> serde::Deserializer<'de> for Introspect<'_> {
            type Error = Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
                Err(Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Error> {
                *self.0 = fields;
                Err(Error::custom("seen"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let mut fields: &'static [&'static str] = &[];
        let _ = T::deserialize(Introspect(&mut fields));
        let mut fields = fields.to_vec();
        fields.sort_unstable();
        fields
    }

    fn ours(type_name: &str, leave_out: &[&str]) -> Vec<&'static str> {
        let mut fields: Vec<&str> = sshpod_config::docker_api_fields(type_name)
            .unwrap()
            .into_iter()
            .filter(|name| !leave_out.contains(name))
            .collect();
        fields.sort_unstable();
        fields
    }

    /// The configuration accepts exactly the fields of the types the engine is sent: none
    /// that would be dropped on the way, none that could not be set.
    #[test]
    fn the_configuration_knows_every_field_of_bollard_s_types() {
        use bollard::models as m;
        let mut body = bollard_fields::<ContainerCreateBody>();
        body.retain(|name| !["HostConfig", "NetworkingConfig"].contains(name));
        assert_eq!(ours("ContainerConfig", &[]), body);
        assert_eq!(
            ours("HostConfig", &["Resources"]),
            bollard_fields::<HostConfig>()
        );
        let pairs: Vec<(&str, Vec<&str>)> = vec![
            ("Resources", bollard_fields::<m::Resources>()),
            ("HealthConfig", bollard_fields::<m::HealthConfig>()),
            ("Mount", bollard_fields::<m::Mount>()),
            ("BindOptions", bollard_fields::<m::MountBindOptions>()),
            ("VolumeOptions", bollard_fields::<m::MountVolumeOptions>()),
            (
                "Driver",
                bollard_fields::<m::MountVolumeOptionsDriverConfig>(),
            ),
            ("TmpfsOptions", bollard_fields::<m::MountTmpfsOptions>()),
            ("ImageOptions", bollard_fields::<m::MountImageOptions>()),
            ("RestartPolicy", bollard_fields::<m::RestartPolicy>()),
            ("LogConfig", bollard_fields::<m::HostConfigLogConfig>()),
            ("DeviceMapping", bollard_fields::<m::DeviceMapping>()),
            ("DeviceRequest", bollard_fields::<m::DeviceRequest>()),
            (
                "WeightDevice",
                bollard_fields::<m::ResourcesBlkioWeightDevice>(),
            ),
            ("ThrottleDevice", bollard_fields::<m::ThrottleDevice>()),
            ("Ulimit", bollard_fields::<m::ResourcesUlimits>()),
            ("PortBinding", bollard_fields::<m::PortBinding>()),
            ("NetworkingConfig", bollard_fields::<m::NetworkingConfig>()),
            ("EndpointSettings", bollard_fields::<m::EndpointSettings>()),
            (
                "EndpointIPAMConfig",
                bollard_fields::<m::EndpointIpamConfig>(),
            ),
        ];
        for (name, theirs) in pairs {
            assert!(!theirs.is_empty(), "{name}");
            assert_eq!(ours(name, &[]), theirs, "{name}");
        }
    }

    /// Fields sshpod has no use for itself reach the engine as configured, and sshpod's own
    /// settings still apply over them.
    #[test]
    fn pass_through_fields_reach_the_create_body() {
        let text = "auth: {password: {method: htpasswd, htpasswd: {file: /x}}}\n\
docker:\n  execution:\n    container:\n      image: busybox\n      \
exposedports: {\"22/tcp\": {}}\n      healthcheck: {test: [CMD, \"true\"], interval: 30s, retries: 3}\n      \
shell: [/bin/sh, -c]\n      labels: {team: a}\n      cmd: [ignored]\n    host:\n      \
oomscoreadj: 500\n      storageopt: {size: 1G}\n      \
mounts:\n        - {type: tmpfs, target: /scratch, tmpfsoptions: {sizebytes: 1048576}}\n        \
- {type: bind, source: /srv, target: /srv, readonly: true, bindoptions: {propagation: rslave}}\n      \
restartpolicy: {name: \"no\"}\n      resources: {memoryreservation: 268435456, memoryswappiness: 0, \
cpusetmems: \"0\"}\n      OomKillDisable: false\n      \
blkioweight: 300\n      ulimits: [{name: nofile, soft: 1024, hard: 2048}]\n    \
network:\n      endpointsconfig: {sessions: {aliases: [guest]}}\n    \
platform: {os: linux, architecture: arm64, variant: v8}\n";
        let loaded = sshpod_config::parse_str(text, sshpod_config::Format::Yaml, "t.yaml")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let s = Settings::from_config(&loaded.config.docker).unwrap();
        assert_eq!(s.platform, "linux/arm64/v8");
        let ctx = ctx();
        let body = s.container_body(&ctx, "inst", vec!["idle".into()], None);
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["Image"], "busybox");
        assert_eq!(json["ExposedPorts"], serde_json::json!({"22/tcp": {}}));
        assert_eq!(json["Healthcheck"]["Interval"], 30_000_000_000_i64);
        assert_eq!(
            json["Healthcheck"]["Test"],
            serde_json::json!(["CMD", "true"])
        );
        assert_eq!(json["Shell"], serde_json::json!(["/bin/sh", "-c"]));
        let host = &json["HostConfig"];
        assert_eq!(host["OomScoreAdj"], 500);
        assert_eq!(host["StorageOpt"]["size"], "1G");
        assert_eq!(host["Mounts"][0]["Type"], "tmpfs");
        assert_eq!(host["Mounts"][0]["TmpfsOptions"]["SizeBytes"], 1_048_576);
        assert_eq!(host["Mounts"][1]["ReadOnly"], true);
        assert_eq!(host["Mounts"][1]["BindOptions"]["Propagation"], "rslave");
        assert_eq!(host["RestartPolicy"]["Name"], "no");
        assert_eq!(host["MemoryReservation"], 268_435_456);
        assert_eq!(host["MemorySwappiness"], 0);
        assert_eq!(host["CpusetMems"], "0");
        assert_eq!(host["OomKillDisable"], false);
        assert_eq!(host["BlkioWeight"], 300);
        assert_eq!(host["Ulimits"][0]["Hard"], 2048);
        assert_eq!(
            json["NetworkingConfig"]["EndpointsConfig"]["sessions"]["Aliases"],
            serde_json::json!(["guest"])
        );
        // sshpod's own settings, over what was configured.
        assert_eq!(json["Cmd"], serde_json::json!(["idle"]));
        assert_eq!(json["Labels"]["team"], "a");
        assert_eq!(json["Labels"][labels::USER], "al/ice");
        assert_eq!(host["AutoRemove"], true);
        assert_eq!(
            host["SecurityOpt"],
            serde_json::json!(["no-new-privileges"])
        );
        assert_eq!(host["PidsLimit"], sshpod_config::DEFAULT_PIDS_LIMIT);
        assert_eq!(host["Privileged"], false);
    }

    #[test]
    fn hostname_and_sudo_shape_the_container() {
        let s = settings(ExecutionMode::Connection);
        let options = |body: &ContainerCreateBody| {
            body.host_config
                .as_ref()
                .and_then(|h| h.security_opt.clone())
                .unwrap_or_default()
        };
        let plain = s.container_body(&ctx(), "inst", vec!["idle".into()], None);
        assert_eq!(plain.hostname, None);
        assert_eq!(options(&plain), ["no-new-privileges"]);

        let mut with = ctx();
        with.hostname = Some("alice-lab".into());
        let on = sshpod_config::IdentityConfig {
            enable: true,
            ..Default::default()
        };
        with.identity = sshpod_core::Identity::resolve(&on, "alice").unwrap_or_default();
        let body = s.container_body(&with, "inst", vec!["idle".into()], None);
        assert_eq!(body.hostname.as_deref(), Some("alice-lab"));
        assert_eq!(body.user.as_deref(), Some("0:0"), "set up as root");
        assert_eq!(options(&body), ["no-new-privileges"], "kept without sudo");

        if let Some(identity) = with.identity.as_mut() {
            identity.sudo = true;
        }
        let body = s.container_body(&with, "inst", vec!["idle".into()], None);
        assert!(
            options(&body).is_empty(),
            "sudo is set-uid: {:?}",
            options(&body)
        );
    }

    #[test]
    fn the_users_setup_keeps_chown_where_every_capability_is_dropped() {
        let capabilities = |host: &HostConfig| (host.cap_add.clone(), host.cap_drop.clone());
        let mut dropped_all = HostConfig {
            cap_drop: Some(vec!["ALL".into()]),
            ..Default::default()
        };
        keep_setup_capability(&mut dropped_all);
        assert_eq!(
            capabilities(&dropped_all),
            (Some(vec!["CHOWN".into()]), Some(vec!["ALL".into()]))
        );
        let mut dropped_chown = HostConfig {
            cap_drop: Some(vec!["NET_RAW".into(), "CAP_CHOWN".into()]),
            ..Default::default()
        };
        keep_setup_capability(&mut dropped_chown);
        assert_eq!(
            capabilities(&dropped_chown),
            (None, Some(vec!["NET_RAW".into()]))
        );
        let mut untouched = HostConfig::default();
        keep_setup_capability(&mut untouched);
        assert_eq!(capabilities(&untouched), (None, None));
    }
}
