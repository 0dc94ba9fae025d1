//! List and watch of any stored kind, with label and field selectors.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, MethodRouter};
use serde_json::{json, Value};

use super::status::{json_response, ApiError};
use super::{table, watch};
use crate::app::App;
use crate::query::Params;
use crate::selectors::{labels_of, FieldSelector, LabelSelector};
use crate::store::{Key, Kind};

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
        Kind::Secret => &["metadata.name", "metadata.namespace", "type"],
        Kind::PersistentVolumeClaim
        | Kind::Lease
        | Kind::ConfigMap
        | Kind::ServiceAccount
        | Kind::Service
        | Kind::Deployment
        | Kind::Role
        | Kind::RoleBinding
        | Kind::NetworkPolicy
        | Kind::PodDisruptionBudget => &["metadata.name", "metadata.namespace"],
        Kind::Namespace => &["metadata.name", "status.phase"],
    }
}

fn wants_table(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|a| a.to_str().ok());
    table::wants_table(accept)
}

/// GET on a collection: a list, a Table (pods, leases), or a watch.
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
    if wants_table(headers) {
        if let Some(t) = table::of(kind, &items, rv) {
            return Ok(json_response(StatusCode::OK, &t));
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", kind.kind()),
            "apiVersion": kind.api_version(),
            "metadata": {"resourceVersion": rv.to_string()},
            "items": items,
        }),
    ))
}

/// GET of one object, as a Table when asked (for the kinds that have one).
pub fn get_one(object: Value, kind: Kind, rv: u64, headers: &HeaderMap) -> Response {
    if wants_table(headers) {
        if let Some(t) = table::of(kind, std::slice::from_ref(&object), rv) {
            return json_response(StatusCode::OK, &t);
        }
    }
    json_response(StatusCode::OK, &object)
}

/// `GET /.../KIND` across every namespace: list or watch.
pub fn across_namespaces(kind: Kind) -> MethodRouter<App> {
    get(
        move |State(app): State<App>, RawQuery(q): RawQuery, headers: HeaderMap| async move {
            list_or_watch(&app, kind, None, &Params::parse(q.as_deref()), &headers)
        },
    )
}

/// `GET /.../namespaces/{ns}/KIND`: list or watch in one namespace.
pub fn in_namespace(kind: Kind) -> MethodRouter<App> {
    get(
        move |State(app): State<App>,
              Path(ns): Path<String>,
              RawQuery(q): RawQuery,
              headers: HeaderMap| async move {
            list_or_watch(&app, kind, Some(ns), &Params::parse(q.as_deref()), &headers)
        },
    )
}

/// `GET /.../namespaces/{ns}/KIND/{name}`: one object, or 404.
pub fn named(kind: Kind) -> MethodRouter<App> {
    get(
        move |State(app): State<App>,
              Path((ns, name)): Path<(String, String)>,
              headers: HeaderMap| async move {
            let object = app
                .store
                .get(&Key::new(kind, &ns, &name))
                .ok_or_else(|| ApiError::not_found(kind, &name))?;
            Ok::<_, ApiError>(get_one(object, kind, app.store.rv(), &headers))
        },
    )
}
