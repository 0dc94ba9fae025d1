//! `sshpod reload`: asks the running server, through its control socket, to read its
//! configuration file again, and prints the answer.

use std::path::Path;
use std::process::ExitCode;

use crate::commands::check_config::EXIT_BAD_CONFIG;
use crate::control;

pub(crate) fn run(control_socket: &Path) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sshpod: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(control::request_reload(control_socket)) {
        Ok(answer) => {
            print!("{answer}");
            exit_status(&answer)
        }
        Err(e) => {
            eprintln!(
                "sshpod: cannot reach the server's control socket {}: {e} (is sshpod running, \
                 with this --control-socket?)",
                control_socket.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// 0 when the file's configuration is in force, 2 when the file is invalid (as
/// `check-config`), 1 for any other refusal.
fn exit_status(answer: &str) -> ExitCode {
    if answer.starts_with("applied") || answer.starts_with("unchanged") {
        ExitCode::SUCCESS
    } else if answer.starts_with("refused: the configuration file is invalid") {
        ExitCode::from(EXIT_BAD_CONFIG)
    } else {
        ExitCode::FAILURE
    }
}
