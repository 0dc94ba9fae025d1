//! Writing the files a webhook asked for into a running pod: each through an exec of
//! `/bin/sh` that creates the parent directory and copies its stdin to the path (mode 0600),
//! so it belongs to the pod's user and lands wherever the user's processes look.

use sshpod_core::{BackendError, ContainerFile, Identity};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::exec::Target;
use crate::pod::exit_code;

const SCRIPT: &str = r#"umask 077; mkdir -p "$(dirname "$1")" && cat > "$1""#;

/// Writes every file, in order; the first failure stops and is returned.
pub(crate) async fn write_all(
    target: &Target<'_>,
    files: &[ContainerFile],
) -> Result<(), BackendError> {
    write_all_as(target, files, None).await
}

/// Like [`write_all`], as `identity`'s user when there is one (the exec switches to them).
pub(crate) async fn write_all_as(
    target: &Target<'_>,
    files: &[ContainerFile],
    identity: Option<&Identity>,
) -> Result<(), BackendError> {
    for file in files {
        write_one(target, file, identity).await?;
    }
    Ok(())
}

async fn write_one(
    target: &Target<'_>,
    file: &ContainerFile,
    identity: Option<&Identity>,
) -> Result<(), BackendError> {
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| BackendError::WriteFile {
        path: file.path.clone(),
        source,
    };
    let params = kube::api::AttachParams {
        container: Some(target.container.to_owned()),
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
        ..kube::api::AttachParams::default()
    };
    let mut argv: Vec<String> = ["/bin/sh", "-c", SCRIPT, "sh", file.path.as_str()]
        .map(str::to_owned)
        .to_vec();
    if let Some(identity) = identity {
        argv = identity.run_as_argv(false, argv);
    }
    let mut attached = target
        .pods
        .pods()
        .exec(target.pod, argv, &params)
        .await
        .map_err(|e| failed(Box::new(e)))?;
    let mut stdin = attached.stdin().ok_or_else(|| failed("no stdin".into()))?;
    let status = attached.take_status();
    let (mut stdout, mut stderr) = (attached.stdout(), attached.stderr());
    let write = async {
        stdin.write_all(&file.content).await?;
        stdin.shutdown().await
    };
    let mut message = Vec::new();
    let drain = async {
        if let Some(out) = stdout.as_mut() {
            let _ = out.read_to_end(&mut Vec::new()).await;
        }
        if let Some(err) = stderr.as_mut() {
            let _ = err.read_to_end(&mut message).await;
        }
    };
    let (written, ()) = tokio::join!(write, drain);
    written.map_err(|e| failed(Box::new(e)))?;
    let status = match status {
        Some(f) => f.await,
        None => None,
    };
    match status.as_ref().and_then(exit_code) {
        Some(0) => Ok(()),
        _ => Err(failed(
            String::from_utf8_lossy(&message).trim().to_owned().into(),
        )),
    }
}
