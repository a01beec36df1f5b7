//! A tracker refuses a port that another process already serves: SO_REUSEPORT would
//! otherwise let the two split the traffic without a word.

mod common;

use common::*;

fn in_use_message(port: u16) -> String {
    format!("udp port {port} on 127.0.0.1 is already in use by another process (another tracker?)")
}

#[test]
fn a_second_tracker_on_the_same_port_is_refused() {
    let first = start(test_config("127.0.0.1:0"));
    let addr = first.local_addr();
    let err = tracker_udp::start(test_config(&addr.to_string()))
        .err()
        .expect("a second tracker on the same port must not start");
    assert_eq!(err.to_string(), in_use_message(addr.port()), "{err:#}");
    // The first one still serves (and alone).
    let mut client = Client::connected("127.0.0.1:0", addr);
    assert_eq!(client.scrape_one(info_hash(1)), (0, 0, 0));
    first.shutdown();
}

#[test]
fn a_port_held_by_a_plain_socket_is_refused() {
    let held = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let err = tracker_udp::start(test_config(&addr.to_string()))
        .err()
        .expect("a tracker must not start on a port a socket holds");
    assert_eq!(err.to_string(), in_use_message(addr.port()), "{err:#}");
}

#[test]
fn trackers_on_different_ports_both_serve() {
    let a = start(test_config("127.0.0.1:0"));
    let b = start(test_config("127.0.0.1:0"));
    assert_ne!(a.local_addr().port(), b.local_addr().port());
    for tracker in [&a, &b] {
        let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
        assert_eq!(client.scrape_one(info_hash(2)), (0, 0, 0));
    }
    a.shutdown();
    b.shutdown();
}
