//! Channels between workers, bounded by the requests (or responses) they hold, or by
//! their bytes, rather than by the batches that carry them.
//!
//! Workers send batches, so that the cost of a channel operation is paid once per batch.
//! A channel bounded by batches (crossbeam's `bounded(n)`) would hold anywhere from `n` to
//! `n` times the largest batch, which is not a bound an operator can reason about. Here
//! every message carries a weight, and a message is refused when the weights queued plus
//! its own would exceed the capacity. Nothing ever waits: a refused message comes back to
//! the sender, which drops and counts it.
//!
//! The weight is what the bound is about ([`ChannelBound`]): the number of requests in
//! the batch where every request has the same size (UDP, HTTP), and bytes where they do
//! not (WebSocket offers and answers run from a few bytes to a whole message): a bound by
//! count would let a channel of 65,536 offers of 64 KiB hold 4 GiB.
//!
//! Any batch must be able to pass an empty channel: a channel says how much one batch
//! may weigh ([`WeightedSender::max_batch_weight`]), senders keep their batches within
//! it, and configs are checked so that it holds the heaviest single message.
//!
//! The queue underneath is crossbeam's unbounded channel; the bound is a shared atomic
//! counter that the sender raises before sending and the receiver lowers on receipt.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, TryRecvError};

/// The most requests (or responses) a worker puts in one batch; channels hold at least
/// this much (the config validation sees to it), so that any batch can pass.
pub const MAX_BATCH_LEN: usize = 1024;

/// A channel bounded by bytes holds at least this many of its heaviest batches: one
/// batch is at most this fraction of the channel.
pub const BATCHES_PER_BYTE_CHANNEL: usize = 4;

/// What a channel's capacity counts.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ChannelBound {
    /// Requests (or responses): a batch weighs its length, at most [`MAX_BATCH_LEN`],
    /// and the capacity is at least that.
    Requests(usize),
    /// Bytes: a batch weighs what its messages hold, at most
    /// [`max_batch_bytes`] of the capacity.
    Bytes(usize),
}

/// The most a batch may weigh in a channel of `capacity` bytes; every single message
/// must weigh no more (the config validation sees to it), so that any batch can pass.
pub const fn max_batch_bytes(capacity: usize) -> usize {
    capacity / BATCHES_PER_BYTE_CHANNEL
}

/// Why [`WeightedSender::try_send`] gave the message back.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The channel holds too much; the message was not sent.
    Full(T),
    /// The receiver is gone.
    Disconnected(T),
}

/// The sending side; clones share the bound.
#[derive(Debug)]
pub struct WeightedSender<T> {
    inner: crossbeam_channel::Sender<(T, usize)>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    max_batch_weight: usize,
}

impl<T> Clone for WeightedSender<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            queued: self.queued.clone(),
            capacity: self.capacity,
            max_batch_weight: self.max_batch_weight,
        }
    }
}

/// The receiving side.
#[derive(Debug)]
pub struct WeightedReceiver<T> {
    inner: crossbeam_channel::Receiver<(T, usize)>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

/// Adds `weight` to `queued` if the sum stays within `capacity`; whether it did. Two
/// callers cannot both see room for one, and `queued` never passes `capacity`, not even
/// for a moment.
pub fn reserve(queued: &AtomicUsize, weight: usize, capacity: usize) -> bool {
    queued
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            now.checked_add(weight).filter(|after| *after <= capacity)
        })
        .is_ok()
}

/// A channel that holds messages of total weight at most `capacity`.
///
/// A single message heavier than `capacity` can never be sent; callers keep their batches
/// no larger than the capacity (trackers check this when they validate the config).
pub fn weighted<T>(capacity: usize) -> (WeightedSender<T>, WeightedReceiver<T>) {
    with_max_batch(capacity, capacity)
}

/// A channel bounded as `bound` says.
pub fn bounded<T>(bound: ChannelBound) -> (WeightedSender<T>, WeightedReceiver<T>) {
    match bound {
        ChannelBound::Requests(capacity) => weighted(capacity),
        ChannelBound::Bytes(capacity) => with_max_batch(capacity, max_batch_bytes(capacity)),
    }
}

fn with_max_batch<T>(
    capacity: usize,
    max_batch_weight: usize,
) -> (WeightedSender<T>, WeightedReceiver<T>) {
    let (sender, receiver) = crossbeam_channel::unbounded();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        WeightedSender {
            inner: sender,
            queued: queued.clone(),
            capacity,
            max_batch_weight,
        },
        WeightedReceiver {
            inner: receiver,
            queued,
            capacity,
        },
    )
}

impl<T> WeightedSender<T> {
    /// Sends `message` of weight `weight` unless the channel would then hold more than its
    /// capacity.
    ///
    /// # Errors
    /// The message comes back when the channel is full or the receiver is gone.
    pub fn try_send(&self, message: T, weight: usize) -> Result<(), TrySendError<T>> {
        // Reserve first, so that two senders cannot both see room for one message only;
        // and only if there is room, so that the count never passes the capacity, not
        // even for a moment (a reader of `queued` sees the bound hold).
        if !reserve(&self.queued, weight, self.capacity) {
            return Err(TrySendError::Full(message));
        }
        self.inner.send((message, weight)).map_err(|err| {
            self.queued.fetch_sub(weight, Ordering::AcqRel);
            TrySendError::Disconnected(err.into_inner().0)
        })
    }

    /// The weight queued now (for statistics and tests).
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// The most weight the channel holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The most one batch should weigh: a batch sent once it reaches this (or before a
    /// message would take it past this) can always pass the empty channel. For a channel
    /// bounded by requests it is the capacity, which [`MAX_BATCH_LEN`] never reaches.
    pub fn max_batch_weight(&self) -> usize {
        self.max_batch_weight
    }
}

impl<T> WeightedReceiver<T> {
    fn release(&self, (message, weight): (T, usize)) -> T {
        self.queued.fetch_sub(weight, Ordering::AcqRel);
        message
    }

    /// The next message, waiting up to `timeout`.
    ///
    /// # Errors
    /// Nothing arrived in time, or every sender is gone.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.inner.recv_timeout(timeout).map(|m| self.release(m))
    }

    /// Whether more than half the capacity is queued: the receiver is falling behind,
    /// and should take what is queued before it makes the senders more work.
    pub fn backlogged(&self) -> bool {
        self.queued.load(Ordering::Acquire) > self.capacity / 2
    }

    /// The next message if one is queued.
    ///
    /// # Errors
    /// Nothing is queued, or every sender is gone.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.inner.try_recv().map(|m| self.release(m))
    }

    /// Waits up to `timeout` until this channel or `other` has a message (or a sender
    /// side closed), taking none.
    pub fn wait_either<U>(&self, other: &WeightedReceiver<U>, timeout: Duration) {
        let mut select = crossbeam_channel::Select::new();
        select.recv(&self.inner);
        select.recv(&other.inner);
        let _ = select.ready_timeout(timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_counts_weight_not_messages() {
        let (tx, rx) = weighted::<&str>(10);
        assert_eq!(tx.try_send("a", 4), Ok(()));
        assert_eq!(tx.try_send("b", 6), Ok(()));
        // Full at exactly the capacity: even a message of weight 1 is refused.
        assert_eq!(tx.try_send("c", 1), Err(TrySendError::Full("c")));
        assert_eq!(tx.queued(), 10);
        assert!(rx.backlogged());
        assert_eq!(rx.try_recv(), Ok("a"));
        assert_eq!(tx.queued(), 6);
        assert!(rx.backlogged(), "6 of 10 is more than half");
        assert_eq!(tx.try_send("d", 5), Err(TrySendError::Full("d")));
        assert_eq!(tx.try_send("e", 4), Ok(()));
        assert_eq!(rx.recv_timeout(Duration::from_secs(1)), Ok("b"));
        assert!(!rx.backlogged(), "4 of 10 is not more than half");
        assert_eq!(rx.try_recv(), Ok("e"));
        assert_eq!(tx.queued(), 0);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn a_message_heavier_than_the_capacity_never_passes() {
        let (tx, _rx) = weighted::<u8>(3);
        assert_eq!(tx.try_send(1, 4), Err(TrySendError::Full(1)));
        assert_eq!(tx.queued(), 0);
    }

    #[test]
    fn disconnected_gives_the_message_back_and_releases_its_weight() {
        let (tx, rx) = weighted::<u8>(3);
        drop(rx);
        assert_eq!(tx.try_send(1, 2), Err(TrySendError::Disconnected(1)));
        assert_eq!(tx.queued(), 0);
    }

    /// Bounded by bytes: messages of different sizes fill the channel to exactly its
    /// capacity and no further, whoever sends them; a receive makes exactly its bytes
    /// of room.
    #[test]
    fn the_byte_bound_holds_exactly() {
        let (tx, rx) = bounded::<Vec<u8>>(ChannelBound::Bytes(100_000));
        assert_eq!(tx.max_batch_weight(), 25_000);
        let sizes = [25_000, 1, 24_999, 7, 25_000, 24_993];
        for size in sizes {
            let message = vec![0; size];
            assert_eq!(tx.try_send(message, size), Ok(()));
        }
        assert_eq!(tx.queued(), 100_000);
        assert_eq!(
            tx.try_send(vec![0], 1),
            Err(TrySendError::Full(vec![0])),
            "one byte more"
        );
        assert_eq!(rx.try_recv().map(|m| m.len()), Ok(25_000));
        assert_eq!(
            tx.try_send(vec![0; 25_001], 25_001).map_err(|_| ()),
            Err(())
        );
        assert_eq!(tx.try_send(vec![0; 25_000], 25_000), Ok(()));
        assert_eq!(tx.queued(), 100_000);
        // Many threads, many sizes: the queue never holds a byte over the capacity.
        let (tx, rx) = bounded::<()>(ChannelBound::Bytes(1 << 20));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut sent = 0;
                    for i in 0..2000u64 {
                        let size = ((i * 7919 + t * 104_729) % 65_536) as usize + 1;
                        if tx.try_send((), size).is_ok() {
                            sent += size;
                        }
                        assert!(tx.queued() <= 1 << 20);
                    }
                    sent
                })
            })
            .collect();
        let sent: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(sent, tx.queued());
        assert!(sent <= 1 << 20);
        drop(rx);
        let (tx, _rx) = bounded::<()>(ChannelBound::Requests(2048));
        assert_eq!((tx.capacity(), tx.max_batch_weight()), (2048, 2048));
    }

    #[test]
    fn concurrent_senders_never_exceed_the_capacity() {
        let (tx, rx) = weighted::<u32>(100);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let tx = tx.clone();
                std::thread::spawn(move || (0..1000).filter(|_| tx.try_send(1, 7).is_ok()).count())
            })
            .collect();
        let sent: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        // Nobody receives, so exactly floor(100 / 7) messages fit, whoever sent them.
        assert_eq!(sent, 14);
        assert_eq!(tx.queued(), 98);
        drop(rx);
    }
}
