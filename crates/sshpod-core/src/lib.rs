//! The contracts between sshpod's SSH server and its container backends, and between the
//! server and what observes it.
//!
//! The server knows SSH and nothing about containers; a backend knows containers and nothing
//! about SSH. They meet here: a [`Backend`] gives each connection a [`Container`], in which the
//! server runs [`Process`]es and dials ports. What happens on a connection is told to
//! subscribers as [`Event`]s, and the bytes of its channels pass their [`ChannelTap`]s. This
//! crate must not depend on russh, bollard, kube or any other heavy library, so every backend
//! and the server can depend on it; it depends only on the configuration types (a connection
//! may carry its own configuration) and on tokio and tokio-util for the [`Lifecycle`] every
//! long-lived part runs on.
//!
//! Helpers the backends share live here too, one copy each: [`labels`], the
//! [`CommandTable`] that turns a session's [`Command`] into argv, [`is_env_name`], and the
//! [`wrapper`] every process starts through.

mod backend;
mod command;
mod error;
pub mod event;
pub mod homes;
mod identity;
mod ids;
pub mod labels;
mod lifecycle;
mod listen;
mod listen_control;
pub mod per_user;
pub mod pool;
mod process;
mod progress;
mod read_buffer;
pub mod tap;
pub mod wrapper;
mod x11;

pub use backend::{Backend, Closed, ConnectionContext, Container, ContainerFile, ContainerInfo};
pub use command::{is_env_name, CommandPolicy, CommandTable};
pub use error::{BackendError, Deadline, NotPossible, Vanished};
pub use event::{
    AuthMethod, ChannelKind, ChannelRefusal, ConnectionRefusal, Credential, Ender, Event,
    EventKind, EventSink, LoginRefusal, RequestRefusal, Webhook, WebhookFailure, WebhookOutcome,
    WebhookRequest,
};
pub use identity::{
    hostname_for, is_user_name, uid_for, Identity, IdentityError, MAX_USER_NAME, SESSION_PATH,
};
pub use ids::{instance_id, same_seat, ConnectionId};
pub use lifecycle::Lifecycle;
pub use listen::{
    Accepted, ForwardedStream, ListenFuture, Listener, ListenerReport, MAX_REPORT_LINE,
};
pub use listen_control::{
    read_close_path, ClosedOnDrop, ListenerCommand, ListenerControl, WindDown, CLOSE_GRACE,
};
pub use process::{
    BoxFuture, Command, ExitStatus, Process, ProcessControl, ProcessSpec, Signal, TerminalSize,
    TtySpec,
};
pub use progress::{Progress, Step};
pub use read_buffer::{ReadBuffer, INITIAL_READ_BUFFER};
pub use tap::{ChannelInfo, ChannelTap, OwnedTapRecord, TapRecord};
pub use x11::{X11Forwarding, X11Request};
