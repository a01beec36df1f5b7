//! Private mode over UDP: the passkey in the announce's BEP 41 URL data, refusals by
//! cause (answered, counted, stored nowhere, credited to no one), UDP scrapes, and the
//! accounting scenarios of `tracker_common::testing::accounting` (clean run, SIGTERM and
//! kill -9 with a restart, a PostgreSQL outage) against the real binary on SQLite and
//! PostgreSQL.

mod common;
mod private_client;

use std::path::Path;
use std::time::Duration;

use common::*;
use private_client::{UdpAnnounceClient, passkey_url};
use tracker_common::private::passkey::{Passkey, Refusal};
use tracker_common::testing::accounting::{
    AnnounceClient, Database, PASSKEY_A, PASSKEY_B, PASSKEY_UNKNOWN, ScriptPeer, Step, Totals,
    configure_private,
};
use tracker_common::types::{AnnounceEvent, InfoHash, PeerId};
use tracker_udp::Config;
use tracker_udp_protocol::{ConnectionId, Request, Response};

tracker_common::accounting_scenario_tests!(
    env!("CARGO_BIN_EXE_tracker_udp"),
    "udp-private",
    UdpAnnounceClient::new()
);

tracker_common::mysql_scenario_tests!(
    env!("CARGO_BIN_EXE_tracker_udp"),
    "udp-private",
    UdpAnnounceClient::new()
);

// --- refusals, in-process ---

/// A tracker in private mode on a fresh SQLite file, users A and B in a passkey file,
/// clients with a `-qB4` peer id prefix allowed.
fn private_tracker(name: &str, scrape_requires_passkey: bool) -> (tracker_udp::Tracker, Database) {
    let dir = tracker_common::testing::temp_dir(&format!("udp-private-{name}"));
    let mut config: Config = test_config("127.0.0.1:0");
    let database = configure_private(&dir, &mut config.private, &mut config.accounting);
    config.private.scrape_requires_passkey = scrape_requires_passkey;
    (start(config), database)
}

fn qbittorrent(n: u8) -> PeerId {
    let mut id = [b'0' + n; 20];
    id[..4].copy_from_slice(b"-qB4");
    PeerId(id)
}

/// Announces as a leecher with `url_data`; returns the answer and the bytes of request and answer.
fn announce_with(
    client: &mut Client,
    hash: InfoHash,
    peer: PeerId,
    url_data: &[u8],
) -> (Response, usize, usize) {
    // One port per peer: a swarm keeps one peer per address and port.
    let port = 6800 + u16::from(peer.0[19]);
    let mut request = client.announce_request(hash, peer, port, 100, AnnounceEvent::Started, -1);
    request.url_data = url_data.to_vec();
    request.bytes_uploaded = 1_000;
    let request = Request::Announce(request);
    let mut bytes = Vec::new();
    request.write_bytes(&mut bytes).unwrap();
    client.send_raw(&bytes);
    let answer = client.recv_raw().expect("tracker did not answer");
    let response = Response::parse_bytes(&answer, true).unwrap();
    (response, bytes.len(), answer.len())
}

fn error_message(response: &Response) -> Option<&str> {
    match response {
        Response::Error(e) => Some(&e.message),
        _ => None,
    }
}

#[test]
fn refusals_are_answered_counted_and_stored_nowhere() {
    let (tracker, database) = private_tracker("refusals", false);
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    let hash = info_hash(0x42);
    let malformed = b"/not-a-passkey/announce".to_vec();
    let cases: [(&[u8], PeerId, Refusal); 6] = [
        (b"", qbittorrent(1), Refusal::MissingPasskey),
        (b"/announce?x=1", qbittorrent(1), Refusal::MissingPasskey),
        (
            &passkey_url(&PASSKEY_UNKNOWN),
            qbittorrent(1),
            Refusal::UnknownPasskey,
        ),
        (&malformed, qbittorrent(1), Refusal::UnknownPasskey),
        (
            &passkey_url(&PASSKEY_A),
            PeerId(*b"-XX1000-000000000000"),
            Refusal::ClientNotAllowed,
        ),
        // A passkey cut short by the URL data limit is missing, not another key.
        (
            &passkey_url(&PASSKEY_A)[..20],
            qbittorrent(1),
            Refusal::MissingPasskey,
        ),
    ];
    for (url_data, peer, cause) in cases {
        let (response, sent, received) = announce_with(&mut client, hash, peer, url_data);
        assert_eq!(
            error_message(&response),
            Some(cause.message()),
            "{:?}",
            String::from_utf8_lossy(url_data)
        );
        assert!(received < sent, "no amplification: {received} >= {sent}");
    }
    // Stored nowhere: the torrent has no peer.
    assert_eq!(client.scrape_one(hash), (0, 0, 0));
    let stats = tracker.statistics();
    assert_eq!(stats.seeders + stats.leechers, 0, "{stats:?}");
    assert_eq!(stats.private.refused, [3, 2, 1, 0, 0]);
    assert_eq!(
        stats.responses_of(tracker_common::observe::statistics::ResponseKind::Error),
        6
    );

    // A known passkey of an allowed client is served and stored, in either form.
    let (response, _, _) =
        announce_with(&mut client, hash, qbittorrent(2), &passkey_url(&PASSKEY_A));
    assert!(
        matches!(response, Response::AnnounceIpv4(_)),
        "{response:?}"
    );
    let unit3d = format!("/announce/{PASSKEY_B}?info_hash=x").into_bytes();
    let (response, _, _) = announce_with(&mut client, hash, qbittorrent(3), &unit3d);
    assert!(
        matches!(response, Response::AnnounceIpv4(_)),
        "{response:?}"
    );
    assert_eq!(client.scrape_one(hash), (0, 0, 2));
    assert_eq!(tracker.statistics().private.refused, [3, 2, 1, 0, 0]);

    // Credited to the two users, each exactly its one served announce (every refused
    // one was a `started` of 1,000 bytes too, A's among them), and to no one else.
    let served = Totals {
        uploaded: 1_000,
        downloaded: 0,
        completed: false,
    };
    let expected: std::collections::BTreeMap<(Passkey, InfoHash), Totals> =
        [((PASSKEY_A, hash), served), ((PASSKEY_B, hash), served)]
            .into_iter()
            .collect();
    let totals = database.wait_for(Duration::from_secs(10), |t| *t == expected);
    assert_eq!(totals, expected);
    tracker.shutdown();
    assert_eq!(database.totals().unwrap(), expected);
    assert_eq!(
        database.committed_baselines().unwrap(),
        2,
        "the served peers only"
    );
}

#[test]
fn udp_scrapes_need_a_passkey_they_cannot_carry() {
    let (tracker, _database) = private_tracker("scrape-refused", true);
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    let tid = client.tid();
    let response = client.request(&Request::Scrape(tracker_udp_protocol::ScrapeRequest {
        connection_id: client.connection_id,
        transaction_id: tid,
        info_hashes: vec![info_hash(1)],
    }));
    assert_eq!(
        error_message(&response),
        Some(Refusal::MissingPasskey.message())
    );
    assert_eq!(response.transaction_id(), tid);
    assert_eq!(tracker.statistics().private.refused, [1, 0, 0, 0, 0]);
    tracker.shutdown();
}

#[test]
fn refusals_go_only_to_a_valid_connection_id() {
    let (tracker, _database) = private_tracker("connection-id", true);
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    client.connection_id = ConnectionId(client.connection_id.0 ^ 1);
    let (response, _, _) = announce_with(&mut client, info_hash(1), qbittorrent(1), b"");
    assert_eq!(error_message(&response), Some("invalid connection id"));
    assert_eq!(tracker.statistics().private.refused, [0, 0, 0, 0, 0]);
    tracker.shutdown();
}

/// Public mode ignores a passkey in the URL data, known or not.
#[test]
fn public_mode_ignores_passkeys() {
    let tracker = start(test_config("127.0.0.1:0"));
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    let hash = info_hash(7);
    for (n, url) in [
        passkey_url(&PASSKEY_UNKNOWN),
        b"/not-a-passkey/announce".to_vec(),
        Vec::new(),
    ]
    .iter()
    .enumerate()
    {
        let (response, _, _) = announce_with(&mut client, hash, qbittorrent(n as u8), url);
        assert!(
            matches!(response, Response::AnnounceIpv4(_)),
            "{response:?}"
        );
    }
    assert_eq!(client.scrape_one(hash), (0, 0, 3));
    let stats = tracker.statistics();
    assert!(!stats.private.enabled);
    assert_eq!(stats.private.refused, [0, 0, 0, 0, 0]);
    tracker.shutdown();
}

/// SIGUSR1 re-reads the passkey file: a passkey added to it is served from then on, one
/// taken out is refused.
#[test]
fn sigusr1_reloads_the_passkeys() {
    let dir = tracker_common::testing::temp_dir("udp-private-sigusr1");
    let url = tracker_common::testing::accounting::sqlite_url(&dir);
    let config = tracker_common::testing::accounting::write_private_config(&dir, &url, "");
    let passkeys = dir.join("passkeys.txt");
    std::fs::write(&passkeys, format!("{PASSKEY_A}\n")).unwrap();
    let spawned = tracker_common::testing::Spawned::start(
        Path::new(env!("CARGO_BIN_EXE_tracker_udp")),
        &config,
    );
    let peer = |passkey, n| ScriptPeer {
        passkey,
        info_hash: InfoHash([9; 20]),
        peer_id: qbittorrent(n),
        port: 7000 + u16::from(n),
    };
    let step = Step {
        peer: 0,
        event: AnnounceEvent::Started,
        uploaded: 0,
        downloaded: 0,
        left: 10,
    };
    let mut client = UdpAnnounceClient::new();
    client
        .announce(spawned.addr, &peer(PASSKEY_A, 1), &step)
        .unwrap();
    let err = client
        .announce(spawned.addr, &peer(PASSKEY_B, 2), &step)
        .unwrap_err();
    assert!(err.to_string().contains("unknown passkey"), "{err:#}");

    std::fs::write(&passkeys, format!("{PASSKEY_B}\n")).unwrap();
    spawned.signal("USR1");
    assert!(
        eventually(Duration::from_secs(10), || client
            .announce(spawned.addr, &peer(PASSKEY_B, 2), &step)
            .is_ok()),
        "the added passkey was not served within 10 s of SIGUSR1"
    );
    let err = client
        .announce(spawned.addr, &peer(PASSKEY_A, 1), &step)
        .unwrap_err();
    assert!(err.to_string().contains("unknown passkey"), "{err:#}");
    drop(spawned);
    let _ = std::fs::remove_dir_all(&dir);
}

// --- operator scenarios (restarts, caps, overlapping processes, the database down) ---

tracker_common::operator_scenario_tests!(
    env!("CARGO_BIN_EXE_tracker_udp"),
    UdpAnnounceClient::new()
);
