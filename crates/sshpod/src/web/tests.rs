//! The recordings page's server: who gets in, what the list and the API say about recordings
//! written in the recorder's layout, that no URL reaches outside them, the headers, and the
//! real listener (plain HTTP, HTTPS with client certificates).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::Value;
use sshpod_audit::chain::Chain;
use sshpod_audit::store::DirStore;
use sshpod_config::{AuditWebConfig, Secret};
use sshpod_core::Lifecycle;
use tower::ServiceExt;

use super::*;

const TOKEN: &str = "test-token-0123456789";
/// Recordings: complete with a terminal session, interrupted, ContainerSSH's one-file format.
const COMPLETE: &str = "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a";
const INTERRUPTED: &str = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b";
const ONE_FILE: &str = "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c";
/// Outside the recordings: no URL may reach it.
const SECRET: &str = "SECRET-OUTSIDE-THE-RECORDINGS";
const ONE_FILE_BYTES: &[u8] = b"\x1f\x8b binary audit log";
const CAST: &str = "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1796616000,\"env\":{\"TERM\":\"xterm\"}}\n[0.5,\"o\",\"hello from the recording\\r\\n\"]\n";

fn must<T, E: std::fmt::Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

/// An event log as the recorder writes it: `(at, channel, kind, fields)` per line.
fn event_log(connection: &str, user: &str, lines: &[(&str, Option<u32>, &str, &str)]) -> Vec<u8> {
    let mut chain = Chain::new();
    let mut out = Vec::new();
    for (seq, (at, channel, kind, fields)) in lines.iter().enumerate() {
        let channel = channel.map_or("null".to_owned(), |c| c.to_string());
        let user = if seq == 0 {
            "null".to_owned()
        } else {
            format!("\"{user}\"")
        };
        let extra = if fields.is_empty() {
            String::new()
        } else {
            format!(",{fields}")
        };
        let content = format!(
            "{{\"seq\":{seq},\"at\":\"{at}\",\"connection\":\"{connection}\",\"remote\":\"192.0.2.7:5022\",\"user\":{user},\"channel\":{channel},\"kind\":\"{kind}\"{extra}}}"
        );
        out.extend(chain.link(content.as_bytes()));
    }
    out
}

/// A directory with three recordings, a state file, the player's files beside it, and a secret
/// next to both.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    assets: PathBuf,
}

fn fixture() -> Fixture {
    let dir = must(tempfile::tempdir(), "a temporary directory");
    let root = dir.path().join("recordings");
    let assets = dir.path().join("assets");
    let write = |path: PathBuf, bytes: &[u8]| {
        if let Some(parent) = path.parent() {
            must(std::fs::create_dir_all(parent), "a directory");
        }
        must(std::fs::write(&path, bytes), "a fixture file");
    };
    write(dir.path().join("secret.txt"), SECRET.as_bytes());
    write(assets.join("asciinema-player.min.js"), b"/* the player */");
    write(assets.join("asciinema-player.css"), b".ap {}");
    write(
        root.join(COMPLETE).join("events.jsonl"),
        &event_log(
            COMPLETE,
            "alice",
            &[
                ("2026-12-07T04:00:00.000000000Z", None, "connected", ""),
                (
                    "2026-12-07T04:00:00.200000000Z",
                    None,
                    "login-accepted",
                    "\"method\":\"publickey\",\"authenticated\":\"alice\"",
                ),
                (
                    "2026-12-07T04:00:00.300000000Z",
                    Some(0),
                    "channel-opened",
                    "\"channelKind\":\"session\"",
                ),
                (
                    "2026-12-07T04:00:01.000000000Z",
                    Some(0),
                    "process-starting",
                    "\"command\":\"shell\",\"tty\":true",
                ),
                (
                    "2026-12-07T04:00:03.000000000Z",
                    Some(0),
                    "process-exited",
                    "\"exitStatus\":0",
                ),
                (
                    "2026-12-07T04:00:03.500000000Z",
                    None,
                    "end",
                    "\"lines\":5,\"files\":1",
                ),
            ],
        ),
    );
    write(root.join(COMPLETE).join("channel-0.cast"), CAST.as_bytes());
    write(root.join(COMPLETE).join("channel-1.stdout"), b"out");
    write(
        root.join(INTERRUPTED).join("events.jsonl"),
        &event_log(
            INTERRUPTED,
            "bob",
            &[
                ("2026-12-07T05:00:00Z", None, "connected", ""),
                (
                    "2026-12-07T05:00:01Z",
                    None,
                    "login-accepted",
                    "\"authenticated\":\"bob\"",
                ),
            ],
        ),
    );
    write(root.join(ONE_FILE), ONE_FILE_BYTES);
    write(
        root.join(".state").join(format!("{COMPLETE}.json")),
        SECRET.as_bytes(),
    );
    Fixture {
        _dir: dir,
        root,
        assets,
    }
}

fn config(token: &str, assets: &Path) -> AuditWebConfig {
    AuditWebConfig {
        listen: "127.0.0.1:0".to_owned(),
        token: Secret::new(token.to_owned()),
        cert: String::new(),
        key: String::new(),
        clientcacert: String::new(),
        assets: assets.to_owned(),
    }
}

fn app(fixture: &Fixture) -> Router {
    let access = must(
        Access::from_config(&config(TOKEN, &fixture.assets), false),
        "the access",
    );
    router(AppState {
        store: Arc::new(DirStore::new(&fixture.root)),
        access: Arc::new(access),
        assets: Arc::new(fixture.assets.clone()),
        summaries: Arc::default(),
    })
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        must(serde_json::from_slice(&self.body), "a JSON body")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

async fn call(app: &Router, request: Request<Body>) -> Answer {
    let response = must(app.clone().oneshot(request).await, "a response");
    let status = response.status();
    let headers = response.headers().clone();
    let body = must(
        axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024).await,
        "the body",
    );
    Answer {
        status,
        headers,
        body: body.to_vec(),
    }
}

fn get(uri: &str, auth: Option<(&'static str, String)>) -> Request<Body> {
    let mut request = Request::get(uri);
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    must(request.body(Body::empty()), "a request")
}

fn bearer() -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {TOKEN}")))
}

#[tokio::test]
async fn recordings_are_shown_only_with_the_token() {
    let fixture = fixture();
    let app = app(&fixture);
    let protected = [
        "/api/recordings".to_owned(),
        format!("/api/recordings/{COMPLETE}/events"),
        format!("/api/recordings/{COMPLETE}/files/channel-0.cast"),
    ];
    for uri in &protected {
        for auth in [
            None,
            Some(("authorization", "Bearer wrong-token-0123456789".to_owned())),
            Some(("authorization", format!("Bearer {TOKEN}x"))),
            Some(("authorization", format!("Basic {TOKEN}"))),
            Some(("cookie", format!("{}={TOKEN}", auth::COOKIE_NAME))),
        ] {
            let answer = call(&app, get(uri, auth.clone())).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{uri} with {auth:?}"
            );
            assert_eq!(answer.header("www-authenticate"), "Bearer");
            assert!(!String::from_utf8_lossy(&answer.body).contains("hello"));
        }
        let answer = call(&app, get(uri, bearer())).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri} with the token");
    }
    // The page itself and the player (public code) need no login: they ask for one.
    for uri in [
        "/",
        "/app.js",
        "/app.css",
        "/assets/asciinema-player.min.js",
    ] {
        assert_eq!(
            call(&app, get(uri, None)).await.status,
            StatusCode::OK,
            "{uri}"
        );
    }
}

fn login(token: &str) -> Request<Body> {
    must(
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}"))),
        "a request",
    )
}

#[tokio::test]
async fn a_browser_logs_in_once_and_keeps_a_cookie_that_is_not_the_token() {
    let fixture = fixture();
    let app = app(&fixture);

    let refused = call(&app, login("wrong-token-0123456789")).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.headers.get(header::SET_COOKIE).is_none());

    let accepted = call(&app, login(TOKEN)).await;
    assert_eq!(accepted.status, StatusCode::NO_CONTENT);
    let set_cookie = accepted.header("set-cookie").to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    assert!(!set_cookie.contains(TOKEN), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();

    let list = call(
        &app,
        get("/api/recordings", Some(("cookie", cookie.clone()))),
    )
    .await;
    assert_eq!(list.status, StatusCode::OK);

    // A changed cookie is worthless.
    let forged = cookie.replace(|c: char| c.is_ascii_digit() && c != '0', "0");
    let answer = call(&app, get("/api/recordings", Some(("cookie", forged)))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    let logout = call(
        &app,
        must(Request::post("/logout").body(Body::empty()), "a request"),
    )
    .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert!(logout.header("set-cookie").contains("Max-Age=0"));
}

#[tokio::test]
async fn the_list_is_built_from_the_recordings_newest_first() {
    let fixture = fixture();
    let app = app(&fixture);
    let list = call(&app, get("/api/recordings", bearer())).await.json();
    let ids: Vec<&str> = list
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        ids,
        [INTERRUPTED, COMPLETE, ONE_FILE],
        "no state, no stray files"
    );

    let complete = &list[1];
    assert_eq!(complete["format"], "sshpod");
    assert_eq!(complete["user"], "alice");
    assert_eq!(complete["remote"], "192.0.2.7:5022");
    assert_eq!(complete["start"], "2026-12-07T04:00:00Z");
    assert_eq!(complete["duration"], 3.5);
    assert_eq!(complete["terminal"], true);
    assert_eq!(complete["casts"], serde_json::json!(["channel-0.cast"]));
    assert_eq!(complete["complete"], true);
    assert_eq!(complete["events"], 6);
    let log_size = std::fs::metadata(fixture.root.join(COMPLETE).join("events.jsonl"))
        .map(|m| m.len())
        .unwrap_or_default();
    assert_eq!(complete["size"], log_size + CAST.len() as u64 + 3);

    let interrupted = &list[0];
    assert_eq!(interrupted["user"], "bob");
    assert_eq!(interrupted["complete"], false);
    assert_eq!(interrupted["terminal"], false);
    assert_eq!(interrupted["duration"], 1.0);

    let one_file = &list[2];
    assert_eq!(one_file["format"], "containerssh");
    assert_eq!(one_file["size"], ONE_FILE_BYTES.len());
    assert_eq!(one_file["terminal"], false);
    assert_eq!(one_file["complete"], Value::Null);

    // A live recording's log grows: the list follows it.
    let log = fixture.root.join(INTERRUPTED).join("events.jsonl");
    let mut more = must(std::fs::read(&log), "the log");
    more.extend(b"{\"seq\":2,\"at\":\"2026-12-07T05:00:09Z\",\"kind\":\"end\"}\n");
    must(std::fs::write(&log, more), "the log");
    let list = call(&app, get("/api/recordings", bearer())).await.json();
    assert_eq!(list[0]["complete"], true);
    assert_eq!(list[0]["duration"], 9.0);
}

#[tokio::test]
async fn events_and_files_are_served_as_recorded() {
    let fixture = fixture();
    let app = app(&fixture);
    let events = call(
        &app,
        get(&format!("/api/recordings/{COMPLETE}/events"), bearer()),
    )
    .await;
    assert_eq!(events.status, StatusCode::OK);
    let events = events.json();
    let events = events.as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), 6);
    assert_eq!(events[3]["kind"], "process-starting");
    assert_eq!(events[3]["channel"], 0);
    assert!(events.iter().all(|e| e.get("chain").is_none()));

    let cast = call(
        &app,
        get(
            &format!("/api/recordings/{COMPLETE}/files/channel-0.cast"),
            bearer(),
        ),
    )
    .await;
    assert_eq!(cast.status, StatusCode::OK);
    assert_eq!(cast.header("content-type"), "application/x-asciicast");
    assert!(cast.header("content-disposition").starts_with("attachment"));
    assert_eq!(cast.body, CAST.as_bytes());

    let one_file = call(
        &app,
        get(
            &format!("/api/recordings/{ONE_FILE}/files/{ONE_FILE}"),
            bearer(),
        ),
    )
    .await;
    assert_eq!(one_file.status, StatusCode::OK);
    assert_eq!(one_file.header("content-type"), "application/octet-stream");

    for missing in [
        format!("/api/recordings/{COMPLETE}/files/channel-9.cast"),
        "/api/recordings/ffffffffffffffffffffffffffffffff/events".to_owned(),
        format!("/api/recordings/{ONE_FILE}/events"),
    ] {
        let answer = call(&app, get(&missing, bearer())).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(answer.json()["error"], "no such recording or file");
    }
}

#[tokio::test]
async fn no_url_reaches_outside_the_recordings() {
    let fixture = fixture();
    let app = app(&fixture);
    let attempts = [
        "/api/recordings/..%2Fsecret.txt/events".to_owned(),
        "/api/recordings/%2E%2E/files/secret.txt".to_owned(),
        "/api/recordings/../files/secret.txt".to_owned(),
        format!("/api/recordings/.state/files/{COMPLETE}.json"),
        format!("/api/recordings/{COMPLETE}/files/..%2F..%2Fsecret.txt"),
        format!("/api/recordings/{COMPLETE}/files/..%2F.state%2F{COMPLETE}.json"),
        format!("/api/recordings/{COMPLETE}/files/%2E%2E"),
        format!("/api/recordings/{COMPLETE}/files/..%5C..%5Csecret.txt"),
        format!("/api/recordings/{COMPLETE}/files/%2Fetc%2Fpasswd"),
        format!("/api/recordings/{COMPLETE}/files/events.jsonl%00.cast"),
        format!("/api/recordings/{COMPLETE}/../../secret.txt"),
        format!("/api/recordings/{COMPLETE}%2F..%2F..%2Fsecret.txt/events"),
        "/assets/..%2Fsecret.txt".to_owned(),
        "/assets/%2E%2E%2Fsecret.txt".to_owned(),
        "/assets/.%2E/secret.txt".to_owned(),
        "/assets/%2Fetc%2Fpasswd".to_owned(),
        "/assets/../secret.txt".to_owned(),
        "/../secret.txt".to_owned(),
    ];
    for uri in &attempts {
        let answer = call(&app, get(uri, bearer())).await;
        assert!(
            answer.status == StatusCode::NOT_FOUND || answer.status == StatusCode::BAD_REQUEST,
            "{uri}: {}",
            answer.status
        );
        assert!(
            !String::from_utf8_lossy(&answer.body).contains(SECRET),
            "{uri} leaked the secret"
        );
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let fixture = fixture();
    let app = app(&fixture);
    for (uri, auth) in [
        ("/", None),
        ("/app.js", None),
        ("/api/recordings", None),
        ("/api/recordings", bearer()),
        ("/no/such/page", None),
        ("/assets/asciinema-player.css", None),
    ] {
        let answer = call(&app, get(uri, auth)).await;
        let policy = answer.header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self' 'wasm-unsafe-eval'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{uri}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline"), "{uri}: {policy}");
        assert_eq!(answer.header("x-content-type-options"), "nosniff", "{uri}");
        assert_eq!(answer.header("referrer-policy"), "no-referrer", "{uri}");
        assert_eq!(answer.header("cache-control"), "no-store", "{uri}");
    }
    assert_eq!(
        call(&app, get("/app.js", None))
            .await
            .header("content-type"),
        "text/javascript; charset=utf-8"
    );
}

#[test]
fn the_page_runs_no_inline_script_and_loads_nothing_from_elsewhere() {
    let html = include_str!("page/index.html");
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert_eq!(scripts.len(), 2);
    for script in scripts {
        let tag = script.split('>').next().unwrap_or_default();
        assert!(
            tag.contains("src=\"/"),
            "an inline or foreign script: {tag}"
        );
        assert!(script.starts_with(&format!("{tag}></script>")));
    }
    for page in [
        html,
        include_str!("page/app.js"),
        include_str!("page/app.css"),
    ] {
        assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("//cdn"));
        assert!(
            !page.contains("innerHTML"),
            "recordings are shown as text only"
        );
    }
    // No inline event handlers (`onclick=` and the like).
    for (at, _) in html.match_indices(" on") {
        let name: String = html[at + 3..]
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .collect();
        assert!(
            !html[at + 3 + name.len()..].starts_with('='),
            "an inline handler: on{name}"
        );
    }
}

// ---- the real listener -------------------------------------------------------------------

/// Why `serve` refused `config`.
async fn refusal(config: &AuditWebConfig, root: &Path, lifecycle: &Lifecycle) -> String {
    match serve(config, Arc::new(DirStore::new(root)), lifecycle).await {
        Ok(bound) => panic!("started on {}", bound.url()),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn the_server_never_starts_open() {
    let fixture = fixture();
    let lifecycle = Lifecycle::new();
    let open = refusal(&config("", &fixture.assets), &fixture.root, &lifecycle).await;
    assert!(open.contains("never open to everyone"), "{open}");
    let short = refusal(&config("short", &fixture.assets), &fixture.root, &lifecycle).await;
    assert!(short.contains("shorter than 16"), "{short}");

    let mut half_tls = config(TOKEN, &fixture.assets);
    half_tls.cert = "cert.pem".to_owned();
    let half = refusal(&half_tls, &fixture.root, &lifecycle).await;
    assert!(half.contains("both cert and key"), "{half}");
    let mut mtls_without_tls = config("", &fixture.assets);
    mtls_without_tls.clientcacert = "ca.pem".to_owned();
    let plain = refusal(&mtls_without_tls, &fixture.root, &lifecycle).await;
    assert!(plain.contains("needs cert and key"), "{plain}");
    assert!(lifecycle.is_empty(), "nothing was left running");
}

#[tokio::test]
async fn without_the_player_recordings_are_still_listed() {
    let fixture = fixture();
    let lifecycle = Lifecycle::new();
    let mut web = config(TOKEN, &fixture.root.join("no-player-here"));
    web.listen = ":0".to_owned();
    let bound = must(
        serve(&web, Arc::new(DirStore::new(&fixture.root)), &lifecycle).await,
        "serving",
    );
    assert!(
        bound.local_addr().ip().is_unspecified(),
        "`:0` is every interface"
    );
    let local = format!("http://127.0.0.1:{}/", bound.local_addr().port());
    let client = reqwest::Client::new();
    let player = must(
        client
            .get(format!("{local}assets/asciinema-player.min.js"))
            .send()
            .await,
        "a request",
    );
    assert_eq!(player.status(), reqwest::StatusCode::NOT_FOUND);
    let list = must(
        client
            .get(format!("{local}api/recordings"))
            .bearer_auth(TOKEN)
            .send()
            .await,
        "a request",
    );
    assert_eq!(list.status(), reqwest::StatusCode::OK);
    lifecycle.cancel();
    must(
        tokio::time::timeout(Duration::from_secs(10), lifecycle.wait()).await,
        "the server stops",
    );
}

#[tokio::test]
async fn plain_http_serves_until_the_lifecycle_stops() {
    let fixture = fixture();
    let lifecycle = Lifecycle::new();
    let bound = must(
        serve(
            &config(TOKEN, &fixture.assets),
            Arc::new(DirStore::new(&fixture.root)),
            &lifecycle,
        )
        .await,
        "serving",
    );
    assert!(bound.url().starts_with("http://127.0.0.1:"));
    let client = reqwest::Client::new();
    let url = format!("{}api/recordings", bound.url());
    let refused = must(client.get(&url).send().await, "a request");
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
    let answer = must(
        client.get(&url).bearer_auth(TOKEN).send().await,
        "a request",
    );
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    let list: Value = must(answer.json().await, "a list");
    assert_eq!(list.as_array().map(Vec::len), Some(3));

    lifecycle.cancel();
    must(
        tokio::time::timeout(Duration::from_secs(10), lifecycle.wait()).await,
        "the server stops",
    );
    assert!(tokio::net::TcpStream::connect(bound.local_addr())
        .await
        .is_err());
}

/// A CA, and certificates it signs.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Authority {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = must(KeyPair::generate(), "a key");
        Self {
            issuer: must(CertifiedIssuer::self_signed(params, key), "a CA"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate and key (PEM) for a server at 127.0.0.1, or for a client.
    fn issue(&self, server: bool) -> (String, String) {
        let mut params = must(CertificateParams::new(Vec::<String>::new()), "parameters");
        if server {
            params.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        } else {
            params
                .distinguished_name
                .push(DnType::CommonName, "auditor");
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        let key = must(KeyPair::generate(), "a key");
        let cert = must(params.signed_by(&key, &self.issuer), "a certificate");
        (cert.pem(), key.serialize_pem())
    }
}

fn https_client(ca: &str, identity: Option<&(String, String)>) -> reqwest::Client {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        must(roots.add(must(cert, "a CA certificate")), "a root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = must(
        rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions(),
        "TLS versions",
    )
    .with_root_certificates(roots);
    let tls = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain: Vec<_> = CertificateDer::pem_slice_iter(cert.as_bytes())
                .filter_map(Result::ok)
                .collect();
            let key = must(PrivateKeyDer::from_pem_slice(key.as_bytes()), "a key");
            must(
                builder.with_client_auth_cert(chain, key),
                "a client certificate",
            )
        }
    };
    must(
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build(),
        "a client",
    )
}

#[tokio::test]
async fn https_with_client_certificates_refuses_clients_without_one() {
    let fixture = fixture();
    let ca = Authority::new("sshpod test CA");
    let stranger = Authority::new("someone else's CA");
    let (cert, key) = ca.issue(true);
    let mut web = config(TOKEN, &fixture.assets);
    web.cert = cert;
    web.key = key;
    web.clientcacert = ca.pem();
    let lifecycle = Lifecycle::new();
    let bound = must(
        serve(&web, Arc::new(DirStore::new(&fixture.root)), &lifecycle).await,
        "serving",
    );
    assert!(bound.url().starts_with("https://"));
    let url = format!("{}api/recordings", bound.url());

    for (who, client) in [
        ("no certificate", https_client(&ca.pem(), None)),
        (
            "a certificate of another CA",
            https_client(&ca.pem(), Some(&stranger.issue(false))),
        ),
    ] {
        let result = client.get(&url).bearer_auth(TOKEN).send().await;
        assert!(result.is_err(), "{who}: {:?}", result.map(|r| r.status()));
    }

    // A valid certificate gets in, and with a token configured it needs the token too.
    let client = https_client(&ca.pem(), Some(&ca.issue(false)));
    let without_token = must(client.get(&url).send().await, "a request");
    assert_eq!(without_token.status(), reqwest::StatusCode::UNAUTHORIZED);
    let answer = must(
        client.get(&url).bearer_auth(TOKEN).send().await,
        "a request",
    );
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    let login = must(
        client
            .post(format!("{}login", bound.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={TOKEN}"))
            .send()
            .await,
        "a login",
    );
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(cookie.contains("; Secure"), "under TLS: {cookie}");

    lifecycle.cancel();
    must(
        tokio::time::timeout(Duration::from_secs(10), lifecycle.wait()).await,
        "the server stops",
    );
}

#[tokio::test]
async fn client_certificates_alone_are_enough_when_no_token_is_set() {
    let fixture = fixture();
    let ca = Authority::new("sshpod test CA");
    let (cert, key) = ca.issue(true);
    let mut web = config("", &fixture.assets);
    web.cert = cert;
    web.key = key;
    web.clientcacert = ca.pem();
    let lifecycle = Lifecycle::new();
    let bound = must(
        serve(&web, Arc::new(DirStore::new(&fixture.root)), &lifecycle).await,
        "serving",
    );
    let url = format!("{}api/recordings", bound.url());
    let client = https_client(&ca.pem(), Some(&ca.issue(false)));
    let answer = must(client.get(&url).send().await, "a request");
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    assert!(https_client(&ca.pem(), None)
        .get(&url)
        .send()
        .await
        .is_err());
    lifecycle.cancel();
    must(
        tokio::time::timeout(Duration::from_secs(10), lifecycle.wait()).await,
        "the server stops",
    );
}
