//! Listening sockets: bound here so that every tracker (and the load tester's ceiling
//! responder) gets the same socket setup and the same refusal to share a port.
//!
//! Each worker gets its own socket with SO_REUSEPORT on one port, and the kernel
//! spreads the traffic over them; a lone worker's socket goes without it, which spares
//! the receive path the choice of a socket. SO_REUSEPORT also lets any other process of
//! the same user join that group, after which the two would split the traffic without a
//! word. So before the group is bound, the address is probed with a socket *without*
//! SO_REUSEPORT: its bind fails with EADDRINUSE if any socket holds the port, with
//! SO_REUSEPORT or not, and the start is refused with a message saying so. A process
//! that binds the port after our group exists is not detected; the probe guards the
//! common mistake of starting a second tracker on a configured port.
//!
//! TCP sockets, the probe included, are bound with SO_REUSEADDR. A tracker stopped while
//! clients were connected leaves its side of those connections in TIME_WAIT (or
//! FIN_WAIT2) for a minute or so; without SO_REUSEADDR they hold the port, and the next
//! start would take them for another tracker. On Linux a SO_REUSEADDR bind still fails
//! with EADDRINUSE while any socket is *listening* on the port, so the probe still finds
//! a second tracker. UDP sockets do not get it: there SO_REUSEADDR would let two
//! processes bind one port and split its datagrams, the very thing the probe refuses.
//!
//! This module only creates and binds sockets; reading and writing is the caller's.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;

use crate::config_section;
use socket2::{Domain, Protocol, Socket, Type};

/// How the sockets of [`bind_udp_sockets`] and [`bind_tcp_listeners`] are set up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SocketOptions {
    /// With an IPv6 address: serve IPv6 only (IPV6_V6ONLY). Ignored for IPv4.
    pub only_ipv6: bool,
    /// SO_RCVBUF in bytes; 0 keeps the OS default. The kernel caps it at
    /// net.core.rmem_max; a warning is logged when it grants less.
    pub recv_buffer_bytes: usize,
    /// SO_SNDBUF in bytes; 0 keeps the OS default.
    pub send_buffer_bytes: usize,
}

config_section! {
    /// Listening address and socket options of a group of UDP sockets (the `[network]`
    /// section of the UDP tracker and of the load tester's ceiling responder).
    pub struct UdpNetworkConfig {
        /// Address and port to listen on. `"[::]:PORT"` serves IPv6 and (unless only_ipv6)
        /// IPv4 on all interfaces; `"0.0.0.0:PORT"` serves IPv4 only. Port 0 lets the OS
        /// choose (the chosen port is logged).
        pub address: SocketAddr,
        /// With an IPv6 address: serve IPv6 only (IPV6_V6ONLY). Ignored for IPv4 addresses.
        pub only_ipv6: bool,
        /// Socket receive buffer (SO_RCVBUF) in bytes, per socket worker; it absorbs
        /// bursts, but a deep one costs throughput under sustained overload. The default
        /// absorbs moderate bursts from idle that smaller buffers lose; see "Receive
        /// buffer and bursts" in documents/udp-benchmark.md. The kernel caps it at
        /// net.core.rmem_max (a warning is logged then). 0 = OS default.
        pub recv_buffer_bytes: usize,
        /// Socket send buffer (SO_SNDBUF) in bytes. 0 = OS default.
        pub send_buffer_bytes: usize,
        /// Milliseconds a socket worker sleeps in poll when idle; it bounds how late a
        /// shutdown is noticed.
        pub poll_timeout_ms: u64,
        /// Send the answers of a batch that go to the same address with the same
        /// length as one segmented send (UDP GSO, `UDP_SEGMENT`, Linux 4.18 and
        /// later): the kernel's send path runs once for the group, which it then cuts
        /// into the same datagrams. Ignored where the kernel lacks it; a group the kernel
        /// refuses goes one datagram at a time, and segmentation is turned off (with a
        /// warning) unless the refusal was for that route's MTU alone.
        pub segmentation: bool,
        /// After a round of reads that brought in a few datagrams but not many (4 to
        /// 63), a socket worker reads again no sooner than this many microseconds after
        /// that round began, so that datagrams gather and are read, handled and answered
        /// in larger rounds: fewer system calls, wake-ups and thread switches per
        /// datagram, for at most this much added latency. A quiet socket, and one whose
        /// rounds are large already, is read again at once. 0 = off; at most 10000.
        pub gather_micros: u64,
    }
}

impl Default for UdpNetworkConfig {
    fn default() -> Self {
        Self {
            address: SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 6969)),
            only_ipv6: false,
            recv_buffer_bytes: 8 * 1024 * 1024,
            send_buffer_bytes: 0,
            poll_timeout_ms: 50,
            segmentation: true,
            gather_micros: 500,
        }
    }
}

impl UdpNetworkConfig {
    /// The gather time, `gather_micros`.
    pub fn gather(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.gather_micros)
    }

    /// The socket options these keys ask for.
    pub fn socket_options(&self) -> SocketOptions {
        SocketOptions {
            only_ipv6: self.only_ipv6,
            recv_buffer_bytes: self.recv_buffer_bytes,
            send_buffer_bytes: self.send_buffer_bytes,
        }
    }

    /// Checks the values, naming the key of the first bad one.
    ///
    /// # Errors
    /// A message naming the key and what is wrong with it.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.poll_timeout_ms == 0 || self.poll_timeout_ms > 10_000 {
            anyhow::bail!("network.poll_timeout_ms: must be between 1 and 10000");
        }
        if self.gather_micros > crate::net::gather::MAX_GATHER_MICROS {
            anyhow::bail!(
                "network.gather_micros: must be at most {}",
                crate::net::gather::MAX_GATHER_MICROS
            );
        }
        if self.recv_buffer_bytes > i32::MAX as usize || self.send_buffer_bytes > i32::MAX as usize
        {
            anyhow::bail!("network: socket buffer sizes must be below 2 GiB");
        }
        Ok(())
    }
}

/// Binds `count` (at least 1) non-blocking UDP sockets to `addr`, with SO_REUSEPORT when
/// there are several, after checking that no other socket holds the port (see the
/// module doc). Port 0 lets the OS choose one port for all of them (a port it hands out
/// is free, so there is nothing to probe). Returns the bound address and the sockets;
/// wrap them with `mio::net::UdpSocket::from_std` to poll them.
///
/// When `addr` is the IPv6 wildcard `[::]` (not `only_ipv6`) and the host has no IPv6
/// (some containers), the sockets are bound to `0.0.0.0` instead, with a warning.
///
/// # Errors
/// The port is in use ("udp port P on A is already in use by another process"), or a
/// socket could not be created, configured or bound.
pub fn bind_udp_sockets(
    addr: SocketAddr,
    count: usize,
    options: &SocketOptions,
) -> anyhow::Result<(SocketAddr, Vec<std::net::UdpSocket>)> {
    let (local_addr, sockets) = bind_group(addr, count, options, Transport::Udp)?;
    Ok((local_addr, sockets.into_iter().map(Into::into).collect()))
}

/// Binds `count` (at least 1) non-blocking TCP listeners to `addr` (SO_REUSEPORT when
/// there are several), listening with a backlog of `backlog`, after the same check as
/// [`bind_udp_sockets`] that no other socket holds the port, and with the same IPv4
/// fallback. The kernel spreads new connections over the listeners.
///
/// # Errors
/// The port is in use ("tcp port P on A is already in use by another process"), or a
/// socket could not be created, configured, bound or set listening.
pub fn bind_tcp_listeners(
    addr: SocketAddr,
    count: usize,
    options: &SocketOptions,
    backlog: i32,
) -> anyhow::Result<(SocketAddr, Vec<std::net::TcpListener>)> {
    let (local_addr, sockets) = bind_group(addr, count, options, Transport::Tcp)?;
    let mut listeners = Vec::with_capacity(sockets.len());
    for socket in sockets {
        socket
            .listen(backlog)
            .with_context(|| format!("listen on tcp {local_addr}"))?;
        listeners.push(socket.into());
    }
    Ok((local_addr, listeners))
}

/// UDP or TCP.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

/// The SO_REUSEPORT group of either transport (see [`bind_udp_sockets`]).
fn bind_group(
    addr: SocketAddr,
    count: usize,
    options: &SocketOptions,
    transport: Transport,
) -> anyhow::Result<(SocketAddr, Vec<Socket>)> {
    let bind = |addr, reuse_port, warn| bound_socket(addr, options, transport, reuse_port, warn);
    // One socket is no group: without SO_REUSEPORT the kernel's receive path skips
    // choosing a member (a hash of every datagram's or connection's addresses, paid by
    // the core that receives it), and no other process can join. Its bind fails like
    // the probe's if any socket holds the port.
    let group = count > 1;
    // With port 0 the OS picks a port nobody holds, and releasing a probe to bind the
    // group there would let any socket made meanwhile take it: the first socket of the
    // group is then bound directly, as is a lone socket. A group's configured port is
    // probed first, without SO_REUSEPORT, so that the bind fails if any socket holds it.
    let first = if addr.port() == 0 || !group {
        with_ipv4_fallback(addr, options, |addr| bind(addr, group, true))?
    } else {
        let probe = with_ipv4_fallback(addr, options, |addr| bind(addr, false, false))?;
        let probed = socket_addr(&probe).context("read the probed address")?;
        drop(probe);
        bind(probed, true, true)?
    };
    let local_addr = socket_addr(&first).context("read the bound address")?;
    let mut sockets = Vec::with_capacity(count.max(1));
    sockets.push(first);
    for _ in 1..count.max(1) {
        sockets.push(bind(local_addr, true, false)?);
    }
    Ok((local_addr, sockets))
}

fn socket_addr(socket: &Socket) -> Option<SocketAddr> {
    socket.local_addr().ok().and_then(|a| a.as_socket())
}

/// Runs `bind` on `addr`, or on `0.0.0.0` with a warning when `addr` is the dual-stack
/// wildcard and the host has no IPv6.
fn with_ipv4_fallback<T>(
    addr: SocketAddr,
    options: &SocketOptions,
    bind: impl Fn(SocketAddr) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    match bind(addr) {
        Ok(bound) => Ok(bound),
        Err(err) => match ipv4_fallback(addr, options.only_ipv6, &err) {
            Some(v4) => {
                log::warn!("{err:#}; IPv6 is unavailable here, listening on {v4} (IPv4 only)");
                bind(v4)
            }
            None => Err(err),
        },
    }
}

/// One non-blocking socket bound to `addr`.
fn bound_socket(
    addr: SocketAddr,
    options: &SocketOptions,
    transport: Transport,
    reuse_port: bool,
    warn_about_buffers: bool,
) -> anyhow::Result<Socket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = match transport {
        Transport::Udp => Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)),
        Transport::Tcp => Socket::new(domain, Type::STREAM, Some(Protocol::TCP)),
    }
    .context("create socket")?;
    if addr.is_ipv6() {
        socket
            .set_only_v6(options.only_ipv6)
            .context("set IPV6_V6ONLY")?;
    }
    if reuse_port {
        socket.set_reuse_port(true).context("set SO_REUSEPORT")?;
    }
    if transport == Transport::Tcp {
        // See the module doc: connections of a stopped tracker must not hold the port.
        socket.set_reuse_address(true).context("set SO_REUSEADDR")?;
    }
    socket.set_nonblocking(true).context("set non-blocking")?;
    if options.recv_buffer_bytes > 0 {
        socket
            .set_recv_buffer_size(options.recv_buffer_bytes)
            .context("set SO_RCVBUF")?;
        // Linux reports twice the size it granted (the other half is bookkeeping).
        let granted = socket.recv_buffer_size().unwrap_or(0) / 2;
        if warn_about_buffers && granted < options.recv_buffer_bytes {
            log::warn!(
                "network.recv_buffer_bytes: asked for {} bytes, the kernel granted {granted}; \
                 raise net.core.rmem_max to allow more",
                options.recv_buffer_bytes
            );
        }
    }
    if options.send_buffer_bytes > 0 {
        socket
            .set_send_buffer_size(options.send_buffer_bytes)
            .context("set SO_SNDBUF")?;
    }
    let name = transport.name();
    match socket.bind(&addr.into()) {
        Ok(()) => Ok(socket),
        Err(err) if err.raw_os_error() == Some(libc::EADDRINUSE) => {
            let ip = match addr {
                SocketAddr::V4(v4) => v4.ip().to_string(),
                SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
            };
            Err(anyhow::Error::new(err).context(format!(
                "{name} port {} on {ip} is already in use by another process (another tracker?)",
                addr.port()
            )))
        }
        Err(err) => Err(anyhow::Error::new(err).context(format!("bind {name} socket to {addr}"))),
    }
}

/// The IPv4 address to fall back to when binding the dual-stack wildcard `[::]` failed
/// because the host has no IPv6, or `None` when no fallback applies.
fn ipv4_fallback(addr: SocketAddr, only_ipv6: bool, err: &anyhow::Error) -> Option<SocketAddr> {
    let no_ipv6 = err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
            .is_some_and(|code| code == libc::EAFNOSUPPORT || code == libc::EADDRNOTAVAIL)
    });
    match addr {
        SocketAddr::V6(v6) if v6.ip().is_unspecified() && !only_ipv6 && no_ipv6 => {
            Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, v6.port())))
        }
        _ => None,
    }
}

/// Makes room for `max_connections` open connections (plus the tracker's own files),
/// warning, with the config key `key`, when the hard limit does not allow that many.
///
/// # Errors
/// The limits could not be read or set.
pub fn ensure_open_files(max_connections: usize, key: &str) -> anyhow::Result<()> {
    // Listeners, pollers, wakers, channels, the log: a few dozen; 1024 is ample.
    let wanted = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(1024);
    let granted = raise_open_files_limit(wanted)?;
    if granted < wanted {
        log::warn!(
            "{key} is {max_connections}, but this process may open only {granted} files \
             (the hard RLIMIT_NOFILE); connections past that are refused by the kernel. \
             Raise the hard limit (ulimit -Hn, LimitNOFILE= in systemd)."
        );
    }
    Ok(())
}

/// Raises the process's soft limit on open files towards `wanted`, as far as the hard
/// limit allows, and returns the soft limit in force. A TCP tracker holds one file per
/// connection, and many systems start processes with a soft limit of 1024 whatever the
/// hard limit: without this, `accept` would fail long before the configured maximum.
///
/// # Errors
/// The limits could not be read or set.
pub fn raise_open_files_limit(wanted: u64) -> anyhow::Result<u64> {
    rlimit::increase_nofile_limit(wanted).context("raise the open files limit (RLIMIT_NOFILE)")
}

/// Datagrams the kernel dropped (a full receive buffer, say) on the UDP sockets bound to
/// `port`, summed over /proc/net/udp and /proc/net/udp6 (Linux). For measurements and
/// tests: the tracker's own counters cannot see what never reached it.
///
/// # Errors
/// A table could not be read.
pub fn udp_port_drops(port: u16) -> anyhow::Result<u64> {
    let mut drops = 0u64;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let text = std::fs::read_to_string(table).with_context(|| format!("read {table}"))?;
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Field 1 is "local address:port" in hex; the last field is the drop count.
            let local_port = fields
                .get(1)
                .and_then(|local| local.rsplit(':').next())
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            if local_port == Some(port) {
                let dropped = fields.last().and_then(|d| d.parse::<u64>().ok());
                drops = drops.saturating_add(dropped.unwrap_or(0));
            }
        }
    }
    Ok(drops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn os_error(code: i32) -> anyhow::Error {
        anyhow::Error::new(io::Error::from_raw_os_error(code)).context("create socket")
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

    #[test]
    fn binds_count_sockets_on_one_chosen_port() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (addr, sockets) = bind_udp_sockets(any, 3, &SocketOptions::default()).unwrap();
        assert_ne!(addr.port(), 0);
        assert_eq!(sockets.len(), 3);
        for s in &sockets {
            assert_eq!(s.local_addr().unwrap(), addr);
        }
        // Non-blocking: an empty socket answers WouldBlock at once. (That the group
        // receives is what every tracker integration test relies on.)
        let err = sockets[0].recv_from(&mut [0; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn only_a_group_of_several_sockets_uses_so_reuseport() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let options = SocketOptions::default();
        let (one_addr, one) = bind_udp_sockets(any, 1, &options).unwrap();
        assert!(!socket2::SockRef::from(&one[0]).reuse_port().unwrap());
        let (_, two) = bind_udp_sockets(any, 2, &options).unwrap();
        for s in &two {
            assert!(socket2::SockRef::from(s).reuse_port().unwrap());
        }
        // Nobody joins a lone socket, not even with SO_REUSEPORT.
        let intruder = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        intruder.set_reuse_port(true).unwrap();
        let err = intruder.bind(&one_addr.into()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
        // The same holds for a configured port and for TCP listeners.
        drop(one);
        let (again, one) = bind_udp_sockets(one_addr, 1, &options).unwrap();
        assert_eq!(again, one_addr);
        assert!(!socket2::SockRef::from(&one[0]).reuse_port().unwrap());
        let (_, listeners) = bind_tcp_listeners(any, 1, &options, 16).unwrap();
        assert!(!socket2::SockRef::from(&listeners[0]).reuse_port().unwrap());
        let (_, listeners) = bind_tcp_listeners(any, 2, &options, 16).unwrap();
        assert!(socket2::SockRef::from(&listeners[1]).reuse_port().unwrap());
    }

    #[test]
    fn a_port_held_by_another_group_is_refused() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let options = SocketOptions::default();
        let (addr, _held) = bind_udp_sockets(any, 2, &options).unwrap();
        let err = bind_udp_sockets(addr, 2, &options).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "udp port {} on 127.0.0.1 is already in use by another process (another tracker?)",
                addr.port()
            )
        );
    }

    #[test]
    fn a_port_held_by_a_plain_socket_is_refused() {
        let held = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let err = bind_udp_sockets(addr, 1, &SocketOptions::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("already in use by another process"),
            "{err:#}"
        );
        // The wildcard covers 127.0.0.1 too.
        let wildcard = SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port()));
        let err = bind_udp_sockets(wildcard, 1, &SocketOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "udp port {} on 0.0.0.0 is already in use by another process (another tracker?)",
                addr.port()
            )
        );
    }

    #[test]
    fn the_open_files_limit_is_raised_within_the_hard_limit() {
        let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        let granted = raise_open_files_limit(u64::MAX).unwrap();
        assert_eq!(granted, hard.min(granted));
        assert!(granted >= 1024 || granted == hard, "{granted} of {hard}");
        // Asking for less never lowers it.
        assert_eq!(raise_open_files_limit(1).unwrap(), granted);
    }

    #[test]
    fn a_port_with_only_time_wait_connections_binds_and_a_listener_still_refuses() {
        use crate::testing::{tcp_sockets, tcp_state};
        use std::io::Read;
        use std::time::{Duration, Instant};
        let options = SocketOptions::default();
        // A listener of ours serves one connection and closes it first, as a stopping
        // tracker does; the client closes too: our side goes to TIME_WAIT.
        let (addr, mut listeners) =
            bind_tcp_listeners("127.0.0.1:0".parse().unwrap(), 1, &options, 16).unwrap();
        let listener = listeners.pop().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let server = loop {
            match listener.accept() {
                Ok((server, _)) => break server,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no connection to accept");
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(err) => panic!("accept: {err}"),
            }
        };
        drop(server);
        assert_eq!(client.read(&mut [0; 8]).unwrap(), 0, "the server's FIN");
        drop(client);
        drop(listener);
        let time_wait = || {
            tcp_sockets()
                .iter()
                .any(|s| s.local_port == addr.port() && s.state == tcp_state::TIME_WAIT)
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !time_wait() {
            assert!(Instant::now() < deadline, "no TIME_WAIT socket on {addr}");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The problem this guards against: without SO_REUSEADDR the port is taken.
        let plain = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let err = plain.bind(&addr.into()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
        drop(plain);
        // The tracker's probe and group bind it.
        let (again, listeners) = bind_tcp_listeners(addr, 2, &options, 16).unwrap();
        assert_eq!(again, addr);
        for listener in &listeners {
            assert!(socket2::SockRef::from(listener).reuse_address().unwrap());
        }
        drop(listeners);
        // A listening socket still holds the port, though it has SO_REUSEADDR too (as
        // std's listeners do).
        let held = std::net::TcpListener::bind(addr).unwrap();
        assert!(socket2::SockRef::from(&held).reuse_address().unwrap());
        let err = bind_tcp_listeners(addr, 1, &options, 16).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "tcp port {} on 127.0.0.1 is already in use by another process (another tracker?)",
                addr.port()
            )
        );
    }

    #[test]
    fn udp_sockets_do_not_reuse_addresses() {
        let (_, sockets) =
            bind_udp_sockets("127.0.0.1:0".parse().unwrap(), 2, &SocketOptions::default()).unwrap();
        for socket in &sockets {
            assert!(!socket2::SockRef::from(socket).reuse_address().unwrap());
        }
    }

    #[test]
    fn tcp_listeners_share_a_port_and_refuse_a_held_one() {
        let (addr, listeners) = bind_tcp_listeners(
            "127.0.0.1:0".parse().unwrap(),
            3,
            &SocketOptions::default(),
            16,
        )
        .unwrap();
        assert_eq!(listeners.len(), 3);
        for listener in &listeners {
            assert_eq!(listener.local_addr().unwrap(), addr);
        }
        // A client connects to one of them.
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let err = bind_tcp_listeners(addr, 1, &SocketOptions::default(), 16).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "tcp port {} on 127.0.0.1 is already in use by another process (another tracker?)",
                addr.port()
            )
        );
        // A UDP group on the same port number is another namespace.
        assert!(bind_udp_sockets(addr, 1, &SocketOptions::default()).is_ok());
    }
}
