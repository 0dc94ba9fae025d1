//! Writing the files a webhook asked for into a running container.
//!
//! Each file goes through a `/bin/sh` exec that creates the parent directory and copies its
//! stdin to the path, so it lands wherever the user's processes see it (tmpfs and volumes
//! included) and belongs to the container's user, as ContainerSSH's agent does.

use std::time::Duration;

use bollard::exec::CreateExecOptions;
use sshpod_core::{BackendError, ContainerFile, Deadline};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::engine::Engine;
use crate::exec::wait_exec_exit;

const SCRIPT: &str = r#"umask 077; mkdir -p "$(dirname "$1")" && cat > "$1""#;

/// Writes every file, in order, as `user` (`uid:gid`, with `identity`) or the container's
/// user; the first failure stops and is returned.
pub(crate) async fn write_all(
    engine: &Engine,
    container_id: &str,
    files: &[ContainerFile],
    user: Option<&str>,
    timeout: Duration,
) -> Result<(), BackendError> {
    for file in files {
        let write = write_one(engine, container_id, file, user, timeout);
        match tokio::time::timeout(timeout, write).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(BackendError::Timeout {
                    what: Deadline::WriteFile {
                        path: file.path.clone(),
                    },
                    after: timeout,
                })
            }
        }
    }
    Ok(())
}

async fn write_one(
    engine: &Engine,
    container_id: &str,
    file: &ContainerFile,
    user: Option<&str>,
    timeout: Duration,
) -> Result<(), BackendError> {
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| BackendError::WriteFile {
        path: file.path.clone(),
        source,
    };
    let created = engine
        .docker
        .create_exec(
            container_id,
            CreateExecOptions {
                attach_stdin: Some(true),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(vec![
                    "/bin/sh".to_owned(),
                    "-c".to_owned(),
                    SCRIPT.to_owned(),
                    "sh".to_owned(),
                    file.path.clone(),
                ]),
                user: user.map(str::to_owned),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| failed(Box::new(e)))?;
    let mut hijacked = engine
        .hijack(
            &format!("/exec/{}/start", created.id),
            r#"{"Detach":false,"Tty":false}"#,
        )
        .await
        .map_err(|e| failed(Box::new(e)))?;
    let content = file.content.clone();
    let mut writer = hijacked.writer;
    let feed = async move {
        writer.write_all(&content).await?;
        writer.shutdown().await
    };
    let mut sink = Vec::new();
    let drain = hijacked.reader.read_to_end(&mut sink);
    let (fed, _) = tokio::join!(feed, drain);
    fed.map_err(|e| failed(Box::new(e)))?;
    match wait_exec_exit(engine, &created.id, timeout).await? {
        0 => Ok(()),
        code => Err(failed(Box::new(HelperExit(code)))),
    }
}

/// Session mode: the container's main process is the user's program, so the files are copied
/// into the created container before it starts (through the archive API, owned by root, mode
/// 0600; a tmpfs or volume mounted at start hides files below it).
pub(crate) async fn upload_before_start(
    engine: &Engine,
    container_id: &str,
    files: &[ContainerFile],
) -> Result<(), BackendError> {
    if files.is_empty() {
        return Ok(());
    }
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| BackendError::WriteFile {
        path: files
            .iter()
            .map(|f| f.path.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        source,
    };
    let tar = archive(files).map_err(|e| failed(Box::new(e)))?;
    let options = bollard::query_parameters::UploadToContainerOptions {
        path: "/".to_owned(),
        ..Default::default()
    };
    engine
        .docker
        .upload_to_container(
            container_id,
            Some(options),
            bollard::body_full(bytes::Bytes::from(tar)),
        )
        .await
        .map_err(|e| failed(Box::new(e)))
}

/// A tar archive of the files, paths relative to `/`.
fn archive(files: &[ContainerFile]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for file in files {
        let path = file.path.trim_start_matches('/');
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o600);
        header.set_size(file.content.len() as u64);
        builder.append_data(&mut header, path, file.content.as_slice())?;
    }
    builder.into_inner()
}

/// The file-writing helper ran but failed (no space, a read-only path, ...): its exit
/// status, as the cause of a [`BackendError::WriteFile`].
#[derive(Debug, thiserror::Error)]
#[error("the helper writing the file exited with status {0}")]
struct HelperExit(i64);
