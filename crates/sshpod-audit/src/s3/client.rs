//! The object_store client of `audit.s3`: endpoint and addressing, region, credentials, the CA,
//! the canned ACL, and timeouts that let the uploader see an outage quickly (its own backoff
//! then takes over, instead of object_store's minutes of retries).

use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{HttpClient, HttpConnector, HttpRequestBody, ReqwestConnector};
use object_store::path::Path as Key;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::{
    BackoffConfig, Certificate, ClientOptions, HeaderMap, HeaderValue, RetryConfig,
};
use sshpod_config::AuditS3Config;
use tracing::info;
use url::{Host, Url};

use super::S3Error;

/// S3's canned ACLs: what `acl` may name.
const CANNED_ACLS: [&str; 8] = [
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
    "log-delivery-write",
];

/// S3's largest part.
pub(crate) const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// What a client is for: only the uploader's sends the ACL (on every request, as S3 ignores it
/// where it does not apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// Where requests go and how the bucket is named in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Addressing {
    /// The endpoint handed to object_store (with the bucket in the host when virtual-hosted);
    /// none: AWS's, from the region.
    pub(crate) endpoint: Option<String>,
    /// Virtual-hosted (`bucket.host/key`) rather than path style (`host/bucket/key`).
    pub(crate) virtual_hosted: bool,
    /// The endpoint is plain http.
    pub(crate) allow_http: bool,
    /// Why path style is used although `pathStyleAccess` is false.
    pub(crate) path_style_because: Option<&'static str>,
}

/// Decides the addressing for `endpoint` (empty: AWS) and `bucket`.
pub(crate) fn addressing(
    endpoint: &str,
    bucket: &str,
    path_style: bool,
) -> Result<Addressing, S3Error> {
    let endpoint = endpoint.trim();
    if endpoint.is_empty() {
        let because = (!path_style && !dns_compatible(bucket, true))
            .then_some("the bucket's name is not a DNS name");
        return Ok(Addressing {
            endpoint: None,
            virtual_hosted: !path_style && because.is_none(),
            allow_http: false,
            path_style_because: because,
        });
    }
    let invalid = || S3Error::Endpoint {
        endpoint: without_credentials(endpoint),
    };
    let mut url = Url::parse(endpoint).map_err(|_| invalid())?;
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        _ => return Err(invalid()),
    };
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        return Err(invalid());
    }
    let host = match url.host() {
        Some(Host::Domain(domain)) => domain.to_ascii_lowercase(),
        Some(Host::Ipv4(_) | Host::Ipv6(_)) => String::new(),
        None => return Err(invalid()),
    };
    let because = if path_style {
        None
    } else if host.is_empty() {
        Some("the endpoint's host is an IP address")
    } else if host == "localhost" || host.ends_with(".localhost") {
        Some("the endpoint's host is localhost")
    } else if !dns_compatible(bucket, https) {
        Some("the bucket's name is not a DNS name")
    } else {
        None
    };
    let virtual_hosted = !path_style && because.is_none();
    if virtual_hosted {
        url.set_host(Some(&format!("{bucket}.{host}")))
            .map_err(|_| invalid())?;
    }
    Ok(Addressing {
        endpoint: Some(url.as_str().trim_end_matches('/').to_owned()),
        virtual_hosted,
        allow_http: !https,
        path_style_because: because,
    })
}

/// `endpoint` fit for a message: credentials in it (`https://user:pass@host`, refused) are
/// replaced.
fn without_credentials(endpoint: &str) -> String {
    match (endpoint.find("://"), endpoint.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}<secret>{}", &endpoint[..scheme + 3], &endpoint[at..])
        }
        _ => endpoint.to_owned(),
    }
}

/// Whether `bucket` can stand in front of a host name (and, over https, under a wildcard
/// certificate, which rules out dots).
fn dns_compatible(bucket: &str, https: bool) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.'])
        && !bucket.contains("..")
        && (!https || !bucket.contains('.'))
}

/// Checks the parts of `config` the client does not check itself.
pub(crate) fn check(config: &AuditS3Config) -> Result<(), S3Error> {
    if config.upload_part_size == 0 || config.upload_part_size > MAX_PART_SIZE {
        return Err(S3Error::PartSize {
            size: config.upload_part_size,
        });
    }
    if !config.acl.is_empty() && !CANNED_ACLS.contains(&config.acl.as_str()) {
        return Err(S3Error::Acl {
            acl: config.acl.clone(),
        });
    }
    if config.access_key.expose_secret().is_empty() != config.secret_key.expose_secret().is_empty()
    {
        return Err(S3Error::Credentials);
    }
    Ok(())
}

/// The bucket of `audit.s3`: object_store's client, and a plain HTTP client (same TLS and
/// timeouts) for the one request object_store does not make.
#[derive(Clone)]
pub(crate) struct Bucket {
    pub(crate) store: AmazonS3,
    http: HttpClient,
}

/// Only the store's name: object_store's own `Debug` shows the access key id.
impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Bucket")
            .field(&format_args!("{}", self.store))
            .finish()
    }
}

impl Bucket {
    /// Whether the store still knows the multipart upload `id` of `key` (a ListParts request).
    /// Asked when a part or the completion fails: S3 answers NoSuchUpload to those, but not
    /// every S3-compatible store does (moto answers 500), and ListParts says it plainly.
    pub(crate) async fn knows_upload(&self, key: &Key, id: &str) -> object_store::Result<bool> {
        let options =
            SignedUrlOptions::default().with_query([("uploadId", id), ("max-parts", "1")]);
        let url = self
            .store
            .signed_url_opts(http::Method::GET, key, Duration::from_secs(300), &options)
            .await?;
        let request = http::Request::get(url.as_str())
            .body(HttpRequestBody::empty())
            .map_err(|e| generic(Box::new(e)))?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| generic(Box::new(e)))?;
        match response.status() {
            status if status.is_success() => Ok(true),
            // NoSuchUpload, or NoSuchBucket: either way the upload is gone.
            http::StatusCode::NOT_FOUND => Ok(false),
            status => Err(generic(
                format!("listing the parts of an upload: {status}").into(),
            )),
        }
    }
}

fn generic(source: Box<dyn std::error::Error + Send + Sync>) -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source,
    }
}

/// The client of `config`'s bucket.
pub(crate) fn build(config: &AuditS3Config, access: Access) -> Result<Bucket, S3Error> {
    check(config)?;
    let addressing = addressing(&config.endpoint, &config.bucket, config.path_style_access)?;
    if let Some(because) = addressing.path_style_because {
        info!(
            bucket = %config.bucket,
            endpoint = %config.endpoint,
            "audit.s3: path-style addressing, as {because} (pathStyleAccess: false asks for virtual hosts)"
        );
    }

    // A part must get through in the timeout: a minute plus 256 KiB/s.
    let transfer = Duration::from_secs(60 + config.upload_part_size / (256 * 1024));
    let mut options = ClientOptions::new()
        .with_allow_http(addressing.allow_http)
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(transfer);
    if !config.cacert.trim().is_empty() {
        let certificates =
            Certificate::from_pem_bundle(config.cacert.as_bytes()).map_err(|source| {
                S3Error::CaCert {
                    source: Some(source),
                }
            })?;
        if certificates.is_empty() {
            return Err(S3Error::CaCert { source: None });
        }
        // `cacert` is what the endpoint's certificate must chain to: the system's roots are
        // not trusted besides it.
        options = options.with_no_system_certificates(true);
        for certificate in certificates {
            options = options.with_root_certificate(certificate);
        }
    }
    // The plain client has no ACL header: it only reads, and would not sign it.
    let http = ReqwestConnector::default()
        .connect(&options)
        .map_err(|source| S3Error::Client {
            bucket: config.bucket.clone(),
            source,
        })?;
    if access == Access::Write && !config.acl.is_empty() {
        let mut headers = HeaderMap::new();
        let acl = HeaderValue::from_str(&config.acl).map_err(|_| S3Error::Acl {
            acl: config.acl.clone(),
        })?;
        headers.insert("x-amz-acl", acl);
        options = options.with_default_headers(headers);
    }

    let region = if config.region.trim().is_empty() {
        "us-east-1"
    } else {
        config.region.trim()
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&config.bucket)
        .with_region(region)
        .with_virtual_hosted_style_request(addressing.virtual_hosted)
        .with_client_options(options)
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 2,
            retry_timeout: Duration::from_secs(20),
        });
    if let Some(endpoint) = &addressing.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if !config.access_key.expose_secret().is_empty() {
        builder = builder
            .with_access_key_id(config.access_key.expose_secret())
            .with_secret_access_key(config.secret_key.expose_secret());
    }
    let store = builder.build().map_err(|source| S3Error::Client {
        bucket: config.bucket.clone(),
        source,
    })?;
    Ok(Bucket { store, http })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_style_on_request_and_for_hosts_a_bucket_cannot_prefix() -> Result<(), S3Error> {
        let forced = addressing("https://s3.example.com", "logs", true)?;
        assert_eq!(forced.endpoint.as_deref(), Some("https://s3.example.com"));
        assert!(!forced.virtual_hosted);
        assert_eq!(forced.path_style_because, None);

        for endpoint in [
            "http://127.0.0.1:9000",
            "http://[::1]:9000/",
            "http://localhost:9000",
        ] {
            let chosen = addressing(endpoint, "logs", false)?;
            assert!(!chosen.virtual_hosted, "{endpoint}");
            assert!(chosen.allow_http, "{endpoint}");
            assert!(chosen.path_style_because.is_some(), "{endpoint}");
        }
        let dotted = addressing("https://s3.example.com", "audit.logs", false)?;
        assert!(
            !dotted.virtual_hosted,
            "a dotted bucket breaks the wildcard certificate"
        );
        Ok(())
    }

    #[test]
    fn virtual_hosts_put_the_bucket_in_front_of_the_endpoint() -> Result<(), S3Error> {
        let hosted = addressing("https://s3.example.com:8443/", "logs", false)?;
        assert_eq!(
            hosted.endpoint.as_deref(),
            Some("https://logs.s3.example.com:8443")
        );
        assert!(hosted.virtual_hosted);
        assert!(!hosted.allow_http);

        let aws = addressing("", "logs", false)?;
        assert_eq!(aws.endpoint, None);
        assert!(aws.virtual_hosted);
        assert!(!addressing("", "Logs_2", false)?.virtual_hosted);
        Ok(())
    }

    #[test]
    fn endpoints_that_are_not_http_urls_are_refused() {
        for endpoint in [
            "s3.example.com",
            "ftp://s3.example.com",
            "https://user:pass@s3.example.com",
            "https://s3.example.com/?x=1",
            "unix:/run/s3.sock",
        ] {
            assert!(
                matches!(
                    addressing(endpoint, "logs", true),
                    Err(S3Error::Endpoint { .. })
                ),
                "{endpoint}"
            );
        }
    }

    #[test]
    fn a_refused_endpoint_is_reported_without_its_credentials() {
        let error = addressing("https://key:hunter2@s3.example.com", "logs", true)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("https://<secret>@s3.example.com"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn bucket_names_that_fit_a_host_name() {
        assert!(dns_compatible("audit-logs-1", true));
        assert!(dns_compatible("audit.logs", false));
        for bad in ["ab", "Audit", "audit_logs", "-audit", "audit-", "a..b"] {
            assert!(!dns_compatible(bad, false), "{bad}");
        }
    }
}
