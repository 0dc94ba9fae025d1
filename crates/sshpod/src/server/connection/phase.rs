//! Where a connection is in its life, and the only ways it moves on.
//!
//! ```text
//! Authenticating ──login accepted──▶ Provisioning ──▶ Ready ─┐
//!       │                                 └─────────▶ Failed ─┤
//!       └───────────────────────────────────────────────────┴──▶ Draining
//! ```
//! A connection is authenticated exactly when it has left `Authenticating` by a login (a
//! `Draining` connection remembers whether it had). The container is made once, in
//! `Provisioning`; whatever the phase when the connection ends, `Draining` holds what there is
//! to remove.

use std::sync::Arc;

use sshpod_core::BackendError;

use crate::server::auth::{LoginKey, Outcome};
use crate::server::channel::security::SecurityPolicy;

/// An accepted login: who, what its webhooks brought, and the security policy its
/// configuration (the file's, or the config server's answer merged over it) sets.
#[derive(Debug)]
pub(crate) struct Login {
    pub(crate) user: Arc<str>,
    pub(crate) outcome: Outcome,
    pub(crate) security: SecurityPolicy,
    /// The idle and session limits its configuration sets.
    pub(crate) limits: sshpod_config::SessionLimits,
    /// The key or certificate it logged in with, if any: it ends the connection when it
    /// expires or is revoked.
    pub(crate) key: Option<LoginKey>,
}

/// A connection's phase.
pub(crate) enum Phase<C> {
    /// Key exchange, then login attempts. `login_requested` turns true when the client asks
    /// for the login service (the key exchange is then done).
    Authenticating { login_requested: bool },
    /// Logged in; the container is being made.
    Provisioning { login: Arc<Login> },
    /// The container runs.
    Ready {
        login: Arc<Login>,
        container: Arc<C>,
    },
    /// The container could not be made; each session is told why.
    Failed {
        login: Arc<Login>,
        error: Arc<BackendError>,
    },
    /// The connection is ending: nothing new starts. `container` is what is left to remove.
    Draining {
        logged_in: bool,
        container: Option<Arc<C>>,
    },
}

/// A move the phase does not allow (a bug in the caller, reported, never acted on).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("a connection cannot go from {from} to {to}")]
pub(crate) struct InvalidMove {
    from: &'static str,
    to: &'static str,
}

impl<C> Phase<C> {
    /// The phase's name, for logs and errors.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Phase::Authenticating { .. } => "authenticating",
            Phase::Provisioning { .. } => "provisioning",
            Phase::Ready { .. } => "ready",
            Phase::Failed { .. } => "failed",
            Phase::Draining { .. } => "draining",
        }
    }

    /// The accepted login, while there is one.
    pub(crate) fn login(&self) -> Option<&Arc<Login>> {
        match self {
            Phase::Provisioning { login }
            | Phase::Ready { login, .. }
            | Phase::Failed { login, .. } => Some(login),
            Phase::Authenticating { .. } | Phase::Draining { .. } => None,
        }
    }

    /// Whether the connection logged in (at any time).
    pub(crate) fn logged_in(&self) -> bool {
        match self {
            Phase::Authenticating { .. } => false,
            Phase::Draining { logged_in, .. } => *logged_in,
            _ => true,
        }
    }

    /// The client asked for the login service. True if this is news.
    pub(crate) fn login_requested(&mut self) -> bool {
        match self {
            Phase::Authenticating { login_requested } if !*login_requested => {
                *login_requested = true;
                true
            }
            _ => false,
        }
    }

    /// A login was accepted: provisioning starts.
    pub(crate) fn logged_in_as(&mut self, login: Login) -> Result<(), InvalidMove> {
        match self {
            Phase::Authenticating { .. } => {
                *self = Phase::Provisioning {
                    login: Arc::new(login),
                };
                Ok(())
            }
            other => Err(other.invalid("provisioning")),
        }
    }

    /// Provisioning ended, with the container or why there is none.
    pub(crate) fn provisioned(
        &mut self,
        result: Result<Arc<C>, Arc<BackendError>>,
    ) -> Result<(), InvalidMove> {
        let Phase::Provisioning { login } = self else {
            return Err(self.invalid(if result.is_ok() { "ready" } else { "failed" }));
        };
        let login = Arc::clone(login);
        *self = match result {
            Ok(container) => Phase::Ready { login, container },
            Err(error) => Phase::Failed { login, error },
        };
        Ok(())
    }

    /// The connection ends. Returns the container to remove, once: a second call finds none.
    /// Call it only once provisioning is over, or a container in the making would be missed.
    pub(crate) fn drain(&mut self) -> Option<Arc<C>> {
        let logged_in = self.logged_in();
        match std::mem::replace(
            self,
            Phase::Draining {
                logged_in,
                container: None,
            },
        ) {
            Phase::Ready { container, .. } => Some(container),
            Phase::Draining { container, .. } => container,
            _ => None,
        }
    }

    fn invalid(&self, to: &'static str) -> InvalidMove {
        InvalidMove {
            from: self.name(),
            to,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> Login {
        Login {
            user: Arc::from("alice"),
            outcome: Outcome::default(),
            security: SecurityPolicy::default(),
            limits: sshpod_config::SessionLimits::default(),
            key: None,
        }
    }

    fn fresh() -> Phase<&'static str> {
        Phase::Authenticating {
            login_requested: false,
        }
    }

    #[test]
    fn a_login_moves_through_every_phase_once() {
        let mut phase = fresh();
        assert!(phase.login_requested());
        assert!(!phase.login_requested(), "news once");
        assert!(!phase.logged_in());
        phase.logged_in_as(login()).unwrap();
        assert_eq!(phase.name(), "provisioning");
        assert_eq!(phase.login().map(|l| &*l.user), Some("alice"));
        phase.provisioned(Ok(Arc::new("c1"))).unwrap();
        assert_eq!(phase.name(), "ready");
        assert_eq!(phase.drain().as_deref(), Some(&"c1"));
        assert_eq!(phase.name(), "draining");
        assert!(
            phase.logged_in(),
            "a draining connection remembers its login"
        );
        assert_eq!(phase.drain(), None, "the container is removed once");
    }

    #[test]
    fn a_second_login_or_a_late_result_is_refused() {
        let mut phase = fresh();
        phase.logged_in_as(login()).unwrap();
        assert_eq!(
            phase.logged_in_as(login()),
            Err(InvalidMove {
                from: "provisioning",
                to: "provisioning"
            })
        );
        phase
            .provisioned(Err(Arc::new(BackendError::StartTimeout {
                image: "x".into(),
                seconds: 1,
            })))
            .unwrap();
        assert_eq!(phase.name(), "failed");
        assert!(phase.provisioned(Ok(Arc::new("late"))).is_err());
        assert_eq!(
            phase.drain(),
            None,
            "a failed start leaves nothing to remove"
        );
    }

    #[test]
    fn a_connection_that_never_logged_in_drains_with_nothing() {
        let mut phase = fresh();
        assert_eq!(phase.drain(), None);
        assert!(!phase.logged_in());
        assert!(
            phase.logged_in_as(login()).is_err(),
            "no login after the end"
        );
    }
}
