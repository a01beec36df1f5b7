//! Private mode end to end: the scenario harness of `tracker_common::testing::accounting`
//! (clean run, SIGTERM and restart, SIGKILL and restart, PostgreSQL down for several
//! flush intervals) played over HTTP against the binary, on SQLite and PostgreSQL; and
//! the refusals (missing passkey, unknown passkey, client not on the allow list),
//! answered with their cause, counted, and stored nowhere; and a passkey taken out of
//! the file refused after SIGUSR1, on a connection opened before.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use common::{Client, announce, info_hash, start, test_config};
use tracker_common::private::passkey::Refusal;
use tracker_common::testing::accounting::{
    AnnounceClient, Database, PASSKEY_A, PASSKEY_B, PASSKEY_UNKNOWN, ScriptPeer, Step, Totals,
    configure_private, write_private_config,
};
use tracker_common::testing::{Spawned, http_get, temp_dir};
use tracker_http_protocol::{
    AnnounceEvent, AnnounceRequest, InfoHash, PasskeyParam, PeerId, TrackerResponse,
    parse_http_response,
};

/// The scenarios' client: one HTTP/1.1 `GET /PASSKEY/announce?...` per announce, on a
/// connection of its own (`Connection: close`), so that a restarted tracker needs
/// nothing forgotten.
struct HttpAnnouncer;

impl AnnounceClient for HttpAnnouncer {
    fn announce(
        &mut self,
        tracker: SocketAddr,
        peer: &ScriptPeer,
        step: &Step,
    ) -> anyhow::Result<()> {
        let request = AnnounceRequest {
            info_hash: peer.info_hash,
            peer_id: peer.peer_id,
            port: peer.port,
            uploaded: Some(step.uploaded),
            downloaded: Some(step.downloaded),
            left: step.left,
            event: step.event,
            numwant: None,
            compact: true,
            no_peer_id: false,
            ip: None,
            passkey: PasskeyParam::Key(peer.passkey),
        };
        let mut bytes = Vec::new();
        request.write_http(&mut bytes, &tracker.to_string(), false);
        let mut stream =
            TcpStream::connect_timeout(&tracker, Duration::from_secs(5)).context("connect")?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(&bytes).context("send")?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).context("read")?;
        let (response, _) = parse_http_response(&answer, 1 << 20)
            .map_err(anyhow::Error::msg)?
            .context("no whole HTTP response")?;
        anyhow::ensure!(response.status == 200, "status {}", response.status);
        match TrackerResponse::parse_body(&response.body).map_err(anyhow::Error::msg)? {
            TrackerResponse::Announce(_) => Ok(()),
            TrackerResponse::Failure(reason) => anyhow::bail!("failure reason: {reason}"),
            other => anyhow::bail!("not an announce answer: {other:?}"),
        }
    }
}

tracker_common::accounting_scenario_tests!(
    env!("CARGO_BIN_EXE_tracker_http"),
    "http",
    HttpAnnouncer
);

/// A tracker in private mode on SQLite, in-process: users A and B, clients `-qB4` only,
/// full scrapes served.
fn private_tracker(dir: &Path, scrape_requires_passkey: bool) -> (tracker_http::Tracker, Database) {
    let mut config = test_config("127.0.0.1:0");
    let database = configure_private(dir, &mut config.private, &mut config.accounting);
    config.private.scrape_requires_passkey = scrape_requires_passkey;
    config.http.full_scrape_max_torrents = 100;
    (start(config), database)
}

fn qbittorrent(n: u8) -> PeerId {
    let mut id = [n; 20];
    id[..4].copy_from_slice(b"-qB4");
    PeerId(id)
}

fn with_passkey(
    hash: InfoHash,
    peer: PeerId,
    uploaded: u64,
    passkey: PasskeyParam,
) -> AnnounceRequest {
    AnnounceRequest {
        uploaded: Some(uploaded),
        passkey,
        ..announce(hash, peer, 6881, 0, AnnounceEvent::None)
    }
}

fn failure(answer: TrackerResponse) -> String {
    match answer {
        TrackerResponse::Failure(reason) => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn refusals_name_their_cause_are_counted_and_stored_nowhere() {
    let dir = temp_dir("http-private-refusals");
    let (tracker, database) = private_tracker(&dir, true);
    let mut client = Client::connect(tracker.local_addr());
    let hash = info_hash(7);
    let a = PasskeyParam::Key(PASSKEY_A);
    let b = PasskeyParam::Key(PASSKEY_B);

    // Announces: no passkey, one not in force, one that is not a passkey, and a client
    // not on the allow list (with a good passkey and bytes that must not be credited).
    let cases = [
        (
            PasskeyParam::Missing,
            qbittorrent(1),
            Refusal::MissingPasskey,
        ),
        (
            PasskeyParam::Key(PASSKEY_UNKNOWN),
            qbittorrent(2),
            Refusal::UnknownPasskey,
        ),
        (
            PasskeyParam::Malformed,
            qbittorrent(3),
            Refusal::UnknownPasskey,
        ),
        (
            a,
            PeerId(*b"-XX1000-xxxxxxxxxxxx"),
            Refusal::ClientNotAllowed,
        ),
    ];
    for (passkey, peer, cause) in cases {
        let answer = client.announce(&with_passkey(hash, peer, 5_000_000, passkey));
        assert_eq!(failure(answer), cause.message(), "{passkey:?}");
    }
    // Scrapes need a known passkey too, full scrapes included.
    let scrape_cases = [
        (vec![hash], PasskeyParam::Missing, Refusal::MissingPasskey),
        (Vec::new(), PasskeyParam::Missing, Refusal::MissingPasskey),
        (
            Vec::new(),
            PasskeyParam::Key(PASSKEY_UNKNOWN),
            Refusal::UnknownPasskey,
        ),
    ];
    for (hashes, passkey, cause) in scrape_cases {
        let answer = client.scrape_with(&hashes, passkey);
        assert_eq!(failure(answer), cause.message(), "{hashes:?} {passkey:?}");
    }
    // Nothing refused reached the swarm.
    let TrackerResponse::Scrape(files) = client.scrape_with(&[hash], a) else {
        panic!("a scrape with a known passkey is answered");
    };
    assert_eq!((files[0].1.seeders, files[0].1.leechers), (0, 0));
    assert!(matches!(
        client.scrape_with(&[], a),
        TrackerResponse::Scrape(_)
    ));

    // Users A and B, in Gazelle's form and in UNIT3D's, are served and credited.
    let started = |passkey| AnnounceRequest {
        event: AnnounceEvent::Started,
        ..with_passkey(hash, qbittorrent(10), 0, passkey)
    };
    client.announce_ok(&started(a));
    client.announce_ok(&with_passkey(hash, qbittorrent(10), 1_000, a));
    let unit3d = |uploaded: u64, event: &str| {
        format!(
            "GET /announce/{PASSKEY_B}?info_hash={}&peer_id={}&port=6882&uploaded={uploaded}\
             &downloaded=0&left=0&event={event} HTTP/1.1\r\nHost: t\r\n\r\n",
            "%07".repeat(20),
            "-qB4".to_string() + &"b".repeat(16),
        )
    };
    for (uploaded, event) in [(0, "started"), (2_000, "")] {
        client.send(unit3d(uploaded, event).as_bytes());
        let response = client.response();
        assert!(
            matches!(
                TrackerResponse::parse_body(&response.body).unwrap(),
                TrackerResponse::Announce(_)
            ),
            "{}",
            String::from_utf8_lossy(&response.body)
        );
    }
    let TrackerResponse::Scrape(files) = client.scrape_with(&[hash], b) else {
        panic!("a scrape with a known passkey is answered");
    };
    assert_eq!(files[0].1.seeders, 2);

    let stats = tracker.statistics();
    assert!(stats.private.enabled);
    let refused = |cause: Refusal| stats.private.refused[cause.index()];
    assert_eq!(refused(Refusal::MissingPasskey), 3, "{stats:?}");
    assert_eq!(refused(Refusal::UnknownPasskey), 3, "{stats:?}");
    assert_eq!(refused(Refusal::ClientNotAllowed), 1, "{stats:?}");
    assert_eq!(stats.error_responses, 7, "{stats:?}");
    let metrics = tracker.metrics_addr().expect("metrics are on");
    let (status, text) = http_get(metrics, "/metrics");
    assert_eq!(status, 200);
    for (cause, n) in [
        ("missing_passkey", 3),
        ("unknown_passkey", 3),
        ("client_not_allowed", 1),
    ] {
        let line =
            format!("shoal_private_refused_total{{protocol=\"http\",cause=\"{cause}\"}} {n}");
        assert!(text.contains(&line), "{line} in\n{text}");
    }

    // Only what the served announces moved is credited; the refused ones left no row.
    let expected = [
        (
            (PASSKEY_A, hash),
            Totals {
                uploaded: 1_000,
                downloaded: 0,
                completed: false,
            },
        ),
        (
            (PASSKEY_B, hash),
            Totals {
                uploaded: 2_000,
                downloaded: 0,
                completed: false,
            },
        ),
    ]
    .into_iter()
    .collect();
    let totals = database.wait_for(Duration::from_secs(30), |t| *t == expected);
    assert_eq!(totals, expected);
    // A refused announce without a baseline would be credited nothing but would leave
    // one: only the two served peers have baselines.
    assert_eq!(database.committed_baselines().unwrap(), 2);
    // The credit is in: /health shows the accounting state, and it is whole.
    let (status, body) = http_get(metrics, "/health");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    let accounting = &health["accounting"];
    assert_eq!(accounting["status"], "ok", "{health}");
    assert_eq!(accounting["commit_failures_in_a_row"], 0, "{health}");
    assert!(
        accounting["batches_committed"].as_u64() >= Some(1),
        "{health}"
    );
    assert!(
        accounting["last_commit_unix_secs"].as_u64() > Some(0),
        "{health}"
    );
    tracker.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scrapes_without_a_passkey_when_the_config_allows_them() {
    let dir = temp_dir("http-private-open-scrapes");
    let (tracker, _) = private_tracker(&dir, false);
    let mut client = Client::connect(tracker.local_addr());
    let hash = info_hash(8);
    let answer = client.announce(&with_passkey(
        hash,
        qbittorrent(1),
        0,
        PasskeyParam::Missing,
    ));
    assert_eq!(failure(answer), Refusal::MissingPasskey.message());
    client.announce_ok(&with_passkey(
        hash,
        qbittorrent(1),
        0,
        PasskeyParam::Key(PASSKEY_A),
    ));
    assert_eq!(client.scrape_one(hash), (1, 0, 0));
    assert!(matches!(
        client.scrape_with(&[], PasskeyParam::Missing),
        TrackerResponse::Scrape(_)
    ));
    assert_eq!(tracker.statistics().private.refused, [1, 0, 0, 0, 0]);
    tracker.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_passkey_taken_out_of_the_file_is_refused_after_sigusr1() {
    let dir = temp_dir("http-private-reload");
    let url = tracker_common::testing::accounting::sqlite_url(&dir);
    let config = write_private_config(&dir, &url, "");
    let mut spawned = Spawned::start(Path::new(env!("CARGO_BIN_EXE_tracker_http")), &config);
    // One keep-alive connection throughout: its socket worker sees the new set.
    let mut client = Client::connect(spawned.addr);
    let hash = info_hash(9);
    let a = PasskeyParam::Key(PASSKEY_A);
    let b = PasskeyParam::Key(PASSKEY_B);
    client.announce_ok(&with_passkey(hash, qbittorrent(1), 0, a));
    client.announce_ok(&with_passkey(hash, qbittorrent(2), 0, b));

    std::fs::write(dir.join("passkeys.txt"), format!("{PASSKEY_B}\n")).unwrap();
    spawned.signal("USR1");
    Spawned::wait_line(&spawned.lines, "passkeys reloaded");
    let answer = client.announce(&with_passkey(hash, qbittorrent(1), 0, a));
    assert_eq!(failure(answer), Refusal::UnknownPasskey.message());
    client.announce_ok(&with_passkey(hash, qbittorrent(2), 0, b));
    spawned.signal("TERM");
    assert_eq!(spawned.wait_exit(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
