//! The TCP side that the HTTP and WebSocket load workers share: a source address per
//! connection, non-blocking connects from it, and reading and writing through an
//! optional rustls client until the socket would block.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use mio::net::TcpStream;
use rustls::ClientConnection;
use socket2::{Domain, Protocol, Socket, Type};

/// Bytes read at a time.
const READ_CHUNK: usize = 16 * 1024;

/// The source address of connection `connection` of worker `worker`: one 127.x.y.z
/// address each (never a .0 or .255), or ::1 for an IPv6 server.
pub(crate) fn source_ip(
    server: SocketAddr,
    worker: usize,
    connection: usize,
    per_worker: usize,
) -> Option<IpAddr> {
    match server {
        SocketAddr::V4(_) => {
            let n = worker * per_worker + connection;
            let (high, low) = (n / 250, n % 250 + 1);
            Some(IpAddr::V4(Ipv4Addr::new(
                127,
                u8::try_from(1 + (high >> 8)).ok()?,
                (high & 0xff) as u8,
                low as u8,
            )))
        }
        SocketAddr::V6(_) => Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    }
}

/// A non-blocking TCP socket from `source` (any port), connecting to `server`.
pub(crate) fn open_stream(
    server: SocketAddr,
    source: Option<IpAddr>,
) -> std::io::Result<TcpStream> {
    let domain = if server.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    // Requests are small and each is written whole: send them at once.
    socket.set_tcp_nodelay(true)?;
    if let Some(source @ IpAddr::V4(_)) = source {
        // Pick the port at connect time, knowing the destination, so that ports held
        // in TIME_WAIT towards another address do not run the range out.
        let one: libc::c_int = 1;
        // SAFETY: a valid socket, and a c_int option value of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                std::ptr::from_ref(&one).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        socket.bind(&SocketAddr::new(source, 0).into())?;
    }
    match socket.connect(&server.into()) {
        Ok(()) => {}
        Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(err) => return Err(err),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// Appends what `reader` has to `input`, until it would block. `Ok(true)` at the end of
/// the stream.
pub(crate) fn read_plain(reader: &mut impl Read, input: &mut Vec<u8>) -> Result<bool, String> {
    loop {
        let start = input.len();
        input.resize(start + READ_CHUNK, 0);
        let read = reader.read(input.get_mut(start..).unwrap_or_default());
        match read {
            Ok(0) => {
                input.truncate(start);
                return Ok(true);
            }
            Ok(n) => input.truncate(start + n),
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                input.truncate(start);
                return Ok(false);
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => input.truncate(start),
            // rustls's reader: the socket closed without a TLS close_notify. The
            // answers read so far are whole or not on their own merits.
            Err(err) if err.kind() == ErrorKind::UnexpectedEof => {
                input.truncate(start);
                return Ok(true);
            }
            Err(err) => {
                input.truncate(start);
                return Err(format!("read: {err}"));
            }
        }
    }
}

/// Feeds what `stream` has to `tls` (records of the handshake or of answers) and
/// appends the plaintext to `input`, until the socket would block. `Ok(true)` at the
/// end of the stream.
pub(crate) fn read_through_tls(
    stream: &mut TcpStream,
    tls: &mut ClientConnection,
    input: &mut Vec<u8>,
) -> Result<bool, String> {
    loop {
        // Each record read is processed and its plaintext taken out before the next
        // read, so rustls's buffers never fill.
        let socket_eof = match tls.read_tls(stream) {
            Ok(0) => true,
            Ok(_) => false,
            Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(format!("read: {err}")),
        };
        if let Err(err) = tls.process_new_packets() {
            // rustls queued an alert saying why: send it if the socket takes it.
            let _ = tls.write_tls(stream);
            return Err(format!("tls: {err}"));
        }
        let plain_eof = read_plain(&mut tls.reader(), input)?;
        if socket_eof || plain_eof {
            return Ok(true);
        }
    }
}

/// Hands `out[*written..]` to `tls` and writes its records (handshake and requests) to
/// `stream` until all are sent or the socket is full. During the handshake rustls holds
/// the requests back and sends them once it is done.
pub(crate) fn write_through_tls(
    stream: &mut TcpStream,
    tls: &mut ClientConnection,
    out: &[u8],
    written: &mut usize,
) -> Result<(), String> {
    loop {
        while *written < out.len() {
            let pending = out.get(*written..).unwrap_or_default();
            match tls.writer().write(pending) {
                // rustls's send buffer is full: send some of it first.
                Ok(0) => break,
                Ok(n) => *written += n,
                Err(err) => return Err(format!("tls write: {err}")),
            }
        }
        if !tls.wants_write() {
            return Ok(());
        }
        match tls.write_tls(stream) {
            Ok(0) => return Err("write: closed".to_string()),
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(format!("write: {err}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_are_distinct_loopback_addresses() {
        let v4: SocketAddr = "127.0.0.1:6969".parse().unwrap();
        let mut seen = std::collections::HashSet::new();
        for worker in [0, 1, 255] {
            for connection in [0, 1, 249, 250, 49_999] {
                let ip = source_ip(v4, worker, connection, 50_000).unwrap();
                let IpAddr::V4(v4ip) = ip else { panic!() };
                assert!(v4ip.is_loopback());
                let last = v4ip.octets()[3];
                assert!(last != 0 && last != 255, "{v4ip}");
                assert!(seen.insert(ip), "{ip} twice");
            }
        }
        assert_eq!(
            source_ip(v4, 0, 0, 10),
            Some(IpAddr::V4(Ipv4Addr::new(127, 1, 0, 1)))
        );
        let v6: SocketAddr = "[::1]:6969".parse().unwrap();
        assert_eq!(
            source_ip(v6, 3, 4, 10),
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
    }
}
