//! The tracker's threads. All network I/O lives here; `protocol` and `swarm` stay pure.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub(crate) mod socket;
pub(crate) mod swarm;

use std::net::SocketAddr;

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::NetworkConfig;

/// Makes a non-blocking UDP socket with SO_REUSEPORT bound to `addr`, so that every
/// socket worker can have its own socket on the same port and the kernel spreads the
/// traffic over them.
pub(crate) fn make_socket(
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
