//! The admin API against the real HTTP tracker, over real HTTP on loopback: the shared
//! scenarios (refusals, routes, access list, bans, reload), the torrents and their
//! peers, a ban enforced at accept and lifted, and private mode's passkeys, users and
//! registered torrents changed at run time.

mod common;

use std::io::Write;
use std::net::IpAddr;
use std::time::Duration;

use common::{Client, announce, info_hash, peer_id, start, test_config};
use tracker_common::testing::accounting::{PASSKEY_A, PASSKEY_UNKNOWN, configure_private};
use tracker_common::testing::api::{
    self, ApiClient, ApiFiles, closed_without_answer, tcp_connect_from,
};
use tracker_common::testing::{temp_dir, wait_until};
use tracker_http::{Config, Tracker};
use tracker_http_protocol::{
    AnnounceEvent, AnnounceRequest, PasskeyParam, PeerId, TrackerResponse,
};

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
    let files = ApiFiles::new("http-scenarios");
    let tracker = start(api_config(&files));
    let api = api_of(&tracker);
    api::all_scenarios(&api, &files);
}

#[test]
fn torrents_are_listed_with_their_peers() {
    let files = ApiFiles::new("http-torrents");
    let tracker = start(api_config(&files));
    let api = api_of(&tracker);
    let mut client = Client::connect(tracker.local_addr());
    let hash = info_hash(4);
    client.announce_ok(&announce(hash, peer_id(1), 7001, 0, AnnounceEvent::Started));
    client.announce_ok(&announce(hash, peer_id(2), 7002, 5, AnnounceEvent::Started));
    let one = api.get(&format!("/api/v1/torrents/{}", hash.to_hex()));
    assert_eq!(one.status, 200, "{one:?}");
    assert_eq!(
        (one.json["seeders"].as_u64(), one.json["leechers"].as_u64()),
        (Some(1), Some(1))
    );
    let mut ports: Vec<(u64, bool)> = one.json["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["ip"], "127.0.0.1");
            (p["port"].as_u64().unwrap(), p["seeder"].as_bool().unwrap())
        })
        .collect();
    ports.sort();
    assert_eq!(ports, [(7001, true), (7002, false)]);
    let top = api.get("/api/v1/torrents?limit=5");
    assert_eq!(
        top.json["torrents"][0]["info_hash"],
        hash.to_hex(),
        "{top:?}"
    );
}

/// Sends a plain announce on `stream` (a connection of its own).
fn send_announce(stream: &mut std::net::TcpStream) {
    let mut bytes = Vec::new();
    announce(info_hash(1), peer_id(1), 6881, 0, AnnounceEvent::Started).write_http(
        &mut bytes,
        "tracker.test",
        false,
    );
    // The server may have closed already: a failed write is fine, the read says.
    let _ = stream.write_all(&bytes);
}

#[test]
fn a_banned_network_is_refused_at_accept_until_unbanned() {
    let files = ApiFiles::new("http-bans");
    let tracker = start(api_config(&files));
    let api = api_of(&tracker);
    let addr = tracker.local_addr();
    let banned: IpAddr = "127.0.0.2".parse().unwrap();
    assert_eq!(api.send("PUT", "/api/v1/bans/127.0.0.2", "").status, 201);
    let mut stream = tcp_connect_from(banned, addr);
    send_announce(&mut stream);
    assert!(closed_without_answer(&mut stream));
    wait_until("the refusal counted", Duration::from_secs(20), || {
        tracker.statistics().banned >= 1
    });
    // Another address is served meanwhile.
    let mut other = tcp_connect_from("127.0.0.3".parse().unwrap(), addr);
    send_announce(&mut other);
    let mut answer = Vec::new();
    std::io::Read::read_to_end(&mut other, &mut answer).unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");

    assert_eq!(
        api.send("DELETE", "/api/v1/bans/127.0.0.2/32", "").status,
        200
    );
    let mut again = tcp_connect_from(banned, addr);
    send_announce(&mut again);
    let mut answer = Vec::new();
    std::io::Read::read_to_end(&mut again, &mut answer).unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    assert_eq!(tracker.statistics().banned, 1);
}

fn qbittorrent(n: u8) -> PeerId {
    let mut id = [n; 20];
    id[..4].copy_from_slice(b"-qB4");
    PeerId(id)
}

fn private_announce(client: &mut Client, passkey: PasskeyParam, left: u64) -> TrackerResponse {
    client.announce(&AnnounceRequest {
        passkey,
        ..announce(
            info_hash(6),
            qbittorrent(1),
            6881,
            left,
            AnnounceEvent::None,
        )
    })
}

fn failure(answer: TrackerResponse) -> String {
    match answer {
        TrackerResponse::Failure(reason) => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn passkeys_users_and_registered_torrents_change_at_run_time() {
    let dir = temp_dir("http-api-private");
    let files = ApiFiles::new("http-private");
    let mut config = api_config(&files);
    configure_private(&dir, &mut config.private, &mut config.accounting);
    let passkeys_file = config.private.passkeys_path.clone();
    let tracker = start(config);
    let api = api_of(&tracker);
    let mut client = Client::connect(tracker.local_addr());
    let new_key = PasskeyParam::Key(PASSKEY_UNKNOWN);
    let key_path = format!("/api/v1/passkeys/{}", PASSKEY_UNKNOWN.as_str());

    assert_eq!(
        failure(private_announce(&mut client, new_key, 0)),
        "unknown passkey"
    );
    let put = api.send("PUT", &key_path, r#"{"user_id": 77}"#);
    assert_eq!(put.status, 201, "{put:?}");
    assert_eq!(put.json["user_id"], 77);
    assert!(matches!(
        private_announce(&mut client, new_key, 10),
        TrackerResponse::Announce(_)
    ));
    assert!(
        std::fs::read_to_string(&passkeys_file)
            .unwrap()
            .contains(PASSKEY_UNKNOWN.as_str())
    );
    let listed = api.get("/api/v1/passkeys");
    assert!(
        listed.json["passkeys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["passkey"] == PASSKEY_UNKNOWN.as_str() && p["user_id"] == 77),
        "{listed:?}"
    );

    // User 77 may not leech, then may again.
    assert_eq!(
        api.send("PUT", "/api/v1/users/77", r#"{"can_leech": false}"#)
            .status,
        201
    );
    assert_eq!(
        failure(private_announce(&mut client, new_key, 10)),
        "leeching not allowed for this account"
    );
    assert!(matches!(
        private_announce(&mut client, new_key, 0),
        TrackerResponse::Announce(_)
    ));
    assert_eq!(api.send("DELETE", "/api/v1/users/77", "").status, 200);
    assert_eq!(api.send("DELETE", "/api/v1/users/77", "").status, 404);
    assert!(matches!(
        private_announce(&mut client, new_key, 10),
        TrackerResponse::Announce(_)
    ));

    // Registered torrents and their multipliers.
    let torrent = format!("/api/v1/registered-torrents/{}", info_hash(6).to_hex());
    let put = api.send(
        "PUT",
        &torrent,
        r#"{"upload_percent": 200, "download_percent": 0}"#,
    );
    assert_eq!(put.status, 201, "{put:?}");
    assert_eq!(api.send("PUT", &torrent, "").status, 200);
    assert_eq!(api.send("DELETE", &torrent, "").status, 200);
    assert_eq!(api.send("DELETE", &torrent, "").status, 404);

    // Refusals of the private routes.
    assert_eq!(api.send("PUT", "/api/v1/passkeys/short", "").status, 400);
    assert_eq!(
        api.send("PUT", "/api/v1/users/x", r#"{"can_leech": true}"#)
            .status,
        400
    );
    assert_eq!(
        api.send("PUT", "/api/v1/users/7", "").status,
        400,
        "can_leech is required"
    );
    assert_eq!(
        api.send("PUT", &torrent, r#"{"upload_percent": 100000000}"#)
            .status,
        400,
        "a factor out of range"
    );

    assert_eq!(api.send("DELETE", &key_path, "").status, 200);
    assert_eq!(api.send("DELETE", &key_path, "").status, 404);
    assert_eq!(
        failure(private_announce(&mut client, new_key, 0)),
        "unknown passkey"
    );
    assert!(matches!(
        private_announce(&mut client, PasskeyParam::Key(PASSKEY_A), 0),
        TrackerResponse::Announce(_)
    ));
    let stats = api.get("/api/v1/stats");
    let changes = &stats.json["admin"]["changes"];
    assert_eq!(
        (changes["passkeys"].as_u64(), changes["users"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(changes["registered_torrents"], 3);
}
