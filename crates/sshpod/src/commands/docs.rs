//! `sshpod completions SHELL` and `sshpod man`: generated from the command line's definition,
//! so they never disagree with it. The Debian package installs both.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

pub(crate) fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut command = crate::cli::command();
    clap_complete::generate(shell, &mut command, "sshpod", &mut std::io::stdout());
    ExitCode::SUCCESS
}

pub(crate) fn man(dir: Option<&Path>) -> ExitCode {
    if let Some(dir) = dir {
        return match clap_mangen::generate_to(crate::cli::command(), dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sshpod: writing manual pages into {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        };
    }
    let mut page = Vec::new();
    if let Err(e) = clap_mangen::Man::new(crate::cli::command()).render(&mut page) {
        eprintln!("sshpod: rendering the manual page: {e}");
        return ExitCode::FAILURE;
    }
    match std::io::stdout().write_all(&page) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sshpod: writing the manual page: {e}");
            ExitCode::FAILURE
        }
    }
}
