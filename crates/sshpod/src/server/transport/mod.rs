//! What sits under the SSH library: the PROXY protocol header before it, the socket wrappers
//! (client version, kill switch and flow gate) and the library's configuration.

pub(crate) mod client_version;
pub(crate) mod killable;
pub(crate) mod proxy_header;
pub(crate) mod russh_config;
