//! `bearerTokenFile`: the token is read from the file, trimmed, and read again whenever the
//! file changes (projected service-account tokens rotate every hour or so).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;

use http::{HeaderValue, Request};
use tower::{Layer, Service};

/// The current token of a token file.
#[derive(Debug)]
pub(crate) struct TokenFile {
    path: PathBuf,
    cached: Mutex<Option<(SystemTime, HeaderValue)>>,
}

impl TokenFile {
    pub(crate) fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            cached: Mutex::new(None),
        }
    }

    /// The `Authorization` header value: the file's token, read again when its modification
    /// time changed. A file that cannot be read keeps the last good token.
    pub(crate) fn header(&self) -> std::io::Result<HeaderValue> {
        let modified = std::fs::metadata(&self.path)?.modified()?;
        let mut cached = self
            .cached
            .lock()
            .map_err(|_| std::io::Error::other("token cache poisoned"))?;
        if let Some((seen, value)) = cached.as_ref() {
            if *seen == modified {
                return Ok(value.clone());
            }
        }
        let token = std::fs::read_to_string(&self.path)?;
        let mut value = HeaderValue::try_from(format!("Bearer {}", token.trim()))
            .map_err(|_| std::io::Error::other("the token is not a valid header value"))?;
        value.set_sensitive(true);
        *cached = Some((modified, value.clone()));
        Ok(value)
    }
}

/// Sets `Authorization` from a [`TokenFile`] on every request.
#[derive(Debug, Clone)]
pub(crate) struct TokenFileLayer(pub(crate) Arc<TokenFile>);

impl<S> Layer<S> for TokenFileLayer {
    type Service = WithTokenFile<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithTokenFile {
            inner,
            file: Arc::clone(&self.0),
        }
    }
}

/// A service whose requests carry the token file's token.
#[derive(Debug, Clone)]
pub(crate) struct WithTokenFile<S> {
    inner: S,
    file: Arc<TokenFile>,
}

impl<S, B> Service<Request<B>> for WithTokenFile<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        match self.file.header() {
            Ok(value) => {
                request
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, value);
            }
            Err(e) => tracing::warn!(
                path = %self.file.path.display(),
                error = &e as &dyn std::error::Error,
                "cannot read the bearer token file"
            ),
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_trimmed_and_read_again_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let file = TokenFile::new(&path);
        assert_eq!(file.header().unwrap(), "Bearer first");
        std::fs::write(&path, "second\n").unwrap();
        // A different modification time marks the rotation.
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(file.header().unwrap(), "Bearer second");
        assert!(file.header().unwrap().is_sensitive());
    }
}
