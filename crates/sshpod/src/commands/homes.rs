//! `sshpod homes`: the operator's view of the users' homes (and per-user extra mounts) on the
//! configuration's backend (Docker volumes or PersistentVolumeClaims): list them, measure them
//! (Docker: bytes used; Kubernetes: the size requested), remove one user's.
//!
//! `rm` refuses while the user has a running container (logged in, or their user container
//! is in its grace period) of any sshpod instance, and asks before deleting
//! unless `--yes`. Docker refuses to remove a volume a container still mounts, and Kubernetes
//! keeps a claim a pod uses until the pod is gone (`kubernetes.io/pvc-protection`), so a login
//! that starts between the check and the removal keeps its home for as long as it runs.

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use sshpod_core::homes::HomeVolume;
use sshpod_core::Lifecycle;
use sshpod_docker::DockerBackend;
use sshpod_kube::KubeHomes;

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

/// Where the homes are: the configuration's backend.
enum Store {
    Docker(Box<DockerBackend>),
    Kubernetes(Box<KubeHomes>),
}

impl Store {
    async fn list(&self, user: Option<&str>) -> anyhow::Result<Vec<HomeVolume>> {
        match self {
            Store::Docker(docker) => docker.list_homes(user).await,
            Store::Kubernetes(kube) => kube.list(user).await,
        }
        .context("listing homes")
    }

    /// The header of `du`'s last column, and that column for one home.
    async fn size(&self, volume: &str) -> anyhow::Result<String> {
        match self {
            Store::Docker(docker) => docker.volume_usage(volume).await.map(|b| b.to_string()),
            Store::Kubernetes(kube) => kube.requested(volume).await,
        }
        .with_context(|| format!("measuring {volume}"))
    }

    fn size_header(&self) -> &'static str {
        match self {
            Store::Docker(_) => "BYTES",
            Store::Kubernetes(_) => "REQUESTED",
        }
    }

    async fn in_use(&self, user: &str) -> anyhow::Result<bool> {
        match self {
            Store::Docker(docker) => docker.user_has_containers(user).await,
            Store::Kubernetes(kube) => kube.user_has_pods(user).await,
        }
        .context("listing the user's containers")
    }

    async fn remove(&self, volume: &str) -> anyhow::Result<()> {
        match self {
            Store::Docker(docker) => docker.remove_volume(volume).await,
            Store::Kubernetes(kube) => kube.remove(volume).await,
        }
        .with_context(|| format!("removing {volume}"))
    }
}

async fn homes(config: &sshpod_config::Config, command: HomesCommand) -> anyhow::Result<ExitCode> {
    let lifecycle = Lifecycle::new();
    let store = match config.backend {
        sshpod_config::Backend::Kubernetes => Store::Kubernetes(Box::new(
            KubeHomes::connect(&config.kubernetes)
                .await
                .context("connecting to the Kubernetes API server")?,
        )),
        _ => {
            // No stream directory: this command runs no user processes.
            let mut docker = config.docker.clone();
            docker.connection.stream_directory = String::new();
            Store::Docker(Box::new(
                DockerBackend::connect(&docker, None, &lifecycle)
                    .await
                    .with_context(|| {
                        format!(
                            "connecting to the Docker engine at {}",
                            docker.connection.host
                        )
                    })?,
            ))
        }
    };
    let outcome = match command {
        HomesCommand::Ls { user } => list(&store, user.as_deref()).await,
        HomesCommand::Du { user } => usage(&store, user.as_deref()).await,
        HomesCommand::Rm { user, yes } => remove(&store, &user, yes).await,
    };
    lifecycle.cancel();
    lifecycle.wait().await;
    outcome
}

async fn list(store: &Store, user: Option<&str>) -> anyhow::Result<ExitCode> {
    println!("USER\tKIND\tVOLUME\tCREATED");
    for home in store.list(user).await? {
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

async fn usage(store: &Store, user: Option<&str>) -> anyhow::Result<ExitCode> {
    let homes = store.list(user).await?;
    println!("USER\tKIND\tVOLUME\t{}", store.size_header());
    for home in homes {
        let size = store.size(&home.volume).await?;
        println!("{}\t{}\t{}\t{size}", home.user, home.kind, home.volume);
    }
    Ok(ExitCode::SUCCESS)
}

async fn remove(store: &Store, user: &str, yes: bool) -> anyhow::Result<ExitCode> {
    let homes = store.list(Some(user)).await?;
    if homes.is_empty() {
        eprintln!("sshpod: `{user}` has no home");
        return Ok(ExitCode::FAILURE);
    }
    if store.in_use(user).await? {
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
        store.remove(name).await?;
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
