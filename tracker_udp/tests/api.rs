//! The admin API against the real UDP tracker, over real HTTP and UDP on loopback: the
//! shared scenarios (refusals, routes, access list, bans, reload), the torrents and
//! their peers, a ban enforced and lifted, and a spoofed-source flood against the rate
//! limits' table.
//!
//! Nothing rests on a datagram not arriving in time: that a banned client got no
//! answer is shown by the order of the answers on its socket (the first answer after
//! the ban is lifted is the one to a connect sent then).

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{Client, assert_first_reply_is_connect, info_hash, kernel_drops, start, test_config};
use tracker_common::observe::statistics::RequestKind;
use tracker_common::testing::api::{self, ApiClient, ApiFiles};
use tracker_common::testing::wait_until;
use tracker_udp::{Config, Tracker};
use tracker_udp_protocol::{AnnounceEvent, ConnectRequest, Request, Response, TransactionId};

/// A config with the API on, its token, a deny-mode access list and a bans file.
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
    let files = ApiFiles::new("udp-scenarios");
    let tracker = start(api_config(&files));
    let api = api_of(&tracker);
    api::all_scenarios(&api, &files);
    assert!(tracker.statistics().admin.unauthorized >= 12);
}

#[test]
fn the_access_list_changes_apply_to_announces_at_once() {
    let files = ApiFiles::new("udp-access-list");
    let tracker = start(api_config(&files));
    let api = api_of(&tracker);
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    let hash = info_hash(9);
    let announce = |client: &mut Client| {
        client.announce(hash, common::peer_id(1), 6881, 0, AnnounceEvent::Started, 5)
    };
    assert!(matches!(announce(&mut client), Response::AnnounceIpv4(_)));
    let put = api.send("PUT", &format!("/api/v1/access-list/{}", hash.to_hex()), "");
    assert_eq!(put.status, 201, "{put:?}");
    // Denied from the next announce on: the answer is the API's confirmation.
    assert!(matches!(announce(&mut client), Response::Error(_)));
    assert_eq!(
        api.send(
            "DELETE",
            &format!("/api/v1/access-list/{}", hash.to_hex()),
            ""
        )
        .status,
        200
    );
    assert!(matches!(announce(&mut client), Response::AnnounceIpv4(_)));
}

#[test]
fn torrents_are_listed_with_their_peers() {
    let files = ApiFiles::new("udp-torrents");
    let tracker = start(api_config(&files));
    let api = api_of(&tracker);
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    let (busy, quiet) = (info_hash(1), info_hash(2));
    for (n, left) in [(1u8, 0), (2, 100), (3, 100)] {
        client.announce(
            busy,
            common::peer_id(n),
            7000 + u16::from(n),
            left,
            AnnounceEvent::Started,
            0,
        );
    }
    client.announce(
        quiet,
        common::peer_id(9),
        7009,
        0,
        AnnounceEvent::Started,
        0,
    );

    let top = api.get("/api/v1/torrents?limit=1");
    assert_eq!(top.status, 200, "{top:?}");
    let torrents = top.json["torrents"].as_array().unwrap();
    assert_eq!(torrents.len(), 1);
    assert_eq!(torrents[0]["info_hash"], busy.to_hex());
    assert_eq!(
        (
            torrents[0]["seeders"].as_u64(),
            torrents[0]["leechers"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(
        api.get("/api/v1/torrents").json["torrents"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let one = api.get(&format!("/api/v1/torrents/{}", busy.to_hex()));
    assert_eq!(one.status, 200, "{one:?}");
    assert_eq!(one.json["peers_total"], 3);
    // The UDP tracker keeps no peer ids (its answers never list them): null.
    let mut peers: Vec<(String, u64, bool, bool)> = one.json["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["ip"].as_str().unwrap().to_string(),
                p["port"].as_u64().unwrap(),
                p["peer_id"].is_null(),
                p["seeder"].as_bool().unwrap(),
            )
        })
        .collect();
    peers.sort();
    assert_eq!(
        peers,
        [
            ("127.0.0.1".to_string(), 7001, true, true),
            ("127.0.0.1".to_string(), 7002, true, false),
            ("127.0.0.1".to_string(), 7003, true, false),
        ]
    );
    let limited = api.get(&format!("/api/v1/torrents/{}?peers=2", busy.to_hex()));
    assert_eq!(limited.json["peers"].as_array().unwrap().len(), 2);
    assert_eq!(limited.json["peers_total"], 3);
    let unknown = api.get(&format!("/api/v1/torrents/{}", info_hash(3).to_hex()));
    assert_eq!(unknown.status, 404, "{unknown:?}");
}

/// Sends a connect with transaction id `tid` from `socket`.
fn send_connect(socket: &UdpSocket, tracker: SocketAddr, tid: i32) {
    let mut buf = Vec::new();
    Request::Connect(ConnectRequest {
        transaction_id: TransactionId(tid),
    })
    .write_bytes(&mut buf)
    .unwrap();
    socket.send_to(&buf, tracker).unwrap();
}

#[test]
fn a_banned_network_gets_nothing_until_unbanned() {
    let files = ApiFiles::new("udp-bans");
    let tracker = start(api_config(&files));
    let api = api_of(&tracker);
    let addr = tracker.local_addr();
    let banned = UdpSocket::bind("127.0.0.2:0").unwrap();
    assert_first_reply_is_connect(&banned, addr);

    assert_eq!(api.send("PUT", "/api/v1/bans/127.0.0.0/30", "").status, 201);
    // 127.0.0.2 is in 127.0.0.0/30: five connects, each counted as banned.
    for tid in 1..=5 {
        send_connect(&banned, addr, tid);
    }
    wait_until(
        "five datagrams counted banned",
        Duration::from_secs(20),
        || tracker.statistics().banned >= 5,
    );
    assert_eq!(tracker.statistics().banned, 5);
    // Another address is served meanwhile, and so is a client on the boundary.
    Client::connected("127.0.0.9:0", addr);
    Client::connected("127.0.0.4:0", addr);

    assert_eq!(
        api.send("DELETE", "/api/v1/bans/127.0.0.0/30", "").status,
        200
    );
    // The first answer this socket gets is to the connect sent now: none of the five
    // was answered.
    assert_first_reply_is_connect(&banned, addr);
    assert_eq!(tracker.statistics().banned, 5);
}

#[test]
fn bans_from_the_file_apply_at_start_and_on_reload() {
    let files = ApiFiles::new("udp-ban-file");
    std::fs::write(&files.bans, "# a ban from the start\n127.0.0.3\n").unwrap();
    let tracker = start(api_config(&files));
    let addr = tracker.local_addr();
    let socket = UdpSocket::bind("127.0.0.3:0").unwrap();
    send_connect(&socket, addr, 1);
    wait_until(
        "the datagram counted banned",
        Duration::from_secs(20),
        || tracker.statistics().banned >= 1,
    );
    std::fs::write(&files.bans, "").unwrap();
    let outcome = tracker.reload();
    assert!(
        outcome
            .iter()
            .any(|p| p.part == "bans" && p.ok && p.message == "0 networks"),
        "{outcome:?}"
    );
    assert_first_reply_is_connect(&socket, addr);
    assert_eq!(tracker.statistics().banned, 1);
}

#[test]
fn the_api_refuses_to_start_without_a_token() {
    let files = ApiFiles::new("udp-no-token");
    std::fs::write(&files.token, "short\n").unwrap();
    let err = tracker_udp::start(api_config(&files))
        .err()
        .expect("refused");
    let message = format!("{err:#}");
    assert!(message.contains("api.token_path"), "{message}");
    let mut config = api_config(&files);
    config.api.token_path = files.dir.join("missing");
    let message = format!("{:#}", tracker_udp::start(config).err().expect("refused"));
    assert!(
        message.contains("api.token_path") && message.contains("missing"),
        "{message}"
    );
}

/// Addresses the flood comes from: this many distinct sources in 127.0.0.0/8.
const FLOOD_ADDRESSES: u32 = 1 << 20;

/// A spoofed-source flood: connects from 2^20 (over a million) distinct source
/// addresses, each of which the rate limits must track, against a table of 4096
/// slots. Every datagram is accounted for (handled by the tracker or dropped by the
/// kernel) before the table is read.
#[test]
fn a_flood_from_a_million_addresses_leaves_the_rate_limit_table_at_its_bound() {
    let mut config = test_config("127.0.0.1:0");
    config.rate_limits.enabled = true;
    config.rate_limits.max_tracked_addresses = 4096;
    let tracker = start(config);
    let addr = tracker.local_addr();
    let slots = tracker.statistics().rate_limit_slots;
    assert_eq!(slots, 4096);

    let started = Instant::now();
    let mut buf = Vec::new();
    Request::Connect(ConnectRequest {
        transaction_id: TransactionId(1),
    })
    .write_bytes(&mut buf)
    .unwrap();
    let drops_before = kernel_drops(addr.port());
    for n in 0..FLOOD_ADDRESSES {
        // 127.16.0.0 to 127.31.255.255: none is the tracker's or another test's.
        let source = Ipv4Addr::from(0x7f10_0000 + n);
        let sender = UdpSocket::bind((source, 0)).unwrap();
        sender.send_to(&buf, addr).unwrap();
        if n % 65_536 == 65_535 {
            // Let the tracker catch up now and then, so that most datagrams reach it.
            let sent = u64::from(n) + 1;
            wait_until("the tracker to catch up", Duration::from_secs(60), || {
                tracker.statistics().requests_of(RequestKind::Connect)
                    + kernel_drops(addr.port()).saturating_sub(drops_before)
                    >= sent
            });
        }
    }
    let sent = u64::from(FLOOD_ADDRESSES);
    wait_until(
        "every datagram accounted for",
        Duration::from_secs(60),
        || {
            tracker.statistics().requests_of(RequestKind::Connect)
                + kernel_drops(addr.port()).saturating_sub(drops_before)
                >= sent
        },
    );
    let stats = tracker.statistics();
    let handled = stats.requests_of(RequestKind::Connect);
    eprintln!(
        "{sent} connects from as many addresses in {:?}: {handled} handled, table {} of {} \
         slots",
        started.elapsed(),
        stats.rate_limit_addresses,
        stats.rate_limit_slots
    );
    assert!(
        handled > 16 * slots,
        "the flood reached the tracker: {handled}"
    );
    assert!(stats.rate_limit_addresses <= slots, "{stats:?}");
    assert!(
        stats.rate_limit_addresses >= slots / 2,
        "the table filled: {stats:?}"
    );
    // The tracker still serves a new address.
    Client::connected("127.0.0.5:0", addr);
}

/// The binary with the API on: it says where the API listens, serves it, and SIGUSR1
/// re-reads a bans file edited by hand after the API wrote it.
#[test]
fn the_binary_serves_the_api_and_sigusr1_rereads_the_bans() {
    let files = ApiFiles::new("udp-binary");
    let config = files.dir.join("udp.toml");
    std::fs::write(
        &config,
        format!(
            "[network]\naddress = \"127.0.0.1:0\"\n[metrics]\naddress = \"127.0.0.1:0\"\n\
             [statistics]\ninterval_secs = 0\n[bans]\npath = \"{}\"\n[api]\nenabled = true\n\
             address = \"127.0.0.1:0\"\ntoken_path = \"{}\"\n",
            files.bans.display(),
            files.token.display()
        ),
    )
    .unwrap();
    let tracker = common::Spawned::start(&config);
    let api = ApiClient::new(tracker.api.expect("the binary logs where the API listens"));
    assert_eq!(api.with_token(None).get("/health").status, 200);
    assert_eq!(api.with_token(None).get("/api/v1/bans").status, 401);
    assert_eq!(
        api.send("PUT", "/api/v1/bans/203.0.113.0/24", "").status,
        201
    );
    assert!(ApiFiles::read(&files.bans).contains("203.0.113.0/24"));
    std::fs::write(&files.bans, "198.51.100.7\n2001:db8::/32\n").unwrap();
    tracker.signal("USR1");
    common::Spawned::wait_line(&tracker.lines, "bans reloaded: 2 networks");
    let bans = api.get("/api/v1/bans");
    let networks: Vec<&str> = bans.json["bans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["network"].as_str().unwrap())
        .collect();
    assert_eq!(networks, ["198.51.100.7/32", "2001:db8::/32"], "{bans:?}");
}
