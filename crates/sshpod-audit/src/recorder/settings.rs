//! What a connection's recording keeps, shared by the sink, its taps and the writer: whether
//! it records at all (a config server may turn it on per user), whether it is required, which
//! streams it intercepts, and what each channel is (a terminal, a file transfer, a forward).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use sshpod_config::{AuditConfig, AuditIntercept};
use sshpod_core::{ChannelInfo, ChannelKind, Command, Ender, TapRecord};

use super::lock;

const UNDECIDED: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;

const STDIN: u8 = 1;
const STDOUT: u8 = 2;
const STDERR: u8 = 4;
const FORWARDING: u8 = 8;

/// One connection's recording settings.
pub(crate) struct ConnectionFlags {
    state: AtomicU8,
    required: AtomicBool,
    intercept: AtomicU8,
    ender: Ender,
    ended: AtomicBool,
    channels: Mutex<HashMap<u32, Arc<ChannelFlags>>>,
}

fn bits(intercept: AuditIntercept) -> u8 {
    [
        (intercept.stdin, STDIN),
        (intercept.stdout, STDOUT),
        (intercept.stderr, STDERR),
        (intercept.forwarding, FORWARDING),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .fold(0, |bits, (_, bit)| bits | bit)
}

impl ConnectionFlags {
    /// The file configuration's settings: recording from the start, or undecided until the
    /// login's settings are known.
    pub(crate) fn new(config: &AuditConfig, ender: Ender) -> Self {
        Self {
            state: AtomicU8::new(if config.enable { ON } else { UNDECIDED }),
            required: AtomicBool::new(config.required),
            intercept: AtomicU8::new(bits(config.intercept)),
            ender,
            ended: AtomicBool::new(false),
            channels: Mutex::default(),
        }
    }

    /// The login's settings (the file's, or a config server's merged over them).
    pub(crate) fn settle(&self, enable: bool, required: bool, intercept: AuditIntercept) {
        self.required.store(required, Ordering::Relaxed);
        self.intercept.store(bits(intercept), Ordering::Relaxed);
        let _ = self.state.compare_exchange(
            UNDECIDED,
            if enable { ON } else { OFF },
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Nothing more of the connection is recorded.
    pub(crate) fn is_off(&self) -> bool {
        self.state.load(Ordering::Relaxed) == OFF
    }

    /// The recording failed: it stops, and a connection that must be recorded ends.
    pub(crate) fn failed(&self) {
        self.state.store(OFF, Ordering::Relaxed);
        self.end_if_required("the session's recording failed, so the session is ended");
    }

    /// Data was dropped because the writer fell behind.
    pub(crate) fn lost(&self) {
        self.end_if_required("the session's recording fell behind, so the session is ended");
    }

    /// Whether the client must not learn a session's outcome before its record is written.
    pub(crate) fn is_required(&self) -> bool {
        self.required.load(Ordering::Relaxed)
    }

    /// Whether the recording failed a connection that required it (it is being ended).
    pub(crate) fn has_failed_required(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    fn end_if_required(&self, message: &str) {
        if self.required.load(Ordering::Relaxed) && !self.ended.swap(true, Ordering::Relaxed) {
            self.ender.end(message);
        }
    }

    fn has(&self, bit: u8) -> bool {
        self.intercept.load(Ordering::Relaxed) & bit != 0
    }

    /// A channel's flags, once tapped.
    pub(crate) fn channel(&self, channel: u32) -> Option<Arc<ChannelFlags>> {
        lock(&self.channels).get(&channel).cloned()
    }

    /// Drops a channel's flags once its process has ended.
    pub(crate) fn forget_channel(&self, channel: u32) {
        lock(&self.channels).remove(&channel);
    }

    /// Flags for a channel being tapped.
    pub(crate) fn open_channel(&self, info: &ChannelInfo) -> Arc<ChannelFlags> {
        let flags = Arc::new(ChannelFlags {
            bits: AtomicU8::new(match info.kind {
                ChannelKind::DirectTcpip { .. }
                | ChannelKind::ForwardedTcpip { .. }
                | ChannelKind::DirectStreamlocal { .. }
                | ChannelKind::ForwardedStreamlocal { .. }
                | ChannelKind::AuthAgent
                | ChannelKind::X11 { .. } => FORWARD,
                _ => 0,
            }),
        });
        lock(&self.channels).insert(info.channel, Arc::clone(&flags));
        flags
    }
}

const TTY: u8 = 1;
const TRANSFER: u8 = 2;
const FORWARD: u8 = 4;

/// What a channel is, as far as recording it goes.
pub(crate) struct ChannelFlags {
    bits: AtomicU8,
}

impl ChannelFlags {
    pub(crate) fn set_tty(&self) {
        self.bits.fetch_or(TTY, Ordering::Relaxed);
    }

    pub(crate) fn set_transfer(&self) {
        self.bits.fetch_or(TRANSFER, Ordering::Relaxed);
    }

    /// Whether `record` is written: a terminal's output always, a file transfer's bytes both
    /// ways (to find the files), other data as `intercept` says.
    pub(crate) fn wants(&self, connection: &ConnectionFlags, record: &TapRecord<'_>) -> bool {
        let bits = self.bits.load(Ordering::Relaxed);
        let forward = bits & FORWARD != 0;
        match record {
            TapRecord::Input(_) if forward => connection.has(FORWARDING),
            TapRecord::Output(_) if forward => connection.has(FORWARDING),
            TapRecord::Input(_) => bits & TRANSFER != 0 || connection.has(STDIN),
            TapRecord::Output(_) => bits & (TTY | TRANSFER) != 0 || connection.has(STDOUT),
            TapRecord::ErrorOutput(_) => bits & TTY != 0 || connection.has(STDERR),
            TapRecord::Resize(_) | TapRecord::Signal(_) | TapRecord::Exit(_) => true,
        }
    }
}

/// Whether a session's command transfers files (SFTP, or scp's own protocol).
pub(crate) fn is_transfer(command: &Command) -> bool {
    crate::transfers::watcher_for(command).is_some()
}
