//! Resize and signal requests for a running process, bounded against floods.
//!
//! Each is an engine or API call, and a client can send thousands a second. So a channel has
//! one worker that makes at most one call at a time: of resizes only the latest size counts,
//! and a signal already waiting to be delivered is not queued twice (there are only so many
//! signals, so the queue is bounded by itself). The connection's calls also share
//! [`CALLS_PER_CONNECTION`] slots, so one connection cannot hold more than that many engine
//! calls, descriptors or tasks however many channels it opens.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use sshpod_core::{ProcessControl, Signal, TerminalSize};
use tokio::sync::{Notify, Semaphore};

/// Engine or API calls (resize, signal) one connection may have in flight at once.
pub(crate) const CALLS_PER_CONNECTION: usize = 4;

/// A connection's share of engine calls.
pub(crate) type CallSlots = Arc<Semaphore>;

/// A fresh share for one connection.
pub(crate) fn call_slots() -> CallSlots {
    Arc::new(Semaphore::new(CALLS_PER_CONNECTION))
}

/// The requests waiting for one channel's process.
#[derive(Default)]
struct Pending {
    size: Option<TerminalSize>,
    signals: VecDeque<Signal>,
    closed: bool,
}

/// What the handler keeps per running process; dropping it stops the worker.
pub(crate) struct Controls {
    pending: Arc<(Mutex<Pending>, Notify)>,
}

impl Controls {
    /// Starts the worker for `control`, making its calls within `slots`.
    pub(crate) fn start(
        control: Arc<dyn ProcessControl>,
        slots: CallSlots,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let pending: Arc<(Mutex<Pending>, Notify)> = Arc::default();
        let worker = work(Arc::clone(&pending), control, slots);
        (Self { pending }, worker)
    }

    /// Asks for a new terminal size; replaces one not yet applied.
    pub(crate) fn resize(&self, size: TerminalSize) {
        self.update(|p| p.size = Some(size));
    }

    /// Asks for a signal; ignored if the same signal is already waiting.
    pub(crate) fn signal(&self, signal: Signal) {
        self.update(|p| {
            if !p.signals.contains(&signal) {
                p.signals.push_back(signal);
            }
        });
    }

    fn update(&self, change: impl FnOnce(&mut Pending)) {
        let (lock, notify) = &*self.pending;
        change(&mut lock.lock().unwrap_or_else(|e| e.into_inner()));
        notify.notify_one();
    }
}

impl Drop for Controls {
    fn drop(&mut self) {
        self.update(|p| p.closed = true);
    }
}

/// What the worker does next.
enum Call {
    Resize(TerminalSize),
    Signal(Signal),
}

async fn work(
    pending: Arc<(Mutex<Pending>, Notify)>,
    control: Arc<dyn ProcessControl>,
    slots: CallSlots,
) {
    let (lock, notify) = &*pending;
    loop {
        let notified = notify.notified();
        let next = {
            let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
            if p.closed {
                return;
            }
            // A signal goes before a resize: a user pressing Ctrl-C while resizing wants it.
            match p.signals.pop_front() {
                Some(signal) => Some(Call::Signal(signal)),
                None => p.size.take().map(Call::Resize),
            }
        };
        let Some(call) = next else {
            notified.await;
            continue;
        };
        let Ok(_slot) = slots.acquire().await else {
            return;
        };
        match call {
            Call::Resize(size) => {
                if let Err(e) = control.resize(size).await {
                    tracing::debug!(error = &e as &dyn std::error::Error, "resize failed");
                }
            }
            Call::Signal(signal) => match control.signal(signal).await {
                Ok(()) => tracing::debug!(signal = signal.name(), "signal delivered"),
                Err(e) => {
                    tracing::info!(error = &e as &dyn std::error::Error, "signal not delivered")
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::future::BoxFuture;
    use sshpod_core::{BackendError, ExitStatus};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A process whose calls take a second each and are recorded.
    #[derive(Default)]
    struct SlowControl {
        calls: Mutex<Vec<String>>,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    impl SlowControl {
        fn call(&self, what: String) -> BoxFuture<'_, Result<(), BackendError>> {
            Box::pin(async move {
                let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.most_in_flight.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.calls.lock().unwrap().push(what);
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
        }
    }

    impl ProcessControl for SlowControl {
        fn resize(&self, size: TerminalSize) -> BoxFuture<'_, Result<(), BackendError>> {
            self.call(format!("resize {}x{}", size.cols, size.rows))
        }
        fn signal(&self, signal: Signal) -> BoxFuture<'_, Result<(), BackendError>> {
            self.call(format!("signal {}", signal.name()))
        }
        fn wait(&self) -> BoxFuture<'_, Result<ExitStatus, BackendError>> {
            Box::pin(std::future::pending())
        }
    }

    fn size(cols: u16) -> TerminalSize {
        TerminalSize { cols, rows: 24 }
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_resizes_and_signals_makes_a_handful_of_calls() {
        let control = Arc::new(SlowControl::default());
        let (controls, worker) = Controls::start(control.clone(), call_slots());
        let worker = tokio::spawn(worker);
        for i in 0..20_000 {
            controls.resize(size(i % 500 + 1));
            if i % 2 == 0 {
                controls.signal(Signal::Int);
            }
        }
        controls.resize(size(132));
        tokio::time::sleep(Duration::from_secs(10)).await;
        let calls = control.calls.lock().unwrap().clone();
        assert!(calls.len() <= 4, "{calls:?}");
        assert_eq!(calls.last().map(String::as_str), Some("resize 132x24"));
        assert!(calls.contains(&"signal INT".to_owned()), "{calls:?}");
        assert_eq!(control.most_in_flight.load(Ordering::SeqCst), 1);
        drop(controls);
        worker.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn channels_of_one_connection_share_its_call_slots() {
        let control = Arc::new(SlowControl::default());
        let slots = call_slots();
        let mut kept = Vec::new();
        for i in 0..20 {
            let (controls, worker) = Controls::start(control.clone(), Arc::clone(&slots));
            tokio::spawn(worker);
            controls.resize(size(i + 1));
            kept.push(controls);
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(
            control.calls.lock().unwrap().len(),
            20,
            "every channel served"
        );
        assert_eq!(
            control.most_in_flight.load(Ordering::SeqCst),
            CALLS_PER_CONNECTION
        );
    }

    #[tokio::test(start_paused = true)]
    async fn signals_keep_their_order_and_are_not_queued_twice() {
        let control = Arc::new(SlowControl::default());
        let (controls, worker) = Controls::start(control.clone(), call_slots());
        for signal in [
            Signal::Term,
            Signal::Int,
            Signal::Term,
            Signal::Hup,
            Signal::Int,
        ] {
            controls.signal(signal);
        }
        tokio::spawn(worker);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(
            *control.calls.lock().unwrap(),
            ["signal TERM", "signal INT", "signal HUP"]
        );
    }
}
