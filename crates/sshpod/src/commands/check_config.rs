//! `sshpod check-config`: validate a file and print the effective configuration.

use std::path::Path;
use std::process::ExitCode;

/// Exit status for an invalid configuration.
pub(crate) const EXIT_BAD_CONFIG: u8 = 2;

pub(crate) fn run(path: &Path) -> ExitCode {
    match sshpod_config::load(path) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            print!("{}", loaded.config.to_yaml());
            eprintln!("{}: configuration is valid", path.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}
