//! Running one session channel's process: start it in the container, move bytes both ways,
//! and report how it ended.

use std::sync::{Arc, OnceLock};

use russh::server::{Handle, Msg};
use russh::{ChannelId, ChannelWriteHalf};
use sshpod_core::{
    Backend, BackendError, Container, EventKind, ExitStatus, ProcessControl, ProcessSpec, TapRecord,
};

use crate::server::channel::controls::Controls;
use crate::server::channel::progress;
use crate::server::channel::x11::{self, xauthority::Leftover, X11Setup};
use crate::server::connection::{ConnectionState, NoContainer};
use crate::server::events::{tap, Taps};
use crate::server::io::copy::copy_to_channel;
use crate::server::io::input::{self, InputReceiver, OnEof};
use crate::server::limits::Activity;
use tokio_util::sync::CancellationToken;

/// Where the handler finds a running process's controls (resize, signal).
pub(crate) type ControlSlot = Arc<OnceLock<Controls>>;

/// Everything a session task needs.
pub(crate) struct SessionTask<B: Backend> {
    pub(crate) conn: Arc<ConnectionState<B>>,
    pub(crate) channel: ChannelId,
    pub(crate) writer: ChannelWriteHalf<Msg>,
    /// The channel's activity clock (output is noted here, input by the handler).
    pub(crate) activity: Arc<Activity>,
    /// Cancelled when the connection ends or `ssh.channelTimeout` closes the channel.
    pub(crate) closer: CancellationToken,
    pub(crate) handle: Handle,
    pub(crate) spec: ProcessSpec,
    pub(crate) input: InputReceiver,
    pub(crate) control: ControlSlot,
    pub(crate) taps: Option<Taps>,
    /// The session's X11 display, whose cookie goes into the user's Xauthority file first.
    pub(crate) x11: Option<X11Setup>,
}

/// Why a session's process did not run to its end. `Display` is what the user is shown.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    NoContainer(#[from] NoContainer),
    #[error(transparent)]
    Start(Arc<BackendError>),
    #[error(transparent)]
    Wait(Arc<BackendError>),
}

impl<B: Backend> SessionTask<B> {
    /// Runs until the process ends or the connection goes away.
    pub(crate) async fn run(self) {
        let conn = Arc::clone(&self.conn);
        let closer = self.closer.clone();
        let channel = self.channel;
        let handle = self.handle.clone();
        let taps = self.taps.clone();
        tokio::select! {
            () = closer.cancelled() => {
                // Closed by a limit while the connection goes on: the client is told.
                if !conn.token.is_cancelled() {
                    let _ = handle.eof(channel).await;
                    let _ = handle.close(channel).await;
                }
            }
            status = self.run_process() => {
                match status {
                    Ok(status) => {
                        tap(taps.as_ref(), TapRecord::Exit(status));
                        conn.events.emit_on(Some(channel), EventKind::ProcessExited { status });
                        // A required recording that failed behind the session ends the
                        // connection with its reason. The client must not see success, nor
                        // the channel close first: a client may take an end without a
                        // status for the whole story and miss the reason.
                        if !kept(taps.as_ref()).await {
                            conn.channel_finished(channel);
                            return;
                        }
                        report(&handle, channel, status).await;
                    }
                    Err(message) => {
                        let _ = handle
                            .extended_data(channel, 1, format!("sshpod: {message}\r\n").into_bytes())
                            .await;
                        let _ = handle.exit_status_request(channel, 1).await;
                    }
                }
                let _ = handle.eof(channel).await;
                let _ = handle.close(channel).await;
            }
        }
        conn.channel_finished(channel);
    }

    async fn run_process(self) -> Result<ExitStatus, SessionError> {
        let spec_has_tty = self.spec.tty.is_some();
        let container = if spec_has_tty {
            // A person is waiting at a terminal: tell them why, if it takes a while.
            let (handle, channel) = (self.handle.clone(), self.channel);
            let show = |line: Vec<u8>| {
                let handle = handle.clone();
                async move {
                    let _ = handle.extended_data(channel, 1, line).await;
                }
            };
            Box::pin(progress::wait_showing(
                self.conn.container(),
                self.conn.progress.subscribe(),
                show,
            ))
            .await?
        } else {
            Box::pin(self.conn.container()).await?
        };
        if let Some(setup) = &self.x11 {
            // As sshd runs xauth: a cookie that cannot be written is logged, and the session
            // starts anyway (its X clients will be refused by the client's X server).
            match Box::pin(x11::write_cookie(&*container, &self.spec.env, setup)).await {
                Ok(Leftover::None) => {}
                Ok(Leftover::Malformed) => tracing::warn!(
                    display = setup.display,
                    "the user's Xauthority file ended in a malformed entry, which was dropped"
                ),
                Err(error) => tracing::warn!(
                    display = setup.display,
                    error = &error as &dyn std::error::Error,
                    "could not write the X11 cookie into the user's Xauthority file"
                ),
            }
        }
        // Boxed, as the other futures awaited only once here: an async fn keeps a slot for
        // each in its own state for as long as it lives, and the session lives for hours.
        let process = Box::pin(container.exec(self.spec)).await.map_err(|e| {
            let error = Arc::new(e);
            self.conn.events.emit_on(
                Some(self.channel),
                EventKind::ProcessFailed {
                    error: Arc::clone(&error),
                },
            );
            SessionError::Start(error)
        })?;
        // The process starts now: the wait for it was not the channel's idle time.
        self.activity.touch();
        let control: Arc<dyn ProcessControl> = Arc::from(process.control);
        let (controls, worker) =
            Controls::start(Arc::clone(&control), Arc::clone(&self.conn.calls));
        let token = self.conn.token.clone();
        self.conn.spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = worker => {}
            }
        });
        let _ = self.control.set(controls);

        let gate = &self.conn.gate;
        let on_eof = if spec_has_tty {
            OnEof::KeepOpen
        } else {
            OnEof::Close
        };
        let feed = input::pump(self.input, process.stdin, on_eof, self.taps.clone());
        let taps = self.taps.as_ref();
        let activity = &*self.activity;
        let out = copy_to_channel(process.stdout, &self.writer, None, gate, taps, activity);
        let err = async {
            if let Some(stderr) = process.stderr {
                copy_to_channel(stderr, &self.writer, Some(1), gate, taps, activity).await;
            }
        };
        // Output decides when the session is over; input is abandoned at that point.
        let outputs = async { tokio::join!(out, err) };
        tokio::pin!(feed, outputs);
        tokio::select! {
            _ = &mut outputs => {}
            () = &mut feed => { outputs.await; }
        }
        Box::pin(control.wait()).await.map_err(|e| {
            let error = Arc::new(e);
            self.conn.events.emit_on(
                Some(self.channel),
                EventKind::ExitStatusUnknown {
                    error: Arc::clone(&error),
                },
            );
            SessionError::Wait(error)
        })
    }
}

/// Whether the channel's taps kept its record (waits for a required recording's write).
async fn kept(taps: Option<&Taps>) -> bool {
    match taps {
        Some(taps) => taps.kept().await,
        None => true,
    }
}

/// Sends exit-status or exit-signal.
async fn report(handle: &Handle, channel: russh::ChannelId, status: ExitStatus) {
    match status {
        ExitStatus::Code(code) => {
            let _ = handle.exit_status_request(channel, code).await;
        }
        ExitStatus::Signal(signal) => {
            let _ = handle
                .exit_signal_request(
                    channel,
                    sshpod_russh::signals::to_sig(signal),
                    false,
                    String::new(),
                    String::new(),
                )
                .await;
        }
    }
}
