//! Setting a login's user up in its running pod (`identity`): the setup script of
//! [`sshpod_core::Identity`] runs once through an exec, as the console's user (root, see
//! `pod.rs`), before any of the user's processes.

use sshpod_core::{BackendError, Identity};
use tokio::io::AsyncReadExt as _;

use crate::exec::Target;
use crate::pod::exit_code;

/// At most this much of the setup's error output is kept, for the log and the user.
const MAX_OUTPUT: u64 = 4096;

/// Runs the setup; its error output is the cause when it fails, and is logged when it
/// succeeds with something to say (sudo asked on an image without it).
pub(crate) async fn set_up(target: &Target<'_>, identity: &Identity) -> Result<(), BackendError> {
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| BackendError::SetUpUser {
        user: identity.name.clone(),
        source,
    };
    let params = kube::api::AttachParams {
        container: Some(target.container.to_owned()),
        stdin: false,
        stdout: true,
        stderr: true,
        tty: false,
        ..kube::api::AttachParams::default()
    };
    let mut attached = target
        .pods
        .pods()
        .exec(target.pod, identity.setup_argv(), &params)
        .await
        .map_err(|e| failed(Box::new(e)))?;
    let status = attached.take_status();
    let (stdout, stderr) = (attached.stdout(), attached.stderr());
    let mut said = Vec::new();
    let drain_out = async {
        if let Some(out) = stdout {
            let _ = tokio::io::copy(&mut out.take(MAX_OUTPUT), &mut tokio::io::sink()).await;
        }
    };
    let drain_err = async {
        if let Some(err) = stderr {
            let _ = err.take(MAX_OUTPUT).read_to_end(&mut said).await;
        }
    };
    tokio::join!(drain_out, drain_err);
    let status = match status {
        Some(f) => f.await,
        None => None,
    };
    let said = String::from_utf8_lossy(&said).trim().to_owned();
    match status.as_ref().and_then(exit_code) {
        Some(0) => {
            if !said.is_empty() {
                tracing::warn!(user = %identity.name, output = %said, "setting the user up");
            }
            Ok(())
        }
        code => Err(failed(
            format!("the setup ended with status {code:?}: {said}").into(),
        )),
    }
}
