//! Batched UDP I/O: many datagrams per system call with Linux `recvmmsg` / `sendmmsg`.
//!
//! On loopback and on real networks alike, a UDP tracker spends most of its time in the
//! kernel's per-call overhead when it makes one `recvfrom` and one `sendto` per packet.
//! [`RecvBatch`] and [`SendBatch`] own every buffer, address and header they hand to the
//! kernel, allocated once, so that a worker reads and writes up to a whole batch per call
//! and allocates nothing per packet. The tracker, its ceiling responder and the load
//! generator all use them, so that they are measured on the same footing.
//!
//! They operate on any socket the caller owns (through [`AsRawFd`]) and open none.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

/// Converts the address the kernel wrote into `storage` (of `len` bytes).
fn from_storage(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family is AF_INET and the kernel wrote at least a whole
            // sockaddr_in; sockaddr_storage is larger and suitably aligned for it.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for AF_INET6 and sockaddr_in6.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Writes `addr` into `storage` and returns the length the kernel should read.
fn to_storage(addr: SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    // SAFETY: an all-zero sockaddr_storage is a valid value (plain integers and arrays).
    *storage = unsafe { zeroed() };
    match addr {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in; the
            // reference does not outlive `storage`'s borrow.
            let sin = unsafe {
                &mut *(storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_flowinfo = v6.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: v6.ip().octets(),
            };
            sin6.sin6_scope_id = v6.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

fn empty_mmsghdr() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain data; null pointers with zero lengths are valid values
    // and every pointer is set before the header is handed to the kernel.
    unsafe { zeroed() }
}

/// Receives up to a batch of datagrams per call into buffers it owns.
pub struct RecvBatch {
    buf_len: usize,
    /// `capacity` buffers of `buf_len` bytes, back to back.
    data: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    #[expect(
        dead_code,
        reason = "never read by Rust: it owns the iovecs that `headers` point at"
    )]
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    received: usize,
}

// SAFETY: the raw pointers inside `headers` and `iovecs` point only into this struct's
// own heap buffers, which are never resized, so they stay valid when the struct moves
// to another thread; nothing outside the struct reads them and no state is shared.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// Room for `capacity` datagrams (at least 1) of up to `buf_len` bytes each (at least
    /// 1); longer datagrams are cut to `buf_len` and flagged by [`Self::truncated`].
    pub fn new(capacity: usize, buf_len: usize) -> Self {
        let capacity = capacity.clamp(1, 1024);
        let buf_len = buf_len.max(1);
        let mut data = vec![0u8; capacity * buf_len];
        // SAFETY: an all-zero sockaddr_storage is a valid value.
        let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { zeroed() }; capacity];
        let mut iovecs: Vec<libc::iovec> = data
            .chunks_exact_mut(buf_len)
            .map(|buf| libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf_len,
            })
            .collect();
        // The headers point into the heap buffers of `data`, `addrs` and `iovecs`, which
        // are never resized: they are set up once here, and only the address length,
        // which the kernel overwrites, is reset before each call.
        let headers = iovecs
            .iter_mut()
            .zip(addrs.iter_mut())
            .map(|(iov, addr)| {
                let mut header = empty_mmsghdr();
                header.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
                header.msg_hdr.msg_iov = iov;
                header.msg_hdr.msg_iovlen = 1;
                header
            })
            .collect();
        Self {
            buf_len,
            data,
            addrs,
            iovecs,
            headers,
            received: 0,
        }
    }

    /// How many datagrams one call can receive.
    pub fn capacity(&self) -> usize {
        self.headers.len()
    }

    /// Receives as many datagrams as are waiting, up to the capacity, without blocking
    /// (the socket must be non-blocking). Returns how many arrived; they are then
    /// available from [`Self::iter`] until the next call.
    ///
    /// # Errors
    /// `WouldBlock` when nothing is waiting; any other error of `recvmmsg`.
    pub fn recv(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        self.received = 0;
        for header in &mut self.headers {
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        let vlen = self.headers.len() as libc::c_uint;
        // SAFETY: every header points at one iovec and one sockaddr_storage owned by
        // `self` (set up in `new`; the vectors are never resized, so the pointers are
        // valid), each iovec at a distinct buf_len-sized region of `data`; none of them
        // is touched while the kernel fills them during this call.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                vlen,
                0,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.received = usize::try_from(n).unwrap_or(0).min(self.headers.len());
        Ok(self.received)
    }

    /// The datagrams of the last [`Self::recv`]: payload and source address. A datagram
    /// whose source address could not be read is skipped.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> + '_ {
        (0..self.received).filter_map(|i| self.get(i))
    }

    /// Datagram `i` of the last [`Self::recv`], if there is one and its source address
    /// could be read.
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.received {
            return None;
        }
        let header = self.headers.get(i)?;
        let buf = self.data.chunks_exact(self.buf_len).nth(i)?;
        let len = (header.msg_len as usize).min(buf.len());
        let src = from_storage(self.addrs.get(i)?, header.msg_hdr.msg_namelen)?;
        Some((buf.get(..len).unwrap_or_default(), src))
    }

    /// Whether datagram `i` of the last call was longer than the buffer and was cut.
    pub fn truncated(&self, i: usize) -> bool {
        i < self.received
            && self
                .headers
                .get(i)
                .is_some_and(|h| h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0)
    }
}

/// What a [`SendBatch::flush`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushOutcome {
    /// Datagrams the kernel accepted.
    pub sent: usize,
    /// Datagrams given up on: the send buffer was full or the address was refused.
    pub dropped: usize,
    /// Payload bytes of the datagrams the kernel accepted.
    pub bytes_sent: usize,
}

struct Queued {
    start: usize,
    len: usize,
    addr: libc::sockaddr_storage,
    addr_len: libc::socklen_t,
}

/// Collects datagrams and sends them with as few `sendmmsg` calls as possible.
pub struct SendBatch {
    capacity: usize,
    data: Vec<u8>,
    queued: Vec<Queued>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

// SAFETY: as for `RecvBatch`: the pointers are rebuilt for each flush from buffers the
// struct owns, and emptied after it.
unsafe impl Send for SendBatch {}

impl SendBatch {
    /// Room for `capacity` datagrams (at least 1, at most 1024, the kernel's UIO_MAXIOV)
    /// before a flush is needed; `bytes_hint` is the expected total payload.
    pub fn new(capacity: usize, bytes_hint: usize) -> Self {
        let capacity = capacity.clamp(1, 1024);
        Self {
            capacity,
            data: Vec::with_capacity(bytes_hint),
            queued: Vec::with_capacity(capacity),
            iovecs: Vec::with_capacity(capacity),
            headers: Vec::with_capacity(capacity),
        }
    }

    /// Number of queued datagrams.
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Whether the batch must be flushed before the next push.
    pub fn is_full(&self) -> bool {
        self.queued.len() >= self.capacity
    }

    /// Queues one datagram to `addr`, whose payload `write` appends to the given buffer.
    /// The caller flushes first when [`Self::is_full`]; a push into a full batch is
    /// refused with `false`. A `write` that fails leaves nothing queued.
    ///
    /// # Errors
    /// The error of `write`.
    pub fn push_with(
        &mut self,
        addr: SocketAddr,
        write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
    ) -> io::Result<bool> {
        if self.is_full() {
            return Ok(false);
        }
        let start = self.data.len();
        if let Err(err) = write(&mut self.data) {
            self.data.truncate(start);
            return Err(err);
        }
        // SAFETY: an all-zero sockaddr_storage is a valid value.
        let mut storage = unsafe { zeroed() };
        let addr_len = to_storage(addr, &mut storage);
        self.queued.push(Queued {
            start,
            len: self.data.len() - start,
            addr: storage,
            addr_len,
        });
        Ok(true)
    }

    /// Sends everything queued and empties the batch. Datagrams the kernel refuses (a
    /// full send buffer, an address it cannot send to) are dropped and counted: UDP
    /// promises no delivery, and a worker must never wait on one client.
    pub fn flush(&mut self, socket: &impl AsRawFd) -> FlushOutcome {
        let mut outcome = FlushOutcome::default();
        if self.queued.is_empty() {
            return outcome;
        }
        let base = self.data.as_mut_ptr();
        self.iovecs.clear();
        for q in &self.queued {
            self.iovecs.push(libc::iovec {
                // SAFETY: start + len <= data.len(): each entry was cut from `data`,
                // which only grows until the clear at the end of this function.
                iov_base: unsafe { base.add(q.start) }.cast(),
                iov_len: q.len,
            });
        }
        self.headers.clear();
        for (q, iov) in self.queued.iter_mut().zip(self.iovecs.iter_mut()) {
            let mut header = empty_mmsghdr();
            header.msg_hdr.msg_name = (&mut q.addr as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen = q.addr_len;
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
            self.headers.push(header);
        }
        let fd = socket.as_raw_fd();
        self.send_headers(&mut outcome, |rest| {
            // SAFETY: each header points at an iovec in `iovecs` and an address in
            // `queued`, and each iovec into `data`; none of these vectors is changed
            // while the headers are in use, and the kernel only reads through them.
            unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as libc::c_uint, 0) }
        });
        self.headers.clear();
        self.iovecs.clear();
        self.queued.clear();
        self.data.clear();
        outcome
    }

    /// Hands the prepared headers to `sendmmsg` (a parameter, so that tests can play
    /// the kernel) until each is sent or dropped, counting both in `outcome`.
    fn send_headers(
        &mut self,
        outcome: &mut FlushOutcome,
        mut sendmmsg: impl FnMut(&mut [libc::mmsghdr]) -> libc::c_int,
    ) {
        let mut next = 0;
        while next < self.headers.len() {
            let rest = self.headers.get_mut(next..).unwrap_or_default();
            let n = sendmmsg(rest);
            if n > 0 {
                let n = n as usize;
                outcome.sent += n;
                outcome.bytes_sent += self
                    .queued
                    .get(next..next + n)
                    .unwrap_or_default()
                    .iter()
                    .map(|q| q.len)
                    .sum::<usize>();
                next += n;
                continue;
            }
            if n == 0 {
                // Nothing sent and no error reported. errno is only meaningful after
                // -1: reading it here could find a stale EINTR and retry for ever.
                // Retrying would most likely get 0 again, so drop the rest.
                log::debug!("sendmmsg sent nothing without an error");
                outcome.dropped += self.headers.len() - next;
                break;
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    // The send buffer is full: the rest would fail the same way now.
                    outcome.dropped += self.headers.len() - next;
                    break;
                }
                _ => {
                    // This datagram's address is refused (port 0, say); skip it only.
                    log::debug!("sendmmsg: {err}");
                    outcome.dropped += 1;
                    next += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn pair(addr: &str) -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind(addr).unwrap();
        let b = UdpSocket::bind(addr).unwrap();
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (a, b)
    }

    fn recv_all(
        batch: &mut RecvBatch,
        socket: &UdpSocket,
        want: usize,
    ) -> Vec<(Vec<u8>, SocketAddr)> {
        socket.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while got.len() < want && std::time::Instant::now() < deadline {
            match batch.recv(socket) {
                Ok(_) => got.extend(batch.iter().map(|(d, a)| (d.to_vec(), a))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
        got
    }

    fn round_trip(addr: &str) {
        let (tx, rx) = pair(addr);
        let to = rx.local_addr().unwrap();
        let mut send = SendBatch::new(8, 0);
        for i in 0..20u8 {
            if send.is_full() {
                assert_eq!(
                    send.flush(&tx),
                    FlushOutcome {
                        sent: 8,
                        dropped: 0,
                        // Datagrams i - 8 .. i, of i - 7 ..= i bytes.
                        bytes_sent: (usize::from(i) - 7..=usize::from(i)).sum(),
                    }
                );
            }
            let pushed = send
                .push_with(to, |buf| {
                    buf.extend(std::iter::repeat_n(i, usize::from(i) + 1));
                    Ok(())
                })
                .unwrap();
            assert!(pushed);
        }
        assert_eq!(
            send.flush(&tx),
            FlushOutcome {
                sent: 4,
                dropped: 0,
                bytes_sent: 17 + 18 + 19 + 20,
            }
        );
        assert!(send.is_empty());

        let mut recv = RecvBatch::new(6, 64);
        let got = recv_all(&mut recv, &rx, 20);
        assert_eq!(got.len(), 20);
        for (i, (data, from)) in got.iter().enumerate() {
            assert_eq!(data, &vec![i as u8; i + 1]);
            assert_eq!(*from, tx.local_addr().unwrap());
        }
    }

    #[test]
    fn batches_work_after_moving_to_another_thread() {
        let (tx, rx) = pair("127.0.0.1:0");
        let to = rx.local_addr().unwrap();
        let mut send = SendBatch::new(4, 0);
        let mut recv = RecvBatch::new(4, 16);
        // Use both once here, then on another thread: nothing may point at the old home.
        send.push_with(to, |b| {
            b.push(1);
            Ok(())
        })
        .unwrap();
        send.flush(&tx);
        assert_eq!(recv_all(&mut recv, &rx, 1).len(), 1);
        let got = std::thread::spawn(move || {
            send.push_with(to, |b| {
                b.extend_from_slice(b"moved");
                Ok(())
            })
            .unwrap();
            assert_eq!(send.flush(&tx).sent, 1);
            recv_all(&mut recv, &rx, 1)
        })
        .join()
        .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, b"moved");
    }

    #[test]
    fn ipv4_round_trip() {
        round_trip("127.0.0.1:0");
    }

    #[test]
    fn ipv6_round_trip() {
        // Fails, rather than passing unseen, on a host without IPv6 loopback.
        if let Err(err) = UdpSocket::bind("[::1]:0") {
            panic!("this test needs IPv6 loopback (::1), which this host lacks: {err}");
        }
        round_trip("[::1]:0");
    }

    #[test]
    fn long_datagrams_are_cut_and_flagged() {
        let (tx, rx) = pair("127.0.0.1:0");
        tx.send_to(&[7; 100], rx.local_addr().unwrap()).unwrap();
        let mut recv = RecvBatch::new(2, 10);
        let got = recv_all(&mut recv, &rx, 1);
        assert_eq!(got, vec![(vec![7; 10], tx.local_addr().unwrap())]);
        assert!(recv.truncated(0));
        assert!(!recv.truncated(1));
    }

    #[test]
    fn a_refused_address_drops_only_its_datagram() {
        let (tx, rx) = pair("127.0.0.1:0");
        let mut send = SendBatch::new(4, 0);
        let bad: SocketAddr = "127.0.0.1:0".parse().unwrap();
        for to in [rx.local_addr().unwrap(), bad, rx.local_addr().unwrap()] {
            send.push_with(to, |b| {
                b.push(1);
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(
            send.flush(&tx),
            FlushOutcome {
                sent: 2,
                dropped: 1,
                bytes_sent: 2,
            }
        );
        let mut recv = RecvBatch::new(4, 8);
        assert_eq!(recv_all(&mut recv, &rx, 2).len(), 2);
    }

    /// A batch of `n` one-byte datagrams with their headers built, as `flush` builds
    /// them, for a fake `sendmmsg`.
    fn headers_for(n: usize) -> SendBatch {
        let mut send = SendBatch::new(n, 0);
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for _ in 0..n {
            assert!(
                send.push_with(to, |b| {
                    b.push(1);
                    Ok(())
                })
                .unwrap()
            );
        }
        send.headers = (0..n).map(|_| empty_mmsghdr()).collect();
        send
    }

    fn set_errno(code: i32) {
        // SAFETY: __errno_location returns a valid pointer to this thread's errno.
        unsafe { *libc::__errno_location() = code };
    }

    /// errno means something only after -1. A `sendmmsg` that returns 0 with a stale
    /// EINTR in errno must not be retried for ever: the rest is dropped.
    #[test]
    fn sendmmsg_returning_zero_does_not_read_a_stale_errno() {
        let mut send = headers_for(5);
        let mut calls = 0;
        let mut outcome = FlushOutcome::default();
        send.send_headers(&mut outcome, |rest| {
            calls += 1;
            assert!(calls < 100, "retried a 0 return {calls} times");
            set_errno(libc::EINTR);
            // Two sent on the first call, then nothing and no error.
            if calls == 1 {
                2.min(rest.len() as libc::c_int)
            } else {
                0
            }
        });
        assert_eq!(
            outcome,
            FlushOutcome {
                sent: 2,
                dropped: 3,
                bytes_sent: 2,
            }
        );
        assert_eq!(calls, 2);
    }

    /// A real EINTR (-1 with errno EINTR) is retried; EAGAIN drops the rest.
    #[test]
    fn sendmmsg_interrupted_is_retried_and_a_full_buffer_drops_the_rest() {
        let mut send = headers_for(4);
        let mut calls = 0;
        let mut outcome = FlushOutcome::default();
        send.send_headers(&mut outcome, |_| {
            calls += 1;
            match calls {
                1 => {
                    set_errno(libc::EINTR);
                    -1
                }
                2 => 1,
                _ => {
                    set_errno(libc::EAGAIN);
                    -1
                }
            }
        });
        assert_eq!(
            outcome,
            FlushOutcome {
                sent: 1,
                dropped: 3,
                bytes_sent: 1,
            }
        );
        assert_eq!(calls, 3);
    }

    #[test]
    fn failed_writes_and_full_batches_queue_nothing() {
        let mut send = SendBatch::new(1, 0);
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let err = send.push_with(to, |b| {
            b.push(1);
            Err(io::Error::other("no"))
        });
        assert!(err.is_err());
        assert!(send.is_empty());
        assert!(send.push_with(to, |_| Ok(())).unwrap());
        assert!(!send.push_with(to, |_| Ok(())).unwrap());
        assert_eq!(send.len(), 1);
    }

    #[test]
    fn addresses_convert_both_ways() {
        for text in [
            "127.1.2.3:6969",
            "[::1]:1",
            "[2001:db8::5]:65535",
            "[::ffff:10.0.0.1]:80",
        ] {
            let addr: SocketAddr = text.parse().unwrap();
            let mut storage = unsafe { zeroed() };
            let len = to_storage(addr, &mut storage);
            assert_eq!(from_storage(&storage, len), Some(addr));
        }
        let storage: libc::sockaddr_storage = unsafe { zeroed() };
        assert_eq!(from_storage(&storage, 0), None);
    }
}
