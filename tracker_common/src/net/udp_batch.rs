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
    /// The address as Rust sees it, to group datagrams by destination.
    to: SocketAddr,
    addr: libc::sockaddr_storage,
    addr_len: libc::socklen_t,
}

/// `UDP_SEGMENT` of `<linux/udp.h>` (Linux 4.18): the segment size of a UDP GSO send,
/// as a socket option or as a control message of level `SOL_UDP`.
const UDP_SEGMENT: libc::c_int = 103;

/// The most segments one GSO send may carry (`UDP_MAX_SEGMENTS`, 64 in every kernel
/// that has the option; newer ones allow more).
const MAX_SEGMENTS: usize = 64;

/// The most payload bytes one GSO send carries: a UDP datagram's payload limit over
/// IPv4 (65,507), rounded down, so that the kernel takes it over IPv6 too.
const MAX_SEGMENTED_BYTES: usize = 65_000;

/// Datagrams longer than this are never grouped: every segment of a GSO send must fit
/// the path's MTU unfragmented, and 1232 bytes (IPv6's minimum MTU of 1280 less the
/// IPv6 and UDP headers) fits any path. A tracker's answers are shorter.
const MAX_SEGMENT_LEN: usize = 1232;

/// Room for one control message carrying a `u16` (`CMSG_SPACE(2)` is 24 on 64-bit
/// Linux); `u64`s so that it is aligned for a `cmsghdr`.
type Control = [u64; 4];

/// Whether the kernel offers UDP segmentation offload (`UDP_SEGMENT`) on `socket`: it
/// answers the option instead of refusing it as unknown.
pub fn supports_segmentation(socket: &impl AsRawFd) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes of the sizes given; the kernel
    // writes at most `len` bytes into `value` and the new length into `len`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            UDP_SEGMENT,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0
}

/// Collects datagrams and sends them with as few `sendmmsg` calls as possible.
///
/// # Segmentation
/// With segmentation on ([`Self::set_segmentation`]), datagrams to the same address
/// with the same length leave as one message carrying a `UDP_SEGMENT` control message:
/// the kernel takes the group through its UDP and IP send path once and cuts it into
/// the separate datagrams at the end (in the device, or in software), so the receiver
/// gets exactly the datagrams it would have got one by one. A batch is grouped by
/// (address, length); within a group the datagrams keep the order they were pushed in.
/// Datagrams to different addresses, or of different lengths, may leave in a
/// different order than they were pushed, which UDP never promised anyway. A kernel
/// that refuses a segmented send gets that group's datagrams one by one; unless it
/// refused for that route alone (EINVAL: a path MTU below the segments), segmentation
/// is then off for good (logged once).
pub struct SendBatch {
    capacity: usize,
    data: Vec<u8>,
    queued: Vec<Queued>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    segmentation: bool,
    /// Queue positions in sending order (grouped), for a segmented flush.
    order: Vec<u32>,
    /// Per header: its datagrams and their payload bytes.
    messages: Vec<Message>,
    /// One control buffer per segmented header.
    controls: Vec<Control>,
    /// The single-datagram headers of a refused group ([`Self::send_one_by_one`]),
    /// kept so that a route that keeps refusing costs no allocation each time.
    singles: Vec<libc::mmsghdr>,
}

/// What one header of a flush carries: one datagram, or a segmented group of several.
#[derive(Clone, Copy)]
struct Message {
    datagrams: usize,
    bytes: usize,
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
            segmentation: false,
            order: Vec::with_capacity(capacity),
            messages: Vec::with_capacity(capacity),
            controls: Vec::with_capacity(capacity / 2),
            singles: Vec::new(),
        }
    }

    /// Turns segmentation (see the type's documentation) on or off; off when made. Turn
    /// it on only for a socket that [`supports_segmentation`].
    pub fn set_segmentation(&mut self, on: bool) {
        self.segmentation = on;
    }

    /// Turns segmentation on if the kernel offers it on `socket`
    /// ([`supports_segmentation`]); returns whether it is on.
    pub fn enable_segmentation(&mut self, socket: &impl AsRawFd) -> bool {
        self.segmentation = supports_segmentation(socket);
        self.segmentation
    }

    /// Whether segmentation is on: asked for, and not refused by the kernel since.
    pub fn segmentation(&self) -> bool {
        self.segmentation
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
            to: addr,
            addr: storage,
            addr_len,
        });
        Ok(true)
    }

    /// Fills `order` with the queue positions in sending order and `messages` with one
    /// entry per header to make: with segmentation, runs of the same address and length
    /// (at most [`MAX_SEGMENTS`] datagrams and [`MAX_SEGMENTED_BYTES`] bytes each);
    /// without, one datagram each, in queue order.
    fn plan(&mut self) {
        self.order.clear();
        self.order.extend(0..self.queued.len() as u32);
        self.messages.clear();
        let queued = &self.queued;
        let at = |i: u32| queued.get(i as usize);
        if !self.segmentation {
            self.messages
                .extend(queued.iter().map(|q| Message::single(q.len)));
            return;
        }
        // A stable sort: within a group, the push order stays.
        self.order.sort_by_key(|&i| at(i).map(|q| (q.to, q.len)));
        let mut run: Option<(SocketAddr, usize)> = None;
        for &i in &self.order {
            let Some(q) = at(i) else { continue };
            let joins = run == Some((q.to, q.len))
                && q.len <= MAX_SEGMENT_LEN
                && self.messages.last().is_some_and(|m| {
                    m.datagrams < MAX_SEGMENTS && m.bytes + q.len <= MAX_SEGMENTED_BYTES
                });
            match self.messages.last_mut() {
                Some(message) if joins => {
                    message.datagrams += 1;
                    message.bytes += q.len;
                }
                _ => {
                    self.messages.push(Message::single(q.len));
                    run = Some((q.to, q.len));
                }
            }
        }
    }

    /// Sends everything queued and empties the batch. Datagrams the kernel refuses (a
    /// full send buffer, an address it cannot send to) are dropped and counted: UDP
    /// promises no delivery, and a worker must never wait on one client.
    pub fn flush(&mut self, socket: &impl AsRawFd) -> FlushOutcome {
        let mut outcome = FlushOutcome::default();
        if self.queued.is_empty() {
            return outcome;
        }
        self.plan();
        let base = self.data.as_mut_ptr();
        self.iovecs.clear();
        for &i in &self.order {
            let Some(q) = self.queued.get(i as usize) else {
                continue;
            };
            self.iovecs.push(libc::iovec {
                // SAFETY: start + len <= data.len(): each entry was cut from `data`,
                // which only grows until the clear at the end of this function.
                iov_base: unsafe { base.add(q.start) }.cast(),
                iov_len: q.len,
            });
        }
        // Every buffer the headers point into is complete before the first pointer is
        // taken, so that none of them moves afterwards.
        self.controls.clear();
        let segmented = self.messages.iter().filter(|m| m.segmented()).count();
        self.controls.resize(segmented, [0; 4]);
        self.headers.clear();
        let mut first = 0;
        let mut controls = self.controls.iter_mut();
        for message in &self.messages {
            let Some(&i) = self.order.get(first) else {
                break;
            };
            let (Some(q), Some(iov)) = (
                self.queued.get_mut(i as usize),
                self.iovecs.get_mut(first..first + message.datagrams),
            ) else {
                break;
            };
            let mut header = empty_mmsghdr();
            header.msg_hdr.msg_name = (&mut q.addr as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen = q.addr_len;
            header.msg_hdr.msg_iov = iov.as_mut_ptr();
            header.msg_hdr.msg_iovlen = iov.len();
            if message.segmented()
                && let Some(control) = controls.next()
            {
                set_segment_size(&mut header.msg_hdr, control, q.len);
            }
            self.headers.push(header);
            first += message.datagrams;
        }
        let fd = socket.as_raw_fd();
        self.send_headers(&mut outcome, |rest| {
            // SAFETY: each header points at an address in `queued`, at a run of iovecs
            // in `iovecs` and, if segmented, at a control buffer in `controls`; each
            // iovec points into `data`. None of these vectors is changed while the
            // headers are in use, and the kernel only reads through them.
            unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as libc::c_uint, 0) }
        });
        self.headers.clear();
        self.iovecs.clear();
        self.controls.clear();
        self.messages.clear();
        self.order.clear();
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
        let datagrams = |messages: &[Message]| messages.iter().map(|m| m.datagrams).sum::<usize>();
        let mut next = 0;
        while next < self.headers.len() {
            let rest = self.headers.get_mut(next..).unwrap_or_default();
            let n = sendmmsg(rest);
            if n > 0 {
                let n = n as usize;
                let sent = self.messages.get(next..next + n).unwrap_or_default();
                outcome.sent += datagrams(sent);
                outcome.bytes_sent += sent.iter().map(|m| m.bytes).sum::<usize>();
                next += n;
                continue;
            }
            let unsent = datagrams(self.messages.get(next..).unwrap_or_default());
            if n == 0 {
                // Nothing sent and no error reported. errno is only meaningful after
                // -1: reading it here could find a stale EINTR and retry for ever.
                // Retrying would most likely get 0 again, so drop the rest.
                log::debug!("sendmmsg sent nothing without an error");
                outcome.dropped += unsent;
                break;
            }
            let err = io::Error::last_os_error();
            let message = self.messages.get(next).copied();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    // The send buffer is full: the rest would fail the same way now.
                    outcome.dropped += unsent;
                    break;
                }
                _ => {
                    match message {
                        Some(message) if message.segmented() => {
                            // The kernel refused to segment: EINVAL when the route to
                            // this address has a smaller MTU than the segments (a path
                            // MTU the kernel learnt), anything else when it cannot
                            // segment at all (EIO: no checksum offload on the route).
                            // Either way this group's datagrams go one by one.
                            let route_only = err.raw_os_error() == Some(libc::EINVAL);
                            if !route_only && self.segmentation {
                                log::warn!(
                                    "the kernel refused a segmented UDP send ({err}): \
                                     sending datagrams one by one from now on"
                                );
                                self.segmentation = false;
                            }
                            let sent = self.send_one_by_one(next, &mut sendmmsg);
                            outcome.sent += sent;
                            outcome.bytes_sent += sent * (message.bytes / message.datagrams);
                            outcome.dropped += message.datagrams - sent;
                        }
                        Some(message) => {
                            // This datagram's address is refused (port 0, say).
                            log::debug!("sendmmsg: {err}");
                            outcome.dropped += message.datagrams;
                        }
                        None => {}
                    }
                    next += 1;
                }
            }
        }
    }

    /// Sends the datagrams of the segmented header `index` as single messages (each
    /// pointing at one of its iovecs, to its address, with no control message);
    /// returns how many the kernel took. Any error but an interruption drops the rest.
    fn send_one_by_one(
        &mut self,
        index: usize,
        sendmmsg: &mut impl FnMut(&mut [libc::mmsghdr]) -> libc::c_int,
    ) -> usize {
        let Some(header) = self.headers.get(index) else {
            return 0;
        };
        let mut singles = std::mem::take(&mut self.singles);
        singles.clear();
        // Pointer arithmetic only (never dereferenced here): the kernel reads them.
        singles.extend((0..header.msg_hdr.msg_iovlen).map(|j| {
            let mut single = empty_mmsghdr();
            single.msg_hdr.msg_name = header.msg_hdr.msg_name;
            single.msg_hdr.msg_namelen = header.msg_hdr.msg_namelen;
            single.msg_hdr.msg_iov = header.msg_hdr.msg_iov.wrapping_add(j);
            single.msg_hdr.msg_iovlen = 1;
            single
        }));
        let mut sent = 0;
        while sent < singles.len() {
            let n = sendmmsg(singles.get_mut(sent..).unwrap_or_default());
            if n > 0 {
                sent += n as usize;
            } else if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            } else {
                break;
            }
        }
        // No header outlives the call with its pointers.
        singles.clear();
        self.singles = singles;
        sent
    }
}

impl Message {
    fn single(len: usize) -> Self {
        Self {
            datagrams: 1,
            bytes: len,
        }
    }

    /// Whether it is a group, sent with a `UDP_SEGMENT` control message.
    fn segmented(&self) -> bool {
        self.datagrams > 1
    }
}

/// Points `header` at `control`, holding one `UDP_SEGMENT` control message of segment
/// size `len`.
fn set_segment_size(header: &mut libc::msghdr, control: &mut Control, len: usize) {
    let space = size_of::<Control>();
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = space as _;
    // SAFETY: `msg_control` points at `space` writable bytes aligned for a cmsghdr, as
    // `msg_controllen` says; CMSG_SPACE(size_of::<u16>()) (24 on 64-bit Linux) fits in
    // them (asserted below), so CMSG_FIRSTHDR returns a pointer to the start of the
    // buffer and CMSG_DATA one inside it with room for the u16.
    unsafe {
        debug_assert!(libc::CMSG_SPACE(size_of::<u16>() as u32) as usize <= space);
        let cmsg = libc::CMSG_FIRSTHDR(header);
        if cmsg.is_null() {
            return;
        }
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
        let size = u16::try_from(len).unwrap_or(u16::MAX);
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), size);
        header.msg_controllen = libc::CMSG_SPACE(size_of::<u16>() as u32) as _;
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
        send.plan();
        send.headers = (0..n).map(|_| empty_mmsghdr()).collect();
        send
    }

    /// Pushes a datagram of `len` bytes, all `tag`, to `to`.
    fn push(send: &mut SendBatch, to: SocketAddr, tag: u8, len: usize) {
        let pushed = send.push_with(to, |b| {
            b.extend(std::iter::repeat_n(tag, len));
            Ok(())
        });
        assert!(pushed.unwrap());
    }

    /// The plan groups by address and length, keeps push order within a group, and caps
    /// a group at MAX_SEGMENTS datagrams and MAX_SEGMENTED_BYTES bytes; datagrams longer
    /// than MAX_SEGMENT_LEN are never grouped.
    #[test]
    fn segmentation_groups_by_address_and_length() {
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:1001".parse().unwrap();
        let mut send = SendBatch::new(1024, 0);
        send.set_segmentation(true);
        // a: 70 of 16 bytes (64 + 6), interleaved with b: 3 of 16 bytes and a: 3 of 20.
        for i in 0..70u8 {
            push(&mut send, a, i, 16);
            if i < 3 {
                push(&mut send, b, i, 16);
                push(&mut send, a, i, 20);
            }
        }
        // a: 60 of 1200 bytes: 54 fit in 65,000 bytes, then 6.
        for i in 0..60u8 {
            push(&mut send, a, i, 1200);
        }
        // a: 2 of 1300 bytes, each alone.
        push(&mut send, a, 0, 1300);
        push(&mut send, a, 1, 1300);
        send.plan();
        let groups: Vec<(SocketAddr, usize, usize)> = {
            let mut first = 0;
            send.messages
                .iter()
                .map(|m| {
                    let q = &send.queued[send.order[first] as usize];
                    first += m.datagrams;
                    assert_eq!(m.bytes, m.datagrams * q.len);
                    (q.to, q.len, m.datagrams)
                })
                .collect()
        };
        assert_eq!(
            groups,
            vec![
                (a, 16, 64),
                (a, 16, 6),
                (a, 20, 3),
                (a, 1200, 54),
                (a, 1200, 6),
                (a, 1300, 1),
                (a, 1300, 1),
                (b, 16, 3),
            ]
        );
        // Within a group, push order: the tags of a's 16-byte datagrams count up.
        let tags: Vec<u8> = send.order[..70]
            .iter()
            .map(|&i| send.data[send.queued[i as usize].start])
            .collect();
        assert_eq!(tags, (0..70).collect::<Vec<u8>>());
        // Off: one message per datagram, in push order.
        send.set_segmentation(false);
        send.plan();
        assert_eq!(send.messages.len(), send.queued.len());
        assert!(send.order.iter().enumerate().all(|(n, &i)| n == i as usize));
    }

    /// Over real sockets: what leaves segmented arrives as the datagrams pushed, each
    /// whole, to the right receiver, and the outcome counts datagrams and bytes.
    fn segmented_round_trip(addr: &str) {
        let tx = UdpSocket::bind(addr).unwrap();
        let (rx_a, rx_b) = pair(addr);
        assert!(
            supports_segmentation(&tx),
            "this test needs a kernel with UDP_SEGMENT (Linux 4.18 or later)"
        );
        let (a, b) = (rx_a.local_addr().unwrap(), rx_b.local_addr().unwrap());
        let mut send = SendBatch::new(64, 0);
        send.set_segmentation(true);
        let mut want_a = Vec::new();
        let mut want_b = Vec::new();
        for i in 0..20u8 {
            push(&mut send, a, i, 16);
            want_a.push(vec![i; 16]);
            if i % 4 == 0 {
                push(&mut send, b, 100 + i, 200);
                want_b.push(vec![100 + i; 200]);
                push(&mut send, a, 50 + i, 37);
                want_a.push(vec![50 + i; 37]);
            }
        }
        let bytes = want_a.iter().chain(&want_b).map(Vec::len).sum();
        assert_eq!(
            send.flush(&tx),
            FlushOutcome {
                sent: want_a.len() + want_b.len(),
                dropped: 0,
                bytes_sent: bytes,
            }
        );
        assert!(send.segmentation(), "the kernel refused a segmented send");
        for (rx, mut want) in [(&rx_a, want_a), (&rx_b, want_b)] {
            let mut recv = RecvBatch::new(64, 2048);
            let mut got: Vec<Vec<u8>> = recv_all(&mut recv, rx, want.len())
                .into_iter()
                .map(|(data, from)| {
                    assert_eq!(from, tx.local_addr().unwrap());
                    data
                })
                .collect();
            got.sort();
            want.sort();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn segmented_ipv4_round_trip() {
        segmented_round_trip("127.0.0.1:0");
    }

    #[test]
    fn segmented_ipv6_round_trip() {
        if let Err(err) = UdpSocket::bind("[::1]:0") {
            panic!("this test needs IPv6 loopback (::1), which this host lacks: {err}");
        }
        segmented_round_trip("[::1]:0");
    }

    /// A kernel that refuses a segmented send has the group's datagrams sent one by
    /// one. EIO (it cannot segment on that route at all) turns segmentation off; EINVAL
    /// (a path MTU it learnt for that address is below the segments) leaves it on.
    #[test]
    fn a_refused_segmented_send_goes_one_by_one() {
        for (errno, stays_on) in [(libc::EIO, false), (libc::EINVAL, true)] {
            let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
            let other: SocketAddr = "127.0.0.1:10".parse().unwrap();
            let mut send = SendBatch::new(8, 0);
            send.set_segmentation(true);
            for i in 0..3 {
                push(&mut send, to, i, 4);
            }
            push(&mut send, other, 9, 5);
            send.plan();
            // As flush builds them: the group of three points at three iovecs.
            send.headers = send
                .messages
                .iter()
                .map(|m| {
                    let mut header = empty_mmsghdr();
                    header.msg_hdr.msg_iovlen = m.datagrams;
                    header
                })
                .collect();
            let mut calls = Vec::new();
            let mut outcome = FlushOutcome::default();
            send.send_headers(&mut outcome, |rest| {
                calls.push(
                    rest.iter()
                        .map(|h| h.msg_hdr.msg_iovlen)
                        .collect::<Vec<_>>(),
                );
                match calls.len() {
                    1 => {
                        set_errno(errno);
                        -1
                    }
                    // The singles: two taken, then an interruption, then the last.
                    2 => 2,
                    3 => {
                        set_errno(libc::EINTR);
                        -1
                    }
                    _ => rest.len() as libc::c_int,
                }
            });
            assert_eq!(
                calls,
                vec![vec![3, 1], vec![1, 1, 1], vec![1], vec![1], vec![1]],
                "the group, its singles, the rest of them, then the other address"
            );
            assert_eq!(
                outcome,
                FlushOutcome {
                    sent: 4,
                    dropped: 0,
                    bytes_sent: 3 * 4 + 5,
                }
            );
            assert_eq!(send.segmentation(), stays_on, "errno {errno}");
        }
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
