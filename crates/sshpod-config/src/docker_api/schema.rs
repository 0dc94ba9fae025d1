//! The shape of the Docker API objects a configuration may describe: every field of Docker's
//! `ContainerConfig`, `HostConfig` (with its `Resources`), `NetworkingConfig` and the OCI
//! `Platform`, and of the objects nested in them, under the names Docker's API uses.
//!
//! The field lists follow the Docker Engine API that sshpod's Docker backend speaks (bollard's
//! models); a test in `sshpod-docker` checks them against bollard's types, field by field, so
//! that a field this table accepts is a field the engine receives.

/// What a field holds.
#[derive(Debug)]
pub(crate) enum Kind {
    /// A string (numbers and booleans are written as strings).
    Str,
    /// An integer.
    Int,
    /// `true` or `false`.
    Bool,
    /// A Go `time.Duration`: a string such as `30s`, or integer nanoseconds; sent as nanoseconds.
    Duration,
    /// Docker's `StrSlice`: a list of strings, or one string.
    StrSlice,
    /// One of these strings.
    Enum(&'static [&'static str]),
    /// A list of items of one kind.
    List(&'static Kind),
    /// A map from free-form keys (ports, paths, network names) to values of one kind.
    Map(&'static Kind),
    /// A nested API object.
    Object(&'static Object),
    /// Anything; passed on as written (the empty objects of `ExposedPorts` and `Volumes`).
    Any,
}

/// One field of an API object.
#[derive(Debug)]
pub(crate) struct Field {
    /// The name in Docker's API. Files may spell it in any case (`oomscoreadj`, `OomScoreAdj`).
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
}

/// An API object: its fields, and fields Docker has removed from it.
#[derive(Debug)]
pub(crate) struct Object {
    /// Docker's name for the type, for messages.
    pub(crate) name: &'static str,
    /// The fields, in groups (`HostConfig` shares its resource fields with `Resources`).
    pub(crate) groups: &'static [&'static [Field]],
    /// Fields older Docker versions had (and ContainerSSH writes into the files it saves):
    /// accepted and dropped, with a warning when they are set to something.
    pub(crate) retired: &'static [&'static str],
}

impl Object {
    /// The field named `name`, in any case.
    pub(crate) fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields()
            .find(|field| field.name.eq_ignore_ascii_case(name))
    }

    /// Every field.
    pub(crate) fn fields(&self) -> impl Iterator<Item = &'static Field> {
        self.groups.iter().flat_map(|group| group.iter())
    }

    /// The retired field named `name`, in any case.
    pub(crate) fn retired(&self, name: &str) -> Option<&'static str> {
        self.retired
            .iter()
            .copied()
            .find(|retired| retired.eq_ignore_ascii_case(name))
    }
}

const fn f(name: &'static str, kind: Kind) -> Field {
    Field { name, kind }
}

use Kind::{Any, Bool, Duration, Enum, Int, List, Map, Object as Obj, Str, StrSlice};

/// `HealthConfig`.
pub(crate) static HEALTH_CONFIG: Object = Object {
    name: "HealthConfig",
    groups: &[&[
        f("Test", StrSlice),
        f("Interval", Duration),
        f("Timeout", Duration),
        f("Retries", Int),
        f("StartPeriod", Duration),
        f("StartInterval", Duration),
    ]],
    retired: &[],
};

/// `ContainerConfig` (the create body without `HostConfig` and `NetworkingConfig`).
pub(crate) static CONTAINER_CONFIG: Object = Object {
    name: "ContainerConfig",
    groups: &[&[
        f("Hostname", Str),
        f("Domainname", Str),
        f("User", Str),
        f("AttachStdin", Bool),
        f("AttachStdout", Bool),
        f("AttachStderr", Bool),
        f("ExposedPorts", Map(&Any)),
        f("Tty", Bool),
        f("OpenStdin", Bool),
        f("StdinOnce", Bool),
        f("Env", List(&Str)),
        f("Cmd", StrSlice),
        f("Healthcheck", Obj(&HEALTH_CONFIG)),
        f("ArgsEscaped", Bool),
        f("Image", Str),
        f("Volumes", Map(&Any)),
        f("WorkingDir", Str),
        f("Entrypoint", StrSlice),
        f("NetworkDisabled", Bool),
        f("OnBuild", List(&Str)),
        f("Labels", Map(&Str)),
        f("StopSignal", Str),
        f("StopTimeout", Int),
        f("Shell", StrSlice),
    ]],
    // Moved to the endpoint settings in API 1.44.
    retired: &["MacAddress"],
};

static WEIGHT_DEVICE: Object = Object {
    name: "WeightDevice",
    groups: &[&[f("Path", Str), f("Weight", Int)]],
    retired: &[],
};

static THROTTLE_DEVICE: Object = Object {
    name: "ThrottleDevice",
    groups: &[&[f("Path", Str), f("Rate", Int)]],
    retired: &[],
};

static DEVICE_MAPPING: Object = Object {
    name: "DeviceMapping",
    groups: &[&[
        f("PathOnHost", Str),
        f("PathInContainer", Str),
        f("CgroupPermissions", Str),
    ]],
    retired: &[],
};

static DEVICE_REQUEST: Object = Object {
    name: "DeviceRequest",
    groups: &[&[
        f("Driver", Str),
        f("Count", Int),
        f("DeviceIDs", List(&Str)),
        f("Capabilities", List(&List(&Str))),
        f("Options", Map(&Str)),
    ]],
    retired: &[],
};

static ULIMIT: Object = Object {
    name: "Ulimit",
    groups: &[&[f("Name", Str), f("Soft", Int), f("Hard", Int)]],
    retired: &[],
};

/// The resource limits of `HostConfig`. Docker's API writes them flat in `HostConfig`;
/// ContainerSSH's YAML files nest them under `resources` (Go embeds the struct).
static RESOURCE_FIELDS: [Field; 30] = [
    f("CpuShares", Int),
    f("Memory", Int),
    f("CgroupParent", Str),
    f("BlkioWeight", Int),
    f("BlkioWeightDevice", List(&Obj(&WEIGHT_DEVICE))),
    f("BlkioDeviceReadBps", List(&Obj(&THROTTLE_DEVICE))),
    f("BlkioDeviceWriteBps", List(&Obj(&THROTTLE_DEVICE))),
    f("BlkioDeviceReadIOps", List(&Obj(&THROTTLE_DEVICE))),
    f("BlkioDeviceWriteIOps", List(&Obj(&THROTTLE_DEVICE))),
    f("CpuPeriod", Int),
    f("CpuQuota", Int),
    f("CpuRealtimePeriod", Int),
    f("CpuRealtimeRuntime", Int),
    f("CpusetCpus", Str),
    f("CpusetMems", Str),
    f("Devices", List(&Obj(&DEVICE_MAPPING))),
    f("DeviceCgroupRules", List(&Str)),
    f("DeviceRequests", List(&Obj(&DEVICE_REQUEST))),
    f("MemoryReservation", Int),
    f("MemorySwap", Int),
    f("MemorySwappiness", Int),
    f("NanoCpus", Int),
    f("OomKillDisable", Bool),
    f("Init", Bool),
    f("PidsLimit", Int),
    f("Ulimits", List(&Obj(&ULIMIT))),
    f("CpuCount", Int),
    f("CpuPercent", Int),
    f("IOMaximumIOps", Int),
    f("IOMaximumBandwidth", Int),
];

/// Resource fields Docker has removed (kernel memory limits, gone in API 1.42).
const RETIRED_RESOURCES: &[&str] = &["KernelMemory", "KernelMemoryTCP"];

/// `Resources`, as nested under `host.resources` in YAML.
pub(crate) static RESOURCES: Object = Object {
    name: "Resources",
    groups: &[&RESOURCE_FIELDS],
    retired: RETIRED_RESOURCES,
};

static LOG_CONFIG: Object = Object {
    name: "LogConfig",
    groups: &[&[f("Type", Str), f("Config", Map(&Str))]],
    retired: &[],
};

static PORT_BINDING: Object = Object {
    name: "PortBinding",
    groups: &[&[f("HostIp", Str), f("HostPort", Str)]],
    retired: &[],
};

static RESTART_POLICY: Object = Object {
    name: "RestartPolicy",
    groups: &[&[
        f(
            "Name",
            Enum(&["", "no", "always", "unless-stopped", "on-failure"]),
        ),
        f("MaximumRetryCount", Int),
    ]],
    retired: &[],
};

static BIND_OPTIONS: Object = Object {
    name: "BindOptions",
    groups: &[&[
        f(
            "Propagation",
            Enum(&[
                "", "private", "rprivate", "shared", "rshared", "slave", "rslave",
            ]),
        ),
        f("NonRecursive", Bool),
        f("CreateMountpoint", Bool),
        f("ReadOnlyNonRecursive", Bool),
        f("ReadOnlyForceRecursive", Bool),
    ]],
    retired: &[],
};

static DRIVER_CONFIG: Object = Object {
    name: "Driver",
    groups: &[&[f("Name", Str), f("Options", Map(&Str))]],
    retired: &[],
};

static VOLUME_OPTIONS: Object = Object {
    name: "VolumeOptions",
    groups: &[&[
        f("NoCopy", Bool),
        f("Labels", Map(&Str)),
        f("DriverConfig", Obj(&DRIVER_CONFIG)),
        f("Subpath", Str),
    ]],
    retired: &[],
};

static IMAGE_OPTIONS: Object = Object {
    name: "ImageOptions",
    groups: &[&[f("Subpath", Str)]],
    retired: &[],
};

static TMPFS_OPTIONS: Object = Object {
    name: "TmpfsOptions",
    groups: &[&[
        f("SizeBytes", Int),
        f("Mode", Int),
        f("Options", List(&List(&Str))),
    ]],
    retired: &[],
};

static MOUNT: Object = Object {
    name: "Mount",
    groups: &[&[
        f("Target", Str),
        f("Source", Str),
        f(
            "Type",
            Enum(&["bind", "volume", "tmpfs", "image", "npipe", "cluster"]),
        ),
        f("ReadOnly", Bool),
        f("Consistency", Str),
        f("BindOptions", Obj(&BIND_OPTIONS)),
        f("VolumeOptions", Obj(&VOLUME_OPTIONS)),
        f("ImageOptions", Obj(&IMAGE_OPTIONS)),
        f("TmpfsOptions", Obj(&TMPFS_OPTIONS)),
    ]],
    retired: &[],
};

/// `HostConfig`, resource limits flat as in Docker's API, plus `Resources` for the YAML form.
pub(crate) static HOST_CONFIG: Object = Object {
    name: "HostConfig",
    groups: &[
        &[
            f("Binds", List(&Str)),
            f("ContainerIDFile", Str),
            f("LogConfig", Obj(&LOG_CONFIG)),
            f("NetworkMode", Str),
            f("PortBindings", Map(&List(&Obj(&PORT_BINDING)))),
            f("RestartPolicy", Obj(&RESTART_POLICY)),
            f("AutoRemove", Bool),
            f("VolumeDriver", Str),
            f("VolumesFrom", List(&Str)),
            f("Mounts", List(&Obj(&MOUNT))),
            f("ConsoleSize", List(&Int)),
            f("Annotations", Map(&Str)),
            f("CapAdd", List(&Str)),
            f("CapDrop", List(&Str)),
            f("CgroupnsMode", Enum(&["", "private", "host"])),
            f("Dns", List(&Str)),
            f("DnsOptions", List(&Str)),
            f("DnsSearch", List(&Str)),
            f("ExtraHosts", List(&Str)),
            f("GroupAdd", List(&Str)),
            f("IpcMode", Str),
            f("Cgroup", Str),
            f("Links", List(&Str)),
            f("OomScoreAdj", Int),
            f("PidMode", Str),
            f("Privileged", Bool),
            f("PublishAllPorts", Bool),
            f("ReadonlyRootfs", Bool),
            f("SecurityOpt", List(&Str)),
            f("StorageOpt", Map(&Str)),
            f("Tmpfs", Map(&Str)),
            f("UTSMode", Str),
            f("UsernsMode", Str),
            f("ShmSize", Int),
            f("Sysctls", Map(&Str)),
            f("Runtime", Str),
            f("Isolation", Enum(&["", "default", "process", "hyperv"])),
            f("MaskedPaths", List(&Str)),
            f("ReadonlyPaths", List(&Str)),
            f("Resources", Obj(&RESOURCES)),
        ],
        &RESOURCE_FIELDS,
    ],
    retired: RETIRED_RESOURCES,
};

static IPAM_CONFIG: Object = Object {
    name: "EndpointIPAMConfig",
    groups: &[&[
        f("IPv4Address", Str),
        f("IPv6Address", Str),
        f("LinkLocalIPs", List(&Str)),
    ]],
    retired: &[],
};

static ENDPOINT_SETTINGS: Object = Object {
    name: "EndpointSettings",
    groups: &[&[
        f("IPAMConfig", Obj(&IPAM_CONFIG)),
        f("Links", List(&Str)),
        f("MacAddress", Str),
        f("Aliases", List(&Str)),
        f("DriverOpts", Map(&Str)),
        f("GwPriority", Int),
        f("NetworkID", Str),
        f("EndpointID", Str),
        f("Gateway", Str),
        f("IPAddress", Str),
        f("IPPrefixLen", Int),
        f("IPv6Gateway", Str),
        f("GlobalIPv6Address", Str),
        f("GlobalIPv6PrefixLen", Int),
        f("DNSNames", List(&Str)),
    ]],
    retired: &[],
};

/// `NetworkingConfig`.
pub(crate) static NETWORKING_CONFIG: Object = Object {
    name: "NetworkingConfig",
    groups: &[&[f("EndpointsConfig", Map(&Obj(&ENDPOINT_SETTINGS)))]],
    retired: &[],
};

/// The OCI `Platform`. Go's field names (`osversion`) and the JSON names (`os.version`) differ;
/// both are listed.
pub(crate) static PLATFORM: Object = Object {
    name: "Platform",
    groups: &[&[
        f("architecture", Str),
        f("os", Str),
        f("os.version", Str),
        f("osversion", Str),
        f("os.features", List(&Str)),
        f("osfeatures", List(&Str)),
        f("variant", Str),
    ]],
    retired: &[],
};

/// Every object described here, for [`crate::docker_api_fields`].
pub(crate) static ALL: &[&Object] = &[
    &CONTAINER_CONFIG,
    &HEALTH_CONFIG,
    &HOST_CONFIG,
    &RESOURCES,
    &WEIGHT_DEVICE,
    &THROTTLE_DEVICE,
    &DEVICE_MAPPING,
    &DEVICE_REQUEST,
    &ULIMIT,
    &LOG_CONFIG,
    &PORT_BINDING,
    &RESTART_POLICY,
    &MOUNT,
    &BIND_OPTIONS,
    &VOLUME_OPTIONS,
    &DRIVER_CONFIG,
    &IMAGE_OPTIONS,
    &TMPFS_OPTIONS,
    &NETWORKING_CONFIG,
    &ENDPOINT_SETTINGS,
    &IPAM_CONFIG,
    &PLATFORM,
];
