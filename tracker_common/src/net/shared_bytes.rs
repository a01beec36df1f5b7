//! Shared bodies in a connection's outgoing byte stream: bytes that many connections
//! send (a full scrape's cached answer) are referenced, not copied into each
//! connection's write buffer.
//!
//! A TCP socket worker keeps a connection's outgoing bytes in a write buffer, written
//! from an offset on. [`SharedBodies`] holds the shared bodies queued in that stream,
//! each at the position of the write buffer it follows: the bytes before it (an HTTP
//! head, a WebSocket frame header) go first, then the body, from its own offset, then
//! the rest of the buffer. [`write_round_shared`] writes them in that order; both TCP
//! trackers use it, so that the rule is written once.
//!
//! Unsent bytes of shared bodies are counted like those of the buffer
//! ([`SharedBodies::unsent`]): a connection's bound holds what it would hold with a copy.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::VecDeque;
use std::sync::Arc;

use crate::net::transport::{Transport, WriteRound, write_round};

#[derive(Debug)]
struct Queued {
    /// The position of the write buffer this body follows.
    at: usize,
    body: Arc<[u8]>,
    /// Bytes of `body` written.
    written: usize,
}

/// The shared bodies queued in one connection's byte stream, in stream order.
#[derive(Debug, Default)]
pub struct SharedBodies {
    queue: VecDeque<Queued>,
    /// Bytes of the queued bodies not yet written.
    unsent: usize,
}

impl SharedBodies {
    /// Queues `body` to follow the write buffer's first `at` bytes (its length now,
    /// when the body goes after everything queued so far).
    pub fn push(&mut self, at: usize, body: Arc<[u8]>) {
        self.unsent = self.unsent.saturating_add(body.len());
        self.queue.push_back(Queued {
            at,
            body,
            written: 0,
        });
    }

    /// Bytes of the queued bodies not yet written.
    pub fn unsent(&self) -> usize {
        self.unsent
    }

    /// Whether no body is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The write buffer's first `by` bytes were dropped (all written): positions move
    /// down with it. Bodies never follow a position before the buffer's written offset,
    /// which is at least `by`.
    pub fn shift(&mut self, by: usize) {
        for queued in &mut self.queue {
            queued.at = queued.at.saturating_sub(by);
        }
    }

    /// Where the write buffer's bytes may be written up to before the next body.
    fn limit(&self, buf_len: usize) -> usize {
        self.queue.front().map_or(buf_len, |q| q.at.min(buf_len))
    }
}

/// Writes the stream of `buf` (from `*written` on) and `shared` in order, as far as the
/// socket takes it: the buffer up to the next body's position, the body, and so on.
/// `all_out` means the buffer and every body are written (and, for TLS, sent).
pub fn write_round_shared(
    stream: &mut Transport,
    buf: &[u8],
    written: &mut usize,
    shared: &mut SharedBodies,
) -> WriteRound {
    let mut total = WriteRound::default();
    loop {
        let limit = shared.limit(buf.len());
        let round = write_round(stream, buf.get(..limit).unwrap_or_default(), written);
        total.wrote += round.wrote;
        if round.failed {
            total.failed = true;
            return total;
        }
        let Some(front) = shared.queue.front_mut() else {
            total.all_out = round.all_out;
            return total;
        };
        if *written < limit {
            return total;
        }
        let body = Arc::clone(&front.body);
        let round = write_round(stream, &body, &mut front.written);
        total.wrote += round.wrote;
        shared.unsent = shared.unsent.saturating_sub(round.wrote);
        if round.failed {
            total.failed = true;
            return total;
        }
        if front.written < body.len() {
            return total;
        }
        shared.queue.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use super::*;

    /// A connected pair: the transport the worker writes, the client end it reads.
    fn pair() -> (Transport, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (
            Transport::Plain(mio::net::TcpStream::from_std(server)),
            client,
        )
    }

    fn read_exactly(client: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut got = vec![0; n];
        client.read_exact(&mut got).unwrap();
        got
    }

    #[test]
    fn bodies_go_between_the_buffers_bytes_at_their_positions() {
        let (mut stream, mut client) = pair();
        let body: Arc<[u8]> = Arc::from(&b"<body>"[..]);
        let mut shared = SharedBodies::default();
        let mut buf = b"head1|".to_vec();
        shared.push(buf.len(), Arc::clone(&body));
        buf.extend_from_slice(b"head2|");
        shared.push(buf.len(), Arc::clone(&body));
        buf.extend_from_slice(b"tail");
        assert_eq!(shared.unsent(), 12);
        let mut written = 0;
        let round = write_round_shared(&mut stream, &buf, &mut written, &mut shared);
        assert!(round.all_out && !round.failed);
        assert_eq!(round.wrote, buf.len() + 12);
        assert_eq!(shared.unsent(), 0);
        assert!(shared.is_empty());
        assert_eq!(
            read_exactly(&mut client, round.wrote),
            b"head1|<body>head2|<body>tail"
        );
    }

    /// A socket that takes part of a body: the rest, and the buffer's bytes after it,
    /// follow at the next rounds, and the unsent count falls by exactly what went.
    #[test]
    fn a_full_socket_resumes_inside_a_body() {
        let (mut stream, mut client) = pair();
        let body: Arc<[u8]> = (0..8 * 1024 * 1024).map(|i| i as u8).collect();
        let mut shared = SharedBodies::default();
        let mut buf = b"head".to_vec();
        shared.push(buf.len(), Arc::clone(&body));
        buf.extend_from_slice(b"after");
        let total = buf.len() + body.len();
        let mut written = 0;
        let mut received = Vec::new();
        let mut sent = 0;
        let mut partial_rounds = 0;
        loop {
            let round = write_round_shared(&mut stream, &buf, &mut written, &mut shared);
            assert!(!round.failed);
            sent += round.wrote;
            assert_eq!(buf.len() - written + shared.unsent(), total - sent);
            if round.all_out {
                break;
            }
            partial_rounds += 1;
            // Read some, so that the socket takes more.
            let mut chunk = vec![0; 256 * 1024];
            let n = client.read(&mut chunk).unwrap();
            received.extend_from_slice(&chunk[..n]);
        }
        let rest = total - received.len();
        received.extend(read_exactly(&mut client, rest));
        let mut expected = b"head".to_vec();
        expected.extend_from_slice(&body);
        expected.extend_from_slice(b"after");
        assert!(received == expected, "the stream in order");
        assert!(
            partial_rounds > 0,
            "8 MiB is more than a socket buffer takes at once"
        );
    }

    #[test]
    fn positions_move_down_when_the_written_bytes_are_dropped() {
        let mut shared = SharedBodies::default();
        shared.push(10, Arc::from(&b"x"[..]));
        shared.push(20, Arc::from(&b"y"[..]));
        shared.shift(10);
        assert_eq!(shared.limit(100), 0);
        shared.queue.pop_front();
        assert_eq!(shared.limit(100), 10);
        assert_eq!(shared.limit(5), 5);
    }
}
