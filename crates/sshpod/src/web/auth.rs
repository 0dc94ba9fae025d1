//! Who may see recordings: a bearer token, client certificates (checked by TLS before a request
//! is read, see `crate::http::tls`), or both. Never nobody: a server with neither does not start.
//!
//! API clients send `Authorization: Bearer <token>`. A browser logs in once with the token and
//! gets a session cookie (HttpOnly, SameSite=Strict, Secure under TLS) that holds an expiry time
//! and an HMAC-SHA256 of it keyed by the token, not the token itself: a cookie that leaks
//! expires, does not reveal the token, and is worthless once the token changes; the server keeps
//! no sessions, so a restart logs nobody out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Form;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use sshpod_config::{AuditWebConfig, Secret};

use super::AppState;

type HmacSha256 = Hmac<Sha256>;

/// The session cookie's name.
pub(super) const COOKIE_NAME: &str = "sshpod_session";

/// How long a browser stays logged in.
const SESSION: Duration = Duration::from_secs(12 * 3600);

/// The shortest token accepted: a short one would be guessed.
pub(super) const MIN_TOKEN_LEN: usize = 16;

/// Why the configuration cannot be served.
#[derive(Debug, thiserror::Error)]
pub(super) enum AccessError {
    /// Neither a token nor client certificates.
    #[error("audit.web needs a token or client certificates (clientcacert): the recordings page is never open to everyone")]
    Open,
    /// A token too short to resist guessing.
    #[error("audit.web.token is shorter than {MIN_TOKEN_LEN} characters")]
    ShortToken,
}

/// The configured ways in.
#[derive(Debug)]
pub(super) struct Access {
    token: Option<Token>,
    /// Whether cookies are marked Secure (the server speaks TLS).
    secure: bool,
}

/// The configured token, compared in constant time.
struct Token {
    value: Secret<String>,
    /// A per-process key: a presented token is compared through its HMAC, so the comparison
    /// takes as long whatever it is (and whatever its length).
    probe: [u8; 32],
    expected: Vec<u8>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<secret>)")
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    for part in parts {
        mac.update(part);
    }
    mac
}

impl Token {
    fn new(value: &str) -> Self {
        let probe: [u8; 32] = rand::random();
        let expected = mac(&probe, &[value.as_bytes()])
            .finalize()
            .into_bytes()
            .to_vec();
        Self {
            value: Secret::new(value.to_owned()),
            probe,
            expected,
        }
    }

    fn matches(&self, presented: &[u8]) -> bool {
        mac(&self.probe, &[presented])
            .verify_slice(&self.expected)
            .is_ok()
    }

    fn cookie_mac(&self, expires: u64) -> HmacSha256 {
        mac(
            self.value.expose_secret().as_bytes(),
            &[b"sshpod web session\0", expires.to_string().as_bytes()],
        )
    }

    /// A cookie value valid until `expires` (Unix seconds).
    fn cookie(&self, expires: u64) -> String {
        let tag = self.cookie_mac(expires).finalize().into_bytes();
        format!("{expires}.{}", hex::encode(tag))
    }

    /// Whether `value` is a cookie of this token that has not expired at `now`.
    fn cookie_valid(&self, value: &str, now: u64) -> bool {
        let Some((expires, tag)) = value.split_once('.') else {
            return false;
        };
        let (Ok(expires), Ok(tag)) = (expires.parse::<u64>(), hex::decode(tag)) else {
            return false;
        };
        expires > now
            && expires <= now + SESSION.as_secs()
            && self.cookie_mac(expires).verify_slice(&tag).is_ok()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Access {
    /// The ways in `config` names; `tls` says whether the server speaks TLS (with client
    /// certificates checked when `clientcacert` is set).
    pub(super) fn from_config(config: &AuditWebConfig, tls: bool) -> Result<Self, AccessError> {
        let token = config.token.expose_secret();
        if token.is_empty() && config.clientcacert.is_empty() {
            return Err(AccessError::Open);
        }
        if !token.is_empty() && token.chars().count() < MIN_TOKEN_LEN {
            return Err(AccessError::ShortToken);
        }
        Ok(Self {
            token: (!token.is_empty()).then(|| Token::new(token)),
            secure: tls,
        })
    }

    /// Whether a request's headers carry the token (as a bearer token or a session cookie).
    /// Without a token, client certificates (already checked) are enough.
    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        if let Some(authorization) = headers.get(AUTHORIZATION) {
            return match authorization.to_str().ok().and_then(|v| v.split_once(' ')) {
                Some((scheme, bearer)) if scheme.eq_ignore_ascii_case("bearer") => {
                    token.matches(bearer.trim().as_bytes())
                }
                _ => false,
            };
        }
        let now = now();
        cookies(headers)
            .filter(|(name, _)| *name == COOKIE_NAME)
            .any(|(_, value)| token.cookie_valid(value, now))
    }

    fn set_cookie(&self, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!(
            "{COOKIE_NAME}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
        );
        HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static(""))
    }
}

/// The `name=value` pairs of every `Cookie` header.
fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
}

fn refused() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
        axum::Json(serde_json::json!({ "error": "authentication required" })),
    )
        .into_response()
}

/// Middleware of the routes that show recordings.
pub(super) async fn require(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if state.access.admits(request.headers()) {
        next.run(request).await
    } else {
        refused()
    }
}

/// The login form.
#[derive(Deserialize)]
pub(super) struct Login {
    token: String,
}

/// `POST /login` (form field `token`): sets the session cookie, or 401.
pub(super) async fn login(State(state): State<AppState>, Form(login): Form<Login>) -> Response {
    let Some(token) = &state.access.token else {
        // Client certificates only: the connection is already admitted.
        return StatusCode::NO_CONTENT.into_response();
    };
    if !token.matches(login.token.trim().as_bytes()) {
        tracing::info!("recordings page: a login with a wrong token");
        return refused();
    }
    let cookie = token.cookie(now() + SESSION.as_secs());
    (
        StatusCode::NO_CONTENT,
        [(
            SET_COOKIE,
            state.access.set_cookie(&cookie, SESSION.as_secs()),
        )],
    )
        .into_response()
}

/// `POST /logout`: clears the session cookie.
pub(super) async fn logout(State(state): State<AppState>) -> Response {
    (
        StatusCode::NO_CONTENT,
        [(SET_COOKIE, state.access.set_cookie("", 0))],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(token: &str, clientcacert: &str) -> AuditWebConfig {
        AuditWebConfig {
            listen: "127.0.0.1:0".to_owned(),
            token: Secret::new(token.to_owned()),
            cert: String::new(),
            key: String::new(),
            clientcacert: clientcacert.to_owned(),
            assets: Default::default(),
        }
    }

    fn headers(list: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in list {
            if let Ok(value) = HeaderValue::from_str(value) {
                map.append(*name, value);
            }
        }
        map
    }

    const TOKEN: &str = "0123456789abcdef-token";

    #[test]
    fn never_open_and_never_a_short_token() {
        assert!(matches!(
            Access::from_config(&web("", ""), false),
            Err(AccessError::Open)
        ));
        assert!(matches!(
            Access::from_config(&web("short", ""), false),
            Err(AccessError::ShortToken)
        ));
        let certificates_only = Access::from_config(&web("", "ca.pem"), true);
        assert!(matches!(certificates_only, Ok(ref a) if a.admits(&HeaderMap::new())));
    }

    #[test]
    fn a_bearer_token_must_match_exactly() {
        let Ok(access) = Access::from_config(&web(TOKEN, ""), false) else {
            panic!("a valid configuration");
        };
        assert!(!access.admits(&HeaderMap::new()));
        assert!(access.admits(&headers(&[("authorization", &format!("Bearer {TOKEN}"))])));
        for wrong in [
            "Bearer 0123456789abcdef-toke",
            "Bearer 0123456789abcdef-token2",
            "Bearer ",
            "Basic MDEyMzQ1Njc4OWFiY2RlZi10b2tlbg==",
            TOKEN,
        ] {
            assert!(
                !access.admits(&headers(&[("authorization", wrong)])),
                "{wrong} admitted"
            );
        }
    }

    #[test]
    fn a_cookie_holds_no_token_and_expires() {
        let Ok(access) = Access::from_config(&web(TOKEN, ""), false) else {
            panic!("a valid configuration");
        };
        let Some(token) = &access.token else {
            panic!("a token");
        };
        let now = now();
        let cookie = token.cookie(now + 60);
        assert!(!cookie.contains(TOKEN));
        assert!(token.cookie_valid(&cookie, now));
        assert!(!token.cookie_valid(&cookie, now + 61), "expired");
        assert!(access.admits(&headers(&[(
            "cookie",
            &format!("theme=dark; {COOKIE_NAME}={cookie}")
        )])));

        // Another token's cookie, a forged expiry, a cookie too far in the future, garbage.
        let other = Token::new("another-token-of-16+");
        assert!(!token.cookie_valid(&other.cookie(now + 60), now));
        let (_, tag) = cookie.split_once('.').unwrap_or_default();
        assert!(!token.cookie_valid(&format!("{}.{tag}", now + 120), now));
        assert!(!token.cookie_valid(&token.cookie(now + 10 * SESSION.as_secs()), now));
        for garbage in ["", ".", "x.y", "1.zz", &format!("{}.", now + 60)] {
            assert!(!token.cookie_valid(garbage, now), "{garbage:?}");
        }
    }
}
