//! The contracts between sshpod's SSH server and its container backends, and between the
//! server and what observes it.
//!
//! The server knows SSH and nothing about containers; a backend knows containers and nothing
//! about SSH. They meet here: a [`Backend`] gives each connection a [`Container`], in which the
//! server runs [`Process`]es and dials ports. What happens on a connection is told to
//! subscribers as [`Event`]s, and the bytes of its channels pass their [`ChannelTap`]s. This
//! crate must not depend on russh, bollard, kube or any other heavy library, so every backend
//! and the server can depend on it; it depends only on the configuration types (a connection
//! may carry its own configuration).

mod backend;
pub mod event;
mod ids;
mod process;
mod read_buffer;
pub mod tap;
pub mod wrapper;

pub use backend::{Backend, BackendError, ConnectionContext, Container, ContainerFile};
pub use event::{
    AuthMethod, ChannelKind, ChannelRefusal, Event, EventKind, EventSink, LoginRefusal,
    RequestRefusal,
};
pub use ids::ConnectionId;
pub use process::{
    BoxFuture, Command, ExitStatus, Process, ProcessControl, ProcessSpec, Signal, TerminalSize,
    TtySpec,
};
pub use read_buffer::{ReadBuffer, INITIAL_READ_BUFFER};
pub use tap::{ChannelInfo, ChannelTap, TapRecord};
