//! `sshpod check-config`: validate a file and print the effective configuration.

use std::path::Path;
use std::process::ExitCode;

/// Exit status for an invalid configuration.
pub(crate) const EXIT_BAD_CONFIG: u8 = 2;

pub(crate) fn run(path: &Path, show_secrets: bool) -> ExitCode {
    match sshpod_config::load(path) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            if show_secrets {
                print!("{}", loaded.config.to_yaml());
            } else {
                print!("{}", loaded.config.to_yaml_redacted());
            }
            eprintln!("{}: configuration is valid", path.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}
