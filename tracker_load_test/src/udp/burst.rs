//! `tracker_load_test udp-burst`: how many requests of a sudden burst a UDP tracker
//! loses, to size its receive buffer.
//!
//! Sources (sockets on 127.0.0.1, so the tracker's SO_REUSEPORT group spreads them)
//! connect, then send `count` announces as fast as one thread can, round-robin,
//! while one thread per source counts the answers. Collection ends after a quiet
//! second (bounded by a deadline). Reported: requests sent, answered, the drops on the
//! tracker's port (/proc/net/udp) and the host's Udp RcvbufErrors delta
//! (/proc/net/snmp, which also counts other sockets' drops).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use tracker_common::types::{AnnounceEvent, InfoHash, PeerId};
use tracker_udp_protocol::{
    AnnounceRequest, ConnectRequest, ConnectionId, Request, Response, TransactionId,
};

/// Most requests in one burst.
pub const MAX_BURST: u64 = 1_000_000;
/// Most source sockets.
pub const MAX_SOURCES: usize = 64;
/// A collection that has not fallen quiet by then stops anyway.
const COLLECT_DEADLINE: Duration = Duration::from_secs(30);
/// Collection ends after this long without an answer.
const QUIET: Duration = Duration::from_secs(1);

/// What one burst did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BurstSummary {
    /// Announces sent.
    pub sent: u64,
    /// Announces answered.
    pub answered: u64,
    /// Datagrams dropped on the target port's sockets during the burst.
    pub port_drops: u64,
    /// Growth of the host's Udp RcvbufErrors during the burst (all sockets).
    pub rcvbuf_errors: u64,
}

/// Sends a burst of `count` announces from `sources` sockets to `target` (loopback
/// only) and counts what comes back.
///
/// # Errors
/// A non-loopback target, a count or source number out of bounds, a socket error, or a
/// tracker that does not answer connects.
pub fn run_burst(target: SocketAddr, count: u64, sources: usize) -> anyhow::Result<BurstSummary> {
    if !target.ip().is_loopback() {
        anyhow::bail!("udp-burst: {target} is not a loopback address");
    }
    if !(1..=MAX_BURST).contains(&count) || !(1..=MAX_SOURCES).contains(&sources) {
        anyhow::bail!("udp-burst: count must be 1..={MAX_BURST}, sources 1..={MAX_SOURCES}");
    }
    let bind = if target.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    };
    let mut sockets = Vec::with_capacity(sources);
    for _ in 0..sources {
        let socket = UdpSocket::bind(bind).context("bind a source socket")?;
        // Room for every answer, so the sources themselves drop nothing.
        socket2::SockRef::from(&socket)
            .set_recv_buffer_size(32 << 20)
            .context("set SO_RCVBUF on a source")?;
        let id = connect(&socket, target)?;
        sockets.push((socket, id));
    }

    let answered = Arc::new(AtomicU64::new(0));
    let last_answer = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut readers = Vec::with_capacity(sources);
    for (socket, _) in &sockets {
        let socket = socket.try_clone().context("clone a source socket")?;
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .context("set a read timeout")?;
        let (answered, last_answer) = (answered.clone(), last_answer.clone());
        readers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            loop {
                let since_start = start.elapsed();
                let quiet_for = since_start
                    .saturating_sub(Duration::from_millis(last_answer.load(Ordering::Relaxed)));
                if since_start > COLLECT_DEADLINE || (quiet_for > QUIET && since_start > QUIET) {
                    return;
                }
                if let Ok((len, _)) = socket.recv_from(&mut buf)
                    && matches!(
                        Response::parse_bytes(buf.get(..len).unwrap_or_default(), true),
                        Ok(Response::AnnounceIpv4(_) | Response::AnnounceIpv6(_))
                    )
                {
                    answered.fetch_add(1, Ordering::Relaxed);
                    last_answer.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                }
            }
        }));
    }

    let mut rng = SmallRng::seed_from_u64(1);
    let snmp_before = rcvbuf_errors()?;
    let port_before = tracker_common::net::listen::udp_port_drops(target.port())?;
    let mut buf = Vec::with_capacity(256);
    let mut sent = 0;
    for i in 0..count {
        let (socket, connection_id) = &sockets[(i % sources as u64) as usize];
        buf.clear();
        Request::Announce(AnnounceRequest {
            connection_id: *connection_id,
            transaction_id: TransactionId(i as i32),
            info_hash: InfoHash(rng.random()),
            peer_id: PeerId(rng.random()),
            bytes_downloaded: 0,
            bytes_left: 1,
            bytes_uploaded: 0,
            event: AnnounceEvent::Started,
            ip_address: None,
            key: 0,
            peers_wanted: 0,
            port: 1,
            url_data: Vec::new(),
        })
        .write_bytes(&mut buf)
        .context("write an announce")?;
        if socket.send_to(&buf, target).is_ok() {
            sent += 1;
        }
    }
    last_answer.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    for reader in readers {
        let _ = reader.join();
    }
    Ok(BurstSummary {
        sent,
        answered: answered.load(Ordering::Relaxed),
        port_drops: tracker_common::net::listen::udp_port_drops(target.port())?
            .saturating_sub(port_before),
        rcvbuf_errors: rcvbuf_errors()?.saturating_sub(snmp_before),
    })
}

/// A connection id for `socket`, retrying a lost connect a few times.
fn connect(socket: &UdpSocket, target: SocketAddr) -> anyhow::Result<ConnectionId> {
    let mut buf = Vec::new();
    Request::Connect(ConnectRequest {
        transaction_id: TransactionId(-1),
    })
    .write_bytes(&mut buf)
    .context("write a connect")?;
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .context("set a read timeout")?;
    let mut reply = [0u8; 64];
    for _ in 0..5 {
        socket.send_to(&buf, target).context("send a connect")?;
        if let Ok((len, _)) = socket.recv_from(&mut reply)
            && let Ok(Response::Connect(r)) =
                Response::parse_bytes(reply.get(..len).unwrap_or_default(), true)
        {
            return Ok(r.connection_id);
        }
    }
    anyhow::bail!("udp-burst: {target} did not answer a connect")
}

/// The host's Udp RcvbufErrors (/proc/net/snmp).
fn rcvbuf_errors() -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/net/snmp").context("read /proc/net/snmp")?;
    let mut udp = text.lines().filter(|l| l.starts_with("Udp: "));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        anyhow::bail!("no Udp lines in /proc/net/snmp");
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "RcvbufErrors")
        .and_then(|(_, value)| value.parse().ok())
        .context("no RcvbufErrors in /proc/net/snmp")
}

/// The command line: `udp-burst ADDRESS COUNT [SOURCES]`; prints one line of results.
///
/// # Errors
/// Bad arguments, or as [`run_burst`].
pub fn run_burst_cli(args: &[String]) -> anyhow::Result<()> {
    let (Some(target), Some(count)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: tracker_load_test udp-burst ADDRESS COUNT [SOURCES]");
    };
    let target: SocketAddr = target.parse().context("ADDRESS")?;
    let count: u64 = count.parse().context("COUNT")?;
    let sources: usize = args
        .get(2)
        .map_or(Ok(8), |s| s.parse())
        .context("SOURCES")?;
    let s = run_burst(target, count, sources)?;
    println!(
        "sent {} answered {} unanswered {} port_drops {} rcvbuf_errors {}",
        s.sent,
        s.answered,
        s.sent.saturating_sub(s.answered),
        s.port_drops,
        s.rcvbuf_errors
    );
    Ok(())
}
