//! `sshpod audit`: reading session recordings back, for the people who audit them.
//!
//! Every command reads through a [`Store`](sshpod_audit::store::Store), so it works the same on
//! a directory and on a bucket ([`source`]). One file per command; [`printable`] keeps what a
//! client wrote from acting on the reader's terminal.

mod export;
mod ls;
mod play;
mod printable;
mod serve;
mod show;
mod source;
mod verify;

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{AuditCommand, AuditSource};
use crate::commands::check_config::EXIT_BAD_CONFIG;

pub(crate) use ls::parse_time;
pub(crate) use play::Speed;
pub(crate) use serve::ServeArgs;

/// Runs one `sshpod audit` command. Exit status: 0, 1 when a check failed or something could
/// not be read, 2 when the configuration it needs is invalid.
pub(crate) fn run(config_path: &Path, source: &AuditSource, command: AuditCommand) -> ExitCode {
    let store = match source::open(source, config_path) {
        Ok(store) => store,
        Err(source::OpenError::Config(errors)) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
        Err(source::OpenError::Other(error)) => {
            eprintln!("sshpod: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sshpod: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = io::stdout().lock();
    let result = runtime.block_on(async {
        let shared = std::sync::Arc::clone(&store);
        let store = store.as_ref();
        match command {
            AuditCommand::Ls { user, since, until } => {
                let filter = ls::Filter { user, since, until };
                ls::run(store, &filter, &mut out).await
            }
            AuditCommand::Show { id } => show::run(store, &id, &mut out).await,
            AuditCommand::Play {
                id,
                channel,
                speed,
                idle_limit,
            } => {
                let pace = play::Pace { speed, idle_limit };
                play::run(store, &id, channel, pace, &mut out).await
            }
            AuditCommand::Export {
                id,
                format,
                channel,
                output,
            } => export::run(store, &id, format, channel, output.as_deref(), &mut out).await,
            AuditCommand::Verify { ids, require_end } => {
                verify::run(store, &ids, require_end, &mut out).await
            }
            AuditCommand::Serve(args) => serve::run(shared, args, &mut out).await,
        }
    });
    let result = result.and_then(|outcome| {
        out.flush().context("writing to standard output")?;
        Ok(outcome)
    });
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::FAILURE,
        // A reader that stops early (`| head`) is not a failure.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sshpod: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// How a command that ran to its end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Everything it checked or read was good.
    Success,
    /// It said on standard output what failed.
    Failed,
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
