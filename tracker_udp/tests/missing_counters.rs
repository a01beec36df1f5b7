//! A missing (HTTP) or negative (UDP) `uploaded`/`downloaded` counts as unchanged: a
//! peer that announces 3,000 bytes, then nothing readable, then 5,000, is credited
//! 5,000, not 3,000 + 5,000 (which a missing counter read as 0 would credit: the next
//! announce's counter then looks like a fresh start).

mod private_client;

use std::path::Path;
use std::time::Duration;

use private_client::{PlainHttpClient, UdpAnnounceClient, tracker_http};
use tracker_common::testing::accounting::{
    AnnounceClient, Backend, Database, PASSKEY_A, write_private_config,
};
use tracker_common::testing::operator::{peer, step};
use tracker_common::testing::{Spawned, temp_dir};
use tracker_common::types::{AnnounceEvent, InfoHash};

/// Started at 0, 3,000 bytes, an unreadable announce (`nonsense` sends it), 5,000.
fn three_thousand_then_nothing_then_five(
    binary: &Path,
    name: &str,
    client: &mut dyn AnnounceClient,
    nonsense: &mut dyn AnnounceClient,
) {
    let dir = temp_dir(name);
    let database = Database::new(Backend::Sqlite, &dir);
    let config = write_private_config(&dir, &database.url, "");
    let mut spawned = Spawned::start(binary, &config);
    let p = peer(6, 1);
    client
        .announce(spawned.addr, &p, &step(AnnounceEvent::Started, 0, 0))
        .unwrap();
    std::thread::sleep(Duration::from_millis(1_100));
    client
        .announce(spawned.addr, &p, &step(AnnounceEvent::None, 3_000, 0))
        .unwrap();
    std::thread::sleep(Duration::from_millis(1_100));
    nonsense
        .announce(spawned.addr, &p, &step(AnnounceEvent::None, 0, 0))
        .unwrap();
    std::thread::sleep(Duration::from_millis(1_100));
    client
        .announce(spawned.addr, &p, &step(AnnounceEvent::None, 5_000, 0))
        .unwrap();
    let hash = InfoHash([6; 20]);
    database.wait_for(Duration::from_secs(30), |t| {
        t.get(&(PASSKEY_A, hash))
            .is_some_and(|x| x.uploaded >= 5_000)
    });
    spawned.signal("TERM");
    assert_eq!(spawned.wait_exit(), Some(0));
    let totals = database.totals().unwrap();
    assert_eq!(totals[&(PASSKEY_A, hash)].uploaded, 5_000, "{totals:?}");
    drop(database);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn udp_negative_counters_are_unchanged() {
    let mut nonsense = UdpAnnounceClient::new();
    nonsense.negative_counters = true;
    three_thousand_then_nothing_then_five(
        env!("CARGO_BIN_EXE_tracker_udp").as_ref(),
        "udp-negative-counters",
        &mut UdpAnnounceClient::new(),
        &mut nonsense,
    );
}

#[test]
fn http_missing_counters_are_unchanged() {
    three_thousand_then_nothing_then_five(
        &tracker_http(),
        "http-missing-counters",
        &mut PlainHttpClient {
            counters_missing: false,
        },
        &mut PlainHttpClient {
            counters_missing: true,
        },
    );
}
