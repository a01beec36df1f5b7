//! The tracker's threads. All network I/O lives here; `protocol` and `swarm` stay pure.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub(crate) mod request;
pub(crate) mod socket;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::NetworkConfig;

/// What only the UDP tracker counts, per socket worker (the common counters are in
/// `tracker_common::statistics`).
pub(crate) struct UdpCounters {
    connect: Box<[CachePadded<AtomicU64>]>,
}

impl UdpCounters {
    pub(crate) fn new(socket_workers: usize) -> Self {
        Self {
            connect: (0..socket_workers)
                .map(|_| CachePadded::default())
                .collect(),
        }
    }

    /// Socket worker `index`'s connect counter; only that worker writes it.
    pub(crate) fn connect(&self, index: usize) -> &AtomicU64 {
        static UNUSED: AtomicU64 = AtomicU64::new(0);
        self.connect.get(index).map_or(&UNUSED, |c| c)
    }

    /// Connect requests received by all socket workers.
    pub(crate) fn connects(&self) -> u64 {
        self.connect.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// The most peers an announce response of the family carries in one datagram that a
/// 1500-byte Ethernet MTU passes without fragmentation: the UDP payload is 1472 bytes
/// over IPv4 and 1452 over IPv6, less the 20-byte header of the announce response, over
/// 6-byte IPv4 or 18-byte IPv6 peers.
pub(crate) fn max_peers_in_datagram(ipv6: bool) -> usize {
    if ipv6 {
        (1452 - 20) / 18
    } else {
        (1472 - 20) / 6
    }
}

/// The IPv4 address to fall back to when binding the dual-stack wildcard `[::]` failed
/// because the host has no IPv6, or `None` when no fallback applies.
pub(crate) fn ipv4_fallback(
    addr: SocketAddr,
    only_ipv6: bool,
    err: &anyhow::Error,
) -> Option<SocketAddr> {
    let no_ipv6 = err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .is_some_and(|code| code == libc::EAFNOSUPPORT || code == libc::EADDRNOTAVAIL)
    });
    match addr {
        SocketAddr::V6(v6) if v6.ip().is_unspecified() && !only_ipv6 && no_ipv6 => Some(
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, v6.port())),
        ),
        _ => None,
    }
}

/// Makes a non-blocking UDP socket with SO_REUSEPORT bound to `addr`, so that every
/// socket worker can have its own socket on the same port and the kernel spreads the
/// traffic over them. The load tester's ceiling responder uses it too, so that both are
/// measured on the same socket setup.
///
/// # Errors
/// The socket could not be created, configured or bound.
pub fn make_socket(
    addr: SocketAddr,
    config: &NetworkConfig,
    warn_about_buffers: bool,
) -> anyhow::Result<mio::net::UdpSocket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).context("create socket")?;
    if addr.is_ipv6() {
        socket
            .set_only_v6(config.only_ipv6)
            .context("set IPV6_V6ONLY")?;
    }
    socket.set_reuse_port(true).context("set SO_REUSEPORT")?;
    socket.set_nonblocking(true).context("set non-blocking")?;
    if config.recv_buffer_bytes > 0 {
        socket
            .set_recv_buffer_size(config.recv_buffer_bytes)
            .context("set SO_RCVBUF")?;
        // Linux reports twice the size it granted (the other half is bookkeeping).
        let granted = socket.recv_buffer_size().unwrap_or(0) / 2;
        if warn_about_buffers && granted < config.recv_buffer_bytes {
            log::warn!(
                "network.recv_buffer_bytes: asked for {} bytes, the kernel granted {granted}; \
                 raise net.core.rmem_max to allow more",
                config.recv_buffer_bytes
            );
        }
    }
    if config.send_buffer_bytes > 0 {
        socket
            .set_send_buffer_size(config.send_buffer_bytes)
            .context("set SO_SNDBUF")?;
    }
    socket
        .bind(&addr.into())
        .with_context(|| format!("bind udp socket to {addr}"))?;
    Ok(mio::net::UdpSocket::from_std(socket.into()))
}

/// Binds `count` sockets (at least one): `first`, already bound, and more on the same
/// address and port, which SO_REUSEPORT lets share the traffic. Returns the bound address
/// (with the real port when 0 was asked for) and the sockets.
///
/// # Errors
/// The address could not be read, or a socket could not be made.
pub fn make_more_sockets(
    first: mio::net::UdpSocket,
    count: usize,
    config: &NetworkConfig,
) -> anyhow::Result<(SocketAddr, Vec<mio::net::UdpSocket>)> {
    let local_addr = first.local_addr().context("read bound address")?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(make_socket(local_addr, config, false)?);
    }
    Ok((local_addr, sockets))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os_error(code: i32) -> anyhow::Error {
        anyhow::Error::new(std::io::Error::from_raw_os_error(code)).context("create socket")
    }

    #[test]
    fn falls_back_to_ipv4_only_for_the_wildcard_without_ipv6() {
        let any6: SocketAddr = "[::]:6969".parse().unwrap();
        let v4: SocketAddr = "0.0.0.0:6969".parse().unwrap();
        assert_eq!(
            ipv4_fallback(any6, false, &os_error(libc::EAFNOSUPPORT)),
            Some(v4)
        );
        assert_eq!(
            ipv4_fallback(any6, false, &os_error(libc::EADDRNOTAVAIL)),
            Some(v4)
        );
        // Other errors, explicit IPv6-only, or specific addresses: no fallback.
        assert_eq!(
            ipv4_fallback(any6, false, &os_error(libc::EADDRINUSE)),
            None
        );
        assert_eq!(
            ipv4_fallback(any6, true, &os_error(libc::EAFNOSUPPORT)),
            None
        );
        let one: SocketAddr = "[::1]:6969".parse().unwrap();
        assert_eq!(
            ipv4_fallback(one, false, &os_error(libc::EAFNOSUPPORT)),
            None
        );
        assert_eq!(
            ipv4_fallback(v4, false, &os_error(libc::EAFNOSUPPORT)),
            None
        );
    }
}
