//! One file per subcommand.

pub(crate) mod audit;
pub(crate) mod check_config;
pub(crate) mod docs;
pub(crate) mod healthcheck;
pub(crate) mod homes;
pub(crate) mod host_keys;
pub(crate) mod reload;
pub(crate) mod run;
