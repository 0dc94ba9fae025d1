//! The `pool` section (sshpod extension): containers (or pods) made from the configured
//! template and started ahead of logins, so that a login claims one that already runs instead
//! of waiting for a start.
//!
//! Off by default (`size: 0`, `max: 0`). The pool keeps at least `size` members ready and
//! grows toward the number of logins of the last `demandWindow`, up to `max`; when logins stop
//! it shrinks back to `size`. It belongs to the file: a config server's answer cannot change it
//! (a login whose answer changes the container's settings skips the pool).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::check::Checker;
use crate::duration;

/// Default `pool.demandWindow`.
pub const DEFAULT_DEMAND_WINDOW: Duration = Duration::from_secs(300);
/// The largest `pool.max` accepted: every member is a running container.
pub const MAX_POOL: u32 = 1000;

/// `pool`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolConfig {
    /// Members kept ready at all times (default 0).
    pub size: u32,
    /// The most members the pool grows to under demand (default: `size`, no growth).
    pub max: u32,
    /// How far back logins count as demand (default 5m).
    #[serde(with = "duration")]
    pub demand_window: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            size: 0,
            max: 0,
            demand_window: DEFAULT_DEMAND_WINDOW,
        }
    }
}

impl PoolConfig {
    /// Whether there is a pool at all (`size` or `max` above 0).
    pub fn enabled(&self) -> bool {
        self.max > 0
    }
}

/// `pool` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct RawPool {
    size: u32,
    max: Option<u32>,
    #[serde(with = "duration")]
    demand_window: Duration,
}

impl Default for RawPool {
    fn default() -> Self {
        Self {
            size: 0,
            max: None,
            demand_window: DEFAULT_DEMAND_WINDOW,
        }
    }
}

impl RawPool {
    pub(crate) fn resolve(self, check: &mut Checker<'_>) -> PoolConfig {
        let max = self.max.unwrap_or(self.size);
        if self.size > MAX_POOL {
            check.error("pool.size", format!("must be at most {MAX_POOL}"));
        }
        if max > MAX_POOL {
            check.error("pool.max", format!("must be at most {MAX_POOL}"));
        } else if max < self.size {
            check.error(
                "pool.max",
                format!("must be at least `pool.size` ({})", self.size),
            );
        }
        if max > 0 && self.demand_window.is_zero() {
            check.error(
                "pool.demandWindow",
                "must be longer than 0 (how far back logins count as demand)",
            );
        }
        PoolConfig {
            size: self.size.min(MAX_POOL),
            max: max.clamp(self.size.min(MAX_POOL), MAX_POOL),
            demand_window: self.demand_window,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_str, Format};

    /// An authentication method, which every file needs; after the text under test, so that
    /// its line numbers stay as written.
    const AUTH: &str = "auth:\n  password:\n    method: htpasswd\n    htpasswd:\n      file: /x\n";

    fn load(yaml: &str) -> Result<crate::Loaded, crate::ConfigErrors> {
        parse_str(&format!("{yaml}{AUTH}"), Format::Yaml, "sshpod.yaml")
    }

    #[test]
    fn off_by_default() {
        let loaded = load("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.config.pool, PoolConfig::default());
        assert!(!loaded.config.pool.enabled());
    }

    #[test]
    fn max_defaults_to_size_and_the_section_prints_back() {
        let loaded = load("pool:\n  size: 3\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((loaded.config.pool.size, loaded.config.pool.max), (3, 3));
        assert!(loaded.config.pool.enabled());
        let loaded =
            load("pool: {size: 2, max: 20, demandWindow: 90s}\n").unwrap_or_else(|e| panic!("{e}"));
        let pool = &loaded.config.pool;
        assert_eq!((pool.size, pool.max), (2, 20));
        assert_eq!(pool.demand_window, Duration::from_secs(90));
        let printed = loaded.config.to_yaml();
        let again =
            parse_str(&printed, Format::Yaml, "printed.yaml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.config, loaded.config);
    }

    #[test]
    fn mistakes_are_reported_at_their_line_and_key() {
        let found = match load("pool:\n  size: 5\n  max: 2\n  demandWindow: 0s\n") {
            Ok(_) => panic!("accepted"),
            Err(e) => e.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
        };
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("sshpod.yaml:3:8: key `pool.max`")
                && found[0].contains("at least"),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("sshpod.yaml:4:17: key `pool.demandWindow`"),
            "{found:?}"
        );
        let found = match load("pool:\n  size: 2000\n  sizes: 1\n") {
            Ok(_) => panic!("accepted"),
            Err(e) => e.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
        };
        assert!(
            found.iter().any(|e| e.contains("sizes")),
            "unknown keys are refused: {found:?}"
        );
    }
}
