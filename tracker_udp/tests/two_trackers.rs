//! Two trackers on one accounting database: `tracker_udp` and `tracker_http` (a torrent
//! listing both URLs of one site; clients announce to every tier), one client
//! announcing the same peers to both, on SQLite, PostgreSQL and MariaDB: credited once.
//!
//! `tracker_http` is the workspace's binary beside this crate's (`cargo test
//! --workspace`, which `scripts/test.sh` runs, builds both before any test starts).

mod private_client;

use private_client::{PlainHttpClient, UdpAnnounceClient, tracker_http};
use tracker_common::testing::accounting::Backend;
use tracker_common::testing::operator::two_trackers_one_database;

/// UDP and HTTP trackers on one database of `backend`, one client announcing to both.
fn udp_and_http_credit_once(backend: Backend) {
    two_trackers_one_database(
        (
            env!("CARGO_BIN_EXE_tracker_udp").as_ref(),
            &mut UdpAnnounceClient::new(),
        ),
        (
            &tracker_http(),
            &mut PlainHttpClient {
                counters_missing: false,
            },
        ),
        backend,
    );
}

#[test]
fn sqlite_udp_and_http_on_one_database_credit_once() {
    udp_and_http_credit_once(Backend::Sqlite);
}

#[test]
fn postgres_udp_and_http_on_one_database_credit_once() {
    udp_and_http_credit_once(Backend::Postgres);
}

#[test]
fn mysql_udp_and_http_on_one_database_credit_once() {
    udp_and_http_credit_once(Backend::Mysql);
}
