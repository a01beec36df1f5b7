//! The admin API against the real WebSocket tracker, over real HTTP on loopback: the
//! shared scenarios (refusals, routes, access list, bans, reload), a torrent's
//! WebTorrent peers (peer ids, no addresses), and a ban enforced at accept and lifted.

mod common;

use std::io::Write;
use std::net::IpAddr;
use std::time::Duration;

use common::{Client, announce, info_hash, peer_id, start, test_config};
use tracker_common::testing::api::{
    self, ApiClient, ApiFiles, closed_without_answer, tcp_connect_from,
};
use tracker_common::testing::wait_until;
use tracker_ws::{Config, Tracker};
use tracker_ws_protocol::AnnounceEvent;

fn api_config(files: &ApiFiles) -> Config {
    let mut config = test_config("127.0.0.1:0");
    tracker_common::configure_api!(config, files);
    config
}

fn api_of(tracker: &Tracker) -> ApiClient {
    ApiClient::new(tracker.api_addr().expect("the API is on"))
}

#[test]
fn the_api_answers_and_refuses_as_documented() {
    let files = ApiFiles::new("ws-scenarios");
    let tracker = start(api_config(&files));
    let api = api_of(&tracker);
    api::all_scenarios(&api, &files);
}

#[test]
fn a_torrent_lists_its_webtorrent_peers() {
    let files = ApiFiles::new("ws-torrents");
    let tracker = start(api_config(&files));
    let api = api_of(&tracker);
    let hash = info_hash(5);
    let mut seeder = Client::connect(tracker.local_addr());
    let mut leecher = Client::connect(tracker.local_addr());
    seeder.announce_counts(announce(hash, peer_id(1), Some(0), AnnounceEvent::Started));
    leecher.announce_counts(announce(hash, peer_id(2), Some(9), AnnounceEvent::Started));
    let one = api.get(&format!("/api/v1/torrents/{}", hash.to_hex()));
    assert_eq!(one.status, 200, "{one:?}");
    assert_eq!(
        (one.json["seeders"].as_u64(), one.json["leechers"].as_u64()),
        (Some(1), Some(1))
    );
    let mut peers: Vec<(String, bool)> = one.json["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(p["ip"].is_null() && p["port"].is_null(), "{p}");
            (
                p["peer_id"].as_str().unwrap().to_string(),
                p["seeder"].as_bool().unwrap(),
            )
        })
        .collect();
    peers.sort();
    assert_eq!(peers, [("01".repeat(20), true), ("02".repeat(20), false)]);
}

#[test]
fn a_banned_network_is_refused_at_accept_until_unbanned() {
    let files = ApiFiles::new("ws-bans");
    let tracker = start(api_config(&files));
    let api = api_of(&tracker);
    let addr = tracker.local_addr();
    let banned: IpAddr = "127.0.0.2".parse().unwrap();
    let upgrade = format!(
        "GET /announce HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let upgraded = |from: IpAddr| {
        let mut stream = tcp_connect_from(from, addr);
        stream.write_all(upgrade.as_bytes()).unwrap();
        let mut head = [0u8; 12];
        std::io::Read::read_exact(&mut stream, &mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 101");
    };
    assert_eq!(api.send("PUT", "/api/v1/bans/127.0.0.2/32", "").status, 201);
    let mut stream = tcp_connect_from(banned, addr);
    // The server may have closed already: a failed write is fine, the read says.
    let _ = stream.write_all(upgrade.as_bytes());
    assert!(closed_without_answer(&mut stream));
    wait_until("the refusal counted", Duration::from_secs(20), || {
        tracker.statistics().banned >= 1
    });
    upgraded("127.0.0.3".parse().unwrap());
    assert_eq!(
        api.send("DELETE", "/api/v1/bans/127.0.0.2/32", "").status,
        200
    );
    upgraded(banned);
    assert_eq!(tracker.statistics().banned, 1);
}
