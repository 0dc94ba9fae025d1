//! `sshpod healthcheck` (and ContainerSSH's `--healthcheck`): asks the health endpoint at
//! `health.client.url`, with that block's TLS settings, whether the server is ready. Exit
//! status 0 when it answers 200, 1 otherwise, with one line saying why: for Docker's
//! HEALTHCHECK.

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
