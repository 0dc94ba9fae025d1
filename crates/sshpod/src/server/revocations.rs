//! Revocations that reach running sessions. The server follows the `revokedKeys` list in
//! force (the latest configuration's, whatever configuration a connection was accepted with)
//! and tells every connection when it may have changed: on each reload request (SIGHUP,
//! `sshpod reload`, even one that changes nothing else) and when the file changes on disk,
//! looked at every `auth.publicKey.revokedKeysCheckInterval`. Each connection then checks the
//! key it logged in with (see `limits`), so only the revoked ones end.
//!
//! A list that cannot be read or understood refuses every key at login, as OpenSSH does; it
//! ends no running session, though: an operator halfway through an edit must not disconnect
//! everyone.

use std::sync::Arc;
use std::time::Duration;

use sshpod_auth::{ListVersion, RevokedKeys};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The revocation list in force, as connections see it.
#[derive(Debug, Clone, Default)]
pub(crate) struct RevocationList {
    /// The file (None: nothing is revoked).
    pub(crate) keys: Option<RevokedKeys>,
    /// How often the file is looked at for changes; zero: only on reloads.
    pub(crate) check_interval: Duration,
}

/// The server's revocation list and its followers. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Revocations {
    list: Arc<watch::Sender<RevocationList>>,
}

impl Revocations {
    /// Follows `list`.
    pub(crate) fn new(list: RevocationList) -> Self {
        Self {
            list: Arc::new(watch::Sender::new(list)),
        }
    }

    /// A reload put `list` in force: every connection checks its key against it.
    pub(crate) fn replace(&self, list: RevocationList) {
        self.list.send_replace(list);
    }

    /// The file may have changed: every connection checks its key again.
    pub(crate) fn recheck(&self) {
        self.list.send_modify(|_| {});
    }

    /// Follows the list: a change is a reason to check again.
    pub(crate) fn subscribe(&self) -> watch::Receiver<RevocationList> {
        self.list.subscribe()
    }

    /// Looks at the file at once and then every check interval until `stop`, and has every
    /// connection check again when it changed (and after the first look: it may have changed
    /// since they checked). An unreadable file is logged once, until it reads again.
    pub(crate) async fn watch_file(self, stop: CancellationToken) {
        let mut follower = self.subscribe();
        let mut last: Option<Result<ListVersion, String>> = None;
        loop {
            let list = follower.borrow_and_update().clone();
            let first = last.is_none();
            let next_look = async {
                match (&list.keys, list.check_interval.is_zero()) {
                    (Some(_), false) if first => {}
                    (Some(_), false) => tokio::time::sleep(list.check_interval).await,
                    // Nothing to look at until a reload brings something.
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                changed = follower.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // A reload: the connections check already; start again from its list.
                    last = None;
                    continue;
                }
                () = next_look => {}
            }
            let Some(keys) = list.keys else {
                continue;
            };
            let path = keys.path().display().to_string();
            let now =
                tokio::task::spawn_blocking(move || keys.version().map_err(|e| e.to_string()))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
            match (&last, &now) {
                (Some(Ok(before)), Ok(version)) if before == version => {}
                (Some(Err(_)), Err(_)) => {}
                (_, Err(error)) => tracing::warn!(
                    code = crate::log_codes::REVOKED_KEYS_UNREADABLE,
                    path,
                    error,
                    "the revoked keys cannot be read: every key is refused at login; running \
                     sessions go on"
                ),
                // The first look after a start or a reload: the file may have changed since
                // the connections last checked.
                (None, Ok(_)) => {
                    self.recheck();
                    follower.borrow_and_update();
                }
                (Some(_), Ok(_)) => {
                    tracing::info!(
                        path,
                        "the revoked keys changed: running sessions check their keys"
                    );
                    self.recheck();
                    // Our own change, not a reload.
                    follower.borrow_and_update();
                }
            }
            last = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::process::Command;

    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn new_key(dir: &std::path::Path, name: &str) -> String {
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", name])
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("ssh-keygen: {e}"));
        assert!(status.success());
        fs::read_to_string(dir.join(format!("{name}.pub"))).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits (in paused time, which runs on while the watcher waits) for the followers to be
    /// told; false if they are not within `within`.
    async fn told(follower: &mut watch::Receiver<RevocationList>, within: Duration) -> bool {
        tokio::time::timeout(within, follower.changed())
            .await
            .is_ok_and(|r| r.is_ok())
    }

    #[tokio::test(start_paused = true)]
    async fn an_edited_file_is_noticed_within_the_interval_and_an_untouched_one_never() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let key = new_key(dir.path(), "k");
        let path = dir.path().join("revoked");
        fs::write(&path, "# nothing yet\n").unwrap_or_else(|e| panic!("{e}"));
        let revocations = Revocations::new(RevocationList {
            keys: Some(RevokedKeys::new(&path)),
            check_interval: Duration::from_secs(5),
        });
        let mut follower = revocations.subscribe();
        let stop = CancellationToken::new();
        let watching = tokio::spawn(revocations.clone().watch_file(stop.clone()));

        assert!(
            told(&mut follower, S).await,
            "the first look is news: the file may have changed since the logins"
        );
        assert!(
            !told(&mut follower, Duration::from_secs(60)).await,
            "nothing changed"
        );
        fs::write(&path, &key).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            told(&mut follower, Duration::from_secs(6)).await,
            "the edit"
        );
        assert!(
            !told(&mut follower, Duration::from_secs(60)).await,
            "told once per change"
        );

        // A broken file ends nobody's session (it is logged); the repaired one is news.
        fs::write(&path, "not a key\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(!told(&mut follower, Duration::from_secs(30)).await);
        fs::write(&path, format!("# again\n{key}")).unwrap_or_else(|e| panic!("{e}"));
        assert!(told(&mut follower, Duration::from_secs(6)).await);

        stop.cancel();
        watching.await.unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_or_a_request_tells_everyone_at_once() {
        let revocations = Revocations::new(RevocationList::default());
        let mut follower = revocations.subscribe();
        revocations.recheck();
        assert!(told(&mut follower, Duration::ZERO).await);
        revocations.replace(RevocationList {
            keys: Some(RevokedKeys::new("/nonexistent")),
            check_interval: Duration::ZERO,
        });
        assert!(told(&mut follower, Duration::ZERO).await);
        assert!(follower.borrow().keys.is_some());
    }
}
