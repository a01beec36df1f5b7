//! Connections at the edges, seen from real sockets: a restart right after a stop with
//! clients connected, a tracker that runs out of file descriptors, and the cap on
//! connections per client address, and an answer that must arrive in full although the
//! client's input is left unread.
//!
//! What the kernel holds (a connection accepted or still in the backlog, the tracker's
//! side in TIME_WAIT) is read from /proc/net/tcp rather than guessed from timings.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use common::*;
use tracker_common::testing::{
    connect_with_small_receive_buffer, freed_descriptors_restart_accepting,
    restart_with_clients_connected, tcp_sockets, tcp_state, temp_dir,
};
use tracker_http_protocol::parse_http_response;

const BIN: &str = env!("CARGO_BIN_EXE_tracker_http");
const INDEX: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

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
    restart_with_clients_connected(Path::new(BIN), &dir, served, Client::is_closed_by_tracker);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn freed_descriptors_restart_accepting_after_the_tracker_ran_out() {
    let dir = temp_dir("http-emfile");
    freed_descriptors_restart_accepting(
        Path::new(BIN),
        &dir,
        "[http]\nmax_connections = 1000\n",
        |addr| {
            let mut client = Client::connect(addr);
            client.send(INDEX);
            client
        },
        |client| client.stream.local_addr().unwrap().port(),
        |client| client.response().status == 200,
    );
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
