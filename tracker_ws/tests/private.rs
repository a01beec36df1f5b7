//! Private mode of the WebSocket tracker: the scenarios of
//! `tracker_common::testing::accounting` (a scripted run, SIGTERM or kill -9 and a
//! restart mid-way, a PostgreSQL outage) against the binary on SQLite and PostgreSQL,
//! and the refusals: an unknown or missing passkey and a client not on the allow list
//! are answered with their message, counted, and stored nowhere; answers from a
//! connection whose passkey was revoked are not relayed.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context;
use tracker_common::private::passkey::Passkey;
use tracker_common::testing::accounting::{
    AnnounceClient, PASSKEY_A, PASSKEY_B, PASSKEY_UNKNOWN, ScriptPeer, Step, configure_private,
    write_private_config,
};
use tracker_common::testing::{Spawned, temp_dir};
use tracker_ws_protocol::{
    Action, AnnounceEvent, AnnounceRequest, InMessage, InfoHash, ParsedOutMessage, PeerId,
    ScrapeCounts, parse_out_message, write_in_message,
};
use tungstenite::{Message, WebSocket};

use common::{Client, announce, answer, info_hash, offers, test_config};

/// The scenarios' WebTorrent client: one connection per scripted peer, opened on
/// `/PASSKEY/announce` and kept; opened again after a restart or a broken connection.
#[derive(Default)]
struct WsAnnouncer {
    connections: HashMap<PeerId, WebSocket<TcpStream>>,
}

impl WsAnnouncer {
    fn connect(tracker: SocketAddr, passkey: &Passkey) -> anyhow::Result<WebSocket<TcpStream>> {
        let stream = TcpStream::connect(tracker).context("connect")?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let (ws, _) =
            tungstenite::client::client(format!("ws://{tracker}/{passkey}/announce"), stream)
                .map_err(|err| anyhow::anyhow!("websocket upgrade: {err}"))?;
        Ok(ws)
    }

    /// Sends the announce on `ws` and reads up to its reply.
    fn exchange(ws: &mut WebSocket<TcpStream>, text: &str, hash: InfoHash) -> anyhow::Result<()> {
        ws.send(Message::text(text)).context("send")?;
        loop {
            let Message::Text(reply) = ws.read().context("read")? else {
                continue;
            };
            match parse_out_message(reply.as_bytes()) {
                Ok(ParsedOutMessage::AnnounceResponse {
                    info_hash,
                    interval,
                    ..
                }) if info_hash == hash => {
                    anyhow::ensure!(interval > 0, "an announce reply without interval");
                    return Ok(());
                }
                Ok(ParsedOutMessage::Failure { reason, .. }) => {
                    anyhow::bail!("failure reason: {reason}");
                }
                // Nothing else is expected (no offers are made), but nothing else is a
                // reply to this announce either.
                Ok(_) => {}
                Err(err) => anyhow::bail!("unreadable message {reply:?}: {err}"),
            }
        }
    }
}

impl AnnounceClient for WsAnnouncer {
    fn announce(
        &mut self,
        tracker: SocketAddr,
        peer: &ScriptPeer,
        step: &Step,
    ) -> anyhow::Result<()> {
        let request = AnnounceRequest {
            info_hash: peer.info_hash,
            peer_id: peer.peer_id,
            event: step.event,
            left: Some(step.left),
            uploaded: Some(step.uploaded),
            downloaded: Some(step.downloaded),
            numwant: Some(0),
            offers: Vec::new(),
            answer: None,
        };
        let mut json = Vec::new();
        write_in_message(&InMessage::Announce(request), &mut json);
        let text = String::from_utf8(json).context("announce text")?;
        // A connection kept from before may have broken (the tracker restarted): one
        // more try on a new one.
        if let Some(ws) = self.connections.get_mut(&peer.peer_id)
            && Self::exchange(ws, &text, peer.info_hash).is_ok()
        {
            return Ok(());
        }
        self.connections.remove(&peer.peer_id);
        let mut ws = Self::connect(tracker, &peer.passkey)?;
        Self::exchange(&mut ws, &text, peer.info_hash)?;
        self.connections.insert(peer.peer_id, ws);
        Ok(())
    }

    fn reset(&mut self) {
        self.connections.clear();
    }
}

tracker_common::accounting_scenario_tests!(
    env!("CARGO_BIN_EXE_tracker_ws"),
    "ws-private",
    WsAnnouncer::default()
);

/// A peer id of an allowed client (`-qB4`), numbered.
fn qbit(n: u8) -> PeerId {
    let mut id = [b'0'; 20];
    id[..4].copy_from_slice(b"-qB4");
    id[19] = n;
    PeerId(id)
}

fn path(passkey: &Passkey) -> String {
    format!("/{passkey}/announce")
}

fn failure(reason: &str, action: Action, hash: Option<InfoHash>) -> ParsedOutMessage {
    ParsedOutMessage::Failure {
        reason: reason.to_string(),
        action: Some(action),
        info_hash: hash,
    }
}

/// A private tracker in-process on SQLite, with users A and B and the allow list
/// `-qB4`; its directory, removed by the caller.
fn private_tracker(name: &str) -> (tracker_ws::Tracker, std::path::PathBuf) {
    let dir = temp_dir(name);
    let mut config = test_config("127.0.0.1:0");
    configure_private(&dir, &mut config.private, &mut config.accounting);
    (common::start(config), dir)
}

#[test]
fn refusals_are_answered_counted_and_stored_nowhere() {
    let (tracker, dir) = private_tracker("ws-private-refusals");
    let addr = tracker.local_addr();
    let hash = info_hash(7);
    let refused = |reason: &str| failure(reason, Action::Announce, Some(hash));

    // A peer in the swarm, to see that no offer of a refused announce reaches it.
    let mut member = Client::connect_path(addr, &path(&PASSKEY_B));
    assert_eq!(
        member.announce_counts(announce(hash, qbit(1), Some(10), AnnounceEvent::Started)),
        (0, 1)
    );

    let with_offers = |peer: PeerId| AnnounceRequest {
        numwant: Some(2),
        offers: offers(1, 2),
        ..announce(hash, peer, Some(0), AnnounceEvent::Started)
    };
    // An upgrade without a passkey in force is refused: it holds no connection. An
    // unknown passkey, a segment that is not a passkey at all, and no passkey (/announce
    // and /).
    assert_upgrade_refused(addr, &path(&PASSKEY_UNKNOWN), 403, "unknown passkey");
    assert_upgrade_refused(addr, "/not-a-passkey/announce", 403, "unknown passkey");
    assert_upgrade_refused(addr, "/announce", 403, "missing passkey");
    assert_upgrade_refused(addr, "/", 403, "missing passkey");
    // A known passkey from a client not on the allow list: the connection opens (the
    // peer id comes with the announce), and its announces are refused.
    let mut other_client = Client::connect_path(addr, &format!("/announce/{PASSKEY_A}"));
    let mut transmission = [b'1'; 20];
    transmission[..4].copy_from_slice(b"-TR4");
    other_client.announce(with_offers(PeerId(transmission)));
    assert_eq!(other_client.next(), refused("client not allowed"));
    // The connection stays open: the same connection is refused again.
    other_client.announce(with_offers(PeerId(transmission)));
    assert_eq!(other_client.next(), refused("client not allowed"));

    // Stored nowhere: the swarm holds the member alone, and no offer was relayed (the
    // socket worker refuses before anything reaches a request worker).
    assert_eq!(
        member.scrape(&[hash]),
        vec![(
            hash,
            ScrapeCounts {
                seeders: 0,
                leechers: 1,
                completed: 0
            }
        )]
    );
    assert_eq!(tracker.connections().offers_relayed, 0);

    // Counted by cause: missing (2 upgrades), unknown (2 upgrades), client (2 announces).
    let private = tracker.statistics().private;
    assert!(private.enabled);
    assert_eq!(private.refused, [2, 2, 2, 0, 0], "{private:?}");

    // An upgrade on a path that is not the tracker's is refused in private mode.
    assert_upgrade_refused(
        addr,
        "/elsewhere",
        404,
        "not found: connect to /PASSKEY/announce",
    );

    // A known passkey and client are served, and the swarm then has both.
    let mut user = Client::connect_path(addr, &path(&PASSKEY_A));
    assert_eq!(
        user.announce_counts(announce(hash, qbit(6), Some(0), AnnounceEvent::Started)),
        (1, 1)
    );
    tracker.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Asserts that an upgrade on `path` is refused with `status` and a body of `reason`.
fn assert_upgrade_refused(addr: SocketAddr, path: &str, status: u16, reason: &str) {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    match tungstenite::client::client(format!("ws://{addr}{path}"), stream) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            assert_eq!(response.status(), status, "{path}");
            let body = response.body().as_deref().unwrap_or_default();
            assert_eq!(String::from_utf8_lossy(body).trim_end(), reason, "{path}");
        }
        Err(err) => panic!("{path}: expected a {status} refusal, got {err}"),
        Ok(_) => panic!("{path}: expected a {status} refusal, the upgrade was accepted"),
    }
}

#[test]
fn a_revoked_passkeys_connection_is_closed_and_its_peer_leaves() {
    let dir = temp_dir("ws-private-revoked");
    let url = tracker_common::testing::accounting::sqlite_url(&dir);
    let config = write_private_config(&dir, &url, "");
    let mut spawned = Spawned::start(env!("CARGO_BIN_EXE_tracker_ws").as_ref(), &config);
    let addr = spawned.addr;
    let hash = info_hash(9);

    let mut offerer = Client::connect_path(addr, &path(&PASSKEY_A));
    let mut answerer = Client::connect_path(addr, &path(&PASSKEY_B));
    answerer.announce_counts(announce(hash, qbit(2), Some(5), AnnounceEvent::Started));
    let offer_to_answerer = |first: u8| AnnounceRequest {
        numwant: Some(1),
        offers: offers(first, 1),
        ..announce(hash, qbit(1), Some(0), AnnounceEvent::None)
    };

    // While both passkeys are in force, an offer and its answer go through.
    offerer.announce_counts(offer_to_answerer(1));
    let ParsedOutMessage::Offer { offer_id, .. } = answerer.next() else {
        panic!("no offer relayed");
    };
    answerer.announce(answer(hash, qbit(2), qbit(1), offer_id, "first"));
    assert!(matches!(offerer.next(), ParsedOutMessage::Answer { .. }));

    // B's passkey is revoked while its connection lives.
    offerer.announce_counts(offer_to_answerer(2));
    let ParsedOutMessage::Offer { offer_id, .. } = answerer.next() else {
        panic!("no offer relayed");
    };
    std::fs::write(dir.join("passkeys.txt"), format!("{PASSKEY_A}\n")).unwrap();
    spawned.signal("USR1");
    Spawned::wait_line(&spawned.lines, "passkeys reloaded");

    // Its connection is closed with 1008 (policy) at the worker's next housekeeping,
    // whatever it sends meanwhile: an answer to the offer it holds is refused too.
    answerer.announce(answer(hash, qbit(2), qbit(1), offer_id, "second"));
    assert_eq!(answerer.close_code(), Some(1008));
    // Its peer left the swarm before the close frame was written: the offerer's next
    // announce (same torrent, so the same request worker, after the departure) finds
    // itself alone, and no answer but the first was relayed (`announce_counts` panics
    // on anything but its reply).
    assert_eq!(
        offerer.announce_counts(offer_to_answerer(3)),
        (1, 0),
        "the revoked peer is still in the swarm"
    );
    let metrics = spawned.metrics.expect("the metrics endpoint's address");
    let (status, body) = tracker_common::testing::http_get(metrics, "/stats.json");
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stats["relayed"]["answer"], 1, "{stats}");
    // And B can no longer connect.
    assert_upgrade_refused(addr, &path(&PASSKEY_B), 403, "unknown passkey");
    spawned.signal("TERM");
    assert_eq!(spawned.wait_exit(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts the binary on passkeys read from `shoal_passkeys` (A enabled, B disabled),
/// re-read every `refresh_secs`; returns it, its directory and the database file.
fn tracker_on_database_passkeys(
    name: &str,
    refresh_secs: u64,
) -> (Spawned, std::path::PathBuf, std::path::PathBuf) {
    let dir = temp_dir(name);
    let db = dir.join("accounting.db");
    let url = tracker_common::testing::accounting::sqlite_url(&dir);
    // The schema, as the tracker would make it, then the users.
    drop(tracker_common::private::store::open(&url).unwrap());
    let sql = rusqlite::Connection::open(&db).unwrap();
    sql.execute(
        "INSERT INTO shoal_passkeys (passkey, enabled) VALUES (?1, 1), (?2, 0)",
        [PASSKEY_A.as_str(), PASSKEY_B.as_str()],
    )
    .unwrap();
    let config = write_private_config(&dir, &url, &format!("refresh_secs = {refresh_secs}\n"));
    // write_private_config names the passkey file; these tests read the table instead.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("passkeys_path = \"{}\"", dir.join("passkeys.txt").display()),
        "passkeys_path = \"\"",
    );
    std::fs::write(&config, text).unwrap();
    let spawned = Spawned::start(env!("CARGO_BIN_EXE_tracker_ws").as_ref(), &config);
    (spawned, dir, db)
}

/// Announces as a new peer of `passkey`: `None` if served, the failure reason if not
/// (the refused upgrade's body, for a passkey not in force).
fn try_announce(addr: SocketAddr, passkey: &Passkey, peer: u8) -> Option<String> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let ws = match tungstenite::client::client(format!("ws://{addr}{}", path(passkey)), stream) {
        Ok((ws, _)) => ws,
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            assert_eq!(response.status(), 403);
            let body = response.body().as_deref().unwrap_or_default();
            return Some(String::from_utf8_lossy(body).trim_end().to_string());
        }
        Err(err) => panic!("upgrade: {err}"),
    };
    let mut client = Client { ws };
    client.announce(announce(
        info_hash(11),
        qbit(peer),
        Some(5),
        AnnounceEvent::Started,
    ));
    match client.next() {
        ParsedOutMessage::AnnounceResponse { .. } => None,
        ParsedOutMessage::Failure { reason, .. } => Some(reason),
        other => panic!("unexpected reply {other:?}"),
    }
}

/// Waits (10 s at most) until `passkey`'s announces get `expected`.
fn wait_until(addr: SocketAddr, passkey: &Passkey, expected: Option<&str>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for peer in 100u8.. {
        let got = try_announce(addr, passkey, peer);
        if got.as_deref() == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{passkey}: still {got:?} after 10 s, expected {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn passkeys_from_the_database_are_reread_on_sigusr1() {
    // A refresh interval longer than the test: only the signal can bring a change.
    let (mut spawned, dir, db) = tracker_on_database_passkeys("ws-private-db-usr1", 3600);
    let addr = spawned.addr;
    assert_eq!(try_announce(addr, &PASSKEY_A, 1), None);
    assert_eq!(
        try_announce(addr, &PASSKEY_B, 2).as_deref(),
        Some("unknown passkey")
    );
    let sql = rusqlite::Connection::open(&db).unwrap();
    sql.execute("UPDATE shoal_passkeys SET enabled = 1", [])
        .unwrap();
    sql.execute(
        "UPDATE shoal_passkeys SET enabled = 0 WHERE passkey = ?1",
        [PASSKEY_A.as_str()],
    )
    .unwrap();
    assert_eq!(
        try_announce(addr, &PASSKEY_B, 3).as_deref(),
        Some("unknown passkey"),
        "not before the signal"
    );
    spawned.signal("USR1");
    wait_until(addr, &PASSKEY_B, None);
    assert_eq!(
        try_announce(addr, &PASSKEY_A, 4).as_deref(),
        Some("unknown passkey")
    );
    spawned.signal("TERM");
    assert_eq!(spawned.wait_exit(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn passkeys_from_the_database_are_reread_every_refresh_secs() {
    let (mut spawned, dir, db) = tracker_on_database_passkeys("ws-private-db-refresh", 1);
    let addr = spawned.addr;
    assert_eq!(
        try_announce(addr, &PASSKEY_B, 1).as_deref(),
        Some("unknown passkey")
    );
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("UPDATE shoal_passkeys SET enabled = 1", [])
        .unwrap();
    wait_until(addr, &PASSKEY_B, None);
    spawned.signal("TERM");
    assert_eq!(spawned.wait_exit(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
