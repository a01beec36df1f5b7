//! The MySQL backend against a real MariaDB server of the test's own
//! ([`TestMariaDb`]), and that server itself.

use mysql::prelude::Queryable;
use tracker_common::testing::mariadb::TestMariaDb;

fn connect(url: &str) -> mysql::Conn {
    let opts =
        mysql::OptsBuilder::from_opts(mysql::Opts::from_url(url).unwrap()).prefer_socket(false);
    mysql::Conn::new(opts).unwrap()
}

/// The harness: the user `shoal` owns the database `shoal`; what a commit acknowledged is
/// there after a stop and a start on the same port; a stopped server refuses connections.
#[test]
fn the_test_server_keeps_its_data_across_a_restart() {
    let mut server = TestMariaDb::start().unwrap();
    let url = server.url();
    assert!(url.starts_with("mysql://shoal@127.0.0.1:"), "{url}");
    let mut conn = connect(&url);
    conn.query_drop("CREATE TABLE t (x BIGINT PRIMARY KEY) ENGINE=InnoDB")
        .unwrap();
    conn.query_drop("INSERT INTO t VALUES (1), (2)").unwrap();
    drop(conn);
    server.stop().unwrap();
    assert!(mysql::Conn::new(mysql::Opts::from_url(&url).unwrap()).is_err());
    server.start_again().unwrap();
    assert_eq!(server.url(), url);
    let sum: Option<i64> = connect(&url).query_first("SELECT SUM(x) FROM t").unwrap();
    assert_eq!(sum, Some(3));
}
