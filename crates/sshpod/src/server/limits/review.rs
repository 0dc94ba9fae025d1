//! The decision, without I/O: given the limits, the channels' clocks and the time, what is due
//! now (warnings, channels to close, the end of the connection) and when to look again.

use std::collections::HashMap;
use std::time::Duration;

use std::hash::Hash;

use sshpod_config::SessionLimits;
use tokio::time::Instant;

/// One channel as the review sees it.
#[derive(Debug, Clone)]
pub(super) struct WatchedChannel<Id> {
    pub(super) id: Id,
    pub(super) kind: &'static str,
    pub(super) last: Instant,
    pub(super) terminal: bool,
}

/// The connection's channels at one moment.
#[derive(Debug, Clone)]
pub(super) struct Snapshot<Id> {
    pub(super) last_change: Option<Instant>,
    pub(super) channels: Vec<WatchedChannel<Id>>,
}

/// A limit that can be warned about, for remembering which warnings were given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Limit<Id> {
    MaxSessionDuration,
    Idle,
    Channel(Id),
    Drain,
    Certificate,
}

/// What is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action<Id> {
    /// Write `text` to these terminal sessions.
    Warn { channels: Vec<Id>, text: String },
    /// Close a channel that `rule` timed out.
    CloseChannel {
        channel: Id,
        rule: &'static str,
        message: String,
    },
    /// End the connection: `rule` ran out.
    End { rule: &'static str, message: String },
}

/// The review's outcome.
#[derive(Debug)]
pub(super) struct Reviewed<Id> {
    pub(super) actions: Vec<Action<Id>>,
    /// When to look again (None: only when something changes).
    pub(super) wake: Option<Instant>,
}

impl<Id> Reviewed<Id> {
    fn wake_at(&mut self, at: Instant) {
        self.wake = Some(self.wake.map_or(at, |w| w.min(at)));
    }
}

/// The configuration key that ends a connection when its certificate expires.
pub(crate) const CERTIFICATE_EXPIRED: &str = "auth.publicKey.disconnectExpiredCert";

/// What the user is told when the certificate has expired.
const EXPIRED: &str = "your certificate has expired";

/// Reviews the limits at `now`. `warned` remembers, per limit, the deadline its warning was
/// given for: a deadline that moves (new traffic) is warned about again. `certificate_expires`
/// is when the login's certificate expires, if the connection ends then.
pub(super) fn review<Id: Copy + Eq + Hash>(
    limits: &SessionLimits,
    logged_in_at: Instant,
    drain_at: Option<Instant>,
    certificate_expires: Option<Instant>,
    snapshot: &Snapshot<Id>,
    now: Instant,
    warned: &mut HashMap<Limit<Id>, Instant>,
) -> Reviewed<Id> {
    let mut out = Reviewed {
        actions: Vec::new(),
        wake: None,
    };
    let terminals: Vec<Id> = snapshot
        .channels
        .iter()
        .filter(|c| c.terminal)
        .map(|c| c.id)
        .collect();

    if let Some(drain_at) = drain_at {
        if warned.insert(Limit::Drain, drain_at).is_none() && !terminals.is_empty() {
            out.actions.push(Action::Warn {
                channels: terminals.clone(),
                text: notice(&format!(
                    "this server is restarting; your session ends in {} s",
                    seconds(drain_at.saturating_duration_since(now))
                )),
            });
        }
    }

    if let Some(deadline) = certificate_expires {
        if now >= deadline {
            // Told in the disconnect message, as for the other limits: OpenSSH prints it, and
            // leaves unwritten what the terminal was sent just before.
            out.actions.push(Action::End {
                rule: CERTIFICATE_EXPIRED,
                message: EXPIRED.to_owned(),
            });
            return out;
        }
        // The warning's lead follows `ssh.limitWarning`, at most half of what the certificate
        // had left at the login: a certificate valid for seconds still warns in time.
        let lead = limits.warning_lead(deadline.saturating_duration_since(logged_in_at));
        let warn_at = deadline - lead;
        if lead.is_zero() || warned.get(&Limit::Certificate) == Some(&deadline) {
            out.wake_at(deadline);
        } else if now >= warn_at {
            warned.insert(Limit::Certificate, deadline);
            if !terminals.is_empty() {
                out.actions.push(Action::Warn {
                    channels: terminals.clone(),
                    text: notice(&format!(
                        "your certificate expires in {} s; this session ends then",
                        seconds(deadline - now)
                    )),
                });
            }
            out.wake_at(deadline);
        } else {
            out.wake_at(warn_at);
        }
    }

    let unused = limits.unused_connection_timeout;
    if !unused.is_zero() && snapshot.channels.is_empty() {
        let since = snapshot
            .last_change
            .unwrap_or(logged_in_at)
            .max(logged_in_at);
        let deadline = since + unused;
        if now >= deadline {
            out.actions.push(Action::End {
                rule: "ssh.unusedConnectionTimeout",
                message: format!("no channel open for {}", human(unused)),
            });
            return out;
        }
        out.wake_at(deadline);
    }

    let session_limits = [
        (
            Limit::MaxSessionDuration,
            limits.max_session_duration,
            logged_in_at,
        ),
        (
            Limit::Idle,
            limits.idle_timeout,
            idle_since(logged_in_at, snapshot),
        ),
    ];
    for (limit, length, since) in session_limits {
        if length.is_zero() {
            continue;
        }
        let deadline = since + length;
        let (rule, message) = match limit {
            Limit::Idle => ("ssh.idleTimeout", format!("idle for {}", human(length))),
            _ => (
                "ssh.maxSessionDuration",
                format!(
                    "the session reached its maximum duration of {}",
                    human(length)
                ),
            ),
        };
        if now >= deadline {
            out.actions.push(Action::End { rule, message });
            return out;
        }
        let lead = limits.warning_lead(length);
        let warn_at = deadline - lead;
        if lead.is_zero() || warned.get(&limit) == Some(&deadline) {
            out.wake_at(deadline);
            continue;
        }
        if now >= warn_at {
            warned.insert(limit, deadline);
            if !terminals.is_empty() {
                let left = seconds(deadline - now);
                let text = match limit {
                    Limit::Idle => format!(
                        "idle for {}; this session ends in {left} s",
                        human(now.saturating_duration_since(since))
                    ),
                    _ => format!(
                        "this session reaches its maximum duration of {}; it ends in {left} s",
                        human(length)
                    ),
                };
                out.actions.push(Action::Warn {
                    channels: terminals.clone(),
                    text: notice(&text),
                });
            }
            out.wake_at(deadline);
        } else {
            out.wake_at(warn_at);
        }
    }

    for channel in &snapshot.channels {
        let Some(length) = limits.channel_timeout.for_type(channel.kind) else {
            continue;
        };
        let deadline = channel.last + length;
        let limit = Limit::Channel(channel.id);
        if now >= deadline {
            warned.remove(&limit);
            out.actions.push(Action::CloseChannel {
                channel: channel.id,
                rule: "ssh.channelTimeout",
                message: format!(
                    "no traffic on a {} channel for {}",
                    channel.kind,
                    human(length)
                ),
            });
            continue;
        }
        let lead = limits.warning_lead(length);
        let warn_at = deadline - lead;
        if !channel.terminal || lead.is_zero() || warned.get(&limit) == Some(&deadline) {
            out.wake_at(deadline);
        } else if now >= warn_at {
            warned.insert(limit, deadline);
            out.actions.push(Action::Warn {
                channels: vec![channel.id],
                text: notice(&format!(
                    "no traffic for {}; this session closes in {} s",
                    human(now.saturating_duration_since(channel.last)),
                    seconds(deadline - now)
                )),
            });
            out.wake_at(deadline);
        } else {
            out.wake_at(warn_at);
        }
    }
    // Warnings of channels that have gone are forgotten.
    warned.retain(|limit, _| match limit {
        Limit::Channel(id) => snapshot.channels.iter().any(|c| c.id == *id),
        _ => true,
    });
    out
}

/// The last traffic on any channel, or the last open or close, or the login.
fn idle_since<Id>(logged_in_at: Instant, snapshot: &Snapshot<Id>) -> Instant {
    snapshot
        .channels
        .iter()
        .map(|c| c.last)
        .chain(snapshot.last_change)
        .fold(logged_in_at, Instant::max)
}

/// A line in the user's terminal, on a line of its own.
fn notice(text: &str) -> String {
    format!("\r\nsshpod: {text}\r\n")
}

/// Whole seconds, rounded up (a warning never promises less time than is left... nor more
/// than a second over).
fn seconds(left: Duration) -> u64 {
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}

/// `29 min`, `3 s`, `1 h 30 min`: short and readable, in whole seconds (rounded down: an
/// elapsed time is never overstated).
fn human(length: Duration) -> String {
    let secs = length.as_secs();
    match (secs / 3600, (secs % 3600) / 60, secs % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshpod_config::SessionLimits;

    const S: Duration = Duration::from_secs(1);

    fn limits(change: impl FnOnce(&mut SessionLimits)) -> SessionLimits {
        let mut limits = SessionLimits::default();
        change(&mut limits);
        limits
    }

    fn terminal(id: u32, last: Instant) -> WatchedChannel<u32> {
        WatchedChannel {
            id,
            kind: "session",
            last,
            terminal: true,
        }
    }

    /// Steps paused time from review to review, as the watcher does, until the connection
    /// ends; returns what was done, with the seconds since the start.
    async fn run(
        limits: &SessionLimits,
        snapshot: impl FnMut(Instant) -> Snapshot<u32>,
        drain_at: Option<Instant>,
    ) -> Vec<(u64, Action<u32>)> {
        run_until(limits, snapshot, drain_at, None).await
    }

    /// As [`run`], with a certificate that expires `certificate_expires` after the start.
    async fn run_until(
        limits: &SessionLimits,
        mut snapshot: impl FnMut(Instant) -> Snapshot<u32>,
        drain_at: Option<Instant>,
        certificate_expires: Option<Duration>,
    ) -> Vec<(u64, Action<u32>)> {
        let start = Instant::now();
        let expires = certificate_expires.map(|after| start + after);
        let mut warned = HashMap::new();
        let mut done = Vec::new();
        for _ in 0..100 {
            let now = Instant::now();
            let reviewed = review(
                limits,
                start,
                drain_at,
                expires,
                &snapshot(now),
                now,
                &mut warned,
            );
            let at = (now - start).as_secs();
            let ended = reviewed
                .actions
                .iter()
                .any(|a| matches!(a, Action::End { .. }));
            done.extend(reviewed.actions.into_iter().map(|a| (at, a)));
            if ended {
                return done;
            }
            match reviewed.wake {
                Some(wake) => tokio::time::sleep_until(wake).await,
                None => return done,
            }
        }
        panic!("the review never settled: {done:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_terminal_is_warned_a_minute_before_its_end() {
        let limits = limits(|l| l.idle_timeout = 30 * 60 * S);
        let start = Instant::now();
        let done = run(
            &limits,
            |_| Snapshot {
                last_change: Some(start),
                channels: vec![terminal(1, start)],
            },
            None,
        )
        .await;
        assert_eq!(
            done,
            vec![
                (
                    29 * 60,
                    Action::Warn {
                        channels: vec![1],
                        text: "\r\nsshpod: idle for 29 min; this session ends in 60 s\r\n".into()
                    }
                ),
                (
                    30 * 60,
                    Action::End {
                        rule: "ssh.idleTimeout",
                        message: "idle for 30 min".into()
                    }
                ),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_postpones_the_idle_end_and_warns_again() {
        let limits = limits(|l| {
            l.idle_timeout = 10 * S;
            l.limit_warning = 2 * S;
        });
        let start = Instant::now();
        // Typing at 9 s, after the first warning.
        let done = run(
            &limits,
            |now| {
                let last = if now - start >= 9 * S {
                    start + 9 * S
                } else {
                    start
                };
                Snapshot {
                    last_change: Some(start),
                    channels: vec![terminal(1, last)],
                }
            },
            None,
        )
        .await;
        let times: Vec<(u64, bool)> = done
            .iter()
            .map(|(at, a)| (*at, matches!(a, Action::End { .. })))
            .collect();
        assert_eq!(times, vec![(8, false), (17, false), (19, true)]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_maximum_duration_ends_even_a_busy_session() {
        let limits = limits(|l| {
            l.max_session_duration = 3 * S;
            l.idle_timeout = 100 * S;
        });
        let done = run(
            &limits,
            |now| Snapshot {
                last_change: None,
                channels: vec![terminal(1, now)],
            },
            None,
        )
        .await;
        assert!(
            matches!(&done[0], (1, Action::Warn { text, .. }) if text.contains("maximum duration of 3 s; it ends in 2 s")),
            "{done:?}"
        );
        assert!(
            matches!(
                &done[1],
                (
                    3,
                    Action::End {
                        rule: "ssh.maxSessionDuration",
                        ..
                    }
                )
            ),
            "{done:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_channels_ends_after_the_unused_timeout() {
        let limits = limits(|l| l.unused_connection_timeout = 5 * S);
        let start = Instant::now();
        // One channel until 4 s, none after.
        let done = run(
            &limits,
            |now| {
                if now - start < 4 * S {
                    Snapshot {
                        last_change: Some(start),
                        channels: vec![terminal(1, start)],
                    }
                } else {
                    Snapshot {
                        last_change: Some(start + 4 * S),
                        channels: vec![],
                    }
                }
            },
            Some(start + 1000 * S),
        )
        .await;
        // The drain notice first (at once), then nothing until 4 + 5 s. The review runs only
        // when woken: at 4 s the watcher is woken by the close, here by the test's loop.
        assert!(
            matches!(&done[0], (0, Action::Warn { text, .. }) if text.contains("this server is restarting; your session ends in 1000 s"))
        );
        assert_eq!(done.len(), 1, "{done:?}");
        tokio::time::sleep_until(start + 4 * S).await;
        let mut warned: HashMap<Limit<u32>, Instant> = HashMap::new();
        warned.insert(Limit::Drain, start + 1000 * S);
        let snapshot = Snapshot {
            last_change: Some(start + 4 * S),
            channels: vec![],
        };
        let reviewed = review(
            &limits,
            start,
            None,
            None,
            &snapshot,
            Instant::now(),
            &mut warned,
        );
        assert_eq!(reviewed.wake, Some(start + 9 * S));
        let later = review(
            &limits,
            start,
            None,
            None,
            &snapshot,
            start + 9 * S,
            &mut warned,
        );
        assert!(matches!(
            &later.actions[..],
            [Action::End {
                rule: "ssh.unusedConnectionTimeout",
                ..
            }]
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_channel_is_closed_and_its_terminal_warned() {
        let limits = limits(|l| {
            l.channel_timeout = "session=4s".parse().unwrap_or_else(|e| panic!("{e}"));
            l.limit_warning = S;
        });
        let start = Instant::now();
        let mut warned: HashMap<Limit<u32>, Instant> = HashMap::new();
        let snapshot = Snapshot {
            last_change: Some(start),
            channels: vec![
                terminal(1, start),
                WatchedChannel {
                    id: 2,
                    kind: "direct-tcpip",
                    last: start,
                    terminal: false,
                },
            ],
        };
        let first = review(&limits, start, None, None, &snapshot, start, &mut warned);
        assert_eq!(first.wake, Some(start + 3 * S));
        let warning = review(
            &limits,
            start,
            None,
            None,
            &snapshot,
            start + 3 * S,
            &mut warned,
        );
        assert_eq!(
            warning.actions,
            vec![Action::Warn {
                channels: vec![1],
                text: "\r\nsshpod: no traffic for 3 s; this session closes in 1 s\r\n".into()
            }]
        );
        let closed = review(
            &limits,
            start,
            None,
            None,
            &snapshot,
            start + 4 * S,
            &mut warned,
        );
        assert!(
            matches!(
                &closed.actions[..],
                [Action::CloseChannel {
                    rule: "ssh.channelTimeout",
                    ..
                }]
            ),
            "only the session channel has a timeout: {:?}",
            closed.actions
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_terminal_is_warned_before_its_certificate_expires() {
        // A certificate with 10 s left at the login: warned half way (limitWarning is 60 s).
        let limits = SessionLimits::default();
        let start = Instant::now();
        let busy = |now| Snapshot {
            last_change: Some(start),
            channels: vec![terminal(1, now)],
        };
        let done = run_until(&limits, busy, None, Some(10 * S)).await;
        assert_eq!(
            done,
            vec![
                (
                    5,
                    Action::Warn {
                        channels: vec![1],
                        text: "\r\nsshpod: your certificate expires in 5 s; this session ends then\r\n"
                            .into()
                    }
                ),
                (
                    10,
                    Action::End {
                        rule: "auth.publicKey.disconnectExpiredCert",
                        message: "your certificate has expired".into()
                    }
                ),
            ]
        );

        // A year-long certificate is warned limitWarning ahead.
        let start = Instant::now();
        let year = 365 * 24 * 3600 * S;
        let done = run_until(
            &limits,
            |now| Snapshot {
                last_change: Some(start),
                channels: vec![terminal(1, now)],
            },
            None,
            Some(year),
        )
        .await;
        let times: Vec<u64> = done.iter().map(|(at, _)| *at).collect();
        assert_eq!(times, vec![year.as_secs() - 60, year.as_secs()]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_certificate_ends_the_connection_before_a_later_limit_and_without_a_terminal() {
        let limits = limits(|l| l.max_session_duration = 60 * S);
        let done = run_until(
            &limits,
            |_| Snapshot {
                last_change: None,
                channels: vec![],
            },
            None,
            Some(20 * S),
        )
        .await;
        assert_eq!(
            done,
            vec![(
                20,
                Action::End {
                    rule: CERTIFICATE_EXPIRED,
                    message: "your certificate has expired".into()
                }
            )],
            "no terminal, so no warning"
        );
        // Expired already when the watch starts (the container took longer than the
        // certificate had left): the connection ends at the first look.
        let start = Instant::now();
        tokio::time::advance(3 * S).await;
        let mut warned = HashMap::new();
        let snapshot = Snapshot {
            last_change: None,
            channels: vec![terminal(1, start)],
        };
        let late = review(
            &limits,
            Instant::now(),
            None,
            Some(start + S),
            &snapshot,
            Instant::now(),
            &mut warned,
        );
        assert!(
            matches!(
                &late.actions[..],
                [Action::End {
                    rule: CERTIFICATE_EXPIRED,
                    ..
                }]
            ),
            "{:?}",
            late.actions
        );
    }

    #[test]
    fn lengths_read_well() {
        assert_eq!(human(Duration::from_secs(29 * 60)), "29 min");
        assert_eq!(human(Duration::from_millis(2500)), "2 s");
        assert_eq!(human(Duration::from_secs(5400)), "1 h 30 min");
        assert_eq!(human(Duration::from_secs(65)), "1 min 5 s");
    }
}
