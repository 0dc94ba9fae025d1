//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// An SSH server that gives every login its own fresh container.
#[derive(Debug, Parser)]
#[command(name = "sshpod", version, about)]
pub(crate) struct Cli {
    /// Configuration file (YAML or JSON, by extension).
    #[arg(
        long,
        env = "SSHPOD_CONFIG",
        default_value = "config.yaml",
        global = true
    )]
    pub(crate) config: PathBuf,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the server (the default).
    Run,
    /// Validate the configuration and print the effective settings.
    CheckConfig {
        /// Print keys, passwords and tokens too (they are shown as `<secret>` otherwise).
        #[arg(long)]
        show_secrets: bool,
    },
}
