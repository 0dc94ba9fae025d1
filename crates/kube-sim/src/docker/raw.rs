//! Requests to the Docker engine that bollard cannot do faithfully: hijacked exec/attach
//! streams (we must choose the framing ourselves, TTY output may start with any byte) and
//! streamed log bodies. Spoken over the engine's unix socket with hyper's HTTP/1 client.

use std::path::{Path, PathBuf};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use crate::tasks::Tasks;

/// A hijacked, bidirectional stream to a process's stdio.
pub type Hijacked = TokioIo<hyper::upgrade::Upgraded>;

#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("connecting to the Docker engine at {path}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to the Docker engine")]
    Http(#[from] hyper::Error),
    #[error("building a request to the Docker engine")]
    Request(#[from] hyper::http::Error),
    #[error("the Docker engine answered {status}: {message}")]
    Status { status: StatusCode, message: String },
}

/// The engine's API socket.
#[derive(Debug, Clone)]
pub struct RawClient {
    socket: PathBuf,
    version: String,
    /// Drives each request's connection (past the upgrade, or while a body streams).
    tasks: Tasks,
}

impl RawClient {
    pub fn new(socket: &Path, version: &str, tasks: Tasks) -> Self {
        Self {
            socket: socket.to_owned(),
            version: version.to_owned(),
            tasks,
        }
    }

    async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<hyper::Response<Incoming>, RawError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| RawError::Connect {
                    path: self.socket.clone(),
                    source,
                })?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        self.tasks.spawn(async move {
            let _ = connection.with_upgrades().await;
        });
        Ok(sender.send_request(request).await?)
    }

    fn request(&self, method: &str, path: &str) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("/v{}{path}", self.version))
            .header(HOST, "docker")
    }

    /// POSTs `body` to `path` asking to hijack the connection (exec start, attach).
    pub async fn hijack(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Hijacked, RawError> {
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let request = self
            .request("POST", path)
            .header(CONNECTION, "Upgrade")
            .header(UPGRADE, "tcp")
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(payload)))?;
        let response = self.send(request).await?;
        let status = response.status();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            return Err(error_of(status, response).await);
        }
        Ok(TokioIo::new(hyper::upgrade::on(response).await?))
    }

    /// GETs `path` and returns the streamed body (logs).
    pub async fn get_stream(&self, path: &str) -> Result<Incoming, RawError> {
        let request = self.request("GET", path).body(Full::new(Bytes::new()))?;
        let response = self.send(request).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(error_of(status, response).await);
        }
        Ok(response.into_body())
    }
}

async fn error_of(status: StatusCode, response: hyper::Response<Incoming>) -> RawError {
    let body = match response.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
    RawError::Status { status, message }
}
