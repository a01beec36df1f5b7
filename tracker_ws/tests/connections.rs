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
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use tracker_common::testing::{
    Spawned, accepted_when_settled, connect_with_small_receive_buffer, tcp_sockets, tcp_state,
    temp_dir,
};

const BIN: &str = env!("CARGO_BIN_EXE_tracker_ws");
const UPGRADE: &[u8] = b"GET /announce HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// A config file `name.toml` in `dir`: `address`, one socket and one request worker,
/// statistics off, metrics on port 0, and `extra` sections.
fn write_config(dir: &Path, name: &str, address: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[network]\naddress = \"{address}\"\n[workers]\nsocket_workers = 1\n\
             request_workers = 1\n[statistics]\ninterval_secs = 0\n\
             [metrics]\naddress = \"127.0.0.1:0\"\n{extra}"
        ),
    )
    .unwrap();
    path
}

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
    let first = write_config(&dir, "first", "127.0.0.1:0", "");
    let mut tracker = Spawned::start(Path::new(BIN), &first);
    let addr = tracker.addr;
    let mut clients: Vec<Client> = (0..4).map(|_| served(addr)).collect();
    tracker.signal("TERM");
    assert_eq!(tracker.wait_exit(), Some(0));
    // The tracker closed first; the clients close too, which leaves its side of each
    // connection in TIME_WAIT for a minute.
    for client in &mut clients {
        // End of stream (the tracker sends no close frame when it stops).
        assert_eq!(client.ws.get_mut().read(&mut [0u8; 64]).unwrap(), 0);
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

    let second = write_config(&dir, "second", &addr.to_string(), "");
    let mut tracker = Spawned::start(Path::new(BIN), &second);
    assert_eq!(tracker.addr, addr);
    drop(served(addr));
    tracker.signal("TERM");
    assert_eq!(tracker.wait_exit(), Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn freed_descriptors_restart_accepting_after_the_tracker_ran_out() {
    let dir = temp_dir("ws-emfile");
    // The tracker may open 64 files (soft and hard limit), far fewer than the
    // connections it is allowed: accept fails with EMFILE.
    let wrapper = dir.join("tracker-with-64-files");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nulimit -n 64\nexec {BIN} \"$@\"\n"),
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&wrapper).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&wrapper, permissions).unwrap();
    let config = write_config(
        &dir,
        "emfile",
        "127.0.0.1:0",
        "[ws]\nmax_connections = 1000\n",
    );
    let mut tracker = Spawned::start(&wrapper, &config);
    let addr = tracker.addr;

    // More connections than it has descriptors for, each with an upgrade request.
    let mut clients: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            stream.write_all(UPGRADE).unwrap();
            stream
        })
        .collect();
    Spawned::wait_line(&tracker.lines, "Too many open files");
    // Accepting is blocked now. The kernel shows which connections it took: their side
    // has a file (an inode); those still in the backlog have none. The backlog is first
    // in, first out.
    let ports: Vec<u16> = clients
        .iter()
        .map(|client| client.local_addr().unwrap().port())
        .collect();
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
    assert!(accepted[..taken].iter().all(|a| *a), "{accepted:?}");
    for client in &mut clients[..taken] {
        assert!(answer_head(client).starts_with("HTTP/1.1 101"));
    }
    // One client leaves: the descriptor it frees goes to the first one waiting, with no
    // new connection arriving to wake the listener.
    drop(clients.remove(0));
    assert!(answer_head(&mut clients[taken - 1]).starts_with("HTTP/1.1 101"));
    drop(tracker);
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
