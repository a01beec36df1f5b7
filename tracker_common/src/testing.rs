//! Support for the trackers' integration tests: a tracker binary started as a child
//! process, with its log lines and the address it listens on, a process's user and
//! group ids, a TLS client that trusts one certificate, a plain HTTP GET for the
//! metrics endpoint, the kernel's table of TCP sockets, and a client connection with a
//! small receive window. Not used by the trackers
//! themselves.
//!
//! - [`accounting`]: private mode's scenario tests, shared by the three trackers.
//! - [`api`]: the admin API's client and the scenarios every tracker runs.
//! - [`operator`]: private mode's operator scenarios (restarts, caps, several
//!   processes on one database, the database down at start).
//! - [`metrics`]: reading a tracker's `/metrics`.
//! - [`postgres`]: a throwaway PostgreSQL server, for the accounting database's tests.
//! - [`mariadb`]: a throwaway MariaDB server, for the MySQL backend's tests.

pub mod accounting;
pub mod api;
pub mod mariadb;
pub mod metrics;
pub mod nats;
pub mod operator;
pub mod postgres;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
    /// Where its metrics endpoint listens, from its "metrics on http://ADDR/metrics"
    /// line (logged before "listening on"); `None` if it logged none.
    pub metrics: Option<SocketAddr>,
    /// Where its admin API listens, from its "admin API on http://ADDR/api/v1/" line
    /// (logged before "listening on"); `None` if it logged none.
    pub api: Option<SocketAddr>,
}

impl Spawned {
    /// Starts `binary -c config` and waits for its "listening on" line (10 s at most for
    /// each log line), noting the metrics address logged before it.
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
        let mut metrics = None;
        let mut api = None;
        let line = loop {
            let line = Self::wait_line(&lines, "");
            if let Some(rest) = line.split("metrics on http://").nth(1) {
                metrics = rest.split('/').next().and_then(|addr| addr.parse().ok());
            }
            if let Some(rest) = line.split("admin API on http://").nth(1) {
                api = rest.split('/').next().and_then(|addr| addr.parse().ok());
            }
            if line.contains("listening on ") {
                break line;
            }
        };
        let addr = line
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Self {
            child,
            lines,
            addr,
            metrics,
            api,
        }
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

/// TCP states as /proc/net/tcp numbers them (include/net/tcp_states.h).
pub mod tcp_state {
    /// ESTABLISHED.
    pub const ESTABLISHED: u8 = 0x01;
    /// FIN_WAIT1: our FIN sent, not yet acknowledged.
    pub const FIN_WAIT1: u8 = 0x04;
    /// FIN_WAIT2: our FIN acknowledged, the peer's not yet come.
    pub const FIN_WAIT2: u8 = 0x05;
    /// TIME_WAIT.
    pub const TIME_WAIT: u8 = 0x06;
    /// LISTEN.
    pub const LISTEN: u8 = 0x0A;
}

/// One TCP socket of this network namespace, from /proc/net/tcp or /proc/net/tcp6.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TcpSocketLine {
    /// Its local port.
    pub local_port: u16,
    /// The peer's port (0 for a listener).
    pub remote_port: u16,
    /// Its state (see [`tcp_state`]).
    pub state: u8,
    /// The inode of its file; 0 when no process holds it: a connection still in a
    /// listener's accept queue, or one a process has closed (TIME_WAIT, say).
    pub inode: u64,
}

/// The TCP sockets of this network namespace (Linux), IPv4 and IPv6: for tests that
/// must see what the kernel holds (a connection accepted or still in the backlog, a
/// server side in TIME_WAIT) rather than guess it from timings.
///
/// # Panics
/// A table could not be read.
pub fn tcp_sockets() -> Vec<TcpSocketLine> {
    let mut sockets = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text =
            std::fs::read_to_string(table).unwrap_or_else(|err| panic!("read {table}: {err}"));
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // "ADDR:PORT" in hex, the state in hex, the inode in decimal.
            let port = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| f.rsplit(':').next())
                    .and_then(|hex| u16::from_str_radix(hex, 16).ok())
            };
            let state = fields.get(3).and_then(|f| u8::from_str_radix(f, 16).ok());
            let inode = fields.get(9).and_then(|f| f.parse().ok());
            if let (Some(local_port), Some(remote_port), Some(state), Some(inode)) =
                (port(1), port(2), state, inode)
            {
                sockets.push(TcpSocketLine {
                    local_port,
                    remote_port,
                    state,
                    inode,
                });
            }
        }
    }
    sockets
}

/// A config file `name.toml` in `dir` for a TCP tracker binary: `address`, one socket
/// and one request worker, statistics off, metrics on port 0, and `extra` sections.
pub fn write_tcp_config(dir: &Path, name: &str, address: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[network]\naddress = \"{address}\"\n[workers]\nsocket_workers = 1\n\
             request_workers = 1\n[statistics]\ninterval_secs = 0\n\
             [metrics]\naddress = \"127.0.0.1:0\"\n{extra}"
        ),
    )
    .unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
    path
}

/// Stops a TCP tracker `binary` (in `dir`) with SIGTERM while clients made by
/// `served` (a connection with a completed request on it) are connected, waits until
/// `closed_by_tracker` saw each closed, and checks that the tracker's side of those
/// connections lingers (TIME_WAIT) yet a second start on the same port serves at once.
pub fn restart_with_clients_connected<C>(
    binary: &Path,
    dir: &Path,
    served: impl Fn(SocketAddr) -> C,
    closed_by_tracker: impl Fn(&mut C) -> bool,
) {
    let first = write_tcp_config(dir, "first", "127.0.0.1:0", "");
    let mut tracker = Spawned::start(binary, &first);
    let addr = tracker.addr;
    let mut clients: Vec<C> = (0..4).map(|_| served(addr)).collect();
    tracker.signal("TERM");
    assert_eq!(tracker.wait_exit(), Some(0));
    // The tracker closed first; the clients close too, which leaves its side of each
    // connection in TIME_WAIT for a minute.
    for client in &mut clients {
        assert!(closed_by_tracker(client), "a client was not closed");
    }
    drop(clients);
    let lingering = tcp_sockets().into_iter().filter(|s| {
        s.local_port == addr.port()
            && matches!(
                s.state,
                tcp_state::TIME_WAIT | tcp_state::FIN_WAIT1 | tcp_state::FIN_WAIT2
            )
    });
    assert!(lingering.count() >= 4, "the old connections hold the port");

    let second = write_tcp_config(dir, "second", &addr.to_string(), "");
    let mut tracker = Spawned::start(binary, &second);
    assert_eq!(tracker.addr, addr);
    drop(served(addr));
    tracker.signal("TERM");
    assert_eq!(tracker.wait_exit(), Some(0));
}

/// Runs a TCP tracker `binary` (in `dir`, with the `extra` config sections) allowed 64
/// open files, far fewer than its connections, and opens 100 connections with
/// `connect` (which also sends a request): accept fails with EMFILE. Checks that it took
/// the first ones in backlog order and answers them (`answered`), and that once one of
/// them closes, the descriptor it frees goes to the first connection waiting, with no
/// new connection arriving to wake the listener.
pub fn freed_descriptors_restart_accepting<C>(
    binary: &Path,
    dir: &Path,
    extra: &str,
    connect: impl Fn(SocketAddr) -> C,
    local_port: impl Fn(&C) -> u16,
    answered: impl Fn(&mut C) -> bool,
) {
    let wrapper = dir.join("tracker-with-64-files");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nulimit -n 64\nexec {} \"$@\"\n",
            binary.display()
        ),
    )
    .unwrap_or_else(|err| panic!("write {}: {err}", wrapper.display()));
    let mut permissions = std::fs::metadata(&wrapper)
        .unwrap_or_else(|err| panic!("{}: {err}", wrapper.display()))
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&wrapper, permissions)
        .unwrap_or_else(|err| panic!("{}: {err}", wrapper.display()));
    let config = write_tcp_config(dir, "emfile", "127.0.0.1:0", extra);
    let mut tracker = Spawned::start(&wrapper, &config);
    let addr = tracker.addr;

    let mut clients: Vec<C> = (0..100).map(|_| connect(addr)).collect();
    Spawned::wait_line(&tracker.lines, "Too many open files");
    // Accepting is blocked now. The kernel shows which connections it took: their side
    // has a file (an inode); those still in the backlog have none. The backlog is first
    // in, first out.
    let ports: Vec<u16> = clients.iter().map(&local_port).collect();
    let accepted = accepted_when_settled(addr.port(), &ports);
    let taken = accepted.iter().filter(|a| **a).count();
    if taken == 0 || taken == clients.len() {
        let status = tracker.child.try_wait();
        let log: Vec<String> = tracker.lines.try_iter().collect();
        panic!(
            "{taken} of {} accepted; tracker {status:?}; log {log:#?}",
            clients.len()
        );
    }
    assert!(accepted.iter().take(taken).all(|a| *a), "{accepted:?}");
    for client in clients.iter_mut().take(taken) {
        assert!(answered(client), "an accepted connection was not answered");
    }
    drop(clients.remove(0));
    let first_waiting = clients
        .get_mut(taken - 1)
        .unwrap_or_else(|| panic!("no connection waits"));
    assert!(
        answered(first_waiting),
        "the first waiting connection was not served"
    );
}

/// Which of the client connections to the server port `server_port` (named by their
/// local ports) the server has accepted (their server side has a file), once that has
/// not changed for three seconds. A server that ran out of descriptors retries
/// accepting at each housekeeping round (a second apart): a descriptor freed for a
/// moment elsewhere in the process lets it take one more connection, so one look could
/// catch it mid-change (and /proc/net/tcp is not read atomically). Gives up after 30 s.
pub fn accepted_when_settled(server_port: u16, client_ports: &[u16]) -> Vec<bool> {
    let look = || {
        let sockets = tcp_sockets();
        client_ports
            .iter()
            .map(|port| {
                sockets
                    .iter()
                    .any(|s| s.local_port == server_port && s.remote_port == *port && s.inode != 0)
            })
            .collect::<Vec<bool>>()
    };
    let started = std::time::Instant::now();
    let mut last = look();
    let mut since = std::time::Instant::now();
    while since.elapsed() < std::time::Duration::from_secs(3) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "accepting never settled: {last:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = look();
        if now != last {
            last = now;
            since = std::time::Instant::now();
        }
    }
    last
}

/// A TCP connection to `addr` whose receive buffer is as small as the kernel allows,
/// with a read timeout of 10 s: what the server sends beyond a few KiB waits in the
/// server's send queue until this side reads. For tests of what a server's close does
/// to answers it has not delivered yet.
///
/// # Panics
/// The socket could not be made or connected: a failed test.
pub fn connect_with_small_receive_buffer(addr: SocketAddr) -> std::net::TcpStream {
    use socket2::{Domain, Socket, Type};
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::STREAM, None).unwrap_or_else(|err| panic!("{err}"));
    // Set before connecting: the window scale is agreed in the handshake.
    if let Err(err) = socket.set_recv_buffer_size(1) {
        panic!("SO_RCVBUF: {err}");
    }
    if let Err(err) = socket.connect(&addr.into()) {
        panic!("connect to {addr}: {err}");
    }
    let stream = std::net::TcpStream::from(socket);
    if let Err(err) = stream.set_read_timeout(Some(Duration::from_secs(10))) {
        panic!("read timeout: {err}");
    }
    stream
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

/// A tracker binary under test, for the command-line checks every tracker shares: the
/// environment overrides and the privilege drop.
pub struct TrackerBinary<'a> {
    /// The binary.
    pub path: &'a Path,
    /// Its environment prefix, `SHOAL_UDP__` say.
    pub env_prefix: &'a str,
    /// Another tracker's prefix, whose variables it must ignore.
    pub other_prefix: &'a str,
    /// Keys its test configs add to `[network]`, each line ending in `\n` (the UDP
    /// tracker's `recv_buffer_bytes = 0`, so that it logs no warning about it).
    pub network_extra: &'a str,
}

/// A fresh, empty directory for one test's files, named after the test and this
/// process (what an earlier run of the same process id left there is removed).
///
/// # Panics
/// Waits until `f` holds, checking every 10 ms; how long it took.
///
/// # Panics
/// It did not hold within `deadline`: `what` says what was waited for.
pub fn wait_until(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = std::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < deadline,
            "not within {deadline:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

/// It could not be made.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("shoal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|err| panic!("create {}: {err}", dir.display()));
    dir
}

/// A loopback TCP port for a test's database server, free now and outside the kernel's
/// range of local ports for outgoing connections (`ip_local_port_range`). A server that
/// a test stops and starts again on the same port must not find it taken meanwhile by
/// some connection's local port, as a port from that range can be.
///
/// # Errors
/// The range cannot be read, or no port below it is free.
pub fn server_port() -> anyhow::Result<u16> {
    use anyhow::Context as _;
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .context("read /proc/sys/net/ipv4/ip_local_port_range")?;
    let low: u16 = range
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("ip_local_port_range: {range:?}"))?;
    let first = 10_000u16.min(low / 2);
    let span = low.saturating_sub(first).max(1);
    // Start at a place of this process's own, so that tests running side by side seldom
    // try the same ports.
    let start = (std::process::id() as u16).wrapping_mul(7919) % span;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let start = (start + (nanos % u32::from(span)) as u16) % span;
    for offset in 0..span {
        let port = first + (start + offset) % span;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port between {first} and {low}")
}

impl TrackerBinary<'_> {
    /// Writes a config file `name.toml` in `dir`: `address` in `[network]`, metrics on
    /// port 0, statistics off, and `sections` after them.
    fn write_config(&self, dir: &Path, name: &str, address: &str, sections: &str) -> PathBuf {
        let path = dir.join(format!("{name}.toml"));
        let text = format!(
            "[network]\naddress = \"{address}\"\n{}[statistics]\ninterval_secs = 0\n\
             [metrics]\naddress = \"127.0.0.1:0\"\n{sections}",
            self.network_extra
        );
        std::fs::write(&path, text).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
        path
    }

    /// Starts the tracker on a file whose address (TEST-NET-1, not on this host) and
    /// statistics interval (0) cannot be the ones in force, with variables that set them
    /// (127.0.0.1:0, 1 s) and the log level (debug), and another tracker's variables,
    /// which must be ignored (one of them names no key). Returns it listening, and the
    /// directory to remove; the caller sends something the tracker logs at debug level
    /// and calls [`TrackerBinary::expect_debug_and_statistics`].
    ///
    /// # Panics
    /// It did not start, or not where the variable says.
    pub fn start_with_env_overrides(&self) -> (Spawned, PathBuf) {
        let dir = temp_dir(&format!("{}env", self.env_prefix.to_lowercase()));
        let path = self.write_config(&dir, "env", "192.0.2.1:6969", "");
        let var = |key: &str, prefix: &str| format!("{prefix}{key}");
        let own = [
            (var("NETWORK__ADDRESS", self.env_prefix), "127.0.0.1:0"),
            (var("STATISTICS__INTERVAL_SECS", self.env_prefix), "1"),
            (var("LOG_LEVEL", self.env_prefix), "debug"),
            (var("NETWORK__ADDRESS", self.other_prefix), "nowhere"),
            (var("NO_SUCH_KEY", self.other_prefix), "1"),
        ];
        let env: Vec<(&str, &str)> = own.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let spawned = Spawned::start_with_env(self.path, &path, &env);
        assert_eq!(spawned.addr.ip().to_string(), "127.0.0.1");
        (spawned, dir)
    }

    /// Waits for a debug line and a statistics line: the log level and the statistics
    /// interval the variables set are in force.
    pub fn expect_debug_and_statistics(spawned: &Spawned, dir: &Path) {
        Spawned::wait_line(&spawned.lines, "DEBUG");
        Spawned::wait_line(&spawned.lines, "requests/s");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A malformed value and a variable that names no key each stop the start with exit
    /// code 1 and a message naming the variable.
    ///
    /// # Panics
    /// They did not: a failed test.
    pub fn check_bad_environment_variables(&self) {
        let address = format!("{}NETWORK__ADDRESS", self.env_prefix);
        let (code, err) = run_to_exit(self.path, &[], &[(&address, "nowhere")]);
        assert_eq!(code, Some(1), "{err}");
        let expected = format!("environment variable {address}: invalid socket address syntax");
        assert!(err.contains(&expected), "{err}");
        let typo = format!("{}NETWORK__ADRESS", self.env_prefix);
        let (code, err) = run_to_exit(self.path, &[], &[(&typo, "127.0.0.1:0")]);
        assert_eq!(code, Some(1), "{err}");
        let expected = format!("environment variable {typo}: the config has no key");
        assert!(err.contains(&expected), "{err}");
    }

    /// Starts the tracker as root, dropping to `nobody` in a fresh chroot, and checks
    /// that every user and group id is nobody's and the root is the chroot. Returns it
    /// running (the caller gets a request answered and stops it with
    /// [`TrackerBinary::stop_cleanly`]), or `None` with the reason printed when this test
    /// does not run as root.
    ///
    /// # Panics
    /// It did not start, or runs with other ids.
    pub fn start_as_nobody_in_a_chroot(&self, test: &str) -> Option<(Spawned, PathBuf)> {
        if !running_as_root(test) {
            return None;
        }
        let (uid, gid) = user_ids("nobody");
        let dir = temp_dir(&format!("{}privileges", self.env_prefix.to_lowercase()));
        let jail = dir.join("jail");
        std::fs::create_dir_all(&jail).unwrap_or_else(|err| panic!("create jail: {err}"));
        let privileges = format!(
            "[privileges]\ndrop_privileges = true\nuser = \"nobody\"\nchroot_dir = {:?}\n",
            jail.display().to_string()
        );
        let path = self.write_config(&dir, "privileges", "127.0.0.1:0", &privileges);
        let spawned = Spawned::start(self.path, &path);
        let ids = process_ids(spawned.child.id());
        assert_eq!(ids.uids, [uid; 4], "{ids:?}");
        assert_eq!(ids.gids, [gid; 4], "{ids:?}");
        assert_eq!(ids.groups, [gid], "{ids:?}");
        let root = std::fs::read_link(format!("/proc/{}/root", spawned.child.id()))
            .unwrap_or_else(|err| panic!("read /proc/PID/root: {err}"));
        assert_eq!(root, jail);
        Some((spawned, dir))
    }

    /// SIGTERM, a clean exit, and the test's directory removed.
    pub fn stop_cleanly(mut spawned: Spawned, dir: &Path) {
        spawned.signal("TERM");
        assert_eq!(spawned.wait_exit(), Some(0));
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A user that does not exist stops the start, naming `privileges.user`.
    ///
    /// # Panics
    /// It did not: a failed test.
    pub fn check_unknown_user(&self) {
        let dir = temp_dir(&format!("{}nouser", self.env_prefix.to_lowercase()));
        let sections = "[privileges]\ndrop_privileges = true\nuser = \"shoal-no-such-user\"\n";
        let path = self.write_config(&dir, "nouser", "127.0.0.1:0", sections);
        let config = path.to_string_lossy().into_owned();
        let (code, err) = run_to_exit(self.path, &["-c", &config], &[]);
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains("privileges.user: no user \"shoal-no-such-user\""),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
