//! sshpod's SSH names in russh's terms, in one place for both ends sshpod speaks SSH on: the
//! server its clients reach, and the SSH proxy backend's client upstream. A name the
//! configuration accepts must mean the same algorithm on both, and a signal the same signal.

pub mod algorithms;
pub mod signals;
