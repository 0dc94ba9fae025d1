//! Who may connect at all: limits on unauthenticated connections (`ssh.maxStartups`,
//! `ssh.perSourceMaxStartups`) and penalties for networks that keep failing to log in.

pub(crate) mod penalties;
pub(crate) mod startups;
