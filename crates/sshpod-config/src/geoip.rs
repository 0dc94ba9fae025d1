//! The `geoip` section: where the `country` label of the metrics comes from. `provider: dummy`
//! (ContainerSSH's default) gives every address the country `XX`; `maxmind` looks addresses up
//! in a GeoIP2 or GeoLite2 country database, `maxmind-geoip2-file`.
//!
//! The database is checked here as far as can be done without reading it as a database: the
//! file must be readable and carry the MaxMind DB metadata marker, so a wrong path or a file of
//! another kind is a positioned error; the server opens it for real at start.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::check::Checker;

/// ContainerSSH's default `geoip.maxmind-geoip2-file`.
pub const DEFAULT_GEOIP2_FILE: &str = "/var/lib/GeoIP/GeoIP2-Country.mmdb";

/// The marker that starts a MaxMind DB file's metadata section.
const METADATA_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";
/// The metadata section lies within this many bytes of the end of the file.
const METADATA_MAX_SIZE: u64 = 128 * 1024;

/// `geoip.provider`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeoIpProvider {
    /// Every address is in country `XX`.
    #[default]
    #[serde(alias = "")]
    Dummy,
    /// A MaxMind GeoIP2/GeoLite2 country database.
    Maxmind,
}

/// `geoip`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GeoIpConfig {
    /// Where countries come from.
    pub provider: GeoIpProvider,
    /// The database, for `maxmind`.
    #[serde(rename = "maxmind-geoip2-file")]
    pub maxmind_geoip2_file: PathBuf,
}

impl Default for GeoIpConfig {
    fn default() -> Self {
        Self {
            provider: GeoIpProvider::Dummy,
            maxmind_geoip2_file: DEFAULT_GEOIP2_FILE.into(),
        }
    }
}

/// `geoip` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawGeoIp {
    provider: GeoIpProvider,
    #[serde(rename = "maxmind-geoip2-file")]
    maxmind_geoip2_file: PathBuf,
}

impl RawGeoIp {
    pub(crate) fn resolve(self, check: &mut Checker<'_>) -> GeoIpConfig {
        let file = if self.maxmind_geoip2_file.as_os_str().is_empty() {
            PathBuf::from(DEFAULT_GEOIP2_FILE)
        } else {
            self.maxmind_geoip2_file
        };
        if self.provider == GeoIpProvider::Maxmind {
            if let Err(message) = check_database(&file) {
                check.error("geoip.maxmind-geoip2-file", message);
            }
        }
        GeoIpConfig {
            provider: self.provider,
            maxmind_geoip2_file: file,
        }
    }
}

/// The file can be read and ends in a MaxMind DB metadata section.
fn check_database(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let mut file =
        std::fs::File::open(path).map_err(|error| format!("cannot read `{shown}`: {error}"))?;
    let length = file
        .metadata()
        .map_err(|error| format!("cannot read `{shown}`: {error}"))?
        .len();
    let tail = length.min(METADATA_MAX_SIZE);
    let mut end = Vec::new();
    file.seek(SeekFrom::Start(length - tail))
        .and_then(|_| file.take(tail).read_to_end(&mut end))
        .map_err(|error| format!("cannot read `{shown}`: {error}"))?;
    if end
        .windows(METADATA_MARKER.len())
        .any(|window| window == METADATA_MARKER)
    {
        Ok(())
    } else {
        Err(format!(
            "`{shown}` is not a MaxMind DB file (a GeoIP2 or GeoLite2 country database, .mmdb)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ConfigError, ConfigErrors};
    use crate::load::{parse_str, Format, Loaded};

    const MINIMAL: &str =
        "auth:\n  password:\n    method: htpasswd\n    htpasswd:\n      file: /etc/htpasswd\n";

    fn yaml(geoip: &str) -> Result<Loaded, ConfigErrors> {
        parse_str(&format!("{MINIMAL}{geoip}"), Format::Yaml, "test.yaml")
    }

    fn messages(result: Result<Loaded, ConfigErrors>) -> Vec<String> {
        match result {
            Ok(loaded) => panic!("expected errors, got {:#?}", loaded.config.geoip),
            Err(ConfigErrors(errors)) => errors.iter().map(ConfigError::to_string).collect(),
        }
    }

    #[test]
    fn dummy_is_the_default_and_needs_no_file() {
        let loaded = yaml("geoip:\n  provider: dummy\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.config.geoip, GeoIpConfig::default());
        assert_eq!(
            loaded.config.geoip.maxmind_geoip2_file,
            Path::new("/var/lib/GeoIP/GeoIP2-Country.mmdb")
        );
    }

    #[test]
    fn unknown_providers_and_unusable_files_are_refused_where_they_are_written() {
        let all = messages(yaml("geoip:\n  provider: maxmnd\n"));
        assert_eq!(all.len(), 1);
        assert!(
            all[0].starts_with("test.yaml:7:13: key `geoip.provider`"),
            "{all:?}"
        );
        assert!(all[0].contains("did you mean `maxmind`?"), "{all:?}");

        let all = messages(yaml(
            "geoip:\n  provider: maxmind\n  maxmind-geoip2-file: /nonexistent/c.mmdb\n",
        ));
        assert_eq!(
            all,
            [
                "test.yaml:8:24: key `geoip.maxmind-geoip2-file`: cannot read \
              `/nonexistent/c.mmdb`: No such file or directory (os error 2)"
            ]
        );

        let directory = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let other = directory.path().join("country.mmdb");
        std::fs::write(&other, b"not a database").unwrap_or_else(|e| panic!("{e}"));
        let all = messages(yaml(&format!(
            "geoip:\n  provider: maxmind\n  maxmind-geoip2-file: {}\n",
            other.display()
        )));
        assert_eq!(
            all,
            [format!(
                "test.yaml:8:24: key `geoip.maxmind-geoip2-file`: `{}` is not a MaxMind DB \
                 file (a GeoIP2 or GeoLite2 country database, .mmdb)",
                other.display()
            )]
        );

        // The marker where a database keeps it is enough here; the server reads the rest.
        let mut database = vec![0u8; 64];
        database.extend_from_slice(METADATA_MARKER);
        std::fs::write(&other, database).unwrap_or_else(|e| panic!("{e}"));
        let loaded = yaml(&format!(
            "geoip:\n  provider: maxmind\n  maxmind-geoip2-file: {}\n",
            other.display()
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.config.geoip.provider, GeoIpProvider::Maxmind);
    }
}
