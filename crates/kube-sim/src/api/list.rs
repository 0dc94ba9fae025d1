//! List and watch of any stored kind, with label and field selectors.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::status::{json_response, ApiError};
use super::{table, watch};
use crate::app::App;
use crate::query::Params;
use crate::selectors::{labels_of, FieldSelector, LabelSelector};
use crate::store::Kind;

/// Which objects a list or watch returns.
#[derive(Debug, Clone)]
pub struct Filter {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, object: &Value) -> bool {
        let ns = object["metadata"]["namespace"].as_str().unwrap_or("");
        self.namespace.as_deref().is_none_or(|want| want == ns)
            && self.labels.matches(&labels_of(object))
            && self.fields.matches(object)
    }
}

fn supported_fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Pod => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        Kind::PersistentVolumeClaim => &["metadata.name", "metadata.namespace"],
        Kind::Namespace => &["metadata.name", "status.phase"],
    }
}

/// GET on a collection: a list, a Table (pods), or a watch.
pub fn list_or_watch(
    app: &App,
    kind: Kind,
    namespace: Option<String>,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let labels = LabelSelector::parse(params.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(
        params.get("fieldSelector").unwrap_or(""),
        supported_fields(kind),
    )
    .map_err(ApiError::BadRequest)?;
    let filter = Filter {
        kind,
        namespace,
        labels,
        fields,
    };
    if params.flag("watch") {
        return watch::serve(app, filter, params);
    }
    let (items, rv) = app.store.list(kind, filter.namespace.as_deref());
    let items: Vec<Value> = items.into_iter().filter(|i| filter.matches(i)).collect();
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|a| a.to_str().ok());
    if kind == Kind::Pod && table::wants_table(accept) {
        return Ok(json_response(StatusCode::OK, &table::pods(&items, rv)));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", kind.kind()),
            "apiVersion": "v1",
            "metadata": {"resourceVersion": rv.to_string()},
            "items": items,
        }),
    ))
}

/// GET of one object, as a Table for pods when asked.
pub fn get_one(object: Value, kind: Kind, rv: u64, headers: &HeaderMap) -> Response {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|a| a.to_str().ok());
    if kind == Kind::Pod && table::wants_table(accept) {
        return json_response(StatusCode::OK, &table::pods(&[object], rv));
    }
    json_response(StatusCode::OK, &object)
}
