//! The `homes` section (sshpod extension): a home per user that outlives every container, the
//! extra volumes of a class (the seed chart's `homeSize`, `homeStorageClassName` and
//! `extraMounts`), and how long a user's container outlives their last connection in
//! `mode: user`.
//!
//! A home is a Docker named volume or a Kubernetes PersistentVolumeClaim, created on the user's
//! first login and never deleted by sshpod (`sshpod homes rm` does that, when asked).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::check::Checker;
use crate::duration;

/// Default `homes.path`: `%u` is the login name.
pub const DEFAULT_HOME_PATH: &str = "/home/%u";
/// Default `homes.size` (the requested size of a PVC; Docker volumes have none).
pub const DEFAULT_HOME_SIZE: &str = "1Gi";
/// Default `homes.gracePeriod`.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(300);

/// `homes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HomesConfig {
    /// Whether every user gets a persistent home mounted at `path` (default false).
    pub enable: bool,
    /// Where the home is mounted; `%u` is the login name (default `/home/%u`).
    pub path: String,
    /// Requested size of a home PVC, a Kubernetes quantity (default `1Gi`; the seed's
    /// `homeSize`). Docker volumes are not sized.
    pub size: String,
    /// The storage class of home PVCs; empty for the cluster's default (the seed's
    /// `homeStorageClassName`).
    pub storage_class_name: String,
    /// In `mode: user`, how long a user's container stays after their last connection ends, so
    /// that a reconnect finds it with its processes (default 5m; 0 removes it at once).
    #[serde(with = "duration")]
    pub grace_period: Duration,
    /// Further volumes mounted into every user's container (the seed's `extraMounts`).
    pub extra_mounts: Vec<ExtraMount>,
    /// First login: a repository cloned into a temporary directory (the seed's
    /// `customizeRepo`; needs `git` in the image).
    pub customize_repo: String,
    /// First login: run by `/bin/sh -c` in the clone of `customizeRepo`.
    pub customize_repo_command: String,
    /// First login: run by `/bin/sh -c` in the home (the seed's `customizeCommand`).
    pub customize_command: String,
}

impl Default for HomesConfig {
    fn default() -> Self {
        Self {
            enable: false,
            path: DEFAULT_HOME_PATH.to_owned(),
            size: DEFAULT_HOME_SIZE.to_owned(),
            storage_class_name: String::new(),
            grace_period: DEFAULT_GRACE_PERIOD,
            extra_mounts: Vec::new(),
            customize_repo: String::new(),
            customize_repo_command: String::new(),
            customize_command: String::new(),
        }
    }
}

impl HomesConfig {
    /// Whether a first-login step is configured.
    pub fn customizes(&self) -> bool {
        self.enable && !(self.customize_repo.is_empty() && self.customize_command.is_empty())
    }

    /// The home of `login`: `path` with `%u` replaced. `None` for a login that cannot be part
    /// of a path (empty, `.`, `..`, or holding `/` or a NUL).
    pub fn home_for(&self, login: &str) -> Option<String> {
        let usable =
            !login.is_empty() && login != "." && login != ".." && !login.contains(['/', '\0']);
        (usable || !self.path.contains("%u")).then(|| self.path.replace("%u", login))
    }
}

/// `homes.extraMounts[]`: one volume of a class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtraMount {
    /// The volume's name: lower-case letters, digits and `-` (part of the volume or PVC name).
    pub name: String,
    /// Where it is mounted (absolute).
    pub path: String,
    /// Requested size of the PVC (Kubernetes quantity; default `1Gi`).
    #[serde(default = "default_size")]
    pub size: String,
    /// Storage class of the PVC; empty for the cluster's default.
    #[serde(default)]
    pub storage_class_name: String,
    /// `shared` (one volume for every user, the default) or `perUser` (one per user).
    #[serde(default)]
    pub scope: MountScope,
    /// Mounted read-only (default: true when shared, false per user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

impl ExtraMount {
    /// Whether the volume is mounted read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only.unwrap_or(self.scope == MountScope::Shared)
    }
}

fn default_size() -> String {
    DEFAULT_HOME_SIZE.to_owned()
}

/// `homes.extraMounts[].scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MountScope {
    /// One volume, mounted into every user's container.
    #[default]
    Shared,
    /// A volume per user, like the home.
    PerUser,
}

/// `homes` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct RawHomes {
    enable: bool,
    path: String,
    size: String,
    storage_class_name: String,
    #[serde(with = "duration")]
    grace_period: Duration,
    extra_mounts: Vec<ExtraMount>,
    customize_repo: String,
    customize_repo_command: String,
    customize_command: String,
}

impl Default for RawHomes {
    fn default() -> Self {
        let d = HomesConfig::default();
        Self {
            enable: d.enable,
            path: d.path,
            size: d.size,
            storage_class_name: d.storage_class_name,
            grace_period: d.grace_period,
            extra_mounts: d.extra_mounts,
            customize_repo: d.customize_repo,
            customize_repo_command: d.customize_repo_command,
            customize_command: d.customize_command,
        }
    }
}

impl RawHomes {
    pub(crate) fn resolve(self, check: &mut Checker<'_>) -> HomesConfig {
        if !self.path.starts_with('/') {
            check.error(
                "homes.path",
                "must be an absolute path (`%u` is the login name)",
            );
        }
        if !is_quantity(&self.size) {
            check.error("homes.size", quantity_error(&self.size));
        }
        let mut names = std::collections::HashSet::new();
        let mut paths = std::collections::HashSet::from([self.path.clone()]);
        for (index, mount) in self.extra_mounts.iter().enumerate() {
            let at = |key: &str| format!("homes.extraMounts[{index}].{key}");
            if mount.name == "home" {
                check.error(
                    &at("name"),
                    "`home` is the user's home; choose another name",
                );
            } else if !is_volume_name(&mount.name) {
                check.error(
                    &at("name"),
                    "must be 1 to 40 lower-case letters, digits and `-`, starting with a letter",
                );
            } else if !names.insert(mount.name.clone()) {
                check.error(&at("name"), format!("`{}` is used twice", mount.name));
            }
            if !mount.path.starts_with('/') {
                check.error(&at("path"), "must be an absolute path");
            } else if !paths.insert(mount.path.clone()) {
                check.error(
                    &at("path"),
                    format!(
                        "`{}` is already mounted (the home or another mount)",
                        mount.path
                    ),
                );
            }
            if !is_quantity(&mount.size) {
                check.error(&at("size"), quantity_error(&mount.size));
            }
        }
        if self
            .customize_repo
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            check.error(
                "homes.customizeRepo",
                "must be a repository URL or path, without spaces",
            );
        }
        if !self.customize_repo_command.is_empty() && self.customize_repo.is_empty() {
            check.error(
                "homes.customizeRepoCommand",
                "runs in `customizeRepo`, which is not set",
            );
        }
        let customizing = !(self.customize_repo.is_empty() && self.customize_command.is_empty());
        if customizing && !self.enable {
            let key = if self.customize_repo.is_empty() {
                "homes.customizeCommand"
            } else {
                "homes.customizeRepo"
            };
            check.error(key, "needs `homes.enable: true` (it runs in the home)");
        }
        HomesConfig {
            enable: self.enable,
            path: self.path,
            size: self.size,
            storage_class_name: self.storage_class_name,
            grace_period: self.grace_period,
            extra_mounts: self.extra_mounts,
            customize_repo: self.customize_repo,
            customize_repo_command: self.customize_repo_command,
            customize_command: self.customize_command,
        }
    }
}

fn quantity_error(value: &str) -> String {
    format!("`{value}` is not a size; write it as Kubernetes does, like `1Gi` or `500Mi`")
}

/// A Kubernetes quantity as sizes are written: digits, maybe a fraction, maybe a suffix.
fn is_quantity(value: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E",
    ];
    let digits = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, suffix) = value.split_at(digits);
    !number.is_empty()
        && number.starts_with(|c: char| c.is_ascii_digit())
        && number.matches('.').count() <= 1
        && SUFFIXES.contains(&suffix)
}

/// A name fit to be part of a volume or PVC name.
fn is_volume_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ConfigError, ConfigErrors};
    use crate::load::{parse_str, Format, Loaded};

    const MINIMAL: &str =
        "auth:\n  password:\n    method: htpasswd\n    htpasswd:\n      file: /etc/htpasswd\n";

    fn yaml(homes: &str) -> Result<Loaded, ConfigErrors> {
        parse_str(&format!("{MINIMAL}{homes}"), Format::Yaml, "test.yaml")
    }

    fn messages(result: Result<Loaded, ConfigErrors>) -> Vec<String> {
        match result {
            Ok(loaded) => panic!("expected errors, got {:#?}", loaded.config.homes),
            Err(ConfigErrors(errors)) => errors.iter().map(ConfigError::to_string).collect(),
        }
    }

    #[test]
    fn homes_are_off_by_default_with_the_seed_defaults() {
        let loaded = yaml("").unwrap_or_else(|e| panic!("{e}"));
        let homes = loaded.config.homes;
        assert!(!homes.enable);
        assert_eq!(homes.path, "/home/%u");
        assert_eq!(homes.size, "1Gi");
        assert_eq!(homes.grace_period, Duration::from_secs(300));
        assert_eq!(homes.home_for("alice").as_deref(), Some("/home/alice"));
    }

    #[test]
    fn a_full_section_is_read_and_prints_back_the_same() {
        let loaded = yaml(
            "homes:\n  enable: true\n  path: /users/%u\n  size: 5Gi\n  storageClassName: fast\n  \
             gracePeriod: 30s\n  extraMounts:\n    - {name: datasets, path: /data, size: 10Gi}\n    \
             - {name: scratch, path: /scratch, scope: perUser}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let homes = &loaded.config.homes;
        assert_eq!(homes.home_for("bob").as_deref(), Some("/users/bob"));
        assert_eq!(homes.grace_period, Duration::from_secs(30));
        assert!(
            homes.extra_mounts[0].is_read_only(),
            "shared mounts are read-only"
        );
        assert!(!homes.extra_mounts[1].is_read_only());
        assert_eq!(homes.extra_mounts[1].scope, MountScope::PerUser);
        let again = parse_str(&loaded.config.to_yaml(), Format::Yaml, "again.yaml")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.config.homes, *homes);
    }

    #[test]
    fn bad_values_are_refused_where_they_are_written() {
        let all = messages(yaml(
            "homes:\n  path: home/%u\n  size: lots\n  extraMounts:\n    \
             - {name: Data, path: /d}\n    - {name: x, path: /d, size: 1Q}\n",
        ));
        assert_eq!(
            all,
            [
                "test.yaml:7:9: key `homes.path`: must be an absolute path (`%u` is the login name)",
                "test.yaml:8:9: key `homes.size`: `lots` is not a size; write it as Kubernetes does, like `1Gi` or `500Mi`",
                "test.yaml:10:14: key `homes.extraMounts[0].name`: must be 1 to 40 lower-case letters, digits and `-`, starting with a letter",
                "test.yaml:11:23: key `homes.extraMounts[1].path`: `/d` is already mounted (the home or another mount)",
                "test.yaml:11:33: key `homes.extraMounts[1].size`: `1Q` is not a size; write it as Kubernetes does, like `1Gi` or `500Mi`",
            ]
        );
        let all = messages(yaml("homes:\n  sise: 1Gi\n"));
        assert_eq!(all.len(), 1);
        assert!(
            all[0].starts_with("test.yaml:7:3: key `homes.sise`"),
            "{all:?}"
        );
    }

    #[test]
    fn customisation_needs_homes_and_a_repository_for_its_command() {
        let all = messages(yaml(
            "homes:\n  customizeRepoCommand: make\n  customizeCommand: touch x\n",
        ));
        assert_eq!(
            all,
            [
                "test.yaml:7:25: key `homes.customizeRepoCommand`: runs in `customizeRepo`, which is not set",
                "test.yaml:8:21: key `homes.customizeCommand`: needs `homes.enable: true` (it runs in the home)",
            ]
        );
        let loaded = yaml("homes:\n  enable: true\n  customizeRepo: https://example.org/r.git\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(loaded.config.homes.customizes());
    }

    #[test]
    fn logins_that_cannot_be_a_path_have_no_home() {
        let homes = HomesConfig::default();
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert_eq!(homes.home_for(bad), None, "{bad:?}");
        }
        assert_eq!(homes.home_for("a.b-c").as_deref(), Some("/home/a.b-c"));
    }

    #[test]
    fn quantities_are_kubernetes_sizes() {
        for good in ["1Gi", "500Mi", "1.5G", "100", "2Ti"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "Gi", "1gb", "1..5Gi", ".5Gi", "-1Gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
