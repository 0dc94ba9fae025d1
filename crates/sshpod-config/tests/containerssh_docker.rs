//! ContainerSSH configuration files of the shapes ContainerSSH documents and writes, loaded
//! as a user moving over would load them: Docker's own API objects under `docker.execution`,
//! with any of their fields.

#![allow(clippy::unwrap_used)]

mod common;

use serde_json::json;
use sshpod_config::{parse_str, Format};

use common::{loads, refused, AUTH};

#[test]
fn a_saved_containerssh_docker_section_loads_with_every_field() {
    let loaded = loads("containerssh-docker/saved-wide.yaml");
    // Retired fields at their zero value (macaddress, kernelmemory) pass without a word.
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let execution = &loaded.config.docker.execution;
    let container = execution.container.to_api();
    assert_eq!(
        container["Healthcheck"]["Interval"],
        json!(30_000_000_000_i64)
    );
    assert_eq!(
        container["Healthcheck"]["StartPeriod"],
        json!(60_000_000_000_i64)
    );
    assert_eq!(container["ExposedPorts"], json!({"22/tcp": {}}));
    assert_eq!(container["Volumes"], json!({"/data": {}}));
    assert_eq!(container["Shell"], json!(["/bin/sh", "-c"]));
    assert_eq!(container["OnBuild"], json!([]));
    assert_eq!(container["ArgsEscaped"], json!(false));
    assert!(!container.contains_key("MacAddress"));
    let host = execution.host.to_api();
    for (name, value) in [
        ("OomScoreAdj", json!(500)),
        ("StorageOpt", json!({"size": "2G"})),
        ("MemoryReservation", json!(268_435_456)),
        ("MemorySwappiness", json!(10)),
        ("OomKillDisable", json!(false)),
        ("CpusetMems", json!("0")),
        ("CpuRealtimePeriod", json!(0)),
        ("BlkioWeight", json!(300)),
        (
            "BlkioDeviceReadBps",
            json!([{"Path": "/dev/sda", "Rate": 10_485_760}]),
        ),
        ("CgroupnsMode", json!("private")),
        (
            "LogConfig",
            json!({"Type": "json-file", "Config": {"max-size": "10m"}}),
        ),
        ("RestartPolicy", json!({"Name": "", "MaximumRetryCount": 0})),
        ("ConsoleSize", json!([0, 0])),
        (
            "Ulimits",
            json!([{"Name": "nofile", "Soft": 1024, "Hard": 4096}]),
        ),
        ("MaskedPaths", json!(["/proc/kcore"])),
        (
            "Sysctls",
            json!({"net.ipv4.ip_unprivileged_port_start": "0"}),
        ),
        ("CapDrop", json!(["NET_RAW"])),
        ("Memory", json!(536_870_912)),
        ("PidsLimit", json!(256)),
    ] {
        assert_eq!(host.get(name), Some(&value), "{name}");
    }
    assert_eq!(
        host["Mounts"],
        json!([
            {"Type": "volume", "Source": "shared", "Target": "/shared", "ReadOnly": true,
             "VolumeOptions": {"NoCopy": true}},
            {"Type": "tmpfs", "Target": "/scratch",
             "TmpfsOptions": {"SizeBytes": 104_857_600, "Mode": 1023}}
        ])
    );
    assert!(!host.contains_key("KernelMemory"));
    assert_eq!(execution.platform.to_api(), "linux/amd64");
    assert_eq!(
        execution.network.to_api()["EndpointsConfig"],
        json!({"bridge": {"Aliases": ["guest"]}})
    );

    // What sshpod prints loads back to the same configuration.
    let printed = loaded.config.to_yaml();
    let again = parse_str(&printed, Format::Yaml, "printed.yaml")
        .unwrap_or_else(|errors| panic!("{errors}\n---\n{printed}"));
    assert_eq!(again.config, loaded.config, "{printed}");
}

#[test]
fn docker_api_names_in_json_are_matched_in_any_case() {
    let loaded = loads("containerssh-docker/api-names.json");
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let execution = &loaded.config.docker.execution;
    let host = execution.host.to_api();
    assert_eq!(host["OomScoreAdj"], json!(-100));
    assert_eq!(host["OomKillDisable"], json!(true));
    assert_eq!(host["CpuRealtimeRuntime"], json!(950_000));
    assert_eq!(host["Mounts"][0]["Source"], json!("/srv/data"));
    assert_eq!(
        host["PortBindings"],
        json!({"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}]})
    );
    assert_eq!(execution.host.resources.memory, Some(1 << 30));
    assert_eq!(execution.container.image, "busybox");
    assert_eq!(execution.platform.to_api(), "linux");
}

#[test]
fn typos_in_docker_fields_are_refused_with_a_suggestion() {
    let errors = refused(&format!(
        "{AUTH}docker:\n  execution:\n    host:\n      oomscoreadjj: 5\n      resources:\n        \
         memoryreservaton: 1\n    container:\n      Healthcheck: {{Retrys: 1}}\n      \
         exposedport: {{}}\n"
    ));
    let expected = [
        "t.yaml:9:21: key `docker.execution.container.Healthcheck.Retrys`: unknown key `Retrys` \
         in Docker's HealthConfig; did you mean `Retries`?",
        "t.yaml:10:7: key `docker.execution.container.exposedport`: unknown key `exposedport` \
         in Docker's ContainerConfig; did you mean `exposedports`?",
        "t.yaml:5:7: key `docker.execution.host.oomscoreadjj`: unknown key `oomscoreadjj` in \
         Docker's HostConfig; did you mean `oomscoreadj`?",
        "t.yaml:7:9: key `docker.execution.host.resources.memoryreservaton`: unknown key \
         `memoryreservaton` in Docker's Resources; did you mean `memoryreservation`?",
    ];
    assert_eq!(errors, expected);
}

#[test]
fn wrong_values_in_docker_fields_are_refused_where_they_are() {
    let errors = refused(&format!(
        "{AUTH}docker:\n  execution:\n    host:\n      oomscoreadj: high\n      \
         mounts: [{{type: bnd, target: /x}}]\n      restartpolicy: always\n"
    ));
    let expected = [
        "t.yaml:6:23: key `docker.execution.host.mounts[0].type`: unknown value `bnd`; did you \
         mean `bind`?",
        "t.yaml:5:20: key `docker.execution.host.oomscoreadj`: must be a whole number",
        "t.yaml:7:22: key `docker.execution.host.restartpolicy`: must be a map of RestartPolicy \
         fields",
    ];
    assert_eq!(errors, expected);
}

#[test]
fn unknown_docker_fields_far_from_any_field_are_ignored_with_a_warning() {
    let loaded = parse_str(
        &format!("{AUTH}docker:\n  execution:\n    host:\n      somethingnew: 1\n      kernelmemory: 1024\n"),
        Format::Yaml,
        "t.yaml",
    )
    .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(loaded.warnings.len(), 2, "{:#?}", loaded.warnings);
    assert_eq!(
        loaded.warnings,
        [
            "t.yaml:6:7: `docker.execution.host.kernelmemory` is ignored: Docker's API no longer \
             has `KernelMemory`",
            "t.yaml:5:7: `docker.execution.host.somethingnew` is ignored: Docker's HostConfig has \
             no such field (ContainerSSH ignores it too)",
        ]
    );
    assert!(!loaded
        .config
        .docker
        .execution
        .host
        .to_api()
        .contains_key("somethingnew"));
}
