//! `pods/portforward` over the WebSocket channel protocol (`v4.channel.k8s.io`, used by the
//! Python client and kube-rs): per port i, data on channel 2i and errors on 2i+1, each opened
//! with a 3-byte frame carrying the port. Each port is dialled at `127.0.0.1:PORT` inside the
//! pod's network namespace by the sandbox helper. kubectl's SPDY-based port-forward is refused.

use std::sync::Arc;

use axum::extract::ws::{rejection::WebSocketUpgradeRejection, Message, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::Mutex;

use super::channel::{self, Protocol};
use super::session::{self, Writer};
use crate::api::pods::get_pod;
use crate::api::status::ApiError;
use crate::app::App;
use crate::docker::frames::{Demuxer, Stream};
use crate::docker::raw::Hijacked;
use crate::docker::sandbox::PAUSE_PATH;
use crate::docker::stdio::{self, Streams};
use crate::query::Params;
use crate::store::{Key, Kind};

/// The `ports` parameter: repeated and/or comma-separated, each 1..=65535.
pub fn parse_ports(params: &Params) -> Result<Vec<u16>, ApiError> {
    let mut ports = Vec::new();
    for value in params.all("ports") {
        for p in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(port) if port > 0 => ports.push(port),
                _ => return Err(ApiError::bad_request(format!("invalid port value \"{p}\""))),
            }
        }
    }
    if ports.is_empty() {
        return Err(ApiError::bad_request(
            "query parameter \"ports\" is required",
        ));
    }
    Ok(ports)
}

pub async fn portforward(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let params = Params::parse(q.as_deref());
    let prepared = (|| -> Result<_, ApiError> {
        let pod = get_pod(&app, &ns, &name)?;
        let refuse = || {
            ApiError::bad_request(
                "kube-sim serves port forwarding only over the WebSocket channel protocol \
                 (v4.channel.k8s.io, with ?ports=); SPDY (kubectl port-forward) is not supported",
            )
        };
        let mut ws = ws.map_err(|_| refuse())?;
        let offered = headers.get("sec-websocket-protocol").is_some();
        let protocol = channel::negotiate(&headers, &[Protocol::V4, Protocol::V5]);
        match (offered, protocol) {
            (true, None) => return Err(refuse()),
            (true, Some(_)) => {
                ws.set_selected_protocol(HeaderValue::from_static(Protocol::V4.name()))
            }
            (false, _) => {}
        }
        let ports = parse_ports(&params)?;
        let sandbox = app
            .kubelet
            .sandbox(&Key::new(Kind::Pod, &ns, &name))
            .ok_or_else(|| ApiError::bad_request(format!("pod {name} is not running")))?;
        let uid = pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok((ws, ports, sandbox, uid))
    })();
    let (ws, ports, sandbox, uid) = match prepared {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    ws.on_upgrade(move |socket| async move {
        let tasks = app.tasks();
        let (writer, mut incoming, writer_task) = session::split(socket, &tasks);
        let writer = Arc::new(writer);
        let mut stdins: Vec<Arc<Mutex<Option<WriteHalf<Hijacked>>>>> = Vec::new();
        let mut readers = Vec::new();
        for (i, port) in ports.iter().copied().enumerate() {
            let data = (2 * i) as u8;
            let [lo, hi] = port.to_le_bytes();
            writer.send(data, &[lo, hi]).await;
            writer.send(data + 1, &[lo, hi]).await;
            let command = vec![PAUSE_PATH.to_owned(), "dial".to_owned(), port.to_string()];
            let streams = Streams {
                stdin: true,
                stdout: true,
                stderr: true,
                tty: false,
            };
            let prefix = format!("error forwarding port {port} to pod {sandbox}, uid {uid}: ");
            match stdio::exec(&app.engine, &sandbox, command, streams).await {
                Err(e) => {
                    writer
                        .send(data + 1, format!("{prefix}{}", e.message()).as_bytes())
                        .await;
                    stdins.push(Arc::new(Mutex::new(None)));
                }
                Ok((_, io)) => {
                    let (read, write) = tokio::io::split(io);
                    stdins.push(Arc::new(Mutex::new(Some(write))));
                    readers.push(tasks.spawn(relay(read, writer.clone(), data, prefix)));
                }
            }
        }
        let inputs = stdins.clone();
        let input = tasks.spawn(async move {
            while let Some(Ok(message)) = incoming.next().await {
                let bytes = match &message {
                    Message::Binary(b) => b.to_vec(),
                    Message::Text(t) => t.as_bytes().to_vec(),
                    Message::Close(_) => break,
                    _ => continue,
                };
                let Some((&ch, payload)) = bytes.split_first() else {
                    continue;
                };
                if ch % 2 != 0 || payload.is_empty() {
                    continue;
                }
                if let Some(slot) = inputs.get(usize::from(ch / 2)) {
                    let mut guard = slot.lock().await;
                    if let Some(w) = guard.as_mut() {
                        if w.write_all(payload).await.is_err() {
                            *guard = None;
                        }
                    }
                }
            }
            for slot in &inputs {
                if let Some(mut w) = slot.lock().await.take() {
                    let _ = w.shutdown().await;
                }
            }
        });
        let all_done = futures_util::future::join_all(readers);
        tokio::select! {
            _ = all_done => writer.close().await,
            () = writer.closed() => {}
        }
        drop(writer);
        let _ = writer_task.await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), input).await;
        for slot in &stdins {
            slot.lock().await.take();
        }
    })
}

/// Copies the helper's output to the data channel; its error text, if any, to the error channel.
async fn relay(
    mut read: tokio::io::ReadHalf<Hijacked>,
    writer: Arc<Writer>,
    data: u8,
    prefix: String,
) {
    let mut buffer = vec![0u8; 32 * 1024];
    let mut demux = Demuxer::default();
    let mut connected = false;
    let mut error = Vec::new();
    loop {
        let n = match read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        demux.push(&buffer[..n]);
        while let Some((stream, mut payload)) = demux.next_chunk() {
            match stream {
                Stream::Stderr => error.extend_from_slice(&payload),
                Stream::Stdout => {
                    if !connected && !payload.is_empty() {
                        connected = true;
                        payload.remove(0);
                    }
                    if !payload.is_empty() && !writer.send(data, &payload).await {
                        return;
                    }
                }
            }
        }
    }
    if !error.is_empty() {
        let text = String::from_utf8_lossy(&error);
        writer
            .send(data + 1, format!("{prefix}{}", text.trim()).as_bytes())
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(
            parse_ports(&Params::parse(Some("ports=80,443&ports=8080"))).unwrap(),
            vec![80, 443, 8080]
        );
        assert_eq!(
            parse_ports(&Params::parse(Some("ports=0")))
                .unwrap_err()
                .code(),
            400
        );
        assert_eq!(
            parse_ports(&Params::parse(Some("ports=x")))
                .unwrap_err()
                .code(),
            400
        );
        assert_eq!(parse_ports(&Params::parse(None)).unwrap_err().code(), 400);
    }
}
