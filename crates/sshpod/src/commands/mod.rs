//! One file per subcommand.

pub(crate) mod audit;
pub(crate) mod check_config;
pub(crate) mod healthcheck;
pub(crate) mod run;
