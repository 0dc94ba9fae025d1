//! The label sets of the metrics, and the bound on the values that come from outside (user
//! names, images): a scrape stays small whatever clients and config servers send.

use std::collections::HashMap;

use prometheus_client::encoding::EncodeLabelSet;
use sshpod_core::AuthMethod;

/// Users labelled at once; logins of further users count under [`OTHER`].
pub(super) const MAX_USERS: usize = 256;
/// Images labelled; starts of further images count under [`OTHER`].
pub(super) const MAX_IMAGES: usize = 64;
/// The label value that stands for every name past the bound.
pub(super) const OTHER: &str = "other";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CountryLabels {
    pub(super) country: String,
}

/// ContainerSSH's labels of its auth counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct AuthLabels {
    pub(super) authtype: &'static str,
    /// ContainerSSH counts a webhook's retries apart; a login decision is never a retry.
    pub(super) retry: &'static str,
    pub(super) country: String,
}

impl AuthLabels {
    pub(super) fn new(method: AuthMethod, country: String) -> Self {
        Self {
            authtype: authtype(method),
            retry: "0",
            country,
        }
    }
}

/// ContainerSSH's `authtype` values, plus keyboard-interactive.
fn authtype(method: AuthMethod) -> &'static str {
    match method {
        AuthMethod::Password => "password",
        AuthMethod::PublicKey | AuthMethod::Certificate => "pubkey",
        AuthMethod::KeyboardInteractive => "keyboard-interactive",
    }
}

/// ContainerSSH's labels of its auth server requests.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct AuthServerLabels {
    pub(super) authtype: &'static str,
    pub(super) retry: &'static str,
}

/// ContainerSSH's labels of its auth server failures.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct AuthServerFailureLabels {
    /// `soft` (retried) or `hard` (given up).
    pub(super) r#type: &'static str,
    pub(super) authtype: &'static str,
    pub(super) retry: &'static str,
    pub(super) reason: &'static str,
}

/// ContainerSSH's labels of its config server requests.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RetryLabels {
    pub(super) retry: &'static str,
}

/// ContainerSSH's labels of its config server failures.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ConfigServerFailureLabels {
    pub(super) r#type: &'static str,
    pub(super) retry: &'static str,
    pub(super) reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct BackendLabels {
    pub(super) backend: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ApiLabels {
    pub(super) backend: &'static str,
    /// `verb resource`, from the backend's fixed list.
    pub(super) kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct StartLabels {
    pub(super) backend: &'static str,
    pub(super) image: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct UserLabels {
    pub(super) user: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ChannelLabels {
    pub(super) channel: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct LimitLabels {
    /// The configuration key of the limit (a fixed set).
    pub(super) rule: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RefusalLabels {
    pub(super) stage: &'static str,
    pub(super) reason: &'static str,
}

/// At most `limit` distinct label values, each with how many holders it has now. A value whose
/// holders are all gone keeps its label (a gauge at 0 says so) until room is needed for a new
/// one.
#[derive(Debug)]
pub(super) struct BoundedNames {
    limit: usize,
    holders: HashMap<String, u64>,
}

impl BoundedNames {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            limit,
            holders: HashMap::new(),
        }
    }

    /// The label for one more holder of `name`: the name itself while there is room (making
    /// room by forgetting names nobody holds, each passed to `evicted`), else [`OTHER`].
    pub(super) fn admit(&mut self, name: &str, mut evicted: impl FnMut(&str)) -> String {
        if let Some(holders) = self.holders.get_mut(name) {
            *holders += 1;
            return name.to_owned();
        }
        if self.holders.len() >= self.limit {
            self.holders.retain(|name, holders| {
                let keep = *holders > 0;
                if !keep {
                    evicted(name);
                }
                keep
            });
        }
        if self.holders.len() >= self.limit || name == OTHER {
            return OTHER.to_owned();
        }
        self.holders.insert(name.to_owned(), 1);
        name.to_owned()
    }

    /// One holder of the label `label` (as [`admit`](Self::admit) gave it) is gone.
    pub(super) fn release(&mut self, label: &str) {
        if let Some(holders) = self.holders.get_mut(label) {
            *holders = holders.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_past_the_bound_count_as_other_until_room_is_made() {
        let mut names = BoundedNames::new(2);
        let mut evicted = Vec::new();
        assert_eq!(names.admit("ann", |_| {}), "ann");
        assert_eq!(names.admit("bob", |_| {}), "bob");
        assert_eq!(names.admit("ann", |_| {}), "ann");
        assert_eq!(names.admit("cyd", |e| evicted.push(e.to_owned())), OTHER);
        assert!(evicted.is_empty());
        // Bob logs out: his label stays (at 0) until a new name needs the room.
        names.release("bob");
        assert_eq!(names.admit("cyd", |e| evicted.push(e.to_owned())), "cyd");
        assert_eq!(evicted, ["bob"]);
        // A user called `other` cannot pose as a label of its own.
        names.release("cyd");
        assert_eq!(names.admit(OTHER, |_| {}), OTHER);
    }
}
