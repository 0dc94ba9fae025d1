//! Flow control for client-to-container data.
//!
//! russh refills a channel's window when data arrives, not when it is consumed, and a full
//! russh channel queue stops the whole connection loop: no window adjusts, no rekey, no
//! keepalives (see the dependency notes). sshpod therefore takes every packet off russh at
//! once (`input`), and bounds what it holds another way: while a connection holds more than
//! [`INPUT_BUDGET`] bytes that its processes have not yet read, the socket is not read, so
//! the client's window stops being refilled and the client waits. The one exception: while
//! an output stream is waiting for the client's window, reading goes on, because the
//! client's window adjust may be queued behind its data (without this, `cat` moving data
//! both ways would deadlock). If a connection stays paused for [`STALL_LIMIT`], its
//! processes are stuck and the connection is torn down.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Context;
use std::time::Duration;

use futures_util::task::AtomicWaker;

/// Unread client data a connection may hold before sshpod stops reading its socket.
pub(crate) const INPUT_BUDGET: usize = 8 * 1024 * 1024;

/// How long a connection may stay paused with no data consumed before it is torn down.
pub(crate) const STALL_LIMIT: Duration = Duration::from_secs(120);

/// Per-connection accounting shared by the input queues, the output pumps and the socket.
#[derive(Debug, Default)]
pub(crate) struct FlowGate {
    queued: AtomicUsize,
    output_waiting: AtomicUsize,
    reader: AtomicWaker,
}

impl FlowGate {
    /// Client data was queued for a process.
    pub(crate) fn queued(&self, bytes: usize) {
        self.queued.fetch_add(bytes, Ordering::AcqRel);
    }

    /// A process took (or will never take) queued data.
    pub(crate) fn consumed(&self, bytes: usize) {
        let before = self.queued.fetch_sub(bytes, Ordering::AcqRel);
        if before >= INPUT_BUDGET && before - bytes < INPUT_BUDGET {
            self.reader.wake();
        }
    }

    /// Marks an output stream as waiting for the client's window until the guard drops.
    pub(crate) fn output_waiting(&self) -> OutputWaiting<'_> {
        self.output_waiting.fetch_add(1, Ordering::AcqRel);
        self.reader.wake();
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
        self.queued.load(Ordering::Acquire) < INPUT_BUDGET
            || self.output_waiting.load(Ordering::Acquire) > 0
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

    #[test]
    fn closes_over_budget_and_reopens_when_consumed_or_output_waits() {
        let gate = FlowGate::default();
        let flag = Arc::new(Flag(false.into()));
        let waker = std::task::Waker::from(Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        gate.queued(INPUT_BUDGET - 1);
        assert!(gate.poll_open(&mut cx));
        gate.queued(10);
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
        gate.consumed(10);
        assert!(
            flag.0.load(Ordering::SeqCst),
            "woken when back under budget"
        );
        assert!(gate.poll_open(&mut cx));
    }
}
