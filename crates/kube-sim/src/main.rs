//! kube-sim: a Kubernetes API emulator backed by Docker. It serves the part of core/v1 (and
//! `coordination.k8s.io/v1` leases) that sshpod and everyday clients (kubectl, the Python
//! client, kube-rs) use, and runs pods as real containers. It is test infrastructure, not a
//! Kubernetes. Depends on no sshpod crate.

mod api;
mod app;
mod auth;
mod controller;
mod credentials;
mod docker;
mod kubeconfig;
mod kubelet;
mod microtime;
mod names;
mod quantity;
mod query;
mod selectors;
mod server;
mod store;
mod tasks;
mod tls;
mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Authenticator, Identity, Scope, ServiceAccountTokens};
use crate::store::{Key, Kind, Store};

#[derive(Debug, Parser)]
#[command(
    name = "kube-sim",
    version,
    about = "A Kubernetes API emulator backed by Docker (not a Kubernetes)"
)]
struct Cli {
    /// Address to serve HTTPS on (port 0 picks a free port; the ready line names it).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Where to write the kubeconfig (admin token, client-certificate user, restricted user).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// The namespace the restricted user may use (created at start-up).
    #[arg(long, default_value = "restricted")]
    restricted_namespace: String,
    /// A JSON file with the `rules` of the Role bound to the restricted user (a list of
    /// `{apiGroups, resources, verbs}`); without it the user may do anything in its namespace.
    #[arg(long)]
    restricted_rules: Option<PathBuf>,
    /// How many changes watches can resume from before answering 410 Expired.
    #[arg(long, default_value_t = 1000)]
    watch_history: usize,
    /// Seconds between watch bookmarks (when the client allows them).
    #[arg(long, default_value_t = 60)]
    bookmark_interval: u64,
    /// Keep the CA's key and the users' tokens in this directory (made on first start), so a
    /// kube-sim restarted with it is the same cluster to kubeconfigs written before. Objects
    /// are kept in memory only: a restart loses them, as a cluster that lost its etcd.
    #[arg(long)]
    credentials: Option<PathBuf>,
}

fn token() -> String {
    hex::encode(rand::random::<[u8; 24]>())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KUBE_SIM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kube-sim: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let instance = hex::encode(rand::random::<[u8; 6]>());
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let engine = Arc::new(
        docker::Engine::connect(
            instance.clone(),
            tasks::Tasks::new(tracker.clone(), shutdown.clone()),
        )
        .await
        .context("connecting to Docker")?,
    );
    docker::sandbox::ensure_image(&engine)
        .await
        .context("preparing the pause image")?;

    let listener = TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("listening on {}", cli.listen))?;
    let address = listener.local_addr()?;
    let pod_listener = pod_facing_listener(&engine).await;
    let pod_address = pod_listener.as_ref().and_then(|l| l.local_addr().ok());
    let mut extra_ips = vec![address.ip()];
    extra_ips.extend(pod_address.map(|a| a.ip()));
    let kept = match &cli.credentials {
        Some(dir) => credentials::Credentials::load_or_create(dir, token)?,
        None => credentials::Credentials::generate(token)?,
    };
    let mut pki = tls::Pki::generate(&extra_ips, kept.ca_key).context("generating certificates")?;
    let admin = Identity {
        user: "admin".into(),
        groups: vec!["system:masters".into()],
        scope: Scope::Cluster,
        rules: None,
    };
    let restricted_rules = match &cli.restricted_rules {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{}: not a list of RBAC rules", path.display()))?,
            )
        }
        None => None,
    };
    let client_cert = pki
        .issue_client(admin.clone())
        .context("issuing the client certificate")?;
    let (admin_token, restricted_token) = (kept.admin_token, kept.restricted_token);
    let store = Store::new(cli.watch_history);
    let accounts = Arc::new(ServiceAccountTokens::default());
    let mut authenticator = Authenticator::new(store.clone(), accounts.clone());
    authenticator.add_token(admin_token.clone(), admin);
    authenticator.add_token(
        restricted_token.clone(),
        Identity {
            user: "restricted".into(),
            groups: vec!["system:authenticated".into()],
            scope: Scope::Namespace(cli.restricted_namespace.clone()),
            rules: restricted_rules,
        },
    );

    for ns in [
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        cli.restricted_namespace.as_str(),
    ] {
        let object =
            api::namespaces::make(ns).map_err(|e| anyhow::anyhow!("namespace {ns}: {e}"))?;
        store.create(Key::new(Kind::Namespace, "", ns), object);
        api::namespaces::publish_root_ca(&store, ns, &pki.ca_pem);
    }
    let state_dir = std::env::temp_dir().join(format!("kube-sim-{instance}"));
    let kubelet = Arc::new(kubelet::Kubelet::new(
        engine.clone(),
        store.clone(),
        kubelet::KubeletSetup {
            tracker: tracker.clone(),
            accounts: accounts.clone(),
            state_dir: state_dir.clone(),
            api_address: pod_address,
        },
    ));
    tracker.spawn(kubelet.clone().follow_engine(shutdown.clone()));
    let app = app::App {
        store,
        kubelet,
        engine: engine.clone(),
        tracker: tracker.clone(),
        shutdown: shutdown.clone(),
        bookmark_interval: Duration::from_secs(cli.bookmark_interval.max(1)),
        accounts,
        ca_pem: Arc::from(pki.ca_pem.as_str()),
    };
    tracker.spawn(controller::run(app.clone(), shutdown.clone()));
    let router = api::router(app, Arc::new(authenticator));

    let host = match address.ip() {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        ip => ip.to_string(),
    };
    let server_url = format!("https://{host}:{}", address.port());
    let kubeconfig = kubeconfig::render(&kubeconfig::KubeconfigData {
        server: &server_url,
        ca_pem: &pki.ca_pem,
        admin_token: &admin_token,
        cert_pem: &client_cert.cert_pem,
        key_pem: &client_cert.key_pem,
        restricted_token: &restricted_token,
        restricted_namespace: &cli.restricted_namespace,
    });
    std::fs::write(&cli.kubeconfig, kubeconfig)
        .with_context(|| format!("writing {}", cli.kubeconfig.display()))?;

    let identities = Arc::new(pki.client_identities.clone());
    let serving = tracker.spawn(server::serve(
        listener,
        pki.server_config.clone(),
        identities.clone(),
        router.clone(),
        shutdown.clone(),
        tracker.clone(),
    ));
    let serving_pods = pod_listener.map(|l| {
        tracker.spawn(server::serve(
            l,
            pki.server_config.clone(),
            identities,
            router,
            shutdown.clone(),
            tracker.clone(),
        ))
    });
    println!(
        "kube-sim ready: {server_url} instance={instance} kubeconfig={}",
        cli.kubeconfig.display()
    );

    wait_for_signal().await?;
    tracing::info!("shutting down: removing containers and volumes");
    shutdown.cancel();
    let _ = serving.await;
    if let Some(s) = serving_pods {
        let _ = s.await;
    }
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    let left = engine.remove_everything().await;
    if state_dir.exists() {
        if let Err(e) = std::fs::remove_dir_all(&state_dir) {
            tracing::warn!(dir = %state_dir.display(), error = %e, "removing file volumes");
        }
    }
    if left > 0 {
        anyhow::bail!("{left} volumes could not be removed");
    }
    Ok(())
}

/// A listener on the Docker bridge's gateway, the address containers reach the host at, so
/// pods can call the API (KUBERNETES_SERVICE_HOST/PORT). None (with a warning) when the engine
/// has no bridge network or its gateway is not an address of this host (a remote engine).
async fn pod_facing_listener(engine: &docker::Engine) -> Option<TcpListener> {
    let network = match engine
        .docker
        .inspect_network(
            "bridge",
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
    {
        Ok(network) => network,
        Err(e) => {
            tracing::warn!(error = %e, "pods cannot reach the API: the engine has no bridge network");
            return None;
        }
    };
    let configs = network.ipam.and_then(|i| i.config).unwrap_or_default();
    let Some(gateway) = configs
        .iter()
        .find_map(|c| bridge_gateway(c.gateway.as_deref(), c.subnet.as_deref()))
    else {
        tracing::warn!(
            "pods cannot reach the API: the bridge network names no gateway or IPv4 subnet"
        );
        return None;
    };
    match TcpListener::bind((gateway, 0)).await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(%gateway, error = %e, "pods cannot reach the API: not listening on the bridge gateway");
            None
        }
    }
}

/// The bridge's gateway: as the engine names it, or else the first address of its IPv4
/// subnet, which is what the engine gives the bridge (an engine that found its bridge
/// already up, after a restart, may report the subnet alone).
fn bridge_gateway(gateway: Option<&str>, subnet: Option<&str>) -> Option<std::net::IpAddr> {
    if let Some(gateway) = gateway.and_then(|g| g.parse().ok()) {
        return Some(gateway);
    }
    let (network, prefix) = subnet?.split_once('/')?;
    let network: std::net::Ipv4Addr = network.parse().ok()?;
    let prefix: u32 = prefix.parse().ok()?;
    if prefix >= 31 {
        return None;
    }
    // A `/0` shifts every bit out.
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    Some(std::net::IpAddr::V4(
        ((u32::from(network) & mask) + 1).into(),
    ))
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bridge_gateway;

    #[test]
    fn the_bridge_gateway_is_the_engines_or_the_first_address_of_its_subnet() {
        let ip = |s: &str| Some(s.parse().unwrap());
        assert_eq!(
            bridge_gateway(Some("172.17.0.1"), Some("172.17.0.0/16")),
            ip("172.17.0.1")
        );
        assert_eq!(
            bridge_gateway(None, Some("172.17.0.0/16")),
            ip("172.17.0.1")
        );
        assert_eq!(
            bridge_gateway(None, Some("10.20.30.40/24")),
            ip("10.20.30.1")
        );
        assert_eq!(bridge_gateway(None, Some("fd00::/64")), None);
        assert_eq!(bridge_gateway(None, Some("10.0.0.0/32")), None);
        assert_eq!(bridge_gateway(None, Some("10.0.0.0/0")), ip("0.0.0.1"));
        assert_eq!(bridge_gateway(None, None), None);
    }
}
