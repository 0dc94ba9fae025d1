//! The labels sshpod puts on every container, so it can find its own and its dead
//! predecessors' containers, and operators can see whose container is whose.

/// The sshpod process (a random id per start) that owns the container.
pub const INSTANCE: &str = "sshpod.instance";
/// The SSH connection the container serves.
pub const CONNECTION: &str = "sshpod.connection";
/// The authenticated login name.
pub const USER: &str = "sshpod.user";
