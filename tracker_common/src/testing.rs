//! Support for the trackers' integration tests: a tracker binary started as a child
//! process, with its log lines and the address it listens on, a process's user and
//! group ids, a TLS client that trusts one certificate, and a plain HTTP GET for the
//! metrics endpoint. Not used by the trackers themselves.

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
        Self::start_with_env(binary, config, &[])
    }

    /// [`Spawned::start`] with the environment variables `env` added to the child's.
    ///
    /// # Panics
    /// As [`Spawned::start`].
    pub fn start_with_env(binary: &Path, config: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(binary)
            .arg("-c")
            .arg(config)
            .envs(env.iter().copied())
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

/// Runs `binary` with `args` and the environment variables `env` added, to its end: its
/// exit code and its stderr.
///
/// # Panics
/// The binary could not be started.
pub fn run_to_exit(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(binary)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("run {}: {err}", binary.display()));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A process's ids, from the `Uid:`, `Gid:` and `Groups:` lines of /proc/PID/status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessIds {
    /// Real, effective, saved and file system user ids.
    pub uids: Vec<u32>,
    /// Real, effective, saved and file system group ids.
    pub gids: Vec<u32>,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// The ids of process `pid` (Linux).
///
/// # Panics
/// /proc/PID/status could not be read or lacks the lines.
pub fn process_ids(pid: u32) -> ProcessIds {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("read {path}: {err}"));
    let numbers = |key: &str| -> Vec<u32> {
        let Some(line) = status.lines().find(|line| line.starts_with(key)) else {
            panic!("no {key} line in {path}");
        };
        line.get(key.len()..)
            .unwrap_or("")
            .split_whitespace()
            .map(|n| n.parse().unwrap_or_else(|err| panic!("{line:?}: {err}")))
            .collect()
    };
    ProcessIds {
        uids: numbers("Uid:"),
        gids: numbers("Gid:"),
        groups: numbers("Groups:"),
    }
}

/// The uid and primary gid of the user `name`.
///
/// # Panics
/// There is no such user, or the lookup failed.
pub fn user_ids(name: &str) -> (u32, u32) {
    match nix::unistd::User::from_name(name) {
        Ok(Some(user)) => (user.uid.as_raw(), user.gid.as_raw()),
        Ok(None) => panic!("no user {name:?} on this system"),
        Err(err) => panic!("look up user {name:?}: {err}"),
    }
}

/// Whether this process runs as root. When it does not, says on stdout that `test` is
/// skipped and why: a test that needs root must not pass unseen.
pub fn running_as_root(test: &str) -> bool {
    let euid = nix::unistd::geteuid();
    if !euid.is_root() {
        println!("{test}: skipped: needs root (euid {euid})");
    }
    euid.is_root()
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
