//! Private mode's site tables over the real binary, passkeys read from the accounting
//! database: users, not passkeys (credit by `shoal_passkeys.user_id`, a rotated passkey
//! keeps the user's history and the old one is refused after a reload), users who may
//! not leech (`shoal_users.can_leech`), registered torrents
//! (`private.require_registered_torrents`), freeleech and double upload
//! (`shoal_torrents`' and `shoal_settings`' percents), and the site cache that serves a
//! restart while the database is unreachable.

mod common;

use std::time::Duration;

use common::{Client, announce};
use tracker_common::testing::accounting::{PASSKEY_A, PASSKEY_B, write_private_config};
use tracker_common::testing::{Spawned, temp_dir};
use tracker_http_protocol::{
    AnnounceEvent, AnnounceRequest, InfoHash, PasskeyParam, PeerId, TrackerResponse,
};

const REGISTERED: InfoHash = InfoHash([0x11; 20]);
const FREELEECH: InfoHash = InfoHash([0x22; 20]);
const UNREGISTERED: InfoHash = InfoHash([0x33; 20]);

fn peer(n: u8) -> PeerId {
    let mut id = [b'0'; 20];
    id[..4].copy_from_slice(b"-qB4");
    id[19] = n;
    PeerId(id)
}

fn request(
    passkey: tracker_common::private::passkey::Passkey,
    hash: InfoHash,
    peer_id: PeerId,
    event: AnnounceEvent,
    uploaded: u64,
    left: u64,
) -> AnnounceRequest {
    AnnounceRequest {
        uploaded: Some(uploaded),
        downloaded: Some(uploaded),
        left,
        event,
        passkey: PasskeyParam::Key(passkey),
        ..announce(hash, peer_id, 6881, left, event)
    }
}

fn outcome(answer: TrackerResponse) -> Result<(), String> {
    match answer {
        TrackerResponse::Announce(_) => Ok(()),
        TrackerResponse::Failure(reason) => Err(reason),
        other => panic!("not an announce answer: {other:?}"),
    }
}

/// `shoal_credits` of `user` on `hash`: (uploaded, downloaded, uploaded_raw,
/// downloaded_raw).
fn credits(db: &rusqlite::Connection, user: i64, hash: InfoHash) -> Option<(i64, i64, i64, i64)> {
    use rusqlite::OptionalExtension;
    db.query_row(
        "SELECT uploaded, downloaded, uploaded_raw, downloaded_raw FROM shoal_credits
         WHERE user_id = ?1 AND info_hash = ?2",
        rusqlite::params![user, &hash.0[..]],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
    )
    .optional()
    .unwrap()
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "{what} within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn users_rotation_leeching_registered_torrents_and_factors() {
    let dir = temp_dir("http-site-tables");
    let path = dir.join("accounting.db");
    let url = format!("sqlite://{}", path.display());
    // The schema, as the tracker makes it, then the site's rows: user 7 with passkey A,
    // user 8 (passkey B) may not leech, two registered torrents, one freeleech, and
    // double upload everywhere.
    drop(tracker_common::private::store::open(&url).unwrap());
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute_batch(&format!(
        "INSERT INTO shoal_passkeys (passkey, enabled, user_id) VALUES ('{a}', 1, 7), ('{b}', 1, 8);
         INSERT INTO shoal_users (user_id, can_leech) VALUES (8, 0);
         INSERT INTO shoal_torrents (info_hash, upload_percent, download_percent)
             VALUES (x'{r}', 100, 100), (x'{f}', 100, 0);
         INSERT INTO shoal_settings (name, value) VALUES ('upload_percent', 200);",
        a = PASSKEY_A.as_str(),
        b = PASSKEY_B.as_str(),
        r = "11".repeat(20),
        f = "22".repeat(20),
    ))
    .unwrap();
    let config = write_private_config(&dir, &url, "require_registered_torrents = true\n");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("passkeys_path = \"{}\"", dir.join("passkeys.txt").display()),
        "passkeys_path = \"\"",
    );
    std::fs::write(&config, text).unwrap();
    let mut spawned = Spawned::start(env!("CARGO_BIN_EXE_tracker_http").as_ref(), &config);
    let mut client = Client::connect(spawned.addr);
    let a = PASSKEY_A;
    let b = PASSKEY_B;

    // Registered torrents only.
    assert_eq!(
        outcome(client.announce(&request(
            a,
            UNREGISTERED,
            peer(1),
            AnnounceEvent::Started,
            0,
            10
        ))),
        Err("unregistered torrent".to_string())
    );
    // User 8 may seed, not leech; a leecher's stop is let through.
    assert_eq!(
        outcome(client.announce(&request(
            b,
            REGISTERED,
            peer(2),
            AnnounceEvent::Started,
            0,
            10
        ))),
        Err("leeching not allowed for this account".to_string())
    );
    assert_eq!(
        outcome(client.announce(&request(
            b,
            REGISTERED,
            peer(2),
            AnnounceEvent::Stopped,
            0,
            10
        ))),
        Ok(())
    );
    assert_eq!(
        outcome(client.announce(&request(
            b,
            REGISTERED,
            peer(3),
            AnnounceEvent::Started,
            0,
            0
        ))),
        Ok(())
    );
    // User 7 leeches both torrents: 1,000 bytes each way.
    for (hash, n) in [(REGISTERED, 4), (FREELEECH, 5)] {
        for (event, bytes) in [(AnnounceEvent::Started, 0), (AnnounceEvent::None, 1_000)] {
            assert_eq!(
                outcome(client.announce(&request(a, hash, peer(n), event, bytes, 10))),
                Ok(())
            );
        }
    }
    eventually("user 7's credit", || {
        credits(&db, 7, FREELEECH).is_some_and(|c| c.2 == 1_000)
            && credits(&db, 7, REGISTERED).is_some_and(|c| c.2 == 1_000)
    });
    // Double upload on both; downloads free on the freeleech torrent.
    assert_eq!(
        credits(&db, 7, REGISTERED),
        Some((2_000, 1_000, 1_000, 1_000))
    );
    assert_eq!(credits(&db, 7, FREELEECH), Some((2_000, 0, 1_000, 1_000)));

    // The site rotates user 7's passkey: a new row for user 7, the old one disabled.
    // After the reload (SIGUSR1), the old one is refused and the new one credits the
    // same user, on top of its history.
    let rotated = tracker_common::private::passkey::Passkey(*b"RotatedRotatedRotatedRotated0007");
    db.execute_batch(&format!(
        "UPDATE shoal_passkeys SET enabled = 0 WHERE passkey = '{}';
         INSERT INTO shoal_passkeys (passkey, enabled, user_id) VALUES ('{}', 1, 7);",
        a.as_str(),
        rotated.as_str()
    ))
    .unwrap();
    spawned.signal("USR1");
    eventually("the old passkey refused", || {
        outcome(client.announce(&request(
            a,
            REGISTERED,
            peer(4),
            AnnounceEvent::None,
            1_500,
            10,
        ))) == Err("unknown passkey".to_string())
    });
    assert_eq!(
        outcome(client.announce(&request(
            rotated,
            REGISTERED,
            peer(4),
            AnnounceEvent::None,
            2_000,
            10
        ))),
        Ok(())
    );
    eventually("the rotated passkey's credit", || {
        credits(&db, 7, REGISTERED).is_some_and(|c| c.2 == 2_000)
    });
    assert_eq!(
        credits(&db, 7, REGISTERED),
        Some((4_000, 2_000, 2_000, 2_000))
    );

    // A restart while the database file cannot be opened: the cache serves the
    // rotated passkey, the registered torrents and user 8's refusal.
    spawned.signal("TERM");
    assert_eq!(spawned.wait_exit(), Some(0));
    drop(db);
    std::fs::rename(&path, dir.join("away.db")).unwrap();
    let _ = std::fs::rename(dir.join("accounting.db-wal"), dir.join("away.db-wal"));
    let _ = std::fs::rename(dir.join("accounting.db-shm"), dir.join("away.db-shm"));
    std::fs::create_dir(&path).unwrap(); // a directory: the database cannot be opened
    let spawned = Spawned::start(env!("CARGO_BIN_EXE_tracker_http").as_ref(), &config);
    let mut client = Client::connect(spawned.addr);
    assert_eq!(
        outcome(client.announce(&request(
            rotated,
            REGISTERED,
            peer(6),
            AnnounceEvent::Started,
            0,
            10
        ))),
        Ok(())
    );
    assert_eq!(
        outcome(client.announce(&request(
            a,
            REGISTERED,
            peer(7),
            AnnounceEvent::Started,
            0,
            10
        ))),
        Err("unknown passkey".to_string())
    );
    assert_eq!(
        outcome(client.announce(&request(
            rotated,
            UNREGISTERED,
            peer(8),
            AnnounceEvent::Started,
            0,
            10
        ))),
        Err("unregistered torrent".to_string())
    );
    assert_eq!(
        outcome(client.announce(&request(
            b,
            REGISTERED,
            peer(9),
            AnnounceEvent::Started,
            0,
            10
        ))),
        Err("leeching not allowed for this account".to_string())
    );
    drop(spawned);
    let _ = std::fs::remove_dir_all(&dir);
}
