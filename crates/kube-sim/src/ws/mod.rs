//! Streaming subresources over WebSocket: exec, attach and port-forward.

pub mod channel;
pub mod exec;
pub mod portforward;
pub mod session;
