//! Login progress: a terminal session whose container takes longer than a moment to start is
//! told, a line per step, what the start is waiting for. Sessions without a terminal (scripts,
//! scp, sftp) never see it: their output is data.

use std::future::Future;
use std::time::Duration;

use sshpod_core::Step;
use tokio::sync::watch;

/// A start quicker than this shows nothing.
pub(crate) const QUIET_FOR: Duration = Duration::from_secs(1);

/// Waits for `ready`; once that has taken [`QUIET_FOR`], hands `show` a line for the step the
/// start is at, and one for every step after, until `ready` is done. Each line ends with CR LF,
/// so the shell's first output starts on a line of its own.
pub(crate) async fn wait_showing<T, S, F>(
    ready: impl Future<Output = T>,
    mut steps: watch::Receiver<Step>,
    mut show: S,
) -> T
where
    S: FnMut(Vec<u8>) -> F,
    F: Future<Output = ()>,
{
    tokio::pin!(ready);
    tokio::select! {
        biased;
        value = &mut ready => return value,
        () = tokio::time::sleep(QUIET_FOR) => {}
    }
    loop {
        let line = format!("sshpod: {}...\r\n", *steps.borrow_and_update());
        show(line.into_bytes()).await;
        tokio::select! {
            biased;
            value = &mut ready => return value,
            changed = steps.changed() => {
                if changed.is_err() {
                    return ready.await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use sshpod_core::Progress;

    use super::*;

    /// The lines shown so far.
    type Shown = Arc<Mutex<Vec<String>>>;

    fn lines() -> (Shown, impl FnMut(Vec<u8>) -> std::future::Ready<()>) {
        let shown = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&shown);
        let show = move |line: Vec<u8>| {
            if let Ok(mut lines) = sink.lock() {
                lines.push(String::from_utf8_lossy(&line).into_owned());
            }
            std::future::ready(())
        };
        (shown, show)
    }

    fn taken(shown: &Mutex<Vec<String>>) -> Vec<String> {
        shown.lock().map(|l| l.clone()).unwrap_or_default()
    }

    #[tokio::test(start_paused = true)]
    async fn a_quick_start_shows_nothing() {
        let progress = Progress::new();
        let (shown, show) = lines();
        let ready = async {
            tokio::time::sleep(QUIET_FOR / 2).await;
            progress.report(Step::SettingUp);
            7
        };
        assert_eq!(wait_showing(ready, progress.subscribe(), show).await, 7);
        assert!(taken(&shown).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_start_tells_each_step_once_and_stops_when_ready() {
        let progress = Progress::new();
        let (shown, show) = lines();
        let reporter = progress.clone();
        let ready = async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            reporter.report(Step::PullingImage {
                image: "debian:12".to_owned(),
            });
            tokio::time::sleep(Duration::from_secs(2)).await;
            reporter.report(Step::PullingImage {
                image: "debian:12".to_owned(),
            });
            reporter.report(Step::SettingUp);
            tokio::time::sleep(Duration::from_millis(300)).await;
            "ready"
        };
        let steps = progress.subscribe();
        assert_eq!(wait_showing(ready, steps, show).await, "ready");
        assert_eq!(
            taken(&shown),
            [
                "sshpod: starting your container...\r\n",
                "sshpod: pulling image debian:12...\r\n",
                "sshpod: setting up your user and home...\r\n",
            ]
        );
        // Steps after the start are nobody's business.
        progress.report(Step::Starting);
        assert_eq!(taken(&shown).len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_start_slower_than_the_quiet_time_tells_where_it_is_then() {
        let progress = Progress::new();
        progress.report(Step::Scheduling {
            reason: "0/1 nodes are available".to_owned(),
        });
        let (shown, show) = lines();
        let ready = tokio::time::sleep(QUIET_FOR * 3);
        wait_showing(ready, progress.subscribe(), show).await;
        assert_eq!(
            taken(&shown),
            ["sshpod: waiting for the cluster to schedule your pod: 0/1 nodes are available...\r\n"]
        );
    }
}
