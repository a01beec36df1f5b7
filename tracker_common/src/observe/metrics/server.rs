//! The metrics listener: one thread, one mio poll, many connections at once.
//!
//! Rules it keeps:
//! - No client holds the thread. Sockets are non-blocking, and each connection is a
//!   small state machine (read the request head, write the answer, then read what the
//!   client still sends) that moves when its socket is ready. A silent client, one that
//!   sends a byte a second and one that does not read its answer each hold one slot,
//!   never the thread, so a scrape is answered as soon as it arrives.
//! - One deadline per request, on the whole of it: from accept to the last byte of the
//!   answer, [`Limits::request_timeout`]; a connection past it is closed, whatever it is
//!   doing. (A timeout per read or write call would let a client that sends a byte a
//!   second keep its slot for ever.)
//! - Bounded: at most [`Limits::max_connections`] connections open (one more is closed
//!   as soon as it is accepted), one request per connection, a request head of at most
//!   [`MAX_REQUEST_BYTES`] (a larger one is answered 431), at most
//!   [`MAX_DRAINED_BYTES`] read after the answer, and answers no larger than what the
//!   server makes (the page's files, the figures).
//! - The history of the page's charts is sampled on this thread, between two polls, on
//!   its own timer: it has one owner and needs no lock.
//!
//! It is for a scraper on a trusted network, not for the public: its address defaults
//! to loopback.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::observe::history::History;
use crate::observe::metrics::{ASSETS, Identity, encode_prometheus, health, to_json};
use crate::observe::statistics::{RateLimitedWarning, Statistics};
use crate::runtime::supervisor::{EndedThreads, ShutdownFlag};

/// Longest time one request may take, from accept to the last byte of its answer
/// written: what [`Limits::default`] uses.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Most connections open at once: what [`Limits::default`] uses. A Prometheus server
/// holds one, a browser showing the page a few; 64 leaves room for several of each and
/// bounds the listener's memory (64 request heads of [`MAX_REQUEST_BYTES`], 512 KiB)
/// and file descriptors.
pub const MAX_CONNECTIONS: usize = 64;
/// Largest request head read; a larger one is answered 431.
pub const MAX_REQUEST_BYTES: usize = 8192;
/// Most bytes read, and dropped, after an answer to a request that was not read whole
/// (too large, or not HTTP), so that closing does not reset the connection before the
/// client has read the answer.
pub const MAX_DRAINED_BYTES: usize = 8 * MAX_REQUEST_BYTES;
/// How late the server notices a shutdown at most.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// The listener's token; connection `i` has `Token(i + 1)`.
const LISTENER: Token = Token(0);
/// Bytes read from a socket per call.
const READ_CHUNK: usize = 4096;

/// How much one client may take of the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The deadline of a request, from accept to the last byte of its answer.
    pub request_timeout: Duration,
    /// Connections open at once; more are closed at accept.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: REQUEST_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Binds the metrics listener.
///
/// # Errors
/// The address cannot be bound.
pub fn bind(address: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(address)
        .with_context(|| format!("bind metrics listener on {address}"))?;
    let local = listener
        .local_addr()
        .context("read the metrics listener's address")?;
    Ok((listener, local))
}

/// The metrics server: what it serves, where, and within which limits.
pub struct MetricsServer {
    listener: TcpListener,
    /// Made with the server, before the tracker serves: descriptors run short later (a
    /// connection flood), never at its start. Taken by [`MetricsServer::run`].
    poll: Option<Poll>,
    statistics: Arc<Statistics>,
    identity: Identity,
    shutdown: ShutdownFlag,
    history: History,
    limits: Limits,
    ended: EndedThreads,
}

/// Where a connection is in its one request.
enum State {
    /// Reading the request head, which `head` holds so far.
    Reading { head: Vec<u8> },
    /// Writing `answer`, of which `written` bytes are out. `whole`: whether the request
    /// was read whole (if not, see [`State::Draining`]).
    Writing {
        answer: Vec<u8>,
        written: usize,
        whole: bool,
    },
    /// The answer is out, after a request that was not read whole (too large, or not
    /// HTTP): closing with unread bytes would reset the connection, and the reset can
    /// destroy the answer before the client reads it. So the write side is shut, and what
    /// the client still sends is read and dropped until it closes, up to
    /// [`MAX_DRAINED_BYTES`], within the same deadline.
    Draining { drained: usize },
}

/// One client connection.
struct Connection {
    stream: TcpStream,
    /// When it is closed, whatever its state.
    deadline: Instant,
    state: State,
}

/// What to do with a connection once it cannot move further for now.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Wait for its socket to be ready again.
    Wait,
    /// Close it: done, or the client went away.
    Close,
}

impl MetricsServer {
    /// A server on `listener` (see [`bind`]) serving the `statistics` of the tracker
    /// `identity`, sampling `history`, until `shutdown`, within [`Limits::default`]; it
    /// knows of no threads until [`MetricsServer::with_ended_threads`].
    ///
    /// # Errors
    /// The poll could not be made, or the listener registered with it.
    pub fn new(
        mut listener: TcpListener,
        statistics: Arc<Statistics>,
        identity: Identity,
        shutdown: ShutdownFlag,
        history: History,
    ) -> anyhow::Result<Self> {
        let poll = Poll::new().context("create metrics poll")?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .context("register metrics listener")?;
        Ok(Self {
            listener,
            poll: Some(poll),
            statistics,
            identity,
            shutdown,
            history,
            limits: Limits::default(),
            ended: EndedThreads::default(),
        })
    }

    /// The same server within `limits`.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The same server, whose `/health` reports the threads that `ended` records (the
    /// supervisor's, see [`crate::runtime::supervisor::Supervisor::ended_threads`]).
    pub fn with_ended_threads(mut self, ended: EndedThreads) -> Self {
        self.ended = ended;
        self
    }

    /// Serves until shutdown, and samples the history on its timer.
    ///
    /// # Errors
    /// The poll failed.
    pub fn run(mut self) -> anyhow::Result<()> {
        let mut poll = match self.poll.take() {
            Some(poll) => poll,
            None => anyhow::bail!("the metrics server runs once"),
        };
        let mut events = Events::with_capacity(64);
        let mut slots: Vec<Option<Connection>> =
            (0..self.limits.max_connections).map(|_| None).collect();
        let mut scratch = vec![0u8; READ_CHUNK];
        let mut next_sample = Instant::now();
        // Set when accept failed for want of file descriptors, say: the listener is
        // edge-triggered and would not say again that connections wait.
        let mut accept_again = false;
        // Retried after every poll, a failing accept would otherwise log ten lines a
        // second.
        let mut accept_warning = RateLimitedWarning::new(Duration::from_secs(10));
        while !self.shutdown.is_set() {
            let now = Instant::now();
            if now >= next_sample {
                self.history
                    .push(unix_now_ms(), &self.statistics.snapshot());
                next_sample = now + self.history.interval();
            }
            let wake = slots
                .iter()
                .flatten()
                .map(|c| c.deadline)
                .fold(next_sample, Instant::min);
            let timeout = wake
                .saturating_duration_since(Instant::now())
                .min(POLL_TIMEOUT);
            match poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => return Err(anyhow::Error::new(err).context("metrics poll")),
            }
            if std::mem::take(&mut accept_again) {
                accept_again = !self.accept(&poll, &mut slots, &mut scratch, &mut accept_warning);
            }
            for event in &events {
                let token = event.token();
                if token == LISTENER {
                    accept_again =
                        !self.accept(&poll, &mut slots, &mut scratch, &mut accept_warning);
                    continue;
                }
                // Events for a connection closed earlier in this batch find an empty
                // slot, or the connection accepted into it since, which then tries
                // its socket once more for nothing.
                let Some(slot) = token.0.checked_sub(1).and_then(|i| slots.get_mut(i)) else {
                    continue;
                };
                if let Some(connection) = slot
                    && self.advance(connection, &mut scratch) == Next::Close
                {
                    *slot = None;
                }
            }
            let now = Instant::now();
            for slot in &mut slots {
                if slot.as_ref().is_some_and(|c| now >= c.deadline) {
                    log::debug!("metrics: a connection missed its deadline, closed");
                    *slot = None;
                }
            }
        }
        Ok(())
    }

    /// Accepts every connection waiting, into a free slot, or closes it if there is
    /// none. Whether the backlog was emptied (if not, accept failed and is tried again
    /// after the next poll).
    fn accept(
        &self,
        poll: &Poll,
        slots: &mut [Option<Connection>],
        scratch: &mut [u8],
        warning: &mut RateLimitedWarning,
    ) -> bool {
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(err) if err.kind() == ErrorKind::WouldBlock => return true,
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => {
                    if let Some(held_back) = warning.check(Instant::now()) {
                        log::warn!(
                            "metrics accept: {err} ({held_back} more since the last message)"
                        );
                    }
                    return false;
                }
            };
            let Some((index, slot)) = slots.iter_mut().enumerate().find(|(_, s)| s.is_none())
            else {
                // Dropping the stream closes it: the cap holds at once, and the client
                // knows instead of waiting in the backlog.
                log::debug!(
                    "metrics: {peer} closed at accept, {} connections open",
                    self.limits.max_connections
                );
                continue;
            };
            if let Err(err) = poll.registry().register(
                &mut stream,
                Token(index + 1),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::warn!("metrics: register a connection from {peer}: {err}");
                continue;
            }
            let mut connection = Connection {
                stream,
                deadline: Instant::now() + self.limits.request_timeout,
                state: State::Reading { head: Vec::new() },
            };
            // Its request may be there already: serve it now rather than on its event.
            if self.advance(&mut connection, scratch) == Next::Wait {
                *slot = Some(connection);
            }
        }
    }

    /// Moves `connection` as far as its socket allows now.
    fn advance(&self, connection: &mut Connection, scratch: &mut [u8]) -> Next {
        match self.try_advance(connection, scratch) {
            Ok(next) => next,
            Err(err) => {
                // The client's doing (a reset, say), not the operator's concern.
                log::debug!("metrics connection: {err}");
                Next::Close
            }
        }
    }

    fn try_advance(
        &self,
        connection: &mut Connection,
        scratch: &mut [u8],
    ) -> std::io::Result<Next> {
        let Connection { stream, state, .. } = connection;
        loop {
            match state {
                State::Reading { head } => {
                    let room = MAX_REQUEST_BYTES.saturating_sub(head.len());
                    if room == 0 {
                        *state = State::Writing {
                            answer: status(431, "Request Header Fields Too Large"),
                            written: 0,
                            whole: false,
                        };
                        continue;
                    }
                    let buf = scratch.get_mut(..room.min(READ_CHUNK)).unwrap_or_default();
                    match stream.read(buf) {
                        // Gone before asking anything.
                        Ok(0) => return Ok(Next::Close),
                        Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
                        Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(Next::Wait),
                        Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                        Err(err) => return Err(err),
                    }
                    let mut headers = [httparse::EMPTY_HEADER; 32];
                    let mut request = httparse::Request::new(&mut headers);
                    let (answer, whole) = match request.parse(head) {
                        Ok(httparse::Status::Complete(_)) => {
                            (self.answer(request.method, request.path), true)
                        }
                        Ok(httparse::Status::Partial) => continue,
                        Err(_) => (status(400, "Bad Request"), false),
                    };
                    *state = State::Writing {
                        answer,
                        written: 0,
                        whole,
                    };
                }
                State::Writing {
                    answer,
                    written,
                    whole,
                } => {
                    let rest = answer.get(*written..).unwrap_or_default();
                    if rest.is_empty() {
                        if *whole {
                            return Ok(Next::Close);
                        }
                        stream.shutdown(Shutdown::Write)?;
                        *state = State::Draining { drained: 0 };
                        continue;
                    }
                    match stream.write(rest) {
                        Ok(0) => return Err(ErrorKind::WriteZero.into()),
                        Ok(n) => *written += n,
                        Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(Next::Wait),
                        Err(err) if err.kind() == ErrorKind::Interrupted => {}
                        Err(err) => return Err(err),
                    }
                }
                State::Draining { drained } => {
                    if *drained >= MAX_DRAINED_BYTES {
                        return Ok(Next::Close);
                    }
                    match stream.read(scratch) {
                        Ok(0) => return Ok(Next::Close),
                        Ok(n) => *drained += n,
                        Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(Next::Wait),
                        Err(err) if err.kind() == ErrorKind::Interrupted => {}
                        Err(err) => return Err(err),
                    }
                }
            }
        }
    }

    /// The whole HTTP response to `method` on `path`.
    fn answer(&self, method: Option<&str>, path: Option<&str>) -> Vec<u8> {
        if method != Some("GET") {
            return status(405, "Method Not Allowed");
        }
        // A query string changes nothing.
        let path = path.and_then(|p| p.split('?').next()).unwrap_or_default();
        if let Some((_, content_type, body)) = ASSETS.iter().find(|(p, _, _)| *p == path) {
            return response(200, "OK", content_type, body);
        }
        if path == "/history.json" {
            return match serde_json::to_vec(&self.history.to_json(self.identity.protocol)) {
                Ok(body) => response(200, "OK", "application/json", &body),
                Err(_) => status(500, "Internal Server Error"),
            };
        }
        let snapshot = self.statistics.snapshot();
        match path {
            "/metrics" => match encode_prometheus(&snapshot, &self.identity) {
                Ok(body) => response(
                    200,
                    "OK",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body.as_bytes(),
                ),
                Err(_) => status(500, "Internal Server Error"),
            },
            "/stats.json" => match serde_json::to_vec(&to_json(&snapshot, &self.identity)) {
                Ok(body) => response(200, "OK", "application/json", &body),
                Err(_) => status(500, "Internal Server Error"),
            },
            "/health" => {
                let health = health::check(
                    &snapshot.private,
                    &snapshot.cluster,
                    &self.identity,
                    self.ended.first(),
                );
                let (code, reason) = if health.ok {
                    (200, "OK")
                } else {
                    (503, "Service Unavailable")
                };
                match serde_json::to_vec(&health.body) {
                    Ok(body) => response(code, reason, "application/json", &body),
                    Err(_) => status(500, "Internal Server Error"),
                }
            }
            _ => status(404, "Not Found"),
        }
    }
}

fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn status(code: u16, reason: &str) -> Vec<u8> {
    response(
        code,
        reason,
        "text/plain; charset=utf-8",
        format!("{reason}\n").as_bytes(),
    )
}

fn response(code: u16, reason: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::atomic::Ordering;
    use std::thread::JoinHandle;

    use super::*;
    use crate::observe::statistics::{Family, Protocol, RequestKind};
    use crate::runtime::supervisor::Supervisor;
    use crate::testing::http_get;

    /// A server on an ephemeral port, in a thread of its own.
    struct Running {
        addr: SocketAddr,
        shutdown: ShutdownFlag,
        thread: JoinHandle<anyhow::Result<()>>,
    }

    impl Running {
        fn start(statistics: Arc<Statistics>, protocol: Protocol, limits: Limits) -> Self {
            Self::start_with(statistics, protocol, limits, EndedThreads::default())
        }

        fn start_with(
            statistics: Arc<Statistics>,
            protocol: Protocol,
            limits: Limits,
            ended: EndedThreads,
        ) -> Self {
            let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let shutdown = ShutdownFlag::new();
            let identity = Identity {
                protocol,
                version: "9.8.7",
                start_unix_secs: 35,
            };
            let server = MetricsServer::new(
                listener,
                statistics,
                identity,
                shutdown.clone(),
                History::new(Duration::from_secs(1)),
            )
            .unwrap()
            .with_limits(limits)
            .with_ended_threads(ended);
            let thread = std::thread::spawn(move || server.run());
            Self {
                addr,
                shutdown,
                thread,
            }
        }

        fn stop(self) {
            self.shutdown.set();
            self.thread.join().unwrap().unwrap();
        }
    }

    fn ask(server: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(server).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    /// Waits (10 s at most, far beyond any deadline used here) for the server to close
    /// `stream` without answering: a read gives end of file, or a reset when the server
    /// closed with bytes of ours unread.
    fn closed_by_server(mut stream: TcpStream) {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 64];
        match stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("an answer instead of a close: {:?}", &buf[..n]),
            Err(err) => assert!(
                matches!(
                    err.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ),
                "not closed: {err}"
            ),
        }
    }

    #[test]
    fn server_answers_paths_and_bounds_requests() {
        let statistics = Arc::new(Statistics::new(1, 1));
        statistics
            .socket(0)
            .request(RequestKind::Announce, Family::Ipv6);
        let server = Running::start(statistics, Protocol::Http, Limits::default());
        let addr = server.addr;

        let metrics = ask(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
        assert!(metrics.contains(
            "shoal_requests_total{protocol=\"http\",kind=\"announce\",family=\"ipv6\"} 1\n"
        ));
        let json = ask(addr, b"GET /stats.json?x=1 HTTP/1.1\r\n\r\n");
        assert!(
            json.contains("Content-Type: application/json\r\n"),
            "{json}"
        );
        let body = json.split("\r\n\r\n").nth(1).unwrap();
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(value["requests"]["announce"]["ipv6"], 1);
        assert!(ask(addr, b"GET /nothing HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        assert!(ask(addr, b"GET /page.js/x HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        assert!(ask(addr, b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
        assert!(ask(addr, b"\x00\x01 nonsense\r\n\r\n").starts_with("HTTP/1.1 400 "));
        let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n", "a".repeat(10_000));
        assert!(ask(addr, huge.as_bytes()).starts_with("HTTP/1.1 431 "));
        // A request head that arrives in pieces is read whole.
        let mut pieces = TcpStream::connect(addr).unwrap();
        pieces
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        for piece in [&b"GET /metr"[..], b"ics HTTP/1.1\r\n", b"\r\n"] {
            pieces.write_all(piece).unwrap();
            pieces.flush().unwrap();
        }
        let mut answer = String::new();
        pieces.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");

        server.stop();
    }

    /// The case: clients that hold connections (silent, half a request, a byte
    /// at a time, not reading the answer) while Prometheus scrapes. The one-connection
    /// server this replaced served them in turn, each until its deadline, and the scrape
    /// waited past Prometheus's 10 s timeout; now it is answered at once, and 1 s is the
    /// issue's bound, not a measure of how long it takes.
    #[test]
    fn slow_clients_do_not_delay_a_scrape() {
        let server = Running::start(
            Arc::new(Statistics::new(1, 1)),
            Protocol::Udp,
            Limits::default(),
        );
        let addr = server.addr;
        let idle: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let mut partial = TcpStream::connect(addr).unwrap();
        partial.write_all(b"GET /metrics HTTP/1.1\r\nHo").unwrap();
        // Asks for the largest file and never reads it.
        let mut unread = TcpStream::connect(addr).unwrap();
        unread
            .write_all(b"GET /uplot.min.js HTTP/1.1\r\n\r\n")
            .unwrap();
        // A byte every 100 ms, until the server closes the connection (or 30 s).
        let mut dribbling = TcpStream::connect(addr).unwrap();
        let dribbler = std::thread::spawn(move || {
            let head = format!("GET /metrics HTTP/1.1\r\nX: {}", "a".repeat(300));
            for byte in head.as_bytes() {
                if dribbling.write_all(&[*byte]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });

        let started = Instant::now();
        let answer = ask(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        let took = started.elapsed();
        eprintln!("/metrics answered in {took:?} with 8 slow clients connected");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), length, "the whole answer");
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert!(took < Duration::from_secs(1), "{took:?}");

        drop((idle, partial, unread));
        dribbler.join().unwrap();
        server.stop();
    }

    /// The deadline is on the whole request, not on each read: a client that keeps
    /// sending a byte at a time is closed at it as a silent one is.
    #[test]
    fn a_connection_past_its_deadline_is_closed() {
        let limits = Limits {
            request_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let server = Running::start(Arc::new(Statistics::new(1, 1)), Protocol::Udp, limits);
        let silent = TcpStream::connect(server.addr).unwrap();
        let mut dribbling = TcpStream::connect(server.addr).unwrap();
        let reader = dribbling.try_clone().unwrap();
        // A byte every 50 ms for 30 s at most, longer than the reader waits: a timeout
        // per read would never fire, and the reader would see no close.
        let dribbler = std::thread::spawn(move || {
            let head = format!("GET /metrics HTTP/1.1\r\nX: {}", "a".repeat(600));
            for byte in head.as_bytes() {
                if dribbling.write_all(&[*byte]).is_err() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        });
        closed_by_server(silent);
        closed_by_server(reader);
        assert!(dribbler.join().unwrap(), "the dribbler was never cut off");
        // And the server goes on.
        assert!(ask(server.addr, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 "));
        server.stop();
    }

    /// At the cap, one more connection is closed at accept; once a slot is free, a
    /// scrape is served. Nothing here waits on a clock: the held connections are
    /// accepted before the extra one (the backlog is first in, first out) and their
    /// deadline is far away, and a slot is known to be free once the client has read
    /// the end of an answer, which the server sends by closing.
    #[test]
    fn connections_over_the_cap_are_closed_at_accept() {
        let limits = Limits {
            request_timeout: Duration::from_secs(600),
            max_connections: 3,
        };
        let server = Running::start(Arc::new(Statistics::new(1, 1)), Protocol::Ws, limits);
        let mut held: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect(server.addr).unwrap())
            .collect();
        closed_by_server(TcpStream::connect(server.addr).unwrap());

        let mut first = held.remove(0);
        first
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        first.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut answer = String::new();
        first.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(ask(server.addr, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 "));
        drop(held);
        server.stop();
    }

    #[test]
    fn health_reports_the_threads_and_private_accounting() {
        let statistics = Arc::new(Statistics::new(1, 1));
        let mut supervisor = Supervisor::new(ShutdownFlag::new());
        let server = Running::start_with(
            statistics.clone(),
            Protocol::Http,
            Limits::default(),
            supervisor.ended_threads(),
        );
        let health = |expected: u16| -> serde_json::Value {
            let (status, body) = http_get(server.addr, "/health");
            assert_eq!(status, expected, "{body}");
            serde_json::from_str(&body).unwrap()
        };

        // Public mode: no accounting.
        let public = health(200);
        assert_eq!(public["status"], "ok");
        assert_eq!(public["protocol"], "http");
        assert_eq!(public["problems"], serde_json::json!([]));
        assert!(public.get("accounting").is_none(), "{public}");

        // Private mode: its accounting state; a failing database degrades it, and the
        // tracker still serves (200).
        let private = statistics.private();
        private.enable();
        private.database_up.store(1, Ordering::Relaxed);
        private.writer_pending.store(5, Ordering::Relaxed);
        private
            .last_commit_unix_secs
            .store(1_800_000_000, Ordering::Relaxed);
        let ok = health(200);
        assert_eq!(ok["accounting"]["status"], "ok");
        assert_eq!(ok["accounting"]["credits_pending"], 5);
        assert_eq!(ok["accounting"]["last_commit_unix_secs"], 1_800_000_000u64);
        private.commit_failures_in_a_row.store(2, Ordering::Relaxed);
        let failing = health(200);
        assert_eq!(failing["status"], "degraded");
        assert_eq!(failing["accounting"]["status"], "failing");
        assert!(
            failing["problems"][0]
                .as_str()
                .is_some_and(|p| p.starts_with("accounting database: the last 2 commit")),
            "{failing}"
        );
        private.commit_failures_in_a_row.store(0, Ordering::Relaxed);
        assert_eq!(health(200)["status"], "ok");

        // A supervised thread that ends is down, by name.
        supervisor.spawn("request-01", || Ok(())).unwrap();
        assert!(supervisor.wait().is_err());
        let stopped = health(503);
        assert_eq!(stopped["problems"][0], "thread request-01 has stopped");
        server.stop();
    }

    fn content_type(answer: &str) -> &str {
        answer
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: "))
            .unwrap()
    }

    #[test]
    fn server_serves_the_page_and_its_history() {
        let statistics = Arc::new(Statistics::new(1, 1));
        let server = Running::start(statistics.clone(), Protocol::Udp, Limits::default());
        let addr = server.addr;

        for (path, expected, body_part) in [
            ("/", "text/html; charset=utf-8", "<script src=\"/page.js\""),
            ("/?refresh=1", "text/html; charset=utf-8", "<!DOCTYPE html>"),
            (
                "/page.js",
                "text/javascript; charset=utf-8",
                "/history.json",
            ),
            ("/uplot.min.js", "text/javascript; charset=utf-8", "uPlot"),
            ("/uplot.min.css", "text/css; charset=utf-8", ".uplot"),
        ] {
            let answer = ask(addr, format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes());
            assert!(
                answer.starts_with("HTTP/1.1 200 OK\r\n"),
                "{path}: {answer}"
            );
            assert_eq!(content_type(&answer), expected, "{path}");
            assert!(answer.contains(body_part), "{path}");
        }
        assert!(ask(addr, b"HEAD / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));

        // The first sample is taken at start, the next a second later, with the
        // requests counted in between: the rate is positive.
        for _ in 0..10 {
            statistics
                .socket(0)
                .request(RequestKind::Announce, Family::Ipv4);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let history = loop {
            let answer = ask(addr, b"GET /history.json HTTP/1.1\r\n\r\n");
            assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
            assert_eq!(content_type(&answer), "application/json");
            let body = answer.split("\r\n\r\n").nth(1).unwrap();
            let history: serde_json::Value = serde_json::from_str(body).unwrap();
            if history["timestamps"].as_array().unwrap().len() >= 2 {
                break history;
            }
            assert!(Instant::now() < deadline, "no second sample: {history}");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(history["protocol"], "udp");
        assert_eq!(history["interval_secs"], 1);
        let announces = history["requests_per_sec"]["announce"].as_array().unwrap();
        assert!(announces[0].is_null());
        assert!(announces[1].as_f64().unwrap() > 0.0, "{history}");

        server.stop();
    }
}
