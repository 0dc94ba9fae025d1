//! One webhook endpoint's HTTP client: JSON POST, per-request timeout, overall deadline,
//! retries with backoff on transport errors and 5xx only.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sshpod_config::{HttpClientConfig, ServiceUrl};
use sshpod_core::{WebhookFailure, WebhookOutcome};
use tokio::time::Instant;

use crate::retry::{retry_status, Backoff};
use crate::{BuildError, WebhookError};

/// Largest response body accepted (files travel inside it).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A client for one webhook base URL.
#[derive(Debug, Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    url: ServiceUrl,
    timeout: Duration,
    deadline: Duration,
    backoff: Backoff,
}

impl WebhookClient {
    /// Builds the client. `deadline` bounds a whole call, retries included. Fails when a
    /// certificate file cannot be read or the TLS settings cannot work together.
    pub fn new(config: &HttpClientConfig, deadline: Duration) -> Result<Self, BuildError> {
        let tls = crate::tls::client_config(config)?;
        let redirects = if config.allow_redirects {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        };
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(redirects)
            .connect_timeout(config.timeout)
            .no_proxy()
            .user_agent(concat!("sshpod/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BuildError::Tls(e.to_string()))?;
        Ok(Self {
            http,
            url: config.url.clone(),
            timeout: config.timeout,
            deadline,
            backoff: Backoff::default(),
        })
    }

    /// Replaces the retry policy (tests use short waits).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The base URL (prints without its credentials).
    pub fn url(&self) -> &ServiceUrl {
        &self.url
    }

    /// POSTs `body` as JSON to the base URL followed by `path` (plain concatenation, as
    /// ContainerSSH does: `/password`, `/pubkey`, `/authz`; empty for the config server) and
    /// decodes a 200 answer. Gives up at the deadline.
    pub async fn call<Req, Resp>(&self, path: &str, body: &Req) -> Result<Resp, WebhookError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        self.call_observed(path, body, &|_, _| {}).await
    }

    /// As [`call`](Self::call), telling `observe` how each request went and whether it was a
    /// retry (for metrics).
    pub async fn call_observed<Req, Resp>(
        &self,
        path: &str,
        body: &Req,
        observe: &(dyn Fn(bool, WebhookOutcome) + Sync),
    ) -> Result<Resp, WebhookError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        // Credentials in the URL go into the request, never into a message.
        let target = format!("{}{}", self.url.expose_secret(), path);
        let url = format!("{}{}", self.url, path);
        let body = serde_json::to_vec(body).map_err(|e| WebhookError::Malformed {
            url: url.clone(),
            reason: format!("cannot encode the request: {e}"),
        })?;
        let started = Instant::now();
        let end = started + self.deadline;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let retry = attempt > 1;
            let failed = |retrying, reason| WebhookOutcome::Failed { retrying, reason };
            let remaining = end.saturating_duration_since(Instant::now());
            let failure = match self.attempt(&target, &url, &body, remaining).await {
                Attempt::Done(bytes) => {
                    let decoded =
                        serde_json::from_slice(&bytes).map_err(|e| WebhookError::Malformed {
                            url,
                            reason: format!("the answer is not valid: {e}"),
                        });
                    observe(
                        retry,
                        match decoded {
                            Ok(_) => WebhookOutcome::Answered,
                            Err(_) => failed(false, WebhookFailure::Malformed),
                        },
                    );
                    return decoded;
                }
                Attempt::Final(error) => {
                    let reason = match error {
                        WebhookError::Malformed { .. } => WebhookFailure::Malformed,
                        _ => WebhookFailure::Refused,
                    };
                    observe(retry, failed(false, reason));
                    return Err(error);
                }
                Attempt::Retry(reason) => reason,
            };
            let remaining = end.saturating_duration_since(Instant::now());
            let wait = self.backoff.wait(attempt, remaining);
            observe(retry, failed(wait.is_some(), WebhookFailure::Unavailable));
            match wait {
                Some(wait) => {
                    tracing::debug!(
                        url,
                        attempt,
                        reason = failure,
                        ?wait,
                        "webhook call failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
                None => {
                    return Err(WebhookError::Unavailable {
                        url,
                        attempts: attempt,
                        elapsed: started.elapsed(),
                        reason: failure,
                    })
                }
            }
        }
    }

    /// One GET of the base URL, without retries (a health check asks once, within the
    /// per-request timeout): the status and at most the first KiB of the body.
    pub async fn get_once(&self) -> Result<(u16, String), WebhookError> {
        const MAX_SHOWN: usize = 1024;
        let url = self.url.to_string();
        let started = Instant::now();
        let mut response = self
            .http
            .get(self.url.expose_secret())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| WebhookError::Unavailable {
                url: url.clone(),
                attempts: 1,
                elapsed: started.elapsed(),
                reason: describe(&e),
            })?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while body.len() < MAX_SHOWN {
            match tokio::time::timeout(self.timeout, response.chunk()).await {
                Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(MAX_SHOWN);
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// One POST to `target`; `url` is how it is named in errors.
    async fn attempt(&self, target: &str, url: &str, body: &[u8], remaining: Duration) -> Attempt {
        if remaining.is_zero() {
            return Attempt::Retry("the deadline passed".to_owned());
        }
        let timeout = self.timeout.min(remaining);
        let sent = self
            .http
            .post(target)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(timeout)
            .body(body.to_vec())
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(describe(&e)),
        };
        let status = response.status().as_u16();
        if status != 200 {
            if retry_status(status) {
                return Attempt::Retry(format!("HTTP status {status}"));
            }
            let reason = if (300..400).contains(&status) {
                format!(
                    "HTTP status {status} (redirects are not followed unless allowRedirects is on)"
                )
            } else {
                format!("HTTP status {status}")
            };
            return Attempt::Final(WebhookError::Refused {
                url: url.to_owned(),
                reason,
            });
        }
        let mut bytes = Vec::new();
        loop {
            let chunk = tokio::time::timeout(timeout, response.chunk()).await;
            match chunk {
                Ok(Ok(Some(chunk))) => {
                    if bytes.len() + chunk.len() > MAX_BODY {
                        return Attempt::Final(WebhookError::Malformed {
                            url: url.to_owned(),
                            reason: format!("the answer is larger than {MAX_BODY} bytes"),
                        });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(Ok(None)) => return Attempt::Done(bytes),
                Ok(Err(e)) => return Attempt::Retry(describe(&e)),
                Err(_) => return Attempt::Retry("timed out reading the answer".to_owned()),
            }
        }
    }
}

enum Attempt {
    Done(Vec<u8>),
    Retry(String),
    Final(WebhookError),
}

/// A transport error with its causes, on one line.
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::protocol::AuthResponse;

    /// A tiny HTTP server answering each connection with the next canned response.
    async fn server(answers: Vec<&'static str>) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        tokio::spawn(async move {
            for answer in answers {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buffer = vec![0u8; 65536];
                let mut read = 0;
                // Read the head and the body (Content-Length).
                loop {
                    let n = socket.read(&mut buffer[read..]).await.unwrap();
                    if n == 0 {
                        break; // the client went away before a whole request
                    }
                    read += n;
                    let text = String::from_utf8_lossy(&buffer[..read]).to_string();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let length = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if read >= head_end + 4 + length {
                            break;
                        }
                    }
                }
                seen.fetch_add(1, Ordering::SeqCst);
                if answer == "hang" {
                    // Keep the connection open without answering until the client gives up.
                    let _ = socket.read(&mut buffer).await;
                    continue;
                }
                socket.write_all(answer.as_bytes()).await.unwrap();
                socket.shutdown().await.unwrap();
            }
        });
        (url, count)
    }

    fn config(url: &str) -> HttpClientConfig {
        HttpClientConfig {
            url: ServiceUrl::new(url),
            allow_redirects: false,
            timeout: Duration::from_millis(500),
            cacert: String::new(),
            cert: String::new(),
            key: sshpod_config::Secret::default(),
            tls_version: sshpod_config::TlsVersion::Tls13,
            curves: vec!["x25519".into()],
            cipher: vec!["TLS_AES_128_GCM_SHA256".into()],
        }
    }

    fn client(url: &str, deadline: Duration) -> WebhookClient {
        WebhookClient::new(&config(url), deadline)
            .unwrap()
            .with_backoff(Backoff {
                first: Duration::from_millis(10),
                max: Duration::from_millis(20),
            })
    }

    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\nConnection: close\r\n\r\n{\"success\":true}";
    const ERROR_500: &str =
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    const ERROR_403: &str =
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    const MALFORMED: &str =
        "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{\"succ\": ";

    #[tokio::test]
    async fn server_errors_are_retried_until_success() {
        let (url, count) = server(vec![ERROR_500, ERROR_500, OK]).await;
        let response: AuthResponse = client(&url, Duration::from_secs(10))
            .call("/password", &serde_json::json!({}))
            .await
            .unwrap();
        assert!(response.success);
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn client_errors_and_malformed_answers_are_final() {
        let (url, count) = server(vec![ERROR_403, OK]).await;
        let error = client(&url, Duration::from_secs(10))
            .call::<_, AuthResponse>("/password", &serde_json::json!({}))
            .await
            .unwrap_err();
        assert!(matches!(error, WebhookError::Refused { .. }), "{error}");
        assert!(error.to_string().contains("403"), "{error}");
        assert_eq!(count.load(Ordering::SeqCst), 1);

        let (url, _) = server(vec![MALFORMED]).await;
        let error = client(&url, Duration::from_secs(10))
            .call::<_, AuthResponse>("/pubkey", &serde_json::json!({}))
            .await
            .unwrap_err();
        assert!(matches!(error, WebhookError::Malformed { .. }), "{error}");
        assert!(error.to_string().contains("/pubkey"), "{error}");
    }

    #[tokio::test]
    async fn a_silent_server_gives_up_at_the_deadline() {
        let (url, count) = server(vec!["hang", "hang", "hang", "hang", "hang", "hang"]).await;
        let started = Instant::now();
        let error = client(&url, Duration::from_millis(1200))
            .call::<_, AuthResponse>("/password", &serde_json::json!({}))
            .await
            .unwrap_err();
        assert!(matches!(error, WebhookError::Unavailable { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(count.load(Ordering::SeqCst) >= 2, "retried after a timeout");
    }

    #[tokio::test]
    async fn nobody_listening_is_unavailable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let error = client(&url, Duration::from_millis(300))
            .call::<_, AuthResponse>("/password", &serde_json::json!({}))
            .await
            .unwrap_err();
        assert!(
            matches!(error, WebhookError::Unavailable { attempts, .. } if attempts > 1),
            "{error}"
        );
    }
}
