//! Flow control for client-to-container data: when sshpod stops reading the client's socket.
//!
//! The SSH library refills a channel's window when data arrives, not when it is consumed, and
//! a full library channel queue stops the whole connection loop: no window adjusts, no rekey,
//! no keepalives (see the dependency notes). So sshpod takes every packet off the library at
//! once and holds it per channel (`input`: a little in memory, the rest spooled to disk), and
//! the socket is the one lever left: pausing it pauses every channel of the connection. It
//! is pulled only when the connection holds [`HELD_LIMIT`] bytes that its processes have not
//! read, and then not while an output stream cannot get its data out: output waits for the
//! client's window adjust or for a key exchange to finish, and both arrive on the socket, so
//! holding the socket then would stop the very thing that lets the processes read again (this
//! cycle stalled two-way streams under load). Past [`HELD_HARD_LIMIT`] the socket pauses
//! regardless: only a client that neither reads its output nor stops sending gets there.
//! Nothing here closes a connection: a process may leave its input unread as long as it likes.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Context;
use std::time::Duration;

use futures_util::task::AtomicWaker;
use futures_util::FutureExt;

/// Unread client data (memory and spool) a connection may hold before sshpod stops reading
/// its socket, unless output is waiting on the client.
pub(crate) const HELD_LIMIT: usize = 64 * 1024 * 1024;

/// Unread client data past which the socket is paused even while output waits.
pub(crate) const HELD_HARD_LIMIT: usize = 4 * HELD_LIMIT;

/// Per-connection accounting shared by the input queues, the output pumps and the socket.
#[derive(Debug, Default)]
pub(crate) struct FlowGate {
    /// Client data not yet handed to a process, wherever it is held.
    held: AtomicUsize,
    /// The part of `held` kept in memory.
    in_memory: AtomicUsize,
    /// Output streams whose last write has not gone out yet.
    output_waiting: AtomicUsize,
    reader: AtomicWaker,
}

impl FlowGate {
    /// Client data was queued for a process (`in_memory`, or spooled).
    pub(crate) fn held(&self, bytes: usize, in_memory: bool) {
        self.held.fetch_add(bytes, Ordering::AcqRel);
        if in_memory {
            self.in_memory.fetch_add(bytes, Ordering::AcqRel);
        }
    }

    /// A process took (or will never take) queued data.
    pub(crate) fn released(&self, bytes: usize, in_memory: bool) {
        if bytes == 0 {
            return;
        }
        if in_memory {
            self.in_memory.fetch_sub(bytes, Ordering::AcqRel);
        }
        let before = self.held.fetch_sub(bytes, Ordering::AcqRel);
        let after = before - bytes;
        let crossed = |limit| before >= limit && after < limit;
        if crossed(HELD_LIMIT) || crossed(HELD_HARD_LIMIT) {
            self.reader.wake();
        }
    }

    /// Whether `bytes` more may be kept in memory under the connection's `limit`.
    pub(crate) fn may_hold_in_memory(&self, bytes: usize, limit: usize) -> bool {
        self.in_memory.load(Ordering::Acquire) + bytes <= limit
    }

    /// Client data held now, in memory and spooled.
    pub(crate) fn held_bytes(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// Marks an output stream as waiting on the client until the guard drops.
    pub(crate) fn output_waiting(&self) -> OutputWaiting<'_> {
        self.output_waiting.fetch_add(1, Ordering::AcqRel);
        // Only a paused reader needs waking; below the limit it is reading anyway.
        if self.held.load(Ordering::Acquire) >= HELD_LIMIT {
            self.reader.wake();
        }
        OutputWaiting(self)
    }

    /// Whether the socket may be read now; if not, the reader is woken when it may.
    pub(crate) fn poll_open(&self, cx: &mut Context<'_>) -> bool {
        if self.is_open() {
            return true;
        }
        self.reader.register(cx.waker());
        // Re-check: the state may have changed before the waker was registered.
        self.is_open()
    }

    fn is_open(&self) -> bool {
        let held = self.held.load(Ordering::Acquire);
        held < HELD_LIMIT
            || (held < HELD_HARD_LIMIT && self.output_waiting.load(Ordering::Acquire) > 0)
    }
}

/// Awaits `work`; if it takes longer than `notice`, calls `slow` (to say in the log which
/// side is not reading) and, once it is done, `resumed`. Work that is done at once (most
/// writes of a stream) sets no timer.
pub(crate) async fn noting_a_long_wait<F: Future>(
    work: F,
    notice: Duration,
    slow: impl FnOnce(),
    resumed: impl FnOnce(),
) -> F::Output {
    tokio::pin!(work);
    if let Some(output) = (&mut work).now_or_never() {
        return output;
    }
    match tokio::time::timeout(notice, &mut work).await {
        Ok(output) => output,
        Err(_) => {
            slow();
            let output = work.await;
            resumed();
            output
        }
    }
}

/// See [`FlowGate::output_waiting`].
pub(crate) struct OutputWaiting<'a>(&'a FlowGate);

impl Drop for OutputWaiting<'_> {
    fn drop(&mut self) {
        self.0.output_waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn flagged_context(flag: &Arc<Flag>) -> std::task::Waker {
        std::task::Waker::from(Arc::clone(flag))
    }

    #[test]
    fn closes_at_the_limit_and_reopens_when_read_or_while_output_waits() {
        let gate = FlowGate::default();
        let flag = Arc::new(Flag(false.into()));
        let waker = flagged_context(&flag);
        let mut cx = Context::from_waker(&waker);
        gate.held(HELD_LIMIT - 1, false);
        assert!(gate.poll_open(&mut cx));
        gate.held(10, true);
        assert!(!gate.poll_open(&mut cx));
        {
            let _waiting = gate.output_waiting();
            assert!(
                flag.0.swap(false, Ordering::SeqCst),
                "woken when output waits"
            );
            assert!(gate.poll_open(&mut cx));
        }
        assert!(!gate.poll_open(&mut cx));
        gate.released(10, true);
        assert!(
            flag.0.load(Ordering::SeqCst),
            "woken when back under the limit"
        );
        assert!(gate.poll_open(&mut cx));
    }

    #[test]
    fn past_the_hard_limit_waiting_output_does_not_reopen() {
        let gate = FlowGate::default();
        let flag = Arc::new(Flag(false.into()));
        let waker = flagged_context(&flag);
        let mut cx = Context::from_waker(&waker);
        let _waiting = gate.output_waiting();
        gate.held(HELD_HARD_LIMIT, false);
        assert!(!gate.poll_open(&mut cx));
        flag.0.store(false, Ordering::SeqCst);
        gate.released(1, false);
        assert!(flag.0.load(Ordering::SeqCst), "woken under the hard limit");
        assert!(gate.poll_open(&mut cx), "output waits, so reading goes on");
    }

    #[test]
    fn memory_is_counted_apart_from_the_spool() {
        let gate = FlowGate::default();
        gate.held(100, false);
        gate.held(50, true);
        assert!(gate.may_hold_in_memory(50, 100));
        assert!(!gate.may_hold_in_memory(51, 100));
        gate.released(50, true);
        assert!(gate.may_hold_in_memory(100, 100));
        assert_eq!(gate.held_bytes(), 100);
    }
}
