//! Client-to-process data, taken off the SSH connection at once and held per channel.
//!
//! The SSH library refills a channel's window as data arrives, not as the process reads it,
//! so a client may send a channel more than its process takes for as long as it likes; and
//! holding the connection's socket back would hold back every other channel on it too (see
//! `flow`). So each channel's queue keeps a little in memory ([`CHANNEL_MEMORY`], and at most
//! [`CONNECTION_MEMORY`] across the connection) and spools the rest, in order, to an unnamed
//! temporary file that the pump reads back as the process takes it. A process that stops
//! reading therefore costs disk, not memory, and holds up nobody else; the connection's
//! [`FlowGate`] still pauses the socket if the held total reaches its limit.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use crate::server::events::{tap_data, Taps};
use crate::server::io::flow::{noting_a_long_wait, FlowGate};
use sshpod_core::TapRecord;

/// Client data one channel keeps in memory; more goes to its spool file.
pub(crate) const CHANNEL_MEMORY: usize = 1024 * 1024;

/// Client data all channels of a connection keep in memory together.
pub(crate) const CONNECTION_MEMORY: usize = 8 * 1024 * 1024;

/// How much is read back from a spool file at a time.
const SPOOL_READ: usize = 256 * 1024;

/// A process that has not read its input for this long is mentioned in the log.
const SLOW_READER_NOTICE: Duration = Duration::from_secs(30);

/// The sending side, kept by the handler. Dropping it is EOF.
pub(crate) struct InputSender {
    queue: Arc<Queue>,
}

/// The receiving side, consumed by the pump. Whatever it still holds when dropped is
/// released from the connection's accounts.
pub(crate) struct InputReceiver {
    queue: Arc<Queue>,
}

/// A fresh queue accounted against `gate`.
pub(crate) fn queue(gate: &Arc<FlowGate>) -> (InputSender, InputReceiver) {
    let queue = Arc::new(Queue {
        state: Mutex::new(State::default()),
        ready: Notify::new(),
        gate: Arc::clone(gate),
    });
    (
        InputSender {
            queue: Arc::clone(&queue),
        },
        InputReceiver { queue },
    )
}

struct Queue {
    state: Mutex<State>,
    /// Signalled when data or EOF arrives.
    ready: Notify,
    gate: Arc<FlowGate>,
}

#[derive(Default)]
struct State {
    /// Data before the spool's, in order.
    memory: VecDeque<Bytes>,
    /// Data after the spool's: what came once the disk refused more while the spool still
    /// had data to give back.
    after_spool: VecDeque<Bytes>,
    /// Bytes in `memory` and `after_spool`.
    memory_bytes: usize,
    spool: Option<Spool>,
    /// The client sent EOF (or the channel went away).
    eof: bool,
    /// The process went away: new data is dropped, as a closed pipe would drop it.
    closed: bool,
    /// The disk refused the spool once: the channel keeps its input in memory from then on.
    spool_refused: bool,
    /// Taken by the pump but not yet handed to the process, by where it was held.
    taken_from_memory: usize,
    taken_from_spool: usize,
}

/// An unnamed file holding `[read, written)` of a channel's input; always the newest data.
struct Spool {
    file: Arc<File>,
    read: u64,
    written: u64,
}

impl Spool {
    fn unread(&self) -> u64 {
        self.written - self.read
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the counters are still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl InputSender {
    /// Queues one packet: in memory while the channel and the connection are within their
    /// shares, else (and while older data waits there) at the end of the spool file.
    pub(crate) fn push(&self, data: Bytes) {
        let len = data.len();
        let queue = &self.queue;
        let mut state = queue.lock();
        if state.closed || len == 0 {
            return;
        }
        let spool_unread = state.spool.as_ref().is_some_and(|s| s.unread() > 0);
        let spilling = state.memory_bytes + len > CHANNEL_MEMORY
            || !queue.gate.may_hold_in_memory(len, CONNECTION_MEMORY);
        let place = if !state.after_spool.is_empty() {
            Place::AfterSpool
        } else if (spool_unread || spilling)
            && !state.spool_refused
            && spool_write(&mut state, &data)
        {
            Place::Spool
        } else if spool_unread {
            // The disk refused more while older data waits in the spool: keep the order.
            Place::AfterSpool
        } else {
            Place::Memory
        };
        queue.gate.held(len, place != Place::Spool);
        match place {
            Place::Spool => {}
            Place::Memory => state.memory.push_back(data),
            Place::AfterSpool => state.after_spool.push_back(data),
        }
        if place != Place::Spool {
            state.memory_bytes += len;
        }
        drop(state);
        queue.ready.notify_one();
    }
}

/// Where a packet waits: the three are delivered in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Memory,
    Spool,
    AfterSpool,
}

/// Appends to the channel's spool, creating it on first use. False when the disk refuses
/// (said once per channel): the data then stays in memory, still bounded by the gate's pause.
fn spool_write(state: &mut State, data: &[u8]) -> bool {
    let written = spool_append(state, data);
    if !written {
        state.spool_refused = true;
    }
    written
}

fn spool_append(state: &mut State, data: &[u8]) -> bool {
    if state.spool.is_none() {
        match tempfile::tempfile() {
            Ok(file) => {
                state.spool = Some(Spool {
                    file: Arc::new(file),
                    read: 0,
                    written: 0,
                })
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    dir = %std::env::temp_dir().display(),
                    "cannot create a spool file for client input (set TMPDIR to a writable directory); holding it in memory"
                );
                return false;
            }
        }
    }
    let Some(spool) = state.spool.as_mut() else {
        return false;
    };
    // A local write that the page cache takes; the connection's loop waits for it.
    match spool.file.write_all_at(data, spool.written) {
        Ok(()) => {
            spool.written += data.len() as u64;
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot spool client input; holding it in memory");
            false
        }
    }
}

impl Drop for InputSender {
    fn drop(&mut self) {
        self.queue.lock().eof = true;
        self.queue.ready.notify_one();
    }
}

/// The next piece of input to hand to the process.
enum Next {
    Data(Bytes),
    /// `len` bytes at `offset` of the spool file.
    Spooled {
        file: Arc<File>,
        offset: u64,
        len: usize,
    },
    Eof,
}

/// Where a piece of input was held until the pump took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeldIn {
    Memory,
    Spool,
}

impl InputReceiver {
    /// The next piece of input, or None at EOF.
    async fn recv(&mut self) -> Option<(Bytes, HeldIn)> {
        loop {
            let notified = self.queue.ready.notified();
            let Some(next) = self.take() else {
                notified.await;
                continue;
            };
            return match next {
                Next::Data(data) => Some((data, HeldIn::Memory)),
                Next::Eof => None,
                Next::Spooled { file, offset, len } => {
                    let read = tokio::task::spawn_blocking(move || {
                        let mut buf = vec![0u8; len];
                        file.read_exact_at(&mut buf, offset).map(|()| buf)
                    })
                    .await;
                    self.read_done();
                    match read {
                        Ok(Ok(buf)) => Some((Bytes::from(buf), HeldIn::Spool)),
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "reading spooled client input; the process's input ends here");
                            None
                        }
                        Err(_) => None,
                    }
                }
            };
        }
    }

    /// What to deliver next, without waiting; None when nothing is there yet. Spooled data
    /// counts as taken from the file at once (the next call reads on from there).
    fn take(&self) -> Option<Next> {
        let mut state = self.queue.lock();
        if let Some(data) = state.memory.pop_front() {
            state.memory_bytes -= data.len();
            state.taken_from_memory += data.len();
            return Some(Next::Data(data));
        }
        if let Some(spool) = state.spool.as_mut().filter(|s| s.unread() > 0) {
            let len = usize::try_from(spool.unread()).map_or(SPOOL_READ, |u| u.min(SPOOL_READ));
            let next = Next::Spooled {
                file: Arc::clone(&spool.file),
                offset: spool.read,
                len,
            };
            spool.read += len as u64;
            state.taken_from_spool += len;
            return Some(next);
        }
        if let Some(data) = state.after_spool.pop_front() {
            state.memory_bytes -= data.len();
            state.taken_from_memory += data.len();
            return Some(Next::Data(data));
        }
        state.eof.then_some(Next::Eof)
    }

    /// A read from the spool finished: once everything in it is read, the file starts over
    /// at the beginning and gives its blocks back. (Not before: a write must not land where
    /// a read is still going on.)
    fn read_done(&self) {
        let mut state = self.queue.lock();
        if let Some(spool) = state.spool.as_mut() {
            if spool.unread() == 0 {
                let _ = spool.file.set_len(0);
                spool.read = 0;
                spool.written = 0;
            }
        }
    }

    /// Whether nothing waits, in memory or spooled.
    fn is_empty(&self) -> bool {
        self.held_bytes() == 0
    }

    /// Bytes waiting, in memory and spooled (not counting a piece the pump holds).
    fn held_bytes(&self) -> u64 {
        let state = self.queue.lock();
        state.memory_bytes as u64 + state.spool.as_ref().map_or(0, Spool::unread)
    }

    /// Data the pump took has been handed to the process (or dropped with it).
    fn released(&self, len: usize, held_in: HeldIn) {
        let mut state = self.queue.lock();
        match held_in {
            HeldIn::Memory => state.taken_from_memory -= len,
            HeldIn::Spool => state.taken_from_spool -= len,
        }
        drop(state);
        self.queue.gate.released(len, held_in == HeldIn::Memory);
    }
}

impl Drop for InputReceiver {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.closed = true;
        state.memory.clear();
        state.after_spool.clear();
        let memory =
            std::mem::take(&mut state.memory_bytes) + std::mem::take(&mut state.taken_from_memory);
        let spooled = state.spool.take().map_or(0, |s| s.unread())
            + std::mem::take(&mut state.taken_from_spool) as u64;
        drop(state);
        self.queue.gate.released(memory, true);
        self.queue
            .gate
            .released(usize::try_from(spooled).unwrap_or(usize::MAX), false);
    }
}

/// What the client's EOF means for the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnEof {
    /// Close the process's stdin (a pipe).
    Close,
    /// Leave it open: with a terminal, input and output are one device, and closing it
    /// would cut the output too (OpenSSH's sshd does the same).
    KeepOpen,
}

/// Feeds `sink` from the queue (each piece through the channel's taps first) until EOF (the
/// sender dropped), then closes the sink if `on_eof` says so.
pub(crate) async fn pump<W: AsyncWrite + Unpin>(
    mut queue: InputReceiver,
    mut sink: W,
    on_eof: OnEof,
    taps: Option<Taps>,
) {
    while let Some((data, held_in)) = queue.recv().await {
        tap_data(taps.as_ref(), TapRecord::Input(&data)).await;
        let written = write_noting_slow_reader(&mut sink, &data, &queue).await;
        queue.released(data.len(), held_in);
        if written.is_err() {
            return;
        }
        // Interactive input must not sit in a buffer.
        if queue.is_empty() && sink.flush().await.is_err() {
            return;
        }
    }
    match on_eof {
        OnEof::Close => {
            let _ = sink.shutdown().await;
        }
        OnEof::KeepOpen => {
            let _ = sink.flush().await;
            // Hold the sink: dropping it would close the process's input all the same.
            std::future::pending::<()>().await;
        }
    }
}

/// Writes `data` to the process; if it takes long, says in the log that the process (not
/// the client) is the one not reading, and how much input waits for it.
async fn write_noting_slow_reader<W: AsyncWrite + Unpin>(
    sink: &mut W,
    data: &[u8],
    queue: &InputReceiver,
) -> std::io::Result<()> {
    noting_a_long_wait(
        sink.write_all(data),
        SLOW_READER_NOTICE,
        || {
            tracing::info!(
                waiting_bytes = queue.held_bytes() + data.len() as u64,
                "the process has not read its input for {}s; the client is not held back, its data waits on disk",
                SLOW_READER_NOTICE.as_secs()
            )
        },
        || tracing::info!("the process reads its input again"),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn pattern(len: usize, seed: u8) -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[tokio::test]
    async fn pumps_in_order_and_forwards_eof() {
        let gate = Arc::new(FlowGate::default());
        let (tx, rx) = queue(&gate);
        let (w, mut r) = tokio::io::duplex(1024);
        let pumping = tokio::spawn(pump(rx, w, OnEof::Close, None));
        tx.push(Bytes::from_static(b"ab"));
        tx.push(Bytes::from_static(b"cd"));
        drop(tx);
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"abcd");
        pumping.await.unwrap();
        assert_eq!(gate.held_bytes(), 0);
    }

    #[tokio::test]
    async fn input_beyond_the_channel_share_is_spooled_and_comes_back_in_order() {
        let gate = Arc::new(FlowGate::default());
        let (tx, rx) = queue(&gate);
        let mut sent = Vec::new();
        // Five times the channel's memory share, in packets of uneven sizes.
        for i in 0..(5 * CHANNEL_MEMORY / 30_000) {
            let packet = pattern(30_000 + i % 7, i as u8);
            sent.extend_from_slice(&packet);
            tx.push(packet);
        }
        assert_eq!(gate.held_bytes(), sent.len());
        assert!(
            gate.may_hold_in_memory(CONNECTION_MEMORY - CHANNEL_MEMORY, CONNECTION_MEMORY),
            "no more than the channel's share is in memory"
        );
        // More while the pump reads the spool back: it joins the end of the line.
        let tail = pattern(100_000, 7);
        sent.extend_from_slice(&tail);
        assert_pumped_in_order(&gate, rx, sent, move || tx.push(tail)).await;
    }

    /// Pumps `rx` to the end (after `then` has run and the sender is gone) and checks that
    /// exactly `sent` came out, in order, and that nothing is left on the gate's account.
    async fn assert_pumped_in_order(
        gate: &FlowGate,
        rx: InputReceiver,
        sent: Vec<u8>,
        then: impl FnOnce(),
    ) {
        let (w, mut r) = tokio::io::duplex(64 * 1024);
        let pumping = tokio::spawn(pump(rx, w, OnEof::Close, None));
        then();
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        assert!(
            out == sent,
            "{} bytes in, {} out, or out of order",
            sent.len(),
            out.len()
        );
        pumping.await.unwrap();
        assert_eq!(gate.held_bytes(), 0);
    }

    #[tokio::test]
    async fn when_the_disk_refuses_more_input_keeps_its_order_in_memory() {
        let gate = Arc::new(FlowGate::default());
        let (tx, rx) = queue(&gate);
        let mut sent = Vec::new();
        for i in 0..3u8 {
            let packet = pattern(CHANNEL_MEMORY, i);
            sent.extend_from_slice(&packet);
            tx.push(packet);
        }
        // The disk fills up while two packets wait in the spool.
        tx.queue.lock().spool_refused = true;
        for i in 3..5u8 {
            let packet = pattern(CHANNEL_MEMORY / 2, i);
            sent.extend_from_slice(&packet);
            tx.push(packet);
        }
        assert_eq!(gate.held_bytes(), sent.len());
        assert_pumped_in_order(&gate, rx, sent, move || drop(tx)).await;
    }

    #[tokio::test]
    async fn channels_share_the_connections_memory() {
        let gate = Arc::new(FlowGate::default());
        let queues: Vec<_> = (0..CONNECTION_MEMORY / CHANNEL_MEMORY + 2)
            .map(|_| queue(&gate))
            .collect();
        for (tx, _) in &queues {
            tx.push(pattern(CHANNEL_MEMORY, 1));
        }
        assert!(
            !gate.may_hold_in_memory(1, CONNECTION_MEMORY),
            "memory is full"
        );
        assert!(
            gate.may_hold_in_memory(0, CONNECTION_MEMORY),
            "but not over"
        );
        assert_eq!(gate.held_bytes(), queues.len() * CHANNEL_MEMORY);
    }

    #[tokio::test]
    async fn unread_data_is_released_when_the_process_goes_away() {
        let gate = Arc::new(FlowGate::default());
        let (tx, rx) = queue(&gate);
        tx.push(pattern(3 * CHANNEL_MEMORY, 3));
        assert_eq!(gate.held_bytes(), 3 * CHANNEL_MEMORY);
        drop(rx);
        assert_eq!(gate.held_bytes(), 0, "released");
        tx.push(Bytes::from_static(b"late"));
        assert_eq!(gate.held_bytes(), 0, "late data is not counted");
        assert!(gate.may_hold_in_memory(CONNECTION_MEMORY, CONNECTION_MEMORY));
    }

    #[tokio::test]
    async fn a_pump_dropped_mid_write_releases_what_it_took() {
        let gate = Arc::new(FlowGate::default());
        let (tx, rx) = queue(&gate);
        tx.push(pattern(2 * CHANNEL_MEMORY, 5));
        // A process that reads nothing: the pump takes a piece and waits on the write.
        let (w, mut r) = tokio::io::duplex(16);
        let pumping = tokio::spawn(pump(rx, w, OnEof::Close, None));
        let mut first = [0u8; 16];
        r.read_exact(&mut first).await.unwrap();
        assert_eq!(
            gate.held_bytes(),
            2 * CHANNEL_MEMORY,
            "taken, not yet written"
        );
        pumping.abort();
        let _ = pumping.await;
        assert_eq!(gate.held_bytes(), 0);
        drop(tx);
    }
}
