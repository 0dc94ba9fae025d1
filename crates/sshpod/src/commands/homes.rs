//! `sshpod homes`: the operator's view of the users' homes (and per-user extra mounts) on the
//! configuration's backend: list them, measure them, remove one user's.
//!
//! `rm` refuses while the user has a running container (logged in, or their user container
//! is in its grace period) on any sshpod instance of the engine, and asks before deleting
//! unless `--yes`. The engine itself refuses to remove a volume a container still mounts, so
//! a login that starts between the check and the removal keeps its home.

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use sshpod_core::Lifecycle;
use sshpod_docker::DockerBackend;

use crate::cli::HomesCommand;
use crate::commands::check_config::EXIT_BAD_CONFIG;

pub(crate) fn run(config_path: &Path, command: HomesCommand) -> ExitCode {
    let loaded = match sshpod_config::load(config_path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
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
    match runtime.block_on(homes(&loaded.config, command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sshpod: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn homes(config: &sshpod_config::Config, command: HomesCommand) -> anyhow::Result<ExitCode> {
    if config.backend != sshpod_config::Backend::Docker {
        anyhow::bail!("`sshpod homes` supports the Docker backend only, so far");
    }
    // No stream directory: this command runs no user processes.
    let mut docker = config.docker.clone();
    docker.connection.stream_directory = String::new();
    let lifecycle = Lifecycle::new();
    let backend = DockerBackend::connect(&docker, None, &lifecycle)
        .await
        .with_context(|| {
            format!(
                "connecting to the Docker engine at {}",
                docker.connection.host
            )
        })?;
    let outcome = match command {
        HomesCommand::Ls { user } => list(&backend, user.as_deref()).await,
        HomesCommand::Du { user } => usage(&backend, user.as_deref()).await,
        HomesCommand::Rm { user, yes } => remove(&backend, &user, yes).await,
    };
    lifecycle.cancel();
    lifecycle.wait().await;
    outcome
}

async fn list(backend: &DockerBackend, user: Option<&str>) -> anyhow::Result<ExitCode> {
    let homes = backend.list_homes(user).await.context("listing volumes")?;
    println!("USER\tKIND\tVOLUME\tCREATED");
    for home in homes {
        println!(
            "{}\t{}\t{}\t{}",
            home.user,
            home.kind,
            home.volume,
            home.created.as_deref().unwrap_or("-")
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn usage(backend: &DockerBackend, user: Option<&str>) -> anyhow::Result<ExitCode> {
    let homes = backend.list_homes(user).await.context("listing volumes")?;
    println!("USER\tKIND\tVOLUME\tBYTES");
    for home in homes {
        let bytes = backend
            .volume_usage(&home.volume)
            .await
            .with_context(|| format!("measuring {}", home.volume))?;
        println!("{}\t{}\t{}\t{bytes}", home.user, home.kind, home.volume);
    }
    Ok(ExitCode::SUCCESS)
}

async fn remove(backend: &DockerBackend, user: &str, yes: bool) -> anyhow::Result<ExitCode> {
    let homes = backend
        .list_homes(Some(user))
        .await
        .context("listing volumes")?;
    if homes.is_empty() {
        eprintln!("sshpod: `{user}` has no home");
        return Ok(ExitCode::FAILURE);
    }
    if backend
        .user_has_containers(user)
        .await
        .context("listing containers")?
    {
        eprintln!(
            "sshpod: `{user}` is logged in (or their container is still in its grace period); \
             their home stays"
        );
        return Ok(ExitCode::FAILURE);
    }
    let names: Vec<&str> = homes.iter().map(|h| h.volume.as_str()).collect();
    if !yes && !confirmed(user, &names)? {
        eprintln!("sshpod: nothing removed");
        return Ok(ExitCode::FAILURE);
    }
    for name in names {
        backend
            .remove_volume(name)
            .await
            .with_context(|| format!("removing {name}"))?;
        println!("removed {name}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks on the terminal; only `y` or `yes` agrees.
fn confirmed(user: &str, volumes: &[&str]) -> anyhow::Result<bool> {
    eprint!(
        "Remove the home of `{user}` ({})? Their files are deleted for good. [y/N] ",
        volumes.join(", ")
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .take(64)
        .read_line(&mut answer)
        .context("reading the answer")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
