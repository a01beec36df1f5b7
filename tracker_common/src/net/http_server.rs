//! A small HTTP/1.1 server for the operator's listeners (the metrics endpoint, the admin
//! API): one thread, one mio poll, many connections at once, one request each.
//!
//! Rules it keeps:
//! - No client holds the thread. Sockets are non-blocking, and each connection is a
//!   small state machine (read the request, write the answer, then read what the client
//!   still sends) that moves when its socket is ready. A silent client, one that sends a
//!   byte a second and one that does not read its answer each hold one slot, never the
//!   thread.
//! - One deadline per request, on the whole of it: from accept to the last byte of the
//!   answer, [`Limits::request_timeout`]; a connection past it is closed, whatever it is
//!   doing. (A timeout per read or write call would let a client that sends a byte a
//!   second keep its slot for ever.)
//! - Bounded: at most [`Limits::max_connections`] connections open (one more is closed
//!   as soon as it is accepted), one request per connection, a request head of at most
//!   [`MAX_REQUEST_BYTES`] (a larger one is answered 431), a body of at most
//!   [`Limits::max_body_bytes`] announced by `Content-Length` (a larger one is answered
//!   413 before it is read; chunked bodies are answered 411), at most
//!   [`MAX_DRAINED_BYTES`] read after the answer, and answers no larger than what the
//!   service makes.
//!
//! What is answered is the [`Service`]'s: it gets each whole request, and a call between
//! two polls for work of its own (the metrics page samples its history there). The
//! service runs on this thread: an answer that takes long delays the other connections,
//! so a service keeps its answers short or bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::observe::statistics::RateLimitedWarning;
use crate::runtime::supervisor::ShutdownFlag;

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
/// Most headers in a request; more is answered 431.
const MAX_HEADERS: usize = 32;

/// How much one client may take of the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The deadline of a request, from accept to the last byte of its answer.
    pub request_timeout: Duration,
    /// Connections open at once; more are closed at accept.
    pub max_connections: usize,
    /// Largest request body; a request announcing more is answered 413 unread.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: REQUEST_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_body_bytes: 0,
        }
    }
}

/// Binds a listener for `what` ("metrics", "admin API") on `address`.
///
/// # Errors
/// The address cannot be bound.
pub fn bind(what: &str, address: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener =
        TcpListener::bind(address).with_context(|| format!("bind {what} listener on {address}"))?;
    let local = listener
        .local_addr()
        .with_context(|| format!("read the {what} listener's address"))?;
    Ok((listener, local))
}

/// One whole request, as the service sees it.
pub struct Request<'a> {
    /// `GET`, `PUT`, ...
    pub method: &'a str,
    /// The request target, query string included.
    pub target: &'a str,
    /// The headers, as sent.
    pub headers: &'a [httparse::Header<'a>],
    /// The body (`Content-Length` bytes; empty without one).
    pub body: &'a [u8],
}

impl Request<'_> {
    /// The value of header `name` (any case), if sent, the first one if several.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The path, without the query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The query string, without the `?` ("" without one).
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }
}

/// What a server serves.
pub trait Service: Send + 'static {
    /// The whole HTTP response to `request` (see [`response`]).
    fn answer(&mut self, request: &Request<'_>) -> Vec<u8>;

    /// Runs between two polls; returns when it wants to run next (the server polls
    /// until then at most). The default never asks to.
    fn tick(&mut self, now: Instant) -> Instant {
        now + POLL_TIMEOUT
    }
}

/// The server: what it serves, where, and within which limits.
pub struct HttpServer<S> {
    listener: TcpListener,
    /// Made with the server, before the tracker serves: descriptors run short later (a
    /// connection flood), never at its start. Taken by [`HttpServer::run`].
    poll: Option<Poll>,
    service: S,
    shutdown: ShutdownFlag,
    limits: Limits,
    /// For log lines: "metrics", "admin API".
    what: &'static str,
}

/// Where a connection is in its one request.
enum State {
    /// Reading the request, which `buf` holds so far: its head, then its body.
    Reading { buf: Vec<u8> },
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

/// What the request read so far comes to.
enum Parsed {
    /// More bytes are needed, at most this many more.
    Partial(usize),
    /// The answer, and whether the request was read whole.
    Answer(Vec<u8>, bool),
}

impl<S: Service> HttpServer<S> {
    /// A server for `what` on `listener` (see [`bind`]) serving `service` until
    /// `shutdown`, within `limits`.
    ///
    /// # Errors
    /// The poll could not be made, or the listener registered with it.
    pub fn new(
        what: &'static str,
        mut listener: TcpListener,
        service: S,
        shutdown: ShutdownFlag,
        limits: Limits,
    ) -> anyhow::Result<Self> {
        let poll = Poll::new().with_context(|| format!("create {what} poll"))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .with_context(|| format!("register {what} listener"))?;
        Ok(Self {
            listener,
            poll: Some(poll),
            service,
            shutdown,
            limits,
            what,
        })
    }

    /// The service.
    pub fn service_mut(&mut self) -> &mut S {
        &mut self.service
    }

    /// The same server within `limits`.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Serves until shutdown.
    ///
    /// # Errors
    /// The poll failed.
    pub fn run(mut self) -> anyhow::Result<()> {
        let mut poll = match self.poll.take() {
            Some(poll) => poll,
            None => anyhow::bail!("the {} server runs once", self.what),
        };
        let mut events = Events::with_capacity(64);
        let mut slots: Vec<Option<Connection>> =
            (0..self.limits.max_connections).map(|_| None).collect();
        let mut scratch = vec![0u8; READ_CHUNK];
        let mut next_tick = Instant::now();
        // Set when accept failed for want of file descriptors, say: the listener is
        // edge-triggered and would not say again that connections wait.
        let mut accept_again = false;
        // Retried after every poll, a failing accept would otherwise log ten lines a
        // second.
        let mut accept_warning = RateLimitedWarning::new(Duration::from_secs(10));
        while !self.shutdown.is_set() {
            let now = Instant::now();
            if now >= next_tick {
                next_tick = self.service.tick(now);
            }
            let wake = slots
                .iter()
                .flatten()
                .map(|c| c.deadline)
                .fold(next_tick, Instant::min);
            let timeout = wake
                .saturating_duration_since(Instant::now())
                .min(POLL_TIMEOUT);
            match poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => {
                    return Err(anyhow::Error::new(err).context(format!("{} poll", self.what)));
                }
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
                    log::debug!("{}: a connection missed its deadline, closed", self.what);
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
        &mut self,
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
                            "{} accept: {err} ({held_back} more since the last message)",
                            self.what
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
                    "{}: {peer} closed at accept, {} connections open",
                    self.what,
                    self.limits.max_connections
                );
                continue;
            };
            if let Err(err) = poll.registry().register(
                &mut stream,
                Token(index + 1),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::warn!("{}: register a connection from {peer}: {err}", self.what);
                continue;
            }
            let mut connection = Connection {
                stream,
                deadline: Instant::now() + self.limits.request_timeout,
                state: State::Reading { buf: Vec::new() },
            };
            // Its request may be there already: serve it now rather than on its event.
            if self.advance(&mut connection, scratch) == Next::Wait {
                *slot = Some(connection);
            }
        }
    }

    /// Moves `connection` as far as its socket allows now.
    fn advance(&mut self, connection: &mut Connection, scratch: &mut [u8]) -> Next {
        match self.try_advance(connection, scratch) {
            Ok(next) => next,
            Err(err) => {
                // The client's doing (a reset, say), not the operator's concern.
                log::debug!("{} connection: {err}", self.what);
                Next::Close
            }
        }
    }

    fn try_advance(
        &mut self,
        connection: &mut Connection,
        scratch: &mut [u8],
    ) -> std::io::Result<Next> {
        let Connection { stream, state, .. } = connection;
        // What the request still needs at most, once its head is parsed.
        let mut wanted = MAX_REQUEST_BYTES;
        loop {
            match state {
                State::Reading { buf } => {
                    let room = wanted.min(READ_CHUNK);
                    let chunk = scratch.get_mut(..room).unwrap_or_default();
                    match stream.read(chunk) {
                        // Gone before asking anything whole.
                        Ok(0) => return Ok(Next::Close),
                        Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                        Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(Next::Wait),
                        Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                        Err(err) => return Err(err),
                    }
                    match self.parse(buf) {
                        Parsed::Partial(more) => wanted = more.max(1),
                        Parsed::Answer(answer, whole) => {
                            *state = State::Writing {
                                answer,
                                written: 0,
                                whole,
                            };
                        }
                    }
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

    /// What the bytes read so far of a request come to.
    fn parse(&mut self, buf: &[u8]) -> Parsed {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        let head_len = match request.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() >= MAX_REQUEST_BYTES => {
                return Parsed::Answer(status(431, "Request Header Fields Too Large"), false);
            }
            Ok(httparse::Status::Partial) => {
                return Parsed::Partial(MAX_REQUEST_BYTES - buf.len());
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Parsed::Answer(status(431, "Request Header Fields Too Large"), false);
            }
            Err(_) => return Parsed::Answer(status(400, "Bad Request"), false),
        };
        let (Some(method), Some(target)) = (request.method, request.path) else {
            return Parsed::Answer(status(400, "Bad Request"), false);
        };
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
        };
        if header("transfer-encoding").is_some() {
            return Parsed::Answer(status(411, "Length Required"), false);
        }
        let body_len = match header("content-length") {
            None => 0,
            Some(h) => match std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
            {
                Some(len) => len,
                None => return Parsed::Answer(status(400, "Bad Request"), false),
            },
        };
        if body_len > self.limits.max_body_bytes {
            return Parsed::Answer(status(413, "Content Too Large"), false);
        }
        let have = buf.len() - head_len;
        if have < body_len {
            return Parsed::Partial(body_len - have);
        }
        let whole = have == body_len;
        let body = buf.get(head_len..head_len + body_len).unwrap_or_default();
        let answer = self.service.answer(&Request {
            method,
            target,
            headers: request.headers,
            body,
        });
        // Bytes past the body (a pipelined request) are not served: one request per
        // connection, and the close after the answer says so.
        Parsed::Answer(answer, whole)
    }
}

/// A plain-text answer with the reason phrase as its body.
pub fn status(code: u16, reason: &str) -> Vec<u8> {
    response(
        code,
        reason,
        "text/plain; charset=utf-8",
        format!("{reason}\n").as_bytes(),
    )
}

/// A whole HTTP response; the connection closes after it.
pub fn response(code: u16, reason: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    response_with(code, reason, content_type, &[], body)
}

/// [`response`] with further headers (name, value).
pub fn response_with(
    code: u16,
    reason: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::thread::JoinHandle;

    use super::*;

    /// Answers with the method, path, query and body it got, and the value of `x-test`.
    struct Echo;

    impl Service for Echo {
        fn answer(&mut self, request: &Request<'_>) -> Vec<u8> {
            let body = format!(
                "{} {} {} {} {}",
                request.method,
                request.path(),
                request.query(),
                String::from_utf8_lossy(request.body),
                String::from_utf8_lossy(request.header("X-Test").unwrap_or_default()),
            );
            response(200, "OK", "text/plain", body.as_bytes())
        }
    }

    fn start(limits: Limits) -> (SocketAddr, ShutdownFlag, JoinHandle<anyhow::Result<()>>) {
        let (listener, addr) = bind("test", "127.0.0.1:0".parse().unwrap()).unwrap();
        let shutdown = ShutdownFlag::new();
        let server = HttpServer::new("test", listener, Echo, shutdown.clone(), limits).unwrap();
        (addr, shutdown, std::thread::spawn(move || server.run()))
    }

    fn ask(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut answer = Vec::new();
        // A reset after the answer (bytes of ours unread) still leaves what was read.
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[test]
    fn bodies_are_read_whole_and_bounded() {
        let (addr, shutdown, thread) = start(Limits {
            max_body_bytes: 16,
            ..Limits::default()
        });
        let answer = ask(
            addr,
            b"PUT /a/b?x=1 HTTP/1.1\r\nx-test: yes\r\nContent-Length: 5\r\n\r\nhello",
        );
        assert!(answer.ends_with("PUT /a/b x=1 hello yes"), "{answer}");
        // Sent in pieces: the body comes after the head, in two writes.
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"POST /p HTTP/1.1\r\nContent-Length: 6\r\n\r\nab")
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        stream.write_all(b"cdef").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.ends_with("POST /p  abcdef "), "{answer}");

        let too_large = ask(addr, b"PUT /a HTTP/1.1\r\nContent-Length: 17\r\n\r\n");
        assert!(too_large.starts_with("HTTP/1.1 413 "), "{too_large}");
        let chunked = ask(
            addr,
            b"PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert!(chunked.starts_with("HTTP/1.1 411 "), "{chunked}");
        let bad_length = ask(addr, b"PUT /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n");
        assert!(bad_length.starts_with("HTTP/1.1 400 "), "{bad_length}");
        let not_http = ask(addr, b"\x16\x03\x01 hello\r\n\r\n");
        assert!(not_http.starts_with("HTTP/1.1 400 "), "{not_http}");
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        head.extend(std::iter::repeat_n(b'a', MAX_REQUEST_BYTES));
        let huge = ask(addr, &head);
        assert!(huge.starts_with("HTTP/1.1 431 "), "{huge}");
        let many: String = (0..=MAX_HEADERS).map(|i| format!("h{i}: v\r\n")).collect();
        let many = ask(addr, format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes());
        assert!(many.starts_with("HTTP/1.1 431 "), "{many}");
        shutdown.set();
        thread.join().unwrap().unwrap();
    }

    #[test]
    fn extra_headers_are_written() {
        let answer = String::from_utf8(response_with(
            405,
            "Method Not Allowed",
            "application/json",
            &[("Allow", "GET, PUT")],
            b"{}",
        ))
        .unwrap();
        assert_eq!(
            answer,
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\nConnection: close\r\nAllow: GET, PUT\r\n\r\n{}"
        );
    }
}
