//! `sshpod host-keys`: create the configured host keys that are missing and print every
//! fingerprint. Packages run it once at installation, so the key exists (and can be
//! published) before the first client connects.

use std::path::Path;
use std::process::ExitCode;

use russh::keys::HashAlg;

use crate::commands::check_config::EXIT_BAD_CONFIG;
use crate::hostkeys;

pub(crate) fn run(config_path: &Path) -> ExitCode {
    let loaded = match sshpod_config::load(config_path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    match hostkeys::load(&loaded.config.ssh.hostkeys, config_path) {
        Ok(keys) => {
            for key in keys {
                let public = key.public_key();
                println!(
                    "{} {}",
                    public.algorithm(),
                    public.fingerprint(HashAlg::Sha256)
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sshpod: {e:#}");
            ExitCode::FAILURE
        }
    }
}
