//! The TCP front: the one event loop of the HTTP and WebSocket trackers' socket workers,
//! generic over the protocol spoken on the connections.
//!
//! [`Driver`] owns the poll, the listener, the connections' slots, accepting (under
//! `max_connections` and the per-address cap, with EMFILE retried once descriptors free
//! up), reading, writing, the tracker-wide count of queued bytes, lingering closes, the
//! housekeeping clock, and the order connections are served in ([`ReadyQueue`]: each
//! connection with work left once per turn, a zero poll timeout while work remains).
//! A [`Protocol`] owns what the bytes mean: it parses what [`Front::read`] brought in
//! (with its I/O-free session: `tracker_http_protocol::session`,
//! `tracker_ws_protocol::session`), sends requests on to the request workers, and puts
//! the answers in each connection's [`Outgoing`] bytes; [`Front::write`] writes them.
//!
//! # A turn of the loop
//! 1. Poll (zero timeout while connections wait in the ready queue), and hand each
//!    event to the protocol ([`Protocol::readable`]) or write ([`Front::write`]).
//! 2. Accept, at most [`MAX_ACCEPTS_PER_ROUND`] connections.
//! 3. [`Protocol::after_events`]: the protocol takes the request workers' responses.
//! 4. One turn of the ready queue: every connection queued when it began reads again
//!    (at most a chunk) and handles what it read, once.
//! 5. [`Protocol::after_turn`], then the connections marked dirty are written.
//! 6. Once a second, housekeeping: lingering closes that took too long, the protocol's
//!    idle rule for each connection ([`Protocol::idle`]), [`Protocol::housekeeping`].
//!
//! # What it guarantees every protocol
//! - A connection is in the ready queue at most once, and is served once per turn.
//! - Bytes queued for a connection are counted, shared bodies included, and added up
//!   over the whole tracker (`ConnectionCounters::queued_bytes`) at each write attempt.
//! - A connection is closed after its last byte is out by shutting its write side and
//!   draining what the client still sends (see [`linger`]), so that unread input does not
//!   turn the close into a reset that destroys the last answer.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::ErrorKind;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Registry, Token};

use crate::net::address_limit::{AddressLimit, AddressPermit};
use crate::net::bans::{BanCache, SharedBans};
use crate::net::ready::ReadyQueue;
use crate::net::shared_bytes::{SharedBodies, write_round_shared};
use crate::net::slots::Slots;
use crate::net::tls::SharedServerConfig;
use crate::net::transport::{
    Accepted, Admission, Linger, ReadRound, Transport, WriteRound, accept_one, linger, read_round,
    write_round,
};
use crate::observe::statistics::{
    ConnectionCounters, RateLimitedWarning, SocketCounters, Statistics, add,
};
use crate::runtime::supervisor::ShutdownFlag;

/// Token of the listening socket.
const LISTENER_TOKEN: Token = Token(usize::MAX - 1);
/// Token of the waker that request workers use after sending responses.
pub const WAKER_TOKEN: Token = Token(usize::MAX - 2);
/// Connections accepted per wake-up, so that a connect flood cannot starve the others.
pub const MAX_ACCEPTS_PER_ROUND: usize = 256;
/// How often housekeeping runs.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);

/// What the front needs from the config.
#[derive(Clone, Debug)]
pub struct FrontSettings {
    /// Connections open at most over the whole tracker; one more is closed at once.
    pub max_connections: usize,
    /// How long a poll waits for events when no connection has work left.
    pub poll_timeout: Duration,
}

/// A connection's outgoing bytes: a write buffer, written from an offset on, with shared
/// bodies between its bytes (see [`SharedBodies`]).
#[derive(Debug, Default)]
pub struct Outgoing {
    buf: Vec<u8>,
    written: usize,
    /// Boxed, and only while bodies are queued: most connections never have one, and
    /// an idle connection should cost as little as it can.
    shared: Option<Box<SharedBodies>>,
    /// Bytes of the stream dropped from the front of `buf` (written, then compacted or
    /// cleared), so that [`Self::mark`]s stay valid.
    base: u64,
    /// The part of [`Self::unsent`] counted in [`ConnectionCounters::queued_bytes`].
    accounted: usize,
}

impl Outgoing {
    /// Bytes queued and not written yet, shared bodies included.
    pub fn unsent(&self) -> usize {
        self.buf
            .len()
            .saturating_sub(self.written)
            .saturating_add(self.shared.as_ref().map_or(0, |shared| shared.unsent()))
    }

    /// Queues `bytes`, moved in without a copy when nothing is waiting.
    pub fn push_vec(&mut self, bytes: Vec<u8>) {
        if self.buf.is_empty() {
            self.buf = bytes;
            self.written = 0;
        } else {
            self.buf.extend_from_slice(&bytes);
        }
    }

    /// Queues `body` after everything queued so far, referenced, not copied.
    pub fn push_shared(&mut self, body: Arc<[u8]>) {
        let at = self.buf.len();
        self.shared.get_or_insert_default().push(at, body);
    }

    /// The write buffer, to append to (after [`Self::compact`] when it may have grown).
    pub fn buf_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Drops the written half of the write buffer (once at least half is written), so
    /// that a connection that is always sent something does not grow it for ever.
    pub fn compact(&mut self) {
        if self.written > 0 && self.written >= self.buf.len() / 2 {
            self.buf.drain(..self.written);
            if let Some(shared) = &mut self.shared {
                shared.shift(self.written);
            }
            self.base = self.base.saturating_add(self.written as u64);
            self.written = 0;
        }
    }

    /// Where the bytes queued so far end in the connection's stream.
    pub fn mark(&self) -> u64 {
        self.base.saturating_add(self.buf.len() as u64)
    }

    /// Whether the stream is written up to `mark` (and, with it, the bodies before it).
    pub fn passed(&self, mark: u64) -> bool {
        self.base.saturating_add(self.written as u64) >= mark
    }

    /// Unsent bytes not yet counted in the tracker-wide total.
    fn unaccounted(&self) -> usize {
        self.unsent().saturating_sub(self.accounted)
    }

    /// Writes what the socket takes.
    fn write(&mut self, stream: &mut Transport) -> WriteRound {
        let Some(shared) = &mut self.shared else {
            return write_round(stream, &self.buf, &mut self.written);
        };
        let round = write_round_shared(stream, &self.buf, &mut self.written, shared);
        if shared.is_empty() {
            self.shared = None;
        }
        round
    }

    /// Everything is out: the connection keeps no buffer while idle.
    fn clear(&mut self) {
        self.base = self.base.saturating_add(self.buf.len() as u64);
        self.buf = Vec::new();
        self.written = 0;
    }
}

/// One open connection: its bytes in and out, and its protocol's state.
pub struct Conn<S> {
    stream: Transport,
    /// Its place under the per-address cap, given back when it is dropped.
    _address_permit: AddressPermit,
    /// Closing after its last bytes (see [`linger`]).
    linger: Linger,
    /// Queued in the front's list of connections to write.
    dirty: bool,
    /// The TCP peer, IPv4-mapped addresses as IPv4.
    pub peer_ip: IpAddr,
    /// Bytes read and not yet used by the protocol.
    pub read_buf: Vec<u8>,
    /// Bytes waiting to be written.
    pub out: Outgoing,
    /// The client closed its side: read no more.
    pub peer_closed: bool,
    /// Reading stopped before the socket was drained: the protocol reads again (puts the
    /// connection in the ready queue) once it has room.
    pub read_paused: bool,
    /// What the protocol keeps for it.
    pub state: S,
}

/// How a write attempt went, for [`Protocol::written`].
#[derive(Copy, Clone, Debug)]
pub struct Written {
    /// [`Protocol::fill`] moved something in before it.
    pub filled: bool,
    /// Bytes were waiting before it.
    pub had_unsent: bool,
    /// Bytes the socket took.
    pub wrote: usize,
    /// Everything is out.
    pub all_out: bool,
}

/// What a protocol's idle rule says of a connection (see [`Protocol::idle`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Idle {
    /// Leave it be.
    Keep,
    /// It queued bytes (a ping): write them.
    Wrote,
    /// Close it, counted in `timed_out`.
    TimedOut,
    /// Close it, not counted (a closing connection's grace is over).
    Close,
}

/// What the bytes on the connections mean: parsing, answers, the request workers.
pub trait Protocol: Sized {
    /// What it keeps for each connection.
    type State;

    /// The state of a connection just accepted from `peer_ip`.
    fn open(&mut self, peer_ip: IpAddr, now: Instant) -> Self::State;

    /// The connection in `slot` may have input: a readable event (`may_be_closed`: see
    /// [`read_round`]), or its turn in the ready queue. Reads ([`Front::read`]) if it
    /// takes input now, handles it, and writes.
    fn readable(&mut self, front: &mut Front<Self::State>, slot: usize, may_be_closed: bool);

    /// Moves what waits to be written (answers in order, control frames) into `conn.out`,
    /// before a write attempt and after one that got everything out; returns whether it
    /// moved anything.
    fn fill(&self, conn: &mut Conn<Self::State>) -> bool;

    /// After a write attempt; returns whether the connection should read again (it is
    /// put in the ready queue).
    fn written(&self, conn: &mut Conn<Self::State>, round: Written) -> bool;

    /// Whether the connection closes once its bytes are out.
    fn finished(&self, conn: &Conn<Self::State>) -> bool;

    /// The connection was closed (its `slot` at `generation` is free now).
    fn closed(
        &mut self,
        front: &mut Front<Self::State>,
        slot: usize,
        generation: u32,
        state: Self::State,
    );

    /// After the poll's events and accepting: take the request workers' responses.
    fn after_events(&mut self, front: &mut Front<Self::State>);

    /// After the turn of the ready queue: send on the requests it made.
    fn after_turn(&mut self, front: &mut Front<Self::State>);

    /// Whether the request workers are gone (an error unless shutting down).
    fn request_workers_gone(&self) -> bool;

    /// Housekeeping's rule for one connection that is not lingering.
    fn idle(&self, conn: &mut Conn<Self::State>, now: Instant) -> Idle;

    /// The protocol's own housekeeping, once a second after the idle rule's.
    fn housekeeping(&mut self, front: &mut Front<Self::State>, now: Instant);
}

/// The connections of one socket worker, and the means to read, write and close them.
pub struct Front<S> {
    slots: Slots<Conn<S>>,
    registry: Registry,
    ready: ReadyQueue,
    dirty: Vec<usize>,
    counters: Arc<ConnectionCounters>,
    statistics: Arc<Statistics>,
    index: usize,
    /// Accepting stopped for want of descriptors (EMFILE): the waiting connections raise
    /// no new edge, so accepting is retried when a connection closes and at
    /// housekeeping.
    accept_blocked: bool,
    /// Retry accepting at the next round (a descriptor was freed while blocked).
    retry_accept: bool,
}

impl<S> Front<S> {
    /// The connection in `slot`.
    pub fn get(&self, slot: usize) -> Option<&Conn<S>> {
        self.slots.get(slot)
    }

    /// The connection in `slot`.
    pub fn get_mut(&mut self, slot: usize) -> Option<&mut Conn<S>> {
        self.slots.get_mut(slot)
    }

    /// The connection in `slot`, if the slot still has `generation`.
    pub fn get_current(&mut self, slot: usize, generation: u32) -> Option<&mut Conn<S>> {
        self.slots.get_current(slot, generation)
    }

    /// Whether `slot` holds a connection of `generation`.
    pub fn is_current(&self, slot: usize, generation: u32) -> bool {
        self.slots.is_current(slot, generation)
    }

    /// The generation of `slot` now.
    pub fn generation(&self, slot: usize) -> u32 {
        self.slots.generation(slot)
    }

    /// Every open connection with its slot.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut Conn<S>)> {
        self.slots.iter_mut()
    }

    /// The tracker's connection counts.
    pub fn counters(&self) -> &Arc<ConnectionCounters> {
        &self.counters
    }

    /// This socket worker's request and byte counters.
    pub fn socket_counters(&self) -> &SocketCounters {
        self.statistics.socket(self.index)
    }

    /// Bytes waiting over the whole tracker now, with `conn`'s queued since its last
    /// write attempt.
    pub fn queued_now(&self, conn: &Conn<S>) -> usize {
        self.counters
            .queued_bytes
            .load(Ordering::Relaxed)
            .saturating_add(conn.out.unaccounted())
    }

    /// Has the connection in `slot` read again in the next turn (once, however often
    /// asked).
    pub fn ready(&mut self, slot: usize) {
        self.ready.push(slot);
    }

    /// Has the connection in `slot` written after this turn (once, however often asked).
    pub fn mark_dirty(&mut self, slot: usize) {
        if let Some(c) = self.slots.get_mut(slot)
            && !c.dirty
        {
            c.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// Reads from the connection into its read buffer until the socket has nothing
    /// more, `blocked(buf)` says to stop, or a chunk came (see [`read_round`]); counts
    /// the bytes, and notes whether the client closed its side and whether reading was
    /// paused. `None` if no connection is in `slot`; a failed round's connection is the
    /// caller's to close.
    pub fn read(
        &mut self,
        slot: usize,
        may_be_closed: bool,
        blocked: impl FnMut(&[u8]) -> bool,
    ) -> Option<ReadRound> {
        let c = self.slots.get_mut(slot)?;
        let before = c.read_buf.len();
        let round = read_round(&mut c.stream, &mut c.read_buf, may_be_closed, blocked);
        add(
            &self.statistics.socket(self.index).bytes_received,
            c.read_buf.len().saturating_sub(before) as u64,
        );
        c.peer_closed |= round.peer_closed;
        c.read_paused = !round.drained;
        Some(round)
    }

    /// Moves what the protocol has waiting into the connection's bytes, writes what the
    /// socket takes, and closes the connection when it failed, or when it is finished
    /// and everything is out (after lingering, see [`linger`]).
    pub fn write<P: Protocol<State = S>>(&mut self, slot: usize, protocol: &mut P) {
        let Some(c) = self.slots.get_mut(slot) else {
            return;
        };
        let had_unsent = c.out.unsent() > 0;
        let filled = protocol.fill(c);
        let round = c.out.write(&mut c.stream);
        add(
            &self.statistics.socket(self.index).bytes_sent,
            round.wrote as u64,
        );
        let mut done = false;
        if round.all_out {
            c.out.clear();
            // More may wait now that the last is out (a pong held back behind the one
            // before): write it after this turn.
            if protocol.fill(c) {
                if !c.dirty {
                    c.dirty = true;
                    self.dirty.push(slot);
                }
            } else if protocol.finished(c) {
                // Input still unread would turn the close into a reset that can destroy
                // the last answer: linger unless the client has closed its side.
                done = c.peer_closed || linger(&mut c.stream, &mut c.linger);
            }
        }
        account(&self.counters.queued_bytes, &mut c.out);
        let resume = protocol.written(
            c,
            Written {
                filled,
                had_unsent,
                wrote: round.wrote,
                all_out: round.all_out,
            },
        );
        if round.failed || done {
            self.close(slot, protocol);
        } else if resume {
            self.ready.push(slot);
        }
    }

    /// Closes the connection in `slot` and tells the protocol.
    pub fn close<P: Protocol<State = S>>(&mut self, slot: usize, protocol: &mut P) {
        let generation = self.slots.generation(slot);
        let Some(mut c) = self.slots.remove(slot) else {
            return;
        };
        let _ = self.registry.deregister(c.stream.socket());
        self.counters.open.fetch_sub(1, Ordering::AcqRel);
        self.counters
            .queued_bytes
            .fetch_sub(c.out.accounted, Ordering::Relaxed);
        // A descriptor is freed: a connection waiting in the backlog may now be taken.
        self.retry_accept |= self.accept_blocked;
        protocol.closed(self, slot, generation, c.state);
    }

    /// Writes the connections marked dirty.
    fn write_dirty<P: Protocol<State = S>>(&mut self, protocol: &mut P) {
        while let Some(slot) = self.dirty.pop() {
            if let Some(c) = self.slots.get_mut(slot) {
                c.dirty = false;
            }
            self.write(slot, protocol);
        }
    }

    /// Closes lingering connections whose time is up and applies the protocol's idle
    /// rule to the others.
    fn housekeeping<P: Protocol<State = S>>(&mut self, protocol: &mut P, now: Instant) {
        let mut to_close = Vec::new();
        let mut to_write = Vec::new();
        for (slot, c) in self.slots.iter_mut() {
            if c.linger.started() {
                if c.linger.expired(now) {
                    to_close.push(slot);
                }
                continue;
            }
            match protocol.idle(c, now) {
                Idle::Keep => {}
                Idle::Wrote => to_write.push(slot),
                Idle::TimedOut => {
                    self.counters.timed_out.fetch_add(1, Ordering::Relaxed);
                    to_close.push(slot);
                }
                Idle::Close => to_close.push(slot),
            }
        }
        for slot in to_close {
            self.close(slot, protocol);
        }
        for slot in to_write {
            self.mark_dirty(slot);
        }
        self.retry_accept |= self.accept_blocked;
    }
}

/// Brings the whole tracker's count of waiting bytes up to date with one connection's.
///
/// The count is one cache line that every socket worker writes: a write that leaves a
/// connection's count as it was (all out before and after, the common case) does not
/// touch it.
fn account(queued: &AtomicUsize, out: &mut Outgoing) {
    let unsent = out.unsent();
    match unsent.cmp(&out.accounted) {
        std::cmp::Ordering::Greater => {
            queued.fetch_add(unsent - out.accounted, Ordering::Relaxed);
        }
        std::cmp::Ordering::Less => {
            queued.fetch_sub(out.accounted - unsent, Ordering::Relaxed);
        }
        std::cmp::Ordering::Equal => return,
    }
    out.accounted = unsent;
}

/// One socket worker: its listener and poll, its connections, and its protocol.
pub struct Driver<P: Protocol> {
    poll: Poll,
    listener: TcpListener,
    settings: FrontSettings,
    admission: Admission,
    tls: Option<SharedServerConfig>,
    shutdown: ShutdownFlag,
    accept_warning: RateLimitedWarning,
    front: Front<P::State>,
    protocol: P,
}

/// What a [`Driver`] is made of, apart from its protocol.
pub struct DriverParts {
    /// Its index among the socket workers (for the statistics).
    pub index: usize,
    /// Its listening socket (of a SO_REUSEPORT group).
    pub listener: TcpListener,
    /// Its poll, with the waker at [`WAKER_TOKEN`] that the request workers use.
    pub poll: Poll,
    /// What it needs from the config.
    pub settings: FrontSettings,
    /// The tracker's statistics (its connection counts, this worker's bytes in and out).
    pub statistics: Arc<Statistics>,
    /// Open connections per client address, shared by all socket workers.
    pub per_address: Arc<AddressLimit>,
    /// The bans in force: a banned address's connections are closed at accept.
    pub bans: SharedBans,
    /// The TLS config in force, when the port speaks TLS.
    pub tls: Option<SharedServerConfig>,
    /// Set when the tracker stops.
    pub shutdown: ShutdownFlag,
}

impl<P: Protocol> Driver<P> {
    /// A socket worker speaking `protocol`.
    ///
    /// # Errors
    /// The poll's registry could not be shared.
    pub fn new(parts: DriverParts, protocol: P) -> anyhow::Result<Self> {
        let registry = parts
            .poll
            .registry()
            .try_clone()
            .map_err(|err| anyhow::Error::new(err).context("share the poll's registry"))?;
        Ok(Self {
            poll: parts.poll,
            listener: parts.listener,
            settings: parts.settings,
            admission: Admission {
                per_address: parts.per_address,
                bans: BanCache::new(parts.bans),
            },
            tls: parts.tls,
            shutdown: parts.shutdown,
            accept_warning: RateLimitedWarning::new(Duration::from_secs(10)),
            front: Front {
                slots: Slots::default(),
                registry,
                ready: ReadyQueue::default(),
                dirty: Vec::new(),
                counters: parts.statistics.connections().clone(),
                statistics: parts.statistics,
                index: parts.index,
                accept_blocked: false,
                retry_accept: false,
            },
            protocol,
        })
    }

    /// Runs until shutdown.
    ///
    /// # Errors
    /// Polling failed, or the request workers are gone while no shutdown was asked for.
    pub fn run(mut self) -> anyhow::Result<()> {
        self.poll
            .registry()
            .register(&mut self.listener, LISTENER_TOKEN, Interest::READABLE)
            .map_err(|err| anyhow::Error::new(err).context("register listener"))?;
        let mut events = Events::with_capacity(1024);
        let mut last_housekeeping = Instant::now();
        let mut listener_ready = false;
        let (front, protocol) = (&mut self.front, &mut self.protocol);

        while !self.shutdown.is_set() {
            // While connections have work left, only look for events, and come back.
            let timeout = if front.ready.is_empty() {
                self.settings.poll_timeout
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(anyhow::Error::new(err).context("poll")),
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER_TOKEN => listener_ready = true,
                    WAKER_TOKEN => {}
                    Token(slot) => {
                        if event.is_readable() || event.is_read_closed() {
                            let may_be_closed = event.is_read_closed() || event.is_error();
                            protocol.readable(front, slot, may_be_closed);
                        }
                        if event.is_writable() {
                            front.write(slot, protocol);
                        }
                    }
                }
            }
            if listener_ready || std::mem::take(&mut front.retry_accept) {
                listener_ready = accept(
                    &self.listener,
                    &self.settings,
                    &mut self.admission,
                    self.tls.as_ref(),
                    &mut self.accept_warning,
                    front,
                    protocol,
                );
            }
            protocol.after_events(front);
            // One turn: each connection with work left reads (at most a chunk) and
            // handles once; one that has more waits for the next turn, after the poll.
            let mut turn = front.ready.turn();
            while let Some(slot) = front.ready.next(&mut turn) {
                // Reading was paused: a FIN may have come meanwhile, its edge consumed.
                protocol.readable(front, slot, true);
            }
            protocol.after_turn(front);
            front.write_dirty(protocol);
            if protocol.request_workers_gone() && !self.shutdown.is_set() {
                anyhow::bail!("request worker channel closed");
            }
            if last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
                let now = Instant::now();
                front.housekeeping(protocol, now);
                protocol.housekeeping(front, now);
                front.write_dirty(protocol);
                last_housekeeping = Instant::now();
            }
        }
        Ok(())
    }
}

/// Accepts waiting connections; returns whether more may be waiting.
fn accept<P: Protocol>(
    listener: &TcpListener,
    settings: &FrontSettings,
    admission: &mut Admission,
    tls: Option<&SharedServerConfig>,
    warning: &mut RateLimitedWarning,
    front: &mut Front<P::State>,
    protocol: &mut P,
) -> bool {
    for _ in 0..MAX_ACCEPTS_PER_ROUND {
        let accepted = accept_one(
            listener,
            &front.counters.open,
            settings.max_connections,
            admission,
            tls,
            warning,
        );
        let (stream, addr, address_permit) = match accepted {
            Accepted::Connection(stream, addr, permit) => (stream, addr, permit),
            Accepted::Refused => {
                front.counters.refused.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Accepted::OverAddressLimit => {
                front
                    .counters
                    .refused_per_ip
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Accepted::Banned => {
                add(&front.statistics.socket(front.index).banned, 1);
                continue;
            }
            Accepted::Skipped => continue,
            Accepted::None => {
                front.accept_blocked = false;
                return false;
            }
            Accepted::Blocked => {
                front.accept_blocked = true;
                return false;
            }
        };
        let peer_ip = addr.ip().to_canonical();
        let connection = Conn {
            stream,
            _address_permit: address_permit,
            linger: Linger::default(),
            dirty: false,
            peer_ip,
            read_buf: Vec::new(),
            out: Outgoing::default(),
            peer_closed: false,
            read_paused: false,
            state: protocol.open(peer_ip, Instant::now()),
        };
        let slot = front.slots.insert(connection);
        let registered = front.slots.get_mut(slot).map(|c| {
            front.registry.register(
                c.stream.socket(),
                Token(slot),
                Interest::READABLE | Interest::WRITABLE,
            )
        });
        match registered {
            Some(Err(err)) => {
                log::warn!("register connection: {err}");
                front.close(slot, protocol);
            }
            // Bytes may have come with the connection: read them now.
            _ => front.ready.push(slot),
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpStream};
    use std::thread::JoinHandle;

    /// A line protocol to drive the front with: each line comes back in capitals, `big`
    /// is answered with [`BIG`] bytes and a newline, and `quit` is answered `bye` and
    /// closes the connection. Reading stops while 1 KiB
    /// waits to be sent.
    struct Lines {
        idle_timeout: Duration,
    }

    struct LineConn {
        last: Instant,
        quit: bool,
    }

    const MAX_UNSENT: usize = 1024;
    const BIG: usize = 64 * 1024;

    impl Protocol for Lines {
        type State = LineConn;

        fn open(&mut self, _: IpAddr, now: Instant) -> LineConn {
            LineConn {
                last: now,
                quit: false,
            }
        }

        fn readable(&mut self, front: &mut Front<LineConn>, slot: usize, may_be_closed: bool) {
            let Some(c) = front.get(slot) else {
                return;
            };
            if !c.state.quit && !c.peer_closed {
                let blocked = c.out.unsent() >= MAX_UNSENT;
                let round = front.read(slot, may_be_closed, |_| blocked);
                if round.is_some_and(|r| r.failed) {
                    front.close(slot, self);
                    return;
                }
            }
            if let Some(c) = front.get_mut(slot) {
                while !c.state.quit
                    && c.out.unsent() < MAX_UNSENT
                    && let Some(end) = c.read_buf.iter().position(|b| *b == b'\n')
                {
                    let line: Vec<u8> = c.read_buf.drain(..=end).collect();
                    c.state.last = Instant::now();
                    if line == b"quit\n" {
                        c.state.quit = true;
                        c.read_buf = Vec::new();
                        c.out.push_vec(b"bye\n".to_vec());
                    } else if line == b"big\n" {
                        let mut big = vec![b'B'; BIG];
                        big.push(b'\n');
                        c.out.push_vec(big);
                    } else {
                        c.out.push_vec(line.to_ascii_uppercase());
                    }
                }
            }
            front.write(slot, self);
            if let Some(c) = front.get_mut(slot)
                && c.read_paused
                && !c.state.quit
                && c.out.unsent() < MAX_UNSENT
            {
                front.ready(slot);
            }
        }

        fn fill(&self, _: &mut Conn<LineConn>) -> bool {
            false
        }

        fn written(&self, c: &mut Conn<LineConn>, round: Written) -> bool {
            round.all_out && round.had_unsent && !c.state.quit
        }

        fn finished(&self, c: &Conn<LineConn>) -> bool {
            c.state.quit
        }

        fn closed(&mut self, _: &mut Front<LineConn>, _: usize, _: u32, _: LineConn) {}

        fn after_events(&mut self, _: &mut Front<LineConn>) {}

        fn after_turn(&mut self, _: &mut Front<LineConn>) {}

        fn request_workers_gone(&self) -> bool {
            false
        }

        fn idle(&self, c: &mut Conn<LineConn>, now: Instant) -> Idle {
            if now.saturating_duration_since(c.state.last) > self.idle_timeout {
                Idle::TimedOut
            } else {
                Idle::Keep
            }
        }

        fn housekeeping(&mut self, _: &mut Front<LineConn>, _: Instant) {}
    }

    /// A running front speaking [`Lines`] on 127.0.0.1; stopped when dropped.
    struct Running {
        addr: std::net::SocketAddr,
        counters: Arc<ConnectionCounters>,
        shutdown: ShutdownFlag,
        thread: Option<JoinHandle<anyhow::Result<()>>>,
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.shutdown.set();
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    fn start(max_connections: usize, idle_timeout: Duration) -> Running {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let statistics = Arc::new(Statistics::new(1, 1));
        let counters = statistics.connections().clone();
        let shutdown = ShutdownFlag::new();
        let driver = Driver::new(
            DriverParts {
                index: 0,
                listener: TcpListener::from_std(listener),
                poll: Poll::new().unwrap(),
                settings: FrontSettings {
                    max_connections,
                    poll_timeout: Duration::from_millis(20),
                },
                statistics,
                per_address: AddressLimit::new(0),
                bans: crate::net::bans::shared(crate::net::bans::BanList::empty()),
                tls: None,
                shutdown: shutdown.clone(),
            },
            Lines { idle_timeout },
        )
        .unwrap();
        Running {
            addr,
            counters,
            shutdown,
            thread: Some(std::thread::spawn(move || driver.run())),
        }
    }

    /// Waits (at most 10 s) until `done` holds.
    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn connect(addr: std::net::SocketAddr) -> TcpStream {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    #[test]
    fn answers_then_closes_gracefully_with_input_left_unread() {
        let front = start(16, Duration::from_secs(60));
        let mut client = connect(front.addr);
        // Input after `quit` is never read: the close must not turn into a reset that
        // destroys the answers.
        let mut input = b"one\ntwo\nquit\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 30_000));
        client.write_all(&input).unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).unwrap();
        assert_eq!(answer, b"ONE\nTWO\nbye\n");
        drop(client);
        wait_until("the connection is closed", || {
            front.counters.open.load(Ordering::Acquire) == 0
        });
    }

    #[test]
    fn queued_bytes_are_counted_over_the_tracker_and_given_back_at_close() {
        let front = start(16, Duration::from_secs(60));
        let mut client = connect(front.addr);
        // A client that asks for big answers and never reads: once they fill the socket
        // buffers, the front holds them, and the protocol parses no more past its bound.
        // 4,000 answers of 64 KiB are far more than any socket buffer holds.
        client.write_all(&b"big\n".repeat(4000)).unwrap();
        wait_until("the front holds answers it cannot send", || {
            front.counters.queued_bytes.load(Ordering::Relaxed) >= MAX_UNSENT
        });
        // Parsing stops at the bound: one answer may pass it.
        let queued = front.counters.queued_bytes.load(Ordering::Relaxed);
        let bound = MAX_UNSENT + BIG + 1;
        assert!(queued <= bound, "{queued} bytes queued, bound {bound}");
        client.shutdown(Shutdown::Both).unwrap();
        drop(client);
        wait_until("the connection is closed and its bytes given back", || {
            front.counters.open.load(Ordering::Acquire) == 0
                && front.counters.queued_bytes.load(Ordering::Relaxed) == 0
        });
    }

    #[test]
    fn connections_over_the_limit_are_refused_and_idle_ones_time_out() {
        let front = start(1, Duration::from_secs(1));
        let mut first = connect(front.addr);
        first.write_all(b"hi\n").unwrap();
        let mut answer = [0u8; 3];
        first.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"HI\n");
        let mut second = connect(front.addr);
        let mut rest = Vec::new();
        // Refused: closed at once, with nothing said.
        let _ = second.read_to_end(&mut rest);
        assert!(rest.is_empty());
        wait_until("the refusal is counted", || {
            front.counters.refused.load(Ordering::Relaxed) == 1
        });
        // The first says nothing more: the idle rule closes it.
        let mut rest = Vec::new();
        first.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        wait_until("the idle connection is counted", || {
            front.counters.timed_out.load(Ordering::Relaxed) == 1
                && front.counters.open.load(Ordering::Acquire) == 0
        });
    }

    #[test]
    fn marks_survive_compaction_and_clearing() {
        let mut out = Outgoing::default();
        out.push_vec(b"hello ".to_vec());
        let first = out.mark();
        out.push_vec(b"world".to_vec());
        let second = out.mark();
        assert_eq!(out.unsent(), 11);
        assert!(!out.passed(first));
        out.written = 6;
        assert!(out.passed(first) && !out.passed(second));
        out.compact();
        assert_eq!(out.buf, b"world");
        assert!(out.passed(first) && !out.passed(second));
        out.written = 5;
        assert!(out.passed(second));
        out.clear();
        assert!(out.passed(second));
        assert_eq!(out.mark(), second);
        out.push_vec(b"!".to_vec());
        assert!(!out.passed(out.mark()));
    }

    #[test]
    fn shared_bodies_count_as_unsent_and_follow_their_position() {
        let mut out = Outgoing::default();
        out.push_vec(b"head".to_vec());
        out.push_shared(Arc::from(&b"body"[..]));
        out.buf_mut().extend_from_slice(b"tail");
        assert_eq!(out.unsent(), 12);
        assert_eq!(out.unaccounted(), 12);
        let queued = AtomicUsize::new(0);
        account(&queued, &mut out);
        assert_eq!(queued.load(Ordering::Relaxed), 12);
        assert_eq!(out.unaccounted(), 0);
        out.written = 4;
        // The head out, the body and the tail not.
        assert_eq!(out.unsent(), 8);
        account(&queued, &mut out);
        assert_eq!(queued.load(Ordering::Relaxed), 8);
    }
}
