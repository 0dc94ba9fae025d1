//! Command-line interface.

use std::path::PathBuf;
use std::time::SystemTime;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands::audit::{parse_time, Speed};

/// `sshpod --version`: the package version and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SSHPOD_COMMIT"),
    ")"
);

/// An SSH server that gives every login its own fresh container.
#[derive(Debug, Parser)]
#[command(name = "sshpod", version = VERSION, about)]
pub(crate) struct Cli {
    /// Configuration file (YAML or JSON, by extension).
    #[arg(
        long,
        env = "SSHPOD_CONFIG",
        default_value = "config.yaml",
        global = true
    )]
    pub(crate) config: PathBuf,
    /// The control socket the server listens on and `sshpod reload` talks to.
    #[arg(
        long,
        env = "SSHPOD_CONTROL_SOCKET",
        default_value = crate::control::DEFAULT_PATH,
        global = true
    )]
    pub(crate) control_socket: PathBuf,
    /// Ask the running server's health endpoint whether it is ready (as `sshpod healthcheck`;
    /// ContainerSSH's flag).
    #[arg(long)]
    pub(crate) healthcheck: bool,
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
    /// Ask the running server to read its configuration file again (as SIGHUP does) and print
    /// the outcome. Exit status 0 if applied, 2 if the file is invalid, 1 if refused otherwise.
    Reload,
    /// Ask the running server's health endpoint (`health.client`) whether it is ready: exit
    /// status 0 if so, 1 otherwise, with one line saying why (for Docker's HEALTHCHECK).
    Healthcheck,
    /// Read session recordings: list, show, replay, export and verify them.
    Audit {
        /// Where the recordings are.
        #[command(flatten)]
        source: AuditSource,
        /// What to do.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Create the configured host keys that do not exist yet (never replacing one) and print
    /// every host key's fingerprint, as clients will see it.
    HostKeys,
    /// Print the shell completion script for SHELL.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The users' homes on the configuration's backend: list, measure, remove.
    Homes {
        /// What to do.
        #[command(subcommand)]
        command: HomesCommand,
    },
    /// Print the manual page (roff, for `man -l -`), or write one page per command into DIR.
    Man {
        /// Write `sshpod.1`, `sshpod-audit.1`, `sshpod-audit-ls.1`... into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// The command line's definition, for the completion scripts and the manual page.
pub(crate) fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Where `sshpod audit` reads recordings; default: the configuration's `audit` storage.
#[derive(Debug, Args)]
pub(crate) struct AuditSource {
    /// A directory of recordings (`audit.file.directory`, or an S3 spool, `audit.s3.local`).
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "s3")]
    pub(crate) dir: Option<PathBuf>,
    /// The bucket of the configuration's `audit.s3`.
    #[arg(long, global = true)]
    pub(crate) s3: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// One line per recording: connection id, user, source, start, duration, size, whether it
    /// ended, where it is.
    Ls {
        /// Only this user's connections (the name a login was accepted as, else the name tried).
        #[arg(long)]
        user: Option<String>,
        /// Only connections still running at or after TIME: RFC 3339
        /// (`2026-12-07T04:00:00Z`) or a time ago (`2h`, `3days`).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        since: Option<SystemTime>,
        /// Only connections started at or before TIME (as for `--since`).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        until: Option<SystemTime>,
    },
    /// A recording's event log, one readable line per event.
    Show {
        /// The connection id (or an unambiguous start of it).
        id: String,
    },
    /// Replay a terminal session to this terminal, at its recorded pace.
    Play {
        /// The connection id (or an unambiguous start of it).
        id: String,
        /// The session's SSH channel (default: the first terminal session).
        #[arg(long)]
        channel: Option<u32>,
        /// How fast: a factor (`1`, `2`, `0.5`) or `max` (no waiting).
        #[arg(long, default_value = "1")]
        speed: Speed,
        /// Shorten every pause longer than this (`2s`); default: pauses as recorded.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        idle_limit: Option<std::time::Duration>,
    },
    /// Write a recording in another form.
    Export {
        /// The connection id (or an unambiguous start of it).
        id: String,
        /// `json`: the event log as a JSON array (a ContainerSSH binary log: its messages, as
        /// its decoder prints them); `asciicast`: a terminal session's cast; `containerssh`:
        /// ContainerSSH's binary audit log (version 2).
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// The terminal session for `asciicast` (default: the first).
        #[arg(long)]
        channel: Option<u32>,
        /// Write to FILE instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check recordings: the event log's hash chain, its end line, and every data file's
    /// SHA-256 and size against the log. Exit status 1 if any check fails.
    Verify {
        /// Connection ids (default: every recording).
        ids: Vec<String>,
        /// Count a recording without its end line (interrupted) as failed.
        #[arg(long)]
        require_end: bool,
    },
    /// Serve the recordings page for these recordings, without the SSH server (to browse
    /// them offline); until SIGTERM or SIGINT.
    Serve(crate::commands::audit::ServeArgs),
}

/// `sshpod homes`.
#[derive(Debug, Subcommand)]
pub(crate) enum HomesCommand {
    /// One line per home (and per-user extra mount): user, kind, volume, creation time.
    Ls {
        /// Only this user's.
        user: Option<String>,
    },
    /// What each home holds, in bytes.
    Du {
        /// Only this user's.
        user: Option<String>,
    },
    /// Delete a user's home and per-user mounts, with their files; refused while the user
    /// has a running container.
    Rm {
        /// The login.
        user: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// `sshpod audit export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// The event log as a JSON array.
    Json,
    /// A terminal session's asciicast v2.
    Asciicast,
    /// ContainerSSH's binary audit log (version 2).
    Containerssh,
}
