//! Where `sshpod audit` reads recordings: `--dir`, `--s3`, or what the configuration records
//! to; and which recording an id on the command line means.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use sshpod_audit::store::{is_plain_name, DirStore, Store};
use sshpod_config::{AuditS3Config, AuditStorage, ConfigErrors};

/// Why no store could be opened.
#[derive(Debug)]
pub(super) enum OpenError {
    /// The configuration, needed to find the store, is invalid.
    Config(ConfigErrors),
    /// Anything else.
    Other(anyhow::Error),
}

/// The store `source` names, or the configuration's.
pub(super) fn open(
    source: &crate::cli::AuditSource,
    config_path: &Path,
) -> Result<Arc<dyn Store>, OpenError> {
    if let Some(dir) = &source.dir {
        return directory(dir).map_err(OpenError::Other);
    }
    let loaded = sshpod_config::load(config_path).map_err(OpenError::Config)?;
    let audit = &loaded.config.audit;
    if source.s3 {
        return s3_store(&audit.s3).map_err(OpenError::Other);
    }
    match audit.storage {
        AuditStorage::File => directory(&audit.file.directory).map_err(OpenError::Other),
        AuditStorage::S3 => s3_store(&audit.s3).map_err(OpenError::Other),
        AuditStorage::None => Err(OpenError::Other(anyhow!(
            "{}: `audit.storage` is `none`; say where the recordings are with --dir DIR or --s3",
            config_path.display()
        ))),
    }
}

fn directory(dir: &Path) -> anyhow::Result<Arc<dyn Store>> {
    // Said here, once, rather than as a "no recording" for every id.
    let metadata = std::fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    if !metadata.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    Ok(Arc::new(DirStore::new(dir)))
}

/// The configuration's bucket.
fn s3_store(config: &AuditS3Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = sshpod_audit::s3::S3Store::new(config)
        .with_context(|| format!("reading the bucket `{}`", config.bucket))?;
    Ok(Arc::new(store))
}

/// The recording `id` means: itself, or the one recording whose id starts with it.
pub(super) async fn find(store: &dyn Store, id: &str) -> anyhow::Result<String> {
    if !is_plain_name(id) {
        bail!("`{id}` is not a connection id");
    }
    if !store.files(id).await?.is_empty() {
        return Ok(id.to_owned());
    }
    let mut matches: Vec<String> = store
        .list()
        .await
        .with_context(|| format!("listing {}", store.describe()))?
        .into_iter()
        .filter(|candidate| candidate.starts_with(id))
        .collect();
    matches.sort();
    match matches.as_slice() {
        [] => bail!("no recording {id} in {}", store.describe()),
        [one] => Ok(one.clone()),
        several => {
            let shown: Vec<&str> = several.iter().take(5).map(String::as_str).collect();
            let more = if several.len() > shown.len() {
                ", ..."
            } else {
                ""
            };
            bail!(
                "`{id}` starts {} recordings' ids ({}{more}); give more of it",
                several.len(),
                shown.join(", ")
            )
        }
    }
}
