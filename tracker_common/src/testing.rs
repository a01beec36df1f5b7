//! Support for the trackers' integration tests: a tracker binary started as a child
//! process, with its log lines and the address it listens on, a TLS client that trusts
//! one certificate, and a plain HTTP GET for the metrics endpoint. Not used by the
//! trackers themselves.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A tracker binary running as a child process; killed when dropped.
pub struct Spawned {
    /// The process.
    pub child: Child,
    /// Its stderr (the log), line by line.
    pub lines: mpsc::Receiver<String>,
    /// The address from its "listening on SCHEME://ADDR" line.
    pub addr: SocketAddr,
}

impl Spawned {
    /// Starts `binary -c config` and waits (10 s at most) for its "listening on" line.
    ///
    /// # Panics
    /// The binary did not start or never said where it listens: a failed test.
    pub fn start(binary: &Path, config: &Path) -> Self {
        let mut child = Command::new(binary)
            .arg("-c")
            .arg(config)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("start {}: {err}", binary.display()));
        let Some(stderr) = child.stderr.take() else {
            panic!("no stderr pipe");
        };
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = Self::wait_line(&lines, "listening on ");
        let addr = line
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Self { child, lines, addr }
    }

    /// The next log line containing `needle`, waiting 10 s at most.
    ///
    /// # Panics
    /// No such line came.
    pub fn wait_line(lines: &mpsc::Receiver<String>, needle: &str) -> String {
        loop {
            match lines.recv_timeout(Duration::from_secs(10)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(err) => panic!("no log line containing {needle:?}: {err}"),
            }
        }
    }

    /// Sends the signal `name` ("USR1", "TERM", ...) with kill(1).
    ///
    /// # Panics
    /// kill failed.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} failed");
    }

    /// Waits (10 s at most) for the process to exit; its exit code.
    ///
    /// # Panics
    /// It did not exit in time.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            assert!(std::time::Instant::now() < deadline, "no exit within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TLS client connection to `addr` that trusts only the certificate `trusted` (DER),
/// with its handshake completed, so that a refused certificate fails here.
///
/// # Errors
/// The connection or the handshake failed (a certificate not trusted, say).
///
/// # Panics
/// `trusted` is not a certificate rustls can take: a failed test.
pub fn tls_client(
    addr: SocketAddr,
    trusted: &rustls::pki_types::CertificateDer<'static>,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    if let Err(err) = roots.add(trusted.clone()) {
        panic!("trusted certificate: {err}");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(builder) => builder.with_root_certificates(roots).with_no_client_auth(),
        Err(err) => panic!("rustls client config: {err}"),
    };
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
        .map_err(std::io::Error::other)?;
    let socket = std::net::TcpStream::connect(addr)?;
    socket.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut stream = rustls::StreamOwned::new(connection, socket);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// `GET path` from the HTTP server at `addr` (the metrics endpoint), one request on a
/// new connection: the status code and the body.
///
/// # Panics
/// The server could not be reached, took more than 10 s, or answered no HTTP/1.1
/// response: a failed test.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream =
        std::net::TcpStream::connect(addr).unwrap_or_else(|err| panic!("connect to {addr}: {err}"));
    let timeout = Some(Duration::from_secs(10));
    if let Err(err) = stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
    {
        panic!("set timeouts: {err}");
    }
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    if let Err(err) = stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.read_to_string(&mut answer))
    {
        panic!("GET {path} from {addr}: {err}");
    }
    let Some((head, body)) = answer.split_once("\r\n\r\n") else {
        panic!("no end of head in {answer:?}");
    };
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_owned())
}
