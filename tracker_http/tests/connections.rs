//! Connections at the edges, seen from real sockets: a restart right after a stop with
//! clients connected, a tracker that runs out of file descriptors, and the cap on
//! connections per client address, and an answer that must arrive in full although the
//! client's input is left unread.
//!
//! What the kernel holds (a connection accepted or still in the backlog, the tracker's
//! side in TIME_WAIT) is read from /proc/net/tcp rather than guessed from timings.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use tracker_common::testing::{
    Spawned, accepted_when_settled, connect_with_small_receive_buffer, tcp_sockets, tcp_state,
    temp_dir,
};
use tracker_http_protocol::parse_http_response;

const BIN: &str = env!("CARGO_BIN_EXE_tracker_http");
const INDEX: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

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

/// A client connection with a completed request on it.
fn served(addr: std::net::SocketAddr) -> Client {
    let mut client = Client::connect(addr);
    client.send(INDEX);
    assert_eq!(client.response().status, 200);
    client
}

#[test]
fn a_tracker_stopped_with_clients_connected_starts_again_at_once() {
    let dir = temp_dir("http-restart");
    let first = write_config(&dir, "first", "127.0.0.1:0", "");
    let mut tracker = Spawned::start(Path::new(BIN), &first);
    let addr = tracker.addr;
    let mut clients: Vec<Client> = (0..4).map(|_| served(addr)).collect();
    tracker.signal("TERM");
    assert_eq!(tracker.wait_exit(), Some(0));
    // The tracker closed first; the clients close too, which leaves its side of each
    // connection in TIME_WAIT for a minute.
    for client in &mut clients {
        assert!(client.is_closed_by_tracker());
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
    let dir = temp_dir("http-emfile");
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
        "[http]\nmax_connections = 1000\n",
    );
    let mut tracker = Spawned::start(&wrapper, &config);
    let addr = tracker.addr;

    // More connections than it has descriptors for, each with a request.
    let mut clients: Vec<Client> = (0..100)
        .map(|_| {
            let mut client = Client::connect(addr);
            client.send(INDEX);
            client
        })
        .collect();
    Spawned::wait_line(&tracker.lines, "Too many open files");
    // Accepting is blocked now. The kernel shows which connections it took: their side
    // has a file (an inode); those still in the backlog have none. The backlog is first
    // in, first out.
    let ports: Vec<u16> = clients
        .iter()
        .map(|client| client.stream.local_addr().unwrap().port())
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
        assert_eq!(client.response().status, 200);
    }
    // One client leaves: the descriptor it frees goes to the first one waiting, with no
    // new connection arriving to wake the listener.
    drop(clients.remove(0));
    assert_eq!(clients[taken - 1].response().status, 200);
    drop(tracker);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn connections_past_the_cap_per_address_are_closed_at_accept_and_counted() {
    // Two socket workers: the cap is the whole tracker's.
    let mut config = test_config("127.0.0.1:0");
    config.http.max_connections_per_ip = 3;
    let tracker = start(config);
    let addr = tracker.local_addr();
    let mut clients: Vec<Client> = (0..3).map(|_| served(addr)).collect();
    let mut over = Client::connect(addr);
    assert!(over.is_closed_by_tracker());
    // Counted just after the close the client saw.
    assert!(eventually(Duration::from_secs(10), || {
        tracker.connections().refused_per_ip == 1
    }));
    assert_eq!(tracker.connections().refused, 0);
    assert_eq!(tracker.connections().open, 3);
    // The others are still served.
    for client in &mut clients {
        client.send(INDEX);
        assert_eq!(client.response().status, 200);
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
fn an_error_answer_arrives_in_full_though_the_clients_input_is_left_unread() {
    let mut config = test_config("127.0.0.1:0");
    config.workers.socket_workers = 1;
    let tracker = start(config);
    let addr = tracker.local_addr();
    let max = tracker.config().http.max_request_bytes;
    let mut stream = connect_with_small_receive_buffer(addr);
    let client_port = stream.local_addr().unwrap().port();
    // Pipelined requests whose answers overflow the client's small receive window and
    // wait in the tracker's send queue; then a head larger than max_request_bytes, and
    // bytes after it that the tracker never reads. Closing a socket with input unread
    // resets it, and a reset throws the send queue away: the 431 with it.
    let mut bytes = INDEX.repeat(60);
    bytes.extend_from_slice(b"GET /announce?info_hash=");
    bytes.extend(std::iter::repeat_n(b'a', max + 1000));
    bytes.extend(std::iter::repeat_n(b'b', 16 * 1024));
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
    assert!(end.is_ok(), "{end:?} after {} bytes", received.len());
    // The 60 index pages, then the 431, each whole, then end of stream.
    let mut rest = &received[..];
    let mut statuses = Vec::new();
    while !rest.is_empty() {
        let (response, len) = parse_http_response(rest, 1 << 20)
            .unwrap()
            .expect("a whole response");
        statuses.push(response.status);
        rest = &rest[len..];
    }
    assert_eq!(statuses.len(), 61, "{statuses:?}");
    assert!(statuses[..60].iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(statuses[60], 431);
    tracker.shutdown();
}

#[test]
fn a_trusted_proxys_connections_are_not_capped() {
    let mut config = test_config("127.0.0.1:0");
    config.http.max_connections_per_ip = 1;
    config.proxy.trusted_proxies = vec!["127.0.0.1".into()];
    let tracker = start(config);
    let clients: Vec<Client> = (0..3).map(|_| served(tracker.local_addr())).collect();
    assert_eq!(tracker.connections().open, 3);
    assert_eq!(tracker.connections().refused_per_ip, 0);
    drop(clients);
    tracker.shutdown();
}
