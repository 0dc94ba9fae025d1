//! Countries of client addresses, for the metrics' `country` label (ContainerSSH's `geoip`):
//! `dummy` says `XX` for every address; `maxmind` looks it up in a GeoIP2 or GeoLite2 country
//! database, read once at start.

use std::net::IpAddr;

use anyhow::{Context, Result};
use sshpod_config::{GeoIpConfig, GeoIpProvider};

/// The country of an address nobody knows (ContainerSSH's word for it).
pub const UNKNOWN_COUNTRY: &str = "XX";

/// Where countries come from.
#[derive(Debug)]
pub enum GeoIp {
    /// Every address is in [`UNKNOWN_COUNTRY`].
    Dummy,
    /// A MaxMind database, in memory.
    Maxmind(Box<maxminddb::Reader<Vec<u8>>>),
}

impl GeoIp {
    /// Opens what `config` names; a database that cannot be read is an error.
    pub fn open(config: &GeoIpConfig) -> Result<Self> {
        match config.provider {
            GeoIpProvider::Dummy => Ok(Self::Dummy),
            GeoIpProvider::Maxmind => {
                let path = &config.maxmind_geoip2_file;
                let reader = maxminddb::Reader::open_readfile(path).with_context(|| {
                    format!(
                        "geoip.maxmind-geoip2-file: reading the database {}",
                        path.display()
                    )
                })?;
                Ok(Self::Maxmind(Box::new(reader)))
            }
        }
    }

    /// The ISO 3166 code of the country `address` is in, or [`UNKNOWN_COUNTRY`]. Only two
    /// capital letters are ever returned, whatever the database holds: the value becomes a
    /// metrics label.
    pub fn country(&self, address: IpAddr) -> String {
        let Self::Maxmind(reader) = self else {
            return UNKNOWN_COUNTRY.to_owned();
        };
        let code: Option<String> = reader
            .lookup(address.to_canonical())
            .ok()
            .and_then(|found| {
                found
                    .decode_path::<&str>(&maxminddb::path!["country", "iso_code"])
                    .ok()
                    .flatten()
                    .map(str::to_owned)
            });
        match code {
            Some(code) if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) => code,
            _ => UNKNOWN_COUNTRY.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_knows_no_country() {
        let geoip = GeoIp::open(&GeoIpConfig::default()).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            geoip.country("192.0.2.1".parse().unwrap_or_else(|e| panic!("{e}"))),
            "XX"
        );
    }

    #[test]
    fn an_unreadable_database_is_an_error_naming_the_key() {
        let directory = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = directory.path().join("country.mmdb");
        std::fs::write(&path, b"not a database\xab\xcd\xefMaxMind.com")
            .unwrap_or_else(|e| panic!("{e}"));
        let config = GeoIpConfig {
            provider: GeoIpProvider::Maxmind,
            maxmind_geoip2_file: path,
        };
        let error = GeoIp::open(&config)
            .map(drop)
            .err()
            .map(|e| format!("{e:#}"));
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.starts_with("geoip.maxmind-geoip2-file: reading")),
            "{error:?}"
        );
    }
}
