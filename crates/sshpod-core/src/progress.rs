//! What a connection's container start is waiting for, told by the backend as it goes, so a
//! user at a terminal who waits more than a moment sees why (`pulling image x`, `waiting for
//! the cluster to schedule your pod: 0/3 nodes are available`).

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

/// The longest reason shown; an API server's message can be long (and is not ours).
const MAX_REASON: usize = 160;

/// One step of making a container, as the user is told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Creating and starting the container: where every start begins.
    Starting,
    /// Waiting for a start slot: the server starts a bounded number of containers at once.
    Queued,
    /// The engine or the node pulls the image.
    PullingImage {
        /// The image.
        image: String,
    },
    /// The cluster has not placed the pod on a node yet.
    Scheduling {
        /// The scheduler's reason (`0/3 nodes are available: ...`), or empty.
        reason: String,
    },
    /// The pod has a node; its container does not run yet.
    WaitingForContainer {
        /// The kubelet's reason and message (`ContainerCreating`, `ImagePullBackOff: ...`).
        reason: String,
    },
    /// The container runs; the user and their home are being set up.
    SettingUp,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Starting => f.write_str("starting your container"),
            Step::Queued => {
                f.write_str("waiting for a turn to start (other containers are starting)")
            }
            Step::PullingImage { image } => write!(f, "pulling image {}", shown(image)),
            Step::Scheduling { reason } if reason.is_empty() => {
                f.write_str("waiting for the cluster to schedule your pod")
            }
            Step::Scheduling { reason } => write!(
                f,
                "waiting for the cluster to schedule your pod: {}",
                shown(reason)
            ),
            Step::WaitingForContainer { reason } if reason.is_empty() => {
                f.write_str("waiting for your container to start")
            }
            Step::WaitingForContainer { reason } => {
                write!(f, "waiting for your container to start: {}", shown(reason))
            }
            Step::SettingUp => f.write_str("setting up your user and home"),
        }
    }
}

/// `text` fit for a terminal line: control characters (escape sequences, line breaks) become
/// spaces, and it is cut to [`MAX_REASON`] characters.
fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_REASON)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(MAX_REASON).is_some() {
        out.push_str("...");
    }
    out
}

/// Where a backend reports the step a connection's container start is at. Cheap to clone;
/// a report that repeats the current step wakes nobody.
#[derive(Debug, Clone)]
pub struct Progress(Arc<watch::Sender<Step>>);

impl Progress {
    /// A start that has just begun ([`Step::Starting`]).
    pub fn new() -> Self {
        Self(Arc::new(watch::Sender::new(Step::Starting)))
    }

    /// The start is now at `step`.
    pub fn report(&self, step: Step) {
        self.0.send_if_modified(|current| {
            let news = *current != step;
            if news {
                *current = step;
            }
            news
        });
    }

    /// The steps from now on (the current one marked unseen).
    pub fn subscribe(&self) -> watch::Receiver<Step> {
        let mut steps = self.0.subscribe();
        steps.mark_changed();
        steps
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_from_a_cluster_cannot_move_the_cursor_or_flood_the_terminal() {
        let step = Step::Scheduling {
            reason: "0/3 nodes\x1b[2J\r\nare available".to_owned(),
        };
        assert_eq!(
            step.to_string(),
            "waiting for the cluster to schedule your pod: 0/3 nodes [2J  are available"
        );
        let long = Step::WaitingForContainer {
            reason: "x".repeat(1000),
        };
        let text = long.to_string();
        assert!(text.ends_with("x..."), "{text}");
        assert!(text.len() < 250, "{}", text.len());
    }

    #[test]
    fn a_repeated_step_is_no_news() {
        let progress = Progress::new();
        let mut steps = progress.subscribe();
        assert_eq!(*steps.borrow_and_update(), Step::Starting);
        progress.report(Step::Starting);
        assert!(!steps.has_changed().unwrap_or(true));
        progress.report(Step::SettingUp);
        assert!(steps.has_changed().unwrap_or(false));
        assert_eq!(*steps.borrow_and_update(), Step::SettingUp);
    }
}
