//! sshpod: an SSH server that gives every login its own fresh container.
//!
//! `main` parses the command line, loads the configuration, sets up logging and dispatches.
//! Exit status: 0 on success, 2 for an invalid configuration, 1 for any other failure.

mod cli;
mod commands;
mod hostkeys;
mod logging;
mod recording;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use commands::check_config::EXIT_BAD_CONFIG;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.healthcheck {
        return commands::healthcheck::run(&cli.config);
    }
    match cli.command.unwrap_or(Command::Run) {
        Command::Healthcheck => commands::healthcheck::run(&cli.config),
        Command::CheckConfig { show_secrets } => {
            commands::check_config::run(&cli.config, show_secrets)
        }
        Command::Audit { source, command } => commands::audit::run(&cli.config, &source, command),
        Command::Run => {
            let loaded = match sshpod_config::load(&cli.config) {
                Ok(l) => l,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::from(EXIT_BAD_CONFIG);
                }
            };
            if let Err(e) = logging::init(&loaded.config.log) {
                eprintln!("sshpod: {e:#}");
                return ExitCode::FAILURE;
            }
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("sshpod: starting the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(commands::run::run(loaded.config, &cli.config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("sshpod: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
