//! `tracker_load_test udp-ceiling`: a minimal UDP tracker responder. It keeps no state
//! and looks at nothing but the action, the transaction id and the size of what it is
//! asked: connects get a fixed connection id, announces a fixed list of peers (cut to
//! the number asked for), scrapes zeros. Its sockets and batched I/O are the tracker's
//! own, so the load test against it shows what the machine and the load generator
//! allow, and the tracker's throughput can be read as a fraction of that.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use mio::{Events, Interest, Poll, Token};

use tracker_common::addr::CanonicalSocketAddr;
use tracker_common::config::{LogLevel, TrackerConfig};
use tracker_common::config_section;
use tracker_common::net::gather::Gather;
use tracker_common::net::listen::UdpNetworkConfig as NetworkConfig;
use tracker_common::net::udp_batch::{RecvBatch, SendBatch};
use tracker_common::runtime::supervisor::{ShutdownFlag, Supervisor, spawn_signal_thread};

const IO_BATCH: usize = 64;
const CONNECTION_ID: [u8; 8] = *b"ceiling!";
const MAX_SCRAPE: usize = 74;

config_section! {
    /// The whole configuration of `tracker_load_test udp-ceiling`.
    pub struct CeilingConfig {
        /// Log level: "off", "error", "warn", "info", "debug" or "trace".
        pub log_level: LogLevel,
        /// Where to listen and how the sockets are set up: the same keys, and the same
        /// code, as the UDP tracker's `[network]`.
        pub network: NetworkConfig,
        /// Responder threads, each with its own SO_REUSEPORT socket.
        pub workers: usize,
        /// Peers in each announce answer (fewer if the request asks for fewer).
        pub announce_peers: usize,
        /// Answer as the naive responder does: one blocking socket (no SO_REUSEPORT, the
        /// OS's buffer sizes, no epoll), one recv_from and one send_to per datagram. The
        /// baseline a batched tracker should beat; needs workers = 1.
        pub naive: bool,
    }
}

impl Default for CeilingConfig {
    fn default() -> Self {
        Self {
            log_level: LogLevel::Warn,
            network: NetworkConfig {
                address: SocketAddr::from(([127, 0, 0, 1], 6969)),
                ..NetworkConfig::default()
            },
            workers: 1,
            announce_peers: 30,
            naive: false,
        }
    }
}

impl TrackerConfig for CeilingConfig {
    fn log_level(&self) -> LogLevel {
        self.log_level
    }

    fn validate(&mut self) -> anyhow::Result<()> {
        self.network.validate()?;
        if !self.network.address.ip().is_loopback() {
            anyhow::bail!(
                "network.address: {} is not a loopback address (127.0.0.0/8 or ::1)",
                self.network.address
            );
        }
        if !(1..=256).contains(&self.workers) {
            anyhow::bail!("workers: must be between 1 and 256");
        }
        if self.announce_peers > 200 {
            anyhow::bail!("announce_peers: must be at most 200");
        }
        if self.naive && self.workers != 1 {
            anyhow::bail!("workers: must be 1 when naive is true (one plain socket)");
        }
        Ok(())
    }
}

/// The peers every announce answer lists, in both wire formats.
struct PeerTemplates {
    ipv4: Vec<u8>,
    ipv6: Vec<u8>,
    count: usize,
}

impl PeerTemplates {
    fn new(count: usize) -> Self {
        let mut ipv4 = Vec::with_capacity(count * 6);
        let mut ipv6 = Vec::with_capacity(count * 18);
        for i in 0..count {
            let port = 10_000 + i as u16;
            ipv4.extend_from_slice(&Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8).octets());
            ipv4.extend_from_slice(&port.to_be_bytes());
            let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16);
            ipv6.extend_from_slice(&v6.octets());
            ipv6.extend_from_slice(&port.to_be_bytes());
        }
        Self { ipv4, ipv6, count }
    }
}

fn read_i32(bytes: &[u8], at: usize) -> Option<i32> {
    let field: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(i32::from_be_bytes(field))
}

/// Appends the fixed answer to `request` (from a client whose canonical address is
/// IPv4 if `ipv4`) to `out`; `None` for anything that is not a request.
fn answer(request: &[u8], ipv4: bool, peers: &PeerTemplates, out: &mut Vec<u8>) -> Option<()> {
    let action = read_i32(request, 8)?;
    let transaction_id = request.get(12..16)?;
    match action {
        0 if request.len() == 16 => {
            out.extend_from_slice(&0i32.to_be_bytes());
            out.extend_from_slice(transaction_id);
            out.extend_from_slice(&CONNECTION_ID);
        }
        1 if request.len() >= 98 => {
            let wanted = read_i32(request, 92)?;
            let n = usize::try_from(wanted).map_or(peers.count, |w| w.min(peers.count));
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(transaction_id);
            out.extend_from_slice(&1800i32.to_be_bytes());
            let count = i32::try_from(peers.count).unwrap_or(i32::MAX);
            out.extend_from_slice(&count.to_be_bytes()); // leechers
            out.extend_from_slice(&count.to_be_bytes()); // seeders
            let entries = if ipv4 {
                peers.ipv4.get(..n * 6)
            } else {
                peers.ipv6.get(..n * 18)
            };
            out.extend_from_slice(entries.unwrap_or_default());
        }
        2 if request.len() >= 36 => {
            let n = ((request.len() - 16) / 20).min(MAX_SCRAPE);
            out.extend_from_slice(&2i32.to_be_bytes());
            out.extend_from_slice(transaction_id);
            out.resize(out.len() + n * 12, 0);
        }
        _ => return None,
    }
    Some(())
}

/// A running ceiling responder.
pub struct Ceiling {
    local_addr: SocketAddr,
    supervisor: Supervisor,
}

impl Ceiling {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Blocks until a thread ends (after a signal, `Ok`).
    ///
    /// # Errors
    /// A thread failed.
    pub fn wait(&self) -> anyhow::Result<()> {
        self.supervisor.wait()
    }

    /// Stops the threads.
    pub fn shutdown(mut self) {
        self.supervisor.shutdown(Duration::from_secs(5));
    }
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        self.supervisor.shutdown_flag().set();
    }
}

/// Starts the responder threads; returns once the sockets are bound.
///
/// # Errors
/// A bad config value, or a socket that could not be bound.
pub fn start_ceiling(config: CeilingConfig) -> anyhow::Result<Ceiling> {
    start_inner(config, false)
}

/// Runs the responder until SIGTERM / SIGINT.
///
/// # Errors
/// As [`start_ceiling`], or a thread that failed.
pub fn run_ceiling(config: CeilingConfig) -> anyhow::Result<()> {
    let ceiling = start_inner(config, true)?;
    let result = ceiling.wait();
    ceiling.shutdown();
    result
}

fn start_inner(mut config: CeilingConfig, handle_signals: bool) -> anyhow::Result<Ceiling> {
    config.validate()?;
    if config.naive {
        return start_naive(&config, handle_signals);
    }
    let (local_addr, sockets) = tracker_common::net::listen::bind_udp_sockets(
        config.network.address,
        config.workers,
        &config.network.socket_options(),
    )?;
    let mut supervisor = Supervisor::new(ShutdownFlag::new());
    let poll_timeout = Duration::from_millis(config.network.poll_timeout_ms);
    for (i, socket) in sockets.into_iter().enumerate() {
        let socket = mio::net::UdpSocket::from_std(socket);
        let shutdown = supervisor.shutdown_flag().clone();
        let peers = PeerTemplates::new(config.announce_peers);
        let segmentation = config.network.segmentation;
        let gather = config.network.gather();
        supervisor.spawn(&format!("ceiling-{:02}", i + 1), move || {
            respond(
                socket,
                &peers,
                &shutdown,
                poll_timeout,
                segmentation,
                gather,
            )
        })?;
    }
    if handle_signals {
        spawn_signal_thread(&mut supervisor, || {})?;
    }
    log::info!("ceiling responder listening on udp://{local_addr}");
    println!("ceiling responder listening on udp://{local_addr}");
    Ok(Ceiling {
        local_addr,
        supervisor,
    })
}

/// The naive responder: one plain blocking socket, one datagram per system call.
fn start_naive(config: &CeilingConfig, handle_signals: bool) -> anyhow::Result<Ceiling> {
    let socket = std::net::UdpSocket::bind(config.network.address)
        .with_context(|| format!("bind {}", config.network.address))?;
    let local_addr = socket.local_addr().context("read the socket's address")?;
    // A receive that waits at most this long lets the thread see a shutdown.
    socket
        .set_read_timeout(Some(Duration::from_millis(
            config.network.poll_timeout_ms.max(1),
        )))
        .context("set the read timeout")?;
    let mut supervisor = Supervisor::new(ShutdownFlag::new());
    let shutdown = supervisor.shutdown_flag().clone();
    let peers = PeerTemplates::new(config.announce_peers);
    supervisor.spawn("naive-01", move || {
        respond_naive(&socket, &peers, &shutdown);
        Ok(())
    })?;
    if handle_signals {
        spawn_signal_thread(&mut supervisor, || {})?;
    }
    log::info!("naive responder listening on udp://{local_addr}");
    println!("naive responder listening on udp://{local_addr}");
    Ok(Ceiling {
        local_addr,
        supervisor,
    })
}

fn respond_naive(socket: &std::net::UdpSocket, peers: &PeerTemplates, shutdown: &ShutdownFlag) {
    let mut request = [0u8; 2048];
    let mut out = Vec::with_capacity(2048);
    while !shutdown.is_set() {
        let (len, src) = match socket.recv_from(&mut request) {
            Ok(received) => received,
            // A timeout (to look at the flag), an interruption, an ICMP error: go on.
            Err(_) => continue,
        };
        out.clear();
        let ipv4 = CanonicalSocketAddr::new(src).is_ipv4();
        if answer(
            request.get(..len).unwrap_or_default(),
            ipv4,
            peers,
            &mut out,
        )
        .is_some()
        {
            // A full socket buffer drops the answer, as a loaded server's would.
            let _ = socket.send_to(&out, src);
        }
    }
}

fn respond(
    mut socket: mio::net::UdpSocket,
    peers: &PeerTemplates,
    shutdown: &ShutdownFlag,
    poll_timeout: Duration,
    segmentation: bool,
    gather: Duration,
) -> anyhow::Result<()> {
    let mut poll = Poll::new().context("create poll")?;
    poll.registry()
        .register(&mut socket, Token(0), Interest::READABLE)
        .context("register socket")?;
    let mut events = Events::with_capacity(8);
    let mut recv = RecvBatch::new(IO_BATCH, 2048);
    let mut send = SendBatch::new(IO_BATCH, IO_BATCH * 256);
    // As the tracker does, so that the ceiling stays the tracker's I/O without its work.
    if segmentation {
        send.enable_segmentation(&socket);
    }
    // As the tracker's socket workers do: after a round of few datagrams, wait before
    // reading again so that the next round is larger.
    let mut gather = Gather::new(gather);
    let mut round = 0;
    gather.begin_round();
    while !shutdown.is_set() {
        match recv.recv(&socket) {
            Ok(n) => {
                round += n;
                for (request, src) in recv.iter() {
                    let ipv4 = CanonicalSocketAddr::new(src).is_ipv4();
                    // A push into a batch of IO_BATCH after at most IO_BATCH receives
                    // always fits; a packet that is not a request queues nothing.
                    let _ = send.push_with(src, |out| {
                        answer(request, ipv4, peers, out)
                            .ok_or_else(|| std::io::Error::other("not a request"))
                    });
                }
                send.flush(&socket);
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                gather.end_round(round);
                round = 0;
                let wait = gather.wait();
                if wait.is_zero() {
                    match poll.poll(&mut events, Some(poll_timeout)) {
                        Ok(()) => {}
                        Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(err) => return Err(anyhow::Error::new(err).context("poll")),
                    }
                } else {
                    std::thread::sleep(wait);
                }
                gather.begin_round();
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => log::debug!("recvmmsg: {err}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracker_udp_protocol::{
        AnnounceEvent, AnnounceRequest, ConnectRequest, ConnectionId, InfoHash, PeerId, Request,
        Response, ScrapeRequest, TransactionId,
    };

    fn bytes(request: &Request) -> Vec<u8> {
        let mut out = Vec::new();
        request.write_bytes(&mut out).unwrap();
        out
    }

    fn announce(peers_wanted: i32) -> Request {
        Request::Announce(AnnounceRequest {
            connection_id: ConnectionId(1),
            transaction_id: TransactionId(7),
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([2; 20]),
            bytes_downloaded: 0,
            bytes_left: 0,
            bytes_uploaded: 0,
            event: AnnounceEvent::None,
            ip_address: None,
            key: 0,
            peers_wanted,
            port: 1,
            url_data: Vec::new(),
        })
    }

    #[test]
    fn answers_are_well_formed() {
        let peers = PeerTemplates::new(30);
        let mut out = Vec::new();
        let connect = bytes(&Request::Connect(ConnectRequest {
            transaction_id: TransactionId(5),
        }));
        answer(&connect, true, &peers, &mut out).unwrap();
        assert!(matches!(
            Response::parse_bytes(&out, true).unwrap(),
            Response::Connect(r) if r.transaction_id == TransactionId(5)
        ));

        for (wanted, ipv4, n) in [
            (10, true, 10),
            (-1, true, 30),
            (50, false, 30),
            (0, false, 0),
        ] {
            out.clear();
            answer(&bytes(&announce(wanted)), ipv4, &peers, &mut out).unwrap();
            let got = match Response::parse_bytes(&out, ipv4).unwrap() {
                Response::AnnounceIpv4(r) => r.peers.len(),
                Response::AnnounceIpv6(r) => r.peers.len(),
                other => panic!("{other:?}"),
            };
            assert_eq!(got, n);
        }

        out.clear();
        let scrape = bytes(&Request::Scrape(ScrapeRequest {
            connection_id: ConnectionId(1),
            transaction_id: TransactionId(9),
            info_hashes: vec![InfoHash([3; 20]); 4],
        }));
        answer(&scrape, true, &peers, &mut out).unwrap();
        assert!(matches!(
            Response::parse_bytes(&out, true).unwrap(),
            Response::Scrape(r) if r.torrent_stats.len() == 4
        ));
    }

    proptest::proptest! {
        /// Whatever arrives, the responder does not panic, and what it answers is a
        /// well-formed response carrying the request's transaction id.
        #[test]
        fn any_datagram_gets_a_well_formed_answer_or_none(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1600),
            action in 0u8..4,
            ipv4 in proptest::prelude::any::<bool>(),
        ) {
            let peers = PeerTemplates::new(30);
            let mut bytes = bytes;
            // Random bytes rarely hold a known action; set one in half the cases.
            if bytes.len() >= 12 && action < 3 {
                bytes[8..12].copy_from_slice(&i32::from(action).to_be_bytes());
            }
            let mut out = Vec::new();
            if answer(&bytes, ipv4, &peers, &mut out).is_some() {
                let response = Response::parse_bytes(&out, ipv4).unwrap();
                proptest::prop_assert_eq!(&response.transaction_id().0.to_be_bytes()[..], &bytes[12..16]);
            } else {
                proptest::prop_assert!(out.is_empty());
            }
        }
    }

    #[test]
    fn garbage_gets_no_answer() {
        let peers = PeerTemplates::new(1);
        let mut out = Vec::new();
        for packet in [&[][..], &[0; 15], &[0; 17], &[9; 100]] {
            assert_eq!(answer(packet, true, &peers, &mut out), None);
        }
    }
}
