//! One file per kind of channel, and what a session channel is set up with before its
//! process starts (pty, environment, the login's restrictions) and controlled with after.

pub(crate) mod controls;
pub(crate) mod direct_tcpip;
pub(crate) mod env;
pub(crate) mod progress;
pub(crate) mod pty;
pub(crate) mod remote_forward;
pub(crate) mod restrict;
pub(crate) mod security;
pub(crate) mod session;
pub(crate) mod x11;
