//! What sits under the SSH library: the socket wrappers (client version, kill switch and flow
//! gate) and the library's configuration.

pub(crate) mod client_version;
pub(crate) mod killable;
pub(crate) mod russh_config;
