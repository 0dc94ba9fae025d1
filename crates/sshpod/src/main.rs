//! sshpod: an SSH server that gives every login its own fresh container.
//!
//! `main` parses the command line, loads the configuration, sets up logging and dispatches.
//! Exit status: 0 on success, 2 for an invalid configuration, 1 for any other failure.

mod cli;
mod commands;
mod control;
mod hostkeys;
mod logging;
mod recording;
mod reload;

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
        Command::HostKeys => commands::host_keys::run(&cli.config),
        Command::Homes { command } => commands::homes::run(&cli.config, command),
        Command::Completions { shell } => commands::docs::completions(shell),
        Command::Man { dir } => commands::docs::man(dir.as_deref()),
        Command::Reload => commands::reload::run(&cli.control_socket),
        Command::Run => {
            let loaded = match sshpod_config::load(&cli.config) {
                Ok(l) => l,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::from(EXIT_BAD_CONFIG);
                }
            };
            let log = match logging::init(&loaded.config.log) {
                Ok(log) => log,
                Err(e) => {
                    eprintln!("sshpod: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            for warning in &loaded.warnings {
                tracing::warn!(code = sshpod::log_codes::CONFIG_WARNING, "{warning}");
            }
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("sshpod: starting the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let operations = commands::run::Operations {
                log,
                control_socket: cli.control_socket,
            };
            let serving = commands::run::run(loaded.config, &cli.config, operations);
            match runtime.block_on(serving) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(code = sshpod::log_codes::SERVICE_CRASHED, "{e:#}");
                    eprintln!("sshpod: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
