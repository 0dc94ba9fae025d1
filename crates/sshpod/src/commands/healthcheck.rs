//! `sshpod healthcheck` (and ContainerSSH's `--healthcheck`): asks the health endpoint at
//! `health.client.url`, with that block's TLS settings, whether the server is ready. Exit
//! status 0 when it answers 200, 1 otherwise, with one line saying why: for Docker's
//! HEALTHCHECK. Without `health.enable`, the SSH port must answer with an SSH version line
//! instead, so the image's HEALTHCHECK means something whatever the configuration.

use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;

use sshpod_webhook::WebhookClient;

/// A health check's whole budget: the client's own timeout bounds each request.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

pub(crate) fn run(path: &Path) -> ExitCode {
    match check(path) {
        Ok(line) => {
            println!("sshpod: {line}");
            ExitCode::SUCCESS
        }
        Err(line) => {
            println!("sshpod: not ready: {line}");
            ExitCode::FAILURE
        }
    }
}

/// What the endpoint said when it is ready; why not otherwise.
fn check(path: &Path) -> Result<String, String> {
    let loaded = sshpod_config::load(path).map_err(|errors| {
        let first = errors
            .0
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        format!("the configuration is not valid: {first}")
    })?;
    if !loaded.config.health.enable {
        return ssh_answers(loaded.config.ssh.listen);
    }
    let client_config = &loaded.config.health.client;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    let url = client_config.url.to_string();
    runtime.block_on(async {
        let client = WebhookClient::new(client_config, DEADLINE)
            .map_err(|e| format!("health.client: {e}"))?;
        let (status, body) = client.get_once().await.map_err(|e| e.to_string())?;
        let said = body.trim();
        if status == 200 {
            Ok(format!("ready ({url} answered {status} {said})"))
        } else {
            Err(format!("{url} answered {status} {said}"))
        }
    })
}

/// Whether the SSH server at `listen` (an unspecified address means this host) sends its
/// version line.
fn ssh_answers(listen: SocketAddr) -> Result<String, String> {
    let mut address = listen;
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    let mut stream = TcpStream::connect_timeout(&address, DEADLINE).map_err(|e| {
        format!("ssh://{address}: {e} (health.enable is off: the SSH port is checked)")
    })?;
    stream
        .set_read_timeout(Some(DEADLINE))
        .map_err(|e| e.to_string())?;
    // The version line comes first and is at most 255 bytes (RFC 4253, 4.2).
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 255 && !line.ends_with(b"\n") {
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => line.push(byte[0]),
            Err(e) => return Err(format!("ssh://{address}: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&line);
    let line = line.trim_end();
    if line.starts_with("SSH-2.0-") {
        Ok(format!("ssh://{address} answered {line}"))
    } else {
        Err(format!(
            "ssh://{address} did not answer with an SSH version line"
        ))
    }
}
