//! `pods/log`: a container's output from the engine (follow, tailLines, timestamps,
//! sinceSeconds), demultiplexed unless the container has a TTY.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::pods::get_pod;
use super::status::ApiError;
use crate::app::App;
use crate::docker::frames::Demuxer;
use crate::query::Params;
use crate::store::{Key, Kind};
use crate::ws::exec::pick_container;

pub async fn logs(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    let pod = get_pod(&app, &ns, &name)?;
    let container = pick_container(&pod, params.get("container"))?;
    let target = app
        .kubelet
        .target(&Key::new(Kind::Pod, &ns, &name), &container)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        ))
        })?;
    let flag = |b: bool| if b { "1" } else { "0" };
    let mut path = format!(
        "/containers/{}/logs?stdout=1&stderr=1&follow={}&timestamps={}",
        target.docker_id,
        flag(params.flag("follow")),
        flag(params.flag("timestamps")),
    );
    match params.non_empty("tailLines").map(str::parse::<u64>) {
        Some(Ok(n)) => path.push_str(&format!("&tail={n}")),
        Some(Err(_)) => return Err(ApiError::bad_request("invalid tailLines")),
        None => {}
    }
    if let Some(Ok(s)) = params.non_empty("sinceSeconds").map(str::parse::<i64>) {
        path.push_str(&format!("&since={}", chrono::Utc::now().timestamp() - s));
    }
    let body = app
        .engine
        .raw
        .get_stream(&path)
        .await
        .map_err(ApiError::internal)?;
    let tty = target.tty;
    let stream = futures_util::stream::unfold(
        (body, Demuxer::default()),
        move |(mut body, mut demux)| async move {
            loop {
                let frame = match body.frame().await {
                    Some(Ok(frame)) => frame,
                    _ => return None,
                };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if tty {
                    return Some((Ok::<Bytes, Infallible>(data), (body, demux)));
                }
                demux.push(&data);
                let mut out = Vec::new();
                while let Some((_, payload)) = demux.next_chunk() {
                    out.extend_from_slice(&payload);
                }
                if !out.is_empty() {
                    return Some((Ok(Bytes::from(out)), (body, demux)));
                }
            }
        },
    );
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(stream),
    )
        .into_response())
}
