//! A connection's byte stream: plain TCP, or TLS over TCP (rustls). The TCP trackers'
//! socket workers (HTTP, WebSocket) read and write plain text through it either way.
//!
//! rustls keeps what it has decrypted and what it has yet to send in its own buffers;
//! its send buffer is limited ([`TLS_BUFFER_LIMIT`]), so a client that does not read
//! cannot make it grow: writes then take fewer bytes and the rest waits in the
//! connection's own (bounded) write buffer.

use std::io::{self, ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

use crate::net::address_limit::{AddressLimit, AddressPermit};

/// Plain text rustls buffers per connection before it takes no more.
pub const TLS_BUFFER_LIMIT: usize = 64 * 1024;

/// What a read gave.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many plain-text bytes.
    Data(usize),
    /// This many plain-text bytes, fewer than asked for: the socket's receive queue
    /// was empty after them (plain TCP only; TLS cannot tell).
    DataDrained(usize),
    /// Nothing more for now.
    WouldBlock,
    /// The client closed its side.
    Closed,
}

/// Plain TCP or TLS over TCP.
pub enum Transport {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream>),
}

/// A TCP socket and its rustls session.
pub struct TlsStream {
    socket: TcpStream,
    session: ServerConnection,
}

impl Transport {
    /// A TLS transport over `socket` with the config in force now.
    ///
    /// # Errors
    /// rustls refused the config (it does not, for a config it built).
    pub fn tls(socket: TcpStream, config: Arc<ServerConfig>) -> io::Result<Self> {
        let mut session = ServerConnection::new(config).map_err(io::Error::other)?;
        session.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        Ok(Self::Tls(Box::new(TlsStream { socket, session })))
    }

    /// The TCP socket, to register with the poll.
    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Self::Plain(socket) => socket,
            Self::Tls(tls) => &mut tls.socket,
        }
    }

    /// Reads plain text into `buf`.
    ///
    /// # Errors
    /// The socket failed, or the client broke the TLS protocol.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<ReadOutcome> {
        match self {
            Self::Plain(socket) => match socket.read(buf) {
                Ok(0) => Ok(ReadOutcome::Closed),
                Ok(n) if n < buf.len() => Ok(ReadOutcome::DataDrained(n)),
                Ok(n) => Ok(ReadOutcome::Data(n)),
                Err(err) if err.kind() == ErrorKind::WouldBlock => Ok(ReadOutcome::WouldBlock),
                Err(err) => Err(err),
            },
            Self::Tls(tls) => tls.read(buf),
        }
    }

    /// Hands plain text to send; returns how much was taken (all of it for plain TCP
    /// unless the socket is full; up to rustls's buffer limit for TLS).
    ///
    /// # Errors
    /// The socket failed.
    pub fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(socket) => socket.write(data),
            Self::Tls(tls) => {
                let taken = tls.session.writer().write(data)?;
                tls.flush()?;
                if taken == 0 && !data.is_empty() {
                    // rustls's buffer is full until the socket takes more.
                    return Err(ErrorKind::WouldBlock.into());
                }
                Ok(taken)
            }
        }
    }

    /// Shuts the write side down, after TLS's close_notify (sent as far as the socket
    /// takes it): the client reads what was sent, then end of stream.
    ///
    /// # Errors
    /// The socket failed.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        if let Self::Tls(tls) = self {
            tls.session.send_close_notify();
            // Best effort: the answers are out already; the alert is a courtesy.
            let _ = tls.flush();
        }
        self.socket().shutdown(std::net::Shutdown::Write)
    }

    /// Sends what TLS still holds; `Ok(true)` once nothing is left. Plain TCP holds
    /// nothing.
    ///
    /// # Errors
    /// The socket failed.
    pub fn flush(&mut self) -> io::Result<bool> {
        match self {
            Self::Plain(_) => Ok(true),
            Self::Tls(tls) => tls.flush(),
        }
    }
}

impl TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<ReadOutcome> {
        loop {
            match self.session.reader().read(buf) {
                Ok(0) => return Ok(ReadOutcome::Closed),
                Ok(n) => return Ok(ReadOutcome::Data(n)),
                Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                // The client closed the TCP connection without a close_notify.
                Err(err) if err.kind() == ErrorKind::UnexpectedEof => {
                    return Ok(ReadOutcome::Closed);
                }
                Err(err) => return Err(err),
            }
            match self.session.read_tls(&mut self.socket) {
                Ok(0) => return Ok(ReadOutcome::Closed),
                Ok(_) => {
                    let processed = self.session.process_new_packets();
                    // Handshake messages, or the alert for a protocol error, go out
                    // either way.
                    self.flush()?;
                    processed.map_err(|err| io::Error::new(ErrorKind::InvalidData, err))?;
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => {
                    return Ok(ReadOutcome::WouldBlock);
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }

    fn flush(&mut self) -> io::Result<bool> {
        while self.session.wants_write() {
            match self.session.write_tls(&mut self.socket) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(true)
    }
}

/// Bytes read from a connection at a time.
pub const READ_CHUNK: usize = 4096;

/// How a round of reading ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct ReadRound {
    /// The socket failed or the client broke TLS: close the connection.
    pub failed: bool,
    /// The client closed its side: nothing more will come.
    pub peer_closed: bool,
    /// The socket has nothing more for now; `false` when the round stopped early (the
    /// caller's bound, or a chunk's worth read), so that it must read again once it has
    /// handled what came.
    pub drained: bool,
}

/// Reads from `stream` into `buf` until the socket has nothing more, the client closes,
/// `blocked(buf)` (asked before each read) says to stop, or [`READ_CHUNK`] bytes came in
/// this round, whichever is first.
///
/// A short read of plain TCP ends the round as drained, without the read that would
/// answer `WouldBlock`: with edge-triggered polling, any byte that arrives later raises a
/// new edge. That saves a third of a socket worker's system calls on keep-alive traffic.
/// Only when the client may have closed its side meanwhile (`may_be_closed`: the event
/// says so, or reading was paused and an edge may have passed unseen) is the socket read
/// until it answers `WouldBlock` or end of file.
pub fn read_round(
    stream: &mut Transport,
    buf: &mut Vec<u8>,
    may_be_closed: bool,
    mut blocked: impl FnMut(&[u8]) -> bool,
) -> ReadRound {
    let mut chunk = [0u8; READ_CHUNK];
    let mut read = 0usize;
    let mut round = ReadRound::default();
    loop {
        if blocked(buf) {
            return round;
        }
        match stream.read(&mut chunk) {
            Ok(ReadOutcome::Closed) => {
                round.peer_closed = true;
                round.drained = true;
                return round;
            }
            Ok(ReadOutcome::Data(n)) => {
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                read += n;
            }
            Ok(ReadOutcome::DataDrained(n)) => {
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                read += n;
                if !may_be_closed {
                    round.drained = true;
                    return round;
                }
            }
            Ok(ReadOutcome::WouldBlock) => {
                round.drained = true;
                return round;
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                round.failed = true;
                return round;
            }
        }
        // Let the caller handle what came before reading on, so that its bounds apply.
        if read >= READ_CHUNK {
            return round;
        }
    }
}

/// How a round of writing ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct WriteRound {
    /// The socket failed: close the connection.
    pub failed: bool,
    /// Bytes the socket took in this round.
    pub wrote: usize,
    /// Everything is out: all of `buf` written and, for TLS, all records sent.
    pub all_out: bool,
}

/// Writes `buf` from `*written` on, as far as the socket takes it, advancing `*written`;
/// then sends what TLS still holds.
pub fn write_round(stream: &mut Transport, buf: &[u8], written: &mut usize) -> WriteRound {
    let mut round = WriteRound::default();
    while *written < buf.len() {
        let rest = buf.get(*written..).unwrap_or_default();
        match stream.write(rest) {
            Ok(0) => {
                round.failed = true;
                return round;
            }
            Ok(n) => {
                *written += n;
                round.wrote += n;
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                round.failed = true;
                return round;
            }
        }
    }
    // TLS records still waiting for the socket count as unsent.
    match stream.flush() {
        Ok(flushed) => round.all_out = flushed && *written >= buf.len(),
        Err(_) => round.failed = true,
    }
    round
}

/// Bytes a lingering connection reads and throws away at most (see [`linger`]).
pub const LINGER_MAX_BYTES: usize = 64 * 1024;
/// How long a lingering connection waits at most for the client to close its side (see
/// [`linger`]); the caller's housekeeping closes it then.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection closing after its last answer: whether its write side is shut yet, and
/// what it threw away.
#[derive(Debug, Default)]
pub struct Linger {
    since: Option<Instant>,
    discarded: usize,
}

impl Linger {
    /// Whether the connection is lingering (its write side shut).
    pub fn started(&self) -> bool {
        self.since.is_some()
    }

    /// Whether it has lingered for [`LINGER_TIMEOUT`] by `now`.
    pub fn expired(&self, now: Instant) -> bool {
        self.since
            .is_some_and(|since| now.saturating_duration_since(since) >= LINGER_TIMEOUT)
    }
}

/// Closes a connection whose last answer is out, gracefully; returns whether it may be
/// dropped now.
///
/// Dropping a socket whose received bytes are still unread makes Linux send a reset and
/// throw away what it still had to send, which may be that last answer (a 400 or 431
/// to a client that sent more than was read). So the first call shuts the write side
/// down (the client gets end of stream after the answer), and every call reads and
/// throws away what the client has sent, without blocking. The connection may be
/// dropped once the client closed its side (nothing unread is left), the socket
/// failed, or more than [`LINGER_MAX_BYTES`] came (a client that keeps sending gets
/// its reset). Otherwise the caller keeps it, calls again when it is readable, and
/// drops it once [`Linger::expired`] (or its own bound of the same order passed).
pub fn linger(stream: &mut Transport, linger: &mut Linger) -> bool {
    if linger.since.is_none() {
        linger.since = Some(Instant::now());
        if stream.shutdown_write().is_err() {
            return true;
        }
    }
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        // The raw socket, TLS or not: what is thrown away need not be decrypted.
        match stream.socket().read(&mut chunk) {
            Ok(0) => return true,
            Ok(n) => {
                linger.discarded += n;
                if linger.discarded > LINGER_MAX_BYTES {
                    return true;
                }
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => return false,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// Who may connect, as [`accept_one`] checks it: not a banned address, and not one at
/// its cap of open connections.
pub struct Admission {
    /// Open connections per client address, shared by all socket workers.
    pub per_address: Arc<AddressLimit>,
    /// This socket worker's view of the bans.
    pub bans: crate::net::bans::BanCache,
}

/// What [`accept_one`] found.
pub enum Accepted {
    /// A new connection, counted in `open` and under its address's cap (the permit
    /// gives its place back when dropped with the connection).
    Connection(Transport, std::net::SocketAddr, AddressPermit),
    /// A connection closed at once: `max_connections` were open (or TLS could not be
    /// set up for it). Not counted in `open`.
    Refused,
    /// A connection closed at once: its client address had the per-address cap's
    /// number of connections open. Not counted in `open`.
    OverAddressLimit,
    /// A connection closed at once: its client address is banned. Not counted in
    /// `open`.
    Banned,
    /// An accept failed for that one connection (see [`AcceptError::Skip`]): go on
    /// accepting.
    Skipped,
    /// No connection waiting.
    None,
    /// Accepting must wait until a descriptor is freed (see [`AcceptError::Blocked`]);
    /// a warning is logged, rate-limited.
    Blocked,
}

/// What a failed `accept` means for the listener.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AcceptError {
    /// That connection failed, not the listener: the client reset it while it waited
    /// (ECONNABORTED), a protocol or firewall error (EPROTO, EPERM), a network error
    /// Linux passes on from the new socket (ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET,
    /// EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH; accept(2) says to retry on them), or the
    /// kernel was short of memory for it (ENOBUFS, ENOMEM). Skip it, accept the next.
    Skip,
    /// Out of file descriptors (EMFILE, ENFILE), or the listener itself failed. The
    /// connections wait in the backlog, and with edge-triggered polling no new readiness
    /// edge comes for them until yet another connection arrives: the caller must try
    /// again by itself once a descriptor may be free (a connection of its own closed, or
    /// a periodic tick).
    Blocked,
}

impl AcceptError {
    /// What `err`, from `accept`, means.
    pub fn of(err: &io::Error) -> Self {
        match err.raw_os_error() {
            Some(
                libc::ECONNABORTED
                | libc::EPROTO
                | libc::EPERM
                | libc::ENOBUFS
                | libc::ENOMEM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH,
            ) => Self::Skip,
            _ => Self::Blocked,
        }
    }
}

/// Accepts one waiting connection on `listener`, counting it in `open` (shared by the
/// tracker's socket workers) unless `max_connections` are open already, and under its
/// client address unless it is banned or at its cap ([`Admission`]), with TCP_NODELAY
/// and, when `tls` is given, a TLS session on the config in force now.
pub fn accept_one(
    listener: &mio::net::TcpListener,
    open: &std::sync::atomic::AtomicUsize,
    max_connections: usize,
    admission: &mut Admission,
    tls: Option<&crate::net::tls::SharedServerConfig>,
    warning: &mut crate::observe::statistics::RateLimitedWarning,
) -> Accepted {
    use std::sync::atomic::Ordering;
    let (stream, addr) = loop {
        match listener.accept() {
            Ok(accepted) => break accepted,
            Err(err) if err.kind() == ErrorKind::WouldBlock => return Accepted::None,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => match AcceptError::of(&err) {
                AcceptError::Skip => {
                    // A client can cause these at will: never above debug.
                    log::debug!("accept: {err}; accepting the next connection");
                    return Accepted::Skipped;
                }
                AcceptError::Blocked => {
                    // Rate-limited: a full descriptor table would otherwise log at every
                    // retry.
                    if let Some(held_back) = warning.check(Instant::now()) {
                        log::warn!(
                            "accept: {err}; connections wait until one closes \
                             ({held_back} more since the last warning)"
                        );
                    }
                    return Accepted::Blocked;
                }
            },
        }
    };
    // First: a banned network costs one lookup and a close, and takes no place.
    if admission.bans.is_banned(addr.ip()) {
        return Accepted::Banned; // Dropping the stream closes it.
    }
    if open.fetch_add(1, Ordering::AcqRel) >= max_connections {
        open.fetch_sub(1, Ordering::AcqRel);
        return Accepted::Refused; // Dropping the stream closes it.
    }
    let Some(permit) = admission.per_address.try_acquire(addr.ip()) else {
        open.fetch_sub(1, Ordering::AcqRel);
        return Accepted::OverAddressLimit;
    };
    let _ = stream.set_nodelay(true);
    let transport = match tls {
        None => Transport::Plain(stream),
        Some(tls) => match Transport::tls(stream, tls.load_full()) {
            Ok(transport) => transport,
            Err(err) => {
                log::warn!("tls session: {err}");
                open.fetch_sub(1, Ordering::AcqRel);
                return Accepted::Refused;
            }
        },
    };
    Accepted::Connection(transport, addr, permit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected pair: the client, blocking with a read timeout, and the server side
    /// as a non-blocking plain transport.
    fn pair() -> (std::net::TcpStream, Transport) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (client, Transport::Plain(TcpStream::from_std(server)))
    }

    /// Calls `linger` until it says the connection may be dropped (10 s at most).
    fn linger_to_the_end(stream: &mut Transport, state: &mut Linger) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !linger(stream, state) {
            assert!(Instant::now() < deadline, "still lingering");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn linger_sends_end_of_stream_after_the_answer_and_waits_for_the_clients() {
        let (mut client, mut stream) = pair();
        // Input the server's application never reads.
        client.write_all(&[7u8; 1000]).unwrap();
        assert_eq!(stream.write(b"answer").unwrap(), 6);
        let mut state = Linger::default();
        assert!(
            !linger(&mut stream, &mut state),
            "the client is still there"
        );
        assert!(state.started() && !state.expired(Instant::now()));
        assert!(state.expired(Instant::now() + LINGER_TIMEOUT));
        // The answer, then end of stream: no reset.
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"answer");
        drop(client);
        linger_to_the_end(&mut stream, &mut state);
        assert_eq!(state.discarded, 1000);
    }

    #[test]
    fn linger_gives_up_on_a_client_that_keeps_sending() {
        let (mut client, mut stream) = pair();
        let mut state = Linger::default();
        assert!(!linger(&mut stream, &mut state));
        client.write_all(&vec![7u8; LINGER_MAX_BYTES + 1]).unwrap();
        linger_to_the_end(&mut stream, &mut state);
        assert!(state.discarded > LINGER_MAX_BYTES);
        // The client is still connected: it was the budget, not end of stream.
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn per_connection_accept_errors_are_skipped_and_descriptor_shortage_blocks() {
        let error = |code| AcceptError::of(&io::Error::from_raw_os_error(code));
        for code in [
            libc::ECONNABORTED,
            libc::EPROTO,
            libc::EPERM,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::ENETUNREACH,
            libc::EHOSTUNREACH,
        ] {
            assert_eq!(error(code), AcceptError::Skip, "{code}");
        }
        for code in [libc::EMFILE, libc::ENFILE, libc::EBADF, libc::EINVAL] {
            assert_eq!(error(code), AcceptError::Blocked, "{code}");
        }
        let no_code = io::Error::other("no os error");
        assert_eq!(AcceptError::of(&no_code), AcceptError::Blocked);
    }
}
