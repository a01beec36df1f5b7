//! Connections at the edges, seen from real sockets: a restart right after a stop with
//! clients connected, a tracker that runs out of file descriptors, and the cap on
//! connections per client address, and an answer that must arrive in full although the
//! client's input is left unread.
//!
//! What the kernel holds (a connection accepted or still in the backlog, the tracker's
//! side in TIME_WAIT) is read from /proc/net/tcp rather than guessed from timings.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::*;
use tracker_common::testing::{
    connect_with_small_receive_buffer, freed_descriptors_restart_accepting,
    restart_with_clients_connected, tcp_sockets, tcp_state, temp_dir,
};

const BIN: &str = env!("CARGO_BIN_EXE_tracker_ws");
const UPGRADE: &[u8] = b"GET /announce HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// A WebSocket connection with a completed scrape on it.
fn served(addr: SocketAddr) -> Client {
    let mut client = Client::connect(addr);
    assert_eq!(client.scrape(&[info_hash(1)]).len(), 1);
    client
}

/// The head of the HTTP answer on `stream` (up to the blank line).
fn answer_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed after {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[test]
fn a_tracker_stopped_with_clients_connected_starts_again_at_once() {
    let dir = temp_dir("ws-restart");
    // End of stream: the tracker sends no close frame when it stops.
    let closed = |client: &mut Client| client.ws.get_mut().read(&mut [0u8; 64]).unwrap() == 0;
    restart_with_clients_connected(Path::new(BIN), &dir, served, closed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn freed_descriptors_restart_accepting_after_the_tracker_ran_out() {
    let dir = temp_dir("ws-emfile");
    freed_descriptors_restart_accepting(
        Path::new(BIN),
        &dir,
        "[ws]\nmax_connections = 1000\n",
        |addr| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            stream.write_all(UPGRADE).unwrap();
            stream
        },
        |stream| stream.local_addr().unwrap().port(),
        |stream| answer_head(stream).starts_with("HTTP/1.1 101"),
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn connections_past_the_cap_per_address_are_closed_at_accept_and_counted() {
    // Two socket workers: the cap is the whole tracker's.
    let mut config = test_config("127.0.0.1:0");
    config.ws.max_connections_per_ip = 3;
    let tracker = start(config);
    let addr = tracker.local_addr();
    let mut clients: Vec<Client> = (0..3).map(|_| served(addr)).collect();
    let mut over = TcpStream::connect(addr).unwrap();
    over.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = over.write_all(UPGRADE);
    match over.read(&mut [0u8; 64]) {
        Ok(0) => {}
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the connection over the cap was not closed: {other:?}"),
    }
    // Counted just after the close the client saw.
    assert!(eventually(Duration::from_secs(10), || {
        tracker.connections().refused_per_ip == 1
    }));
    assert_eq!(tracker.connections().refused, 0);
    assert_eq!(tracker.connections().open, 3);
    // The others are still served.
    for client in &mut clients {
        assert_eq!(client.scrape(&[info_hash(2)]).len(), 1);
    }
    // One leaves: once the tracker has seen it go, a new one takes its place.
    drop(clients.pop());
    assert!(eventually(Duration::from_secs(10), || {
        tracker.connections().open == 2
    }));
    drop(served(addr));
    assert_eq!(tracker.connections().refused_per_ip, 1);
    tracker.shutdown();
}

#[test]
fn a_refused_upgrade_is_answered_in_full_though_the_clients_input_is_left_unread() {
    let mut config = test_config("127.0.0.1:0");
    config.workers.socket_workers = 1;
    let tracker = start(config);
    let addr = tracker.local_addr();
    let mut stream = connect_with_small_receive_buffer(addr);
    let client_port = stream.local_addr().unwrap().port();
    // No Sec-WebSocket-Key: refused 400. The bytes after it are never read by the
    // tracker; closing a socket with input unread resets it, and a reset throws away
    // what it still had to send.
    let mut bytes = b"GET /announce HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    bytes.extend(std::iter::repeat_n(b'x', 16 * 1024));
    stream.write_all(&bytes).unwrap();
    // Read nothing until the tracker is done with the connection: its side leaves
    // ESTABLISHED when it closes it or shuts its write side down.
    let established = || {
        tcp_sockets().iter().any(|s| {
            s.local_port == addr.port()
                && s.remote_port == client_port
                && s.state == tcp_state::ESTABLISHED
        })
    };
    assert!(eventually(Duration::from_secs(10), || !established()));
    let mut received = Vec::new();
    let end = stream.read_to_end(&mut received);
    assert!(
        end.is_ok(),
        "{end:?} after {:?}",
        String::from_utf8_lossy(&received)
    );
    let text = String::from_utf8(received).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", body.len())),
        "{text}"
    );
    assert_eq!(tracker.statistics().bad_requests, 1);
    tracker.shutdown();
}
