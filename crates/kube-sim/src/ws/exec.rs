//! `pods/exec` and `pods/attach` over WebSocket (v5 and v4 channel protocols). Requests are
//! checked before the upgrade, so errors are plain Status answers; SPDY is refused with a
//! Status naming the protocols kube-sim speaks.

use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::channel::{self, Protocol};
use super::session::{self, Bridge};
use crate::api::pods::get_pod;
use crate::api::status::{exec_exit_code, exec_internal, exec_success, ApiError};
use crate::app::App;
use crate::docker::stdio::{self, Streams, Terminal};
use crate::query::Params;
use crate::store::{Key, Kind};

/// The container a request names, or the only one; 400 like the apiserver otherwise.
pub fn pick_container(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    match requested.filter(|r| !r.is_empty()) {
        Some(r) if containers.contains(&r) => Ok(r.to_owned()),
        Some(r) => Err(ApiError::bad_request(format!(
            "container {r} is not valid for pod {name}"
        ))),
        None => match containers.as_slice() {
            [one] => Ok((*one).to_owned()),
            many => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                many.join(" ")
            ))),
        },
    }
}

/// Streams requested, with the kubelet's rule that a TTY has no separate stderr.
fn streams(params: &Params) -> Result<Streams, ApiError> {
    let tty = params.flag("tty");
    let s = Streams {
        stdin: params.flag("stdin"),
        stdout: params.flag("stdout"),
        stderr: params.flag("stderr") && !tty,
        tty,
    };
    if !(s.stdin || s.stdout || params.flag("stderr")) {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    Ok(s)
}

/// The upgrade, or why it cannot happen; negotiates the subprotocol in the client's order.
fn upgrade(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: &HeaderMap,
    what: &str,
) -> Result<(WebSocketUpgrade, Protocol), ApiError> {
    let spdy = || {
        ApiError::bad_request(format!(
            "kube-sim serves {what} only over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io); SPDY is not supported"
        ))
    };
    let mut ws = ws.map_err(|_| spdy())?;
    let protocol = channel::negotiate(headers, &[Protocol::V5, Protocol::V4]).ok_or_else(spdy)?;
    ws.set_selected_protocol(HeaderValue::from_static(protocol.name()));
    Ok((ws, protocol))
}

/// Pod, container and its engine id, checked like the apiserver and kubelet would.
fn resolve(
    app: &App,
    ns: &str,
    name: &str,
    params: &Params,
) -> Result<(String, crate::kubelet::Target), ApiError> {
    let pod = get_pod(app, ns, name)?;
    let container = pick_container(&pod, params.get("container"))?;
    if pod["spec"]["nodeName"].as_str().unwrap_or("").is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let phase = pod["status"]["phase"].as_str().unwrap_or("");
    if phase == "Succeeded" || phase == "Failed" {
        return Err(ApiError::bad_request(format!(
            "cannot exec into or attach to a container in a completed pod; current phase is {phase}"
        )));
    }
    let target = app
        .kubelet
        .target(&Key::new(Kind::Pod, ns, name), &container)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "container {container} in pod {name} is waiting to start"
            ))
        })?;
    Ok((container, target))
}

pub async fn exec(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let params = Params::parse(q.as_deref());
    let prepared = (|| -> Result<_, ApiError> {
        let (_, target) = resolve(&app, &ns, &name, &params)?;
        let command: Vec<String> = params
            .all("command")
            .into_iter()
            .map(str::to_owned)
            .collect();
        if command.is_empty() {
            return Err(ApiError::bad_request(
                "you must specify at least one command for the container",
            ));
        }
        let streams = streams(&params)?;
        let (ws, protocol) = upgrade(ws, &headers, "exec")?;
        Ok((target, command, streams, ws, protocol))
    })();
    let (target, command, streams, ws, protocol) = match prepared {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    ws.on_upgrade(move |socket| async move {
        let engine = app.engine.clone();
        match stdio::exec(&engine, &target.docker_id, command, streams).await {
            Err(e) => {
                let (writer, _incoming, task) = session::split(socket, &app.tasks());
                writer.finish(&exec_internal(&e.message())).await;
                drop(writer);
                let _ = task.await;
            }
            Ok((exec_id, io)) => {
                let bridge = Bridge {
                    protocol,
                    streams,
                    terminal: Terminal::Exec(exec_id.clone()),
                    engine: engine.clone(),
                    tasks: app.tasks(),
                };
                session::run(socket, bridge, io, || async move {
                    match stdio::exec_exit_code(&engine, &exec_id).await {
                        Ok(0) => exec_success(),
                        Ok(code) => exec_exit_code(code),
                        Err(e) => exec_internal(&e.message()),
                    }
                })
                .await;
            }
        }
    })
}

pub async fn attach(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let params = Params::parse(q.as_deref());
    let prepared = (|| -> Result<_, ApiError> {
        let (_, target) = resolve(&app, &ns, &name, &params)?;
        let mut streams = streams(&params)?;
        // The container's own TTY setting decides the framing.
        streams.tty = target.tty;
        if target.tty {
            streams.stderr = false;
        }
        let (ws, protocol) = upgrade(ws, &headers, "attach")?;
        Ok((target, streams, ws, protocol))
    })();
    let (target, streams, ws, protocol) = match prepared {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    ws.on_upgrade(move |socket| async move {
        let engine = app.engine.clone();
        match stdio::attach(&engine, &target.docker_id, streams).await {
            Err(e) => {
                let (writer, _incoming, task) = session::split(socket, &app.tasks());
                writer.finish(&exec_internal(&e.message())).await;
                drop(writer);
                let _ = task.await;
            }
            Ok(None) => {
                // It ended before the attach: like the kubelet, nothing to stream.
                let (writer, _incoming, task) = session::split(socket, &app.tasks());
                writer.finish(&exec_success()).await;
                drop(writer);
                let _ = task.await;
            }
            Ok(Some(io)) => {
                let terminal = Terminal::Container(target.docker_id.clone());
                let bridge = Bridge {
                    protocol,
                    streams,
                    terminal,
                    engine,
                    tasks: app.tasks(),
                };
                session::run(socket, bridge, io, || async { exec_success() }).await;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_choice() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(pick_container(&one, None).unwrap(), "a");
        assert_eq!(pick_container(&one, Some("b")).unwrap_err().code(), 400);
        let two = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let e = pick_container(&two, None).unwrap_err();
        assert!(e.to_string().contains("choose one of: [a b]"));
        assert_eq!(pick_container(&two, Some("b")).unwrap(), "b");
    }

    #[test]
    fn stream_rules() {
        assert!(streams(&Params::parse(Some("tty=true"))).is_err());
        let s = streams(&Params::parse(Some("stdout=true&stderr=true&tty=true"))).unwrap();
        assert!(!s.stderr);
    }
}
