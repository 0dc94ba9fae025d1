//! Who is calling (bearer token or client certificate) and what they may do: admins may do
//! anything; a namespace-restricted user only what lies in its namespace (plus discovery); a
//! service account what the Roles bound to it by RoleBindings grant, namespace by namespace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::status::{ApiError, GroupResource};
use crate::query::Params;
use crate::store::{Key, Kind, Store};

/// What an identity may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Cluster,
    Namespace(String),
    /// A service account's token: RBAC Roles and RoleBindings in the store decide.
    ServiceAccount {
        namespace: String,
        name: String,
    },
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
    pub scope: Scope,
    /// The rules of the Role bound to a namespace-restricted user; None grants everything in
    /// its namespace.
    pub rules: Option<Vec<PolicyRule>>,
}

/// One rule of an RBAC Role (`rbac.authorization.k8s.io/v1`), `*` matching anything.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRule {
    #[serde(default)]
    pub api_groups: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
}

impl PolicyRule {
    fn allows(&self, a: &Attributes<'_>) -> bool {
        let any = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
        any(&self.api_groups, a.group)
            && any(&self.resources, &a.resource)
            && any(&self.verbs, a.verb)
    }
}

/// The identity the TLS layer established for a connection (a client certificate), if any.
#[derive(Debug, Clone, Default)]
pub struct PeerIdentity(pub Option<Identity>);

/// The token of each ServiceAccount: issued when the account is created, revoked when it is
/// deleted (as a bound token stops working with its account).
#[derive(Debug, Default)]
pub struct ServiceAccountTokens {
    inner: Mutex<AccountTokens>,
}

#[derive(Debug, Default)]
struct AccountTokens {
    by_token: HashMap<String, (String, String)>,
    by_account: HashMap<(String, String), String>,
}

impl ServiceAccountTokens {
    fn lock(&self) -> MutexGuard<'_, AccountTokens> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Issues (or returns) the token of account `namespace/name`.
    pub fn issue(&self, namespace: &str, name: &str) -> String {
        let mut inner = self.lock();
        let account = (namespace.to_owned(), name.to_owned());
        if let Some(t) = inner.by_account.get(&account) {
            return t.clone();
        }
        let token = hex::encode(rand::random::<[u8; 24]>());
        inner.by_token.insert(token.clone(), account.clone());
        inner.by_account.insert(account, token.clone());
        token
    }

    /// The token of an existing account.
    pub fn token(&self, namespace: &str, name: &str) -> Option<String> {
        self.lock()
            .by_account
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Forgets the account's token: requests with it get 401 from now on.
    pub fn revoke(&self, namespace: &str, name: &str) {
        let mut inner = self.lock();
        if let Some(t) = inner
            .by_account
            .remove(&(namespace.to_owned(), name.to_owned()))
        {
            inner.by_token.remove(&t);
        }
    }

    fn account(&self, token: &str) -> Option<(String, String)> {
        self.lock().by_token.get(token).cloned()
    }
}

/// Bearer tokens: the static ones of the kubeconfig and those of service accounts.
pub struct Authenticator {
    tokens: HashMap<String, Identity>,
    accounts: Arc<ServiceAccountTokens>,
    /// Where the Roles and RoleBindings that authorize service accounts are.
    store: Store,
}

impl Authenticator {
    pub fn new(store: Store, accounts: Arc<ServiceAccountTokens>) -> Self {
        Self {
            tokens: HashMap::new(),
            accounts,
            store,
        }
    }

    pub fn add_token(&mut self, token: String, identity: Identity) {
        self.tokens.insert(token, identity);
    }

    fn by_token(&self, header: &str) -> Option<Identity> {
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))?
            .trim();
        if let Some(identity) = self.tokens.get(token) {
            return Some(identity.clone());
        }
        let (namespace, name) = self.accounts.account(token)?;
        Some(Identity {
            user: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
            scope: Scope::ServiceAccount { namespace, name },
            rules: None,
        })
    }

    /// The rules of every Role in `namespace` that a RoleBinding there binds to the account
    /// (ClusterRoles are not emulated).
    fn granted(&self, namespace: &str, account: (&str, &str)) -> Vec<PolicyRule> {
        let (bindings, _) = self.store.list(Kind::RoleBinding, Some(namespace));
        let mut rules = Vec::new();
        for binding in bindings {
            let bound = binding["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| {
                    s["kind"] == "ServiceAccount"
                        && s["name"].as_str() == Some(account.1)
                        && s["namespace"].as_str().unwrap_or(namespace) == account.0
                });
            let role_ref = &binding["roleRef"];
            if !bound || role_ref["kind"] != "Role" {
                continue;
            }
            let Some(role) = role_ref["name"].as_str() else {
                continue;
            };
            if let Some(role) = self.store.get(&Key::new(Kind::Role, namespace, role)) {
                // A rule kube-sim cannot read (resourceNames, nonResourceURLs) grants nothing:
                // ignoring only its unknown part would grant more than the Role says.
                rules.extend(
                    role["rules"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| serde_json::from_value::<PolicyRule>(r.clone()).ok()),
                );
            }
        }
        rules
    }
}

/// May service account `account` make this request? Only what Roles bound to it in the
/// request's namespace grant, plus discovery.
fn authorize_account(
    auth: &Authenticator,
    identity: &Identity,
    account: (&str, &str),
    method: &Method,
    path: &str,
    watch: bool,
) -> Result<(), ApiError> {
    if is_discovery(path) {
        return Ok(());
    }
    match attributes(method, path, watch) {
        Some(a) => {
            // A namespace object is in its own namespace, as RBAC sees it.
            let namespace = match (a.namespace, a.resource.as_str()) {
                (None, "namespaces") => a.name,
                (ns, _) => ns,
            };
            let allowed =
                namespace.is_some_and(|ns| auth.granted(ns, account).iter().any(|r| r.allows(&a)));
            if allowed {
                Ok(())
            } else {
                Err(forbidden(identity, &a))
            }
        }
        None => Err(ApiError::Forbidden(format!(
            "forbidden: User \"{}\" cannot get path \"{path}\"",
            identity.user
        ))),
    }
}

/// Paths the apiserver lets anyone read (`system:public-info-viewer`).
fn is_public(path: &str) -> bool {
    matches!(path, "/version" | "/healthz" | "/readyz" | "/livez")
}

fn is_discovery(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    // `/apis/<group>` and `/apis/<group>/<version>`
    let group_discovery = || {
        path.strip_prefix("/apis/")
            .is_some_and(|rest| rest.split('/').count() <= 2)
    };
    matches!(path, "/api" | "/apis" | "/api/v1" | "/version")
        || path.starts_with("/openapi/")
        || group_discovery()
}

/// The request as RBAC sees it.
#[derive(Debug, PartialEq)]
struct Attributes<'a> {
    verb: &'static str,
    /// The API group; empty for the core group.
    group: &'a str,
    resource: String,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
}

/// The API group and the path after `/api/v1/` or `/apis/<group>/<version>/`.
fn group_and_rest(path: &str) -> Option<(&str, &str)> {
    if let Some(rest) = path.strip_prefix("/api/v1/") {
        return Some(("", rest));
    }
    let mut parts = path.strip_prefix("/apis/")?.splitn(3, '/');
    let group = parts.next()?;
    let _version = parts.next()?;
    Some((group, parts.next()?))
}

fn attributes<'a>(method: &Method, path: &'a str, watch: bool) -> Option<Attributes<'a>> {
    let (group, rest) = group_and_rest(path)?;
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let (namespace, tail): (Option<&str>, &[&str]) = match parts.as_slice() {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(*ns), tail),
        ["namespaces", ns] => (None, &["namespaces", ns][..]),
        _ => (None, parts.as_slice()),
    };
    let (resource, name, sub) = match tail {
        ["namespaces", ns] => ("namespaces".to_owned(), Some(*ns), None),
        [r] => ((*r).to_owned(), None, None),
        [r, n] => ((*r).to_owned(), Some(*n), None),
        [r, n, s, ..] => ((*r).to_owned(), Some(*n), Some(*s)),
        [] => return None,
    };
    let resource = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource,
    };
    let verb = match (method.as_str(), name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "get",
    };
    Some(Attributes {
        verb,
        group,
        resource,
        namespace,
        name,
    })
}

fn forbidden(identity: &Identity, a: &Attributes<'_>) -> ApiError {
    let qualified = GroupResource::new(a.group, &a.resource);
    let subject = match a.name {
        Some(n) => format!("{qualified} \"{n}\""),
        None => qualified.to_string(),
    };
    let place = match a.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_owned(),
    };
    ApiError::Forbidden(format!(
        "{subject} is forbidden: User \"{}\" cannot {} resource \"{}\" in API group \"{}\" {place}",
        identity.user, a.verb, a.resource, a.group
    ))
}

/// May `identity` make this request?
pub fn authorize(
    identity: &Identity,
    method: &Method,
    path: &str,
    watch: bool,
) -> Result<(), ApiError> {
    if identity.scope == Scope::Cluster || is_discovery(path) {
        return Ok(());
    }
    let Scope::Namespace(own) = &identity.scope else {
        // Service accounts are authorized by `authorize_account`, with the store's RBAC.
        return Err(ApiError::Forbidden(format!(
            "forbidden: User \"{}\" cannot get path \"{path}\"",
            identity.user
        )));
    };
    match attributes(method, path, watch) {
        Some(a) if a.namespace == Some(own.as_str()) => match &identity.rules {
            Some(rules) if !rules.iter().any(|r| r.allows(&a)) => Err(forbidden(identity, &a)),
            _ => Ok(()),
        },
        Some(a)
            if a.resource == "namespaces" && a.name == Some(own.as_str()) && a.verb == "get" =>
        {
            Ok(())
        }
        Some(a) => Err(forbidden(identity, &a)),
        None => Err(ApiError::Forbidden(format!(
            "forbidden: User \"{}\" cannot get path \"{path}\"",
            identity.user
        ))),
    }
}

/// Middleware: authenticate (401 when nobody), authorize (403), then pass the identity on.
pub async fn middleware(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let by_token = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| auth.by_token(h));
    let identity = by_token.or_else(|| {
        request
            .extensions()
            .get::<PeerIdentity>()
            .and_then(|p| p.0.clone())
    });
    let Some(identity) = identity else {
        if is_public(&path) {
            return next.run(request).await;
        }
        return ApiError::Unauthorized.into_response();
    };
    let watch = Params::parse(request.uri().query()).flag("watch");
    let decision = match &identity.scope {
        Scope::ServiceAccount { namespace, name } => authorize_account(
            &auth,
            &identity,
            (namespace, name),
            request.method(),
            &path,
            watch,
        ),
        _ => authorize(&identity, request.method(), &path, watch),
    };
    if let Err(e) = decision {
        return e.into_response();
    }
    request.extensions_mut().insert(identity);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restricted() -> Identity {
        Identity {
            user: "dev".into(),
            groups: vec![],
            scope: Scope::Namespace("team-a".into()),
            rules: None,
        }
    }

    #[test]
    fn a_role_grants_only_its_rules() {
        let rules: Vec<PolicyRule> = serde_json::from_str(
            r#"[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "create"]},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["*"], "verbs": ["list"]}]"#,
        )
        .unwrap();
        let id = Identity {
            rules: Some(rules),
            ..restricted()
        };
        let pods = "/api/v1/namespaces/team-a/pods";
        assert!(authorize(&id, &Method::POST, pods, false).is_ok());
        assert!(authorize(&id, &Method::GET, &format!("{pods}/p"), false).is_ok());
        let e = authorize(&id, &Method::DELETE, &format!("{pods}/p"), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "pods \"p\" is forbidden: User \"dev\" cannot delete resource \"pods\" in API group \"\" \
             in the namespace \"team-a\""
        );
        assert!(authorize(&id, &Method::GET, &format!("{pods}/p/exec"), false).is_err());
        let leases = "/apis/coordination.k8s.io/v1/namespaces/team-a/leases";
        assert!(authorize(&id, &Method::GET, leases, false).is_ok());
        assert!(authorize(&id, &Method::POST, leases, false).is_err());
        // Outside its namespace the rules do not matter.
        assert!(authorize(&id, &Method::GET, "/api/v1/namespaces/b/pods", false).is_err());
    }

    #[test]
    fn restricted_user_stays_in_its_namespace() {
        let id = restricted();
        assert!(authorize(&id, &Method::GET, "/api/v1/namespaces/team-a/pods", false).is_ok());
        assert!(authorize(&id, &Method::POST, "/api/v1/namespaces/team-a/pods", false).is_ok());
        assert!(authorize(&id, &Method::GET, "/api/v1/namespaces/team-a", false).is_ok());
        assert!(authorize(&id, &Method::GET, "/api/v1", false).is_ok());
        let e = authorize(&id, &Method::GET, "/api/v1/namespaces/default/pods", false).unwrap_err();
        assert_eq!(e.code(), 403);
        assert_eq!(
            e.body()["message"],
            "pods is forbidden: User \"dev\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        let e = authorize(&id, &Method::GET, "/api/v1/pods", true).unwrap_err();
        assert!(e
            .to_string()
            .contains("cannot watch resource \"pods\" in API group \"\" at the cluster scope"));
        let e = authorize(&id, &Method::DELETE, "/api/v1/namespaces/team-a", false).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("namespaces \"team-a\" is forbidden"));
    }

    #[test]
    fn grouped_resources_in_the_namespace_and_outside() {
        let id = restricted();
        let leases = "/apis/coordination.k8s.io/v1/namespaces/team-a/leases";
        assert!(authorize(&id, &Method::POST, leases, false).is_ok());
        assert!(authorize(&id, &Method::PUT, &format!("{leases}/l"), false).is_ok());
        assert!(authorize(&id, &Method::GET, "/apis/coordination.k8s.io/v1", false).is_ok());
        assert!(authorize(&id, &Method::GET, "/apis/coordination.k8s.io/", false).is_ok());
        assert!(authorize(&id, &Method::GET, "/apis/", false).is_ok());
        let e = authorize(
            &id,
            &Method::GET,
            "/apis/coordination.k8s.io/v1/namespaces/default/leases",
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "leases.coordination.k8s.io is forbidden: User \"dev\" cannot list resource \"leases\" \
             in API group \"coordination.k8s.io\" in the namespace \"default\""
        );
        let e = authorize(
            &id,
            &Method::PUT,
            "/apis/coordination.k8s.io/v1/namespaces/x/leases/l",
            false,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with(
            "leases.coordination.k8s.io \"l\" is forbidden: User \"dev\" cannot update"
        ));
        let e = authorize(
            &id,
            &Method::GET,
            "/apis/coordination.k8s.io/v1/leases",
            true,
        )
        .unwrap_err();
        assert!(e.to_string().contains("cannot watch resource \"leases\" in API group \"coordination.k8s.io\" at the cluster scope"));
    }

    #[test]
    fn service_accounts_get_what_their_role_bindings_grant() {
        use serde_json::json;
        let store = Store::new(10);
        let accounts = Arc::new(ServiceAccountTokens::default());
        let auth = Authenticator::new(store.clone(), accounts.clone());
        let token = accounts.issue("app", "robot");
        store.create(
            Key::new(Kind::Role, "guests", "r"),
            json!({"rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["one"]}]}),
        );
        store.create(
            Key::new(Kind::RoleBinding, "guests", "b"),
            json!({"roleRef": {"kind": "Role", "name": "r"},
                   "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "app"}]}),
        );
        let id = auth.by_token(&format!("Bearer {token}")).unwrap();
        assert_eq!(id.user, "system:serviceaccount:app:robot");
        let check = |method: &Method, path: &str| {
            authorize_account(&auth, &id, ("app", "robot"), method, path, false)
        };
        assert!(check(&Method::POST, "/api/v1/namespaces/guests/pods").is_ok());
        assert!(check(&Method::GET, "/api/v1/namespaces/guests").is_ok());
        assert!(check(&Method::GET, "/api/v1").is_ok());
        let e = check(&Method::GET, "/api/v1/namespaces/guests/pods").unwrap_err();
        assert_eq!(
            e.to_string(),
            "pods is forbidden: User \"system:serviceaccount:app:robot\" cannot list resource \
             \"pods\" in API group \"\" in the namespace \"guests\""
        );
        assert!(check(&Method::POST, "/api/v1/namespaces/app/pods").is_err());
        // A rule with resourceNames grants nothing rather than everything.
        assert!(check(&Method::GET, "/api/v1/namespaces/guests/secrets/one").is_err());
        accounts.revoke("app", "robot");
        assert!(auth.by_token(&format!("Bearer {token}")).is_none());
    }

    #[test]
    fn subresources_are_named() {
        let a = attributes(&Method::GET, "/api/v1/namespaces/x/pods/p/exec", false).unwrap();
        assert_eq!(a.resource, "pods/exec");
        assert_eq!(a.namespace, Some("x"));
        assert_eq!(a.name, Some("p"));
    }
}
