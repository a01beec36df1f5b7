//! A connection's byte stream: plain TCP, or TLS over TCP (rustls). The TCP trackers'
//! socket workers (HTTP, WebSocket) read and write plain text through it either way.
//!
//! rustls keeps what it has decrypted and what it has yet to send in its own buffers;
//! its send buffer is limited ([`TLS_BUFFER_LIMIT`]), so a client that does not read
//! cannot make it grow: writes then take fewer bytes and the rest waits in the
//! connection's own (bounded) write buffer.

use std::io::{self, ErrorKind, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

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
