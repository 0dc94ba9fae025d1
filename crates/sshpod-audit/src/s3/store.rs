//! Recordings read back from the bucket, for `sshpod audit ... --s3` and the recordings page:
//! the bucket holds the spool's tree, so a connection is a key's first segment.

use std::collections::BTreeSet;
use std::io;

use object_store::aws::AmazonS3;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};
use sshpod_config::AuditS3Config;
use sshpod_core::BoxFuture;

use super::client::{self, Access};
use super::S3Error;
use crate::store::{is_plain_name, Store};

/// The recordings in an S3 bucket.
#[derive(Clone)]
pub struct S3Store {
    store: AmazonS3,
    bucket: String,
}

/// Only the bucket: object_store's own `Debug` shows the access key id.
impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .finish()
    }
}

impl S3Store {
    /// The store of `config`'s bucket (the spool and the ACL are not used).
    pub fn new(config: &AuditS3Config) -> Result<Self, S3Error> {
        Ok(Self {
            store: client::build(config, Access::Read)?.store,
            bucket: config.bucket.clone(),
        })
    }
}

/// `object_store`'s error as the [`Store`] trait reports it: a missing object is `NotFound`.
fn io_error(error: object_store::Error) -> io::Error {
    match error {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, error),
        other => io::Error::other(other),
    }
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no recording file {name}"))
}

fn key(text: &str) -> io::Result<Key> {
    Key::parse(text).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

impl Store for S3Store {
    fn list(&self) -> BoxFuture<'_, io::Result<Vec<String>>> {
        Box::pin(async move {
            let listing = self
                .store
                .list_with_delimiter(None)
                .await
                .map_err(io_error)?;
            // A directory of files (format sshpod) shows as a prefix, a one-file recording
            // as an object; the same id as both is one recording.
            let ids: BTreeSet<String> = listing
                .common_prefixes
                .iter()
                .map(|prefix| prefix.as_ref().to_owned())
                .chain(
                    listing
                        .objects
                        .iter()
                        .map(|object| object.location.as_ref().to_owned()),
                )
                .filter(|id| is_plain_name(id))
                .collect();
            Ok(ids.into_iter().collect())
        })
    }

    fn files<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, io::Result<Vec<(String, u64)>>> {
        Box::pin(async move {
            if !is_plain_name(connection) {
                return Ok(Vec::new());
            }
            let prefix = key(connection)?;
            let listing = self
                .store
                .list_with_delimiter(Some(&prefix))
                .await
                .map_err(io_error)?;
            let mut files: Vec<(String, u64)> = listing
                .objects
                .iter()
                .filter_map(|object| {
                    let name = object.location.filename()?;
                    is_plain_name(name).then(|| (name.to_owned(), object.size))
                })
                .collect();
            if files.is_empty() {
                match self.store.head(&prefix).await {
                    Ok(object) => files.push((connection.to_owned(), object.size)),
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(error) => return Err(io_error(error)),
                }
            }
            files.sort();
            Ok(files)
        })
    }

    fn read<'a>(
        &'a self,
        connection: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, io::Result<Vec<u8>>> {
        Box::pin(async move {
            if !is_plain_name(connection) || !is_plain_name(name) {
                return Err(not_found(name));
            }
            let inside = key(&format!("{connection}/{name}"))?;
            let object = match self.store.get(&inside).await {
                // A one-file recording's only file is named like the connection.
                Err(object_store::Error::NotFound { .. }) if name == connection => {
                    self.store.get(&key(connection)?).await
                }
                other => other,
            };
            let object = object.map_err(|error| match error {
                object_store::Error::NotFound { .. } => not_found(name),
                other => io_error(other),
            })?;
            let bytes = object.bytes().await.map_err(io_error)?;
            Ok(bytes.to_vec())
        })
    }

    fn describe(&self) -> String {
        format!("s3://{}", self.bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshpod_config::{AuditS3Metadata, Secret};

    #[test]
    fn debug_output_shows_no_credentials() -> Result<(), S3Error> {
        let config = AuditS3Config {
            local: "/nonexistent".into(),
            access_key: Secret::new("AKIDVISIBLE".to_owned()),
            secret_key: Secret::new("hunter2".to_owned()),
            bucket: "logs".to_owned(),
            region: String::new(),
            endpoint: "http://127.0.0.1:9".to_owned(),
            cacert: String::new(),
            acl: String::new(),
            path_style_access: true,
            upload_part_size: 5 * 1024 * 1024,
            parallel_uploads: 1,
            metadata: AuditS3Metadata::default(),
            max_spool_size: 0,
        };
        let store = S3Store::new(&config)?;
        let bucket = client::build(&config, Access::Write)?;
        for shown in [format!("{store:?}"), format!("{bucket:?}")] {
            assert!(!shown.contains("AKIDVISIBLE"), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("logs"), "{shown}");
        }
        Ok(())
    }
}
