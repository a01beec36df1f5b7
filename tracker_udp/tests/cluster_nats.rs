//! Several nodes serving as one tracker over a real `nats-server` (Debian's package,
//! started by the test on a loopback port): tracker binaries as child processes, real
//! UDP clients, the cluster's figures read from each node's `/stats.json`.
//!
//! What is checked is where the swarms end up, waited for with a deadline far above
//! what it takes (seconds for what takes milliseconds): no test rests on something not
//! arriving in time. How long replication takes is measured, not asserted (see
//! `documents/cluster-benchmark.md`); the tests print it.

mod common;
mod private_client;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Client, info_hash, peer_id};
use tracker_common::testing::nats::{CLUSTER_DEADLINE, TestNats};
use tracker_common::testing::{Spawned, http_get, temp_dir};
use tracker_udp_protocol::{AnnounceEvent, Response};

/// Long enough for anything that happens here (a resync tried twice included).
const DEADLINE: Duration = CLUSTER_DEADLINE;
const SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A cluster's scratch directory and its NATS server.
struct Cluster {
    dir: PathBuf,
    nats: TestNats,
    secret: PathBuf,
}

impl Cluster {
    fn new(name: &str) -> Self {
        Self::with_nats(name, &[])
    }

    /// A cluster whose nats-server gets `args`.
    fn with_nats(name: &str, args: &[&str]) -> Self {
        let dir = temp_dir(&format!("cluster-nats-{name}"));
        let secret = dir.join("secret");
        std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let nats = TestNats::start_with(args).unwrap_or_else(|err| panic!("{err:#}"));
        Self { dir, nats, secret }
    }

    /// The `[cluster]` section of node `id`.
    fn section(&self, id: &str, udp: bool) -> String {
        let secret = if udp {
            format!(
                "connection_id_secret_path = {:?}\n",
                self.secret.display().to_string()
            )
        } else {
            String::new()
        };
        format!(
            "[cluster]\nenabled = true\nnats_url = {:?}\nname = \"test\"\nnode_id = \"{id}\"\n\
             {secret}",
            self.nats.url()
        )
    }

    /// Starts a UDP node `id` whose peers live `max_peer_age_secs`.
    fn udp_node(&self, id: &str, max_peer_age_secs: u32) -> Node {
        self.udp_node_at(id, max_peer_age_secs, &self.nats.url())
    }

    /// [`Self::udp_node`] with `nats_url` for the server's URL.
    fn udp_node_at(&self, id: &str, max_peer_age_secs: u32, nats_url: &str) -> Node {
        let config = self.dir.join(format!("{id}.toml"));
        std::fs::write(
            &config,
            format!(
                "[network]\naddress = \"127.0.0.1:0\"\nrecv_buffer_bytes = 0\n\
                 [swarm]\nannounce_interval_secs = 1\nmax_peer_age_secs = {max_peer_age_secs}\n\
                 cleaning_interval_secs = 1\n\
                 max_peers_per_ip = 10000\n\
                 [workers]\nsocket_workers = 1\nrequest_workers = 2\n\
                 [statistics]\ninterval_secs = 0\n[metrics]\naddress = \"127.0.0.1:0\"\n{}\
                 refresh_window_secs = {}\n",
                self.section(id, true).replace(&self.nats.url(), nats_url),
                max_peer_age_secs / 3
            ),
        )
        .unwrap();
        Node::start(env!("CARGO_BIN_EXE_tracker_udp").as_ref(), &config)
    }

    /// Starts an HTTP node `id`.
    fn http_node(&self, id: &str) -> Node {
        let config = self.dir.join(format!("{id}.toml"));
        std::fs::write(
            &config,
            format!(
                "[network]\naddress = \"127.0.0.1:0\"\n\
                 [swarm]\nmax_peers_per_ip = 10000\n\
                 [workers]\nsocket_workers = 1\nrequest_workers = 2\n\
                 [statistics]\ninterval_secs = 0\n[metrics]\naddress = \"127.0.0.1:0\"\n{}",
                self.section(id, false)
            ),
        )
        .unwrap();
        Node::start(&private_client::tracker_http(), &config)
    }
}

/// A tracker process of the cluster.
struct Node {
    spawned: Spawned,
    metrics: SocketAddr,
}

impl Node {
    fn start(binary: &Path, config: &Path) -> Self {
        let spawned = Spawned::start(binary, config);
        let metrics = spawned.metrics.expect("the node logs its metrics address");
        Self { spawned, metrics }
    }

    fn addr(&self) -> SocketAddr {
        self.spawned.addr
    }

    /// Its `/stats.json`'s `cluster` object.
    fn cluster(&self) -> serde_json::Value {
        let (status, body) = http_get(self.metrics, "/stats.json");
        assert_eq!(status, 200, "{body}");
        let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
        stats["cluster"].clone()
    }

    fn figure(&self, name: &str) -> u64 {
        let cluster = self.cluster();
        cluster[name]
            .as_u64()
            .or_else(|| cluster[name].as_bool().map(u64::from))
            .unwrap_or_else(|| panic!("no {name} in {}", self.cluster()))
    }

    /// Its `/health` answer.
    fn health(&self) -> (u16, serde_json::Value) {
        let (status, body) = http_get(self.metrics, "/health");
        (status, serde_json::from_str(&body).unwrap())
    }

    /// A client connected to this node.
    fn client(&self) -> Client {
        Client::connected("127.0.0.1:0", self.addr())
    }

    /// (seeders, completed, leechers) of torrent `n` on this node.
    fn scrape(&self, n: u8) -> (i32, i32, i32) {
        self.client().scrape_one(info_hash(n))
    }
}

/// Waits until `f` holds, at most [`DEADLINE`]; how long it took.
fn wait_for(what: &str, f: impl FnMut() -> bool) -> Duration {
    tracker_common::testing::wait_until(what, DEADLINE, f)
}

/// Waits until every node hears the `n - 1` others.
fn wait_until_joined(nodes: &[&Node]) {
    for node in nodes {
        wait_for("every node hears the others", || {
            node.figure("live_nodes") == nodes.len() as u64 - 1
        });
    }
}

/// Announces peer `peer` (port 10000 + peer) of torrent `torrent` with `client`, the
/// event and bytes left given; the peers' ports in the answer.
fn announce(
    client: &mut Client,
    torrent: u8,
    peer: u8,
    left: i64,
    event: AnnounceEvent,
) -> Vec<u16> {
    match client.announce(
        info_hash(torrent),
        peer_id(peer),
        10_000 + u16::from(peer),
        left,
        event,
        50,
    ) {
        Response::AnnounceIpv4(answer) => answer.peers.iter().map(|p| p.port).collect(),
        other => panic!("not an announce answer: {other:?}"),
    }
}

#[test]
fn three_nodes_share_peers_connection_ids_and_stops() {
    let cluster = Cluster::new("share");
    let a = cluster.udp_node("a", 600);
    let b = cluster.udp_node("b", 600);
    let c = cluster.udp_node("c", 600);
    wait_until_joined(&[&a, &b, &c]);

    // A connect answered by A is accepted by B and C: the announce goes to B.
    let mut client = a.client();
    client.tracker = b.addr();
    announce(&mut client, 1, 1, 100, AnnounceEvent::Started);
    let took = wait_for("A and C see the leecher announced to B", || {
        a.scrape(1) == (0, 0, 1) && c.scrape(1) == (0, 0, 1)
    });
    eprintln!("replicated to both other nodes in {took:?}");

    // A seeder announcing to C (connected through B) gets the leecher B stored.
    let mut seeder = b.client();
    seeder.tracker = c.addr();
    assert_eq!(
        announce(&mut seeder, 1, 2, 0, AnnounceEvent::Started),
        vec![10_001]
    );
    wait_for("A and B see the seeder announced to C", || {
        a.scrape(1) == (1, 0, 1) && b.scrape(1) == (1, 0, 1)
    });

    // The leecher completes on A: every node counts the download once.
    client.tracker = a.addr();
    announce(&mut client, 1, 1, 0, AnnounceEvent::Completed);
    wait_for("every node has two seeders and one download", || {
        [&a, &b, &c].iter().all(|node| node.scrape(1) == (2, 1, 0))
    });

    // It stops on C: it leaves every node.
    client.tracker = c.addr();
    announce(&mut client, 1, 1, 0, AnnounceEvent::Stopped);
    wait_for("the stopped peer leaves every node", || {
        [&a, &b, &c].iter().all(|node| node.scrape(1) == (1, 1, 0))
    });

    for node in [&a, &b, &c] {
        let cluster = node.cluster();
        assert_eq!(cluster["bus_up"], true, "{cluster}");
        assert_eq!(cluster["sequence_gaps"], 0, "{cluster}");
        assert_eq!(cluster["changes_dropped_incoming"], 0, "{cluster}");
        assert_eq!(cluster["bad_batches"], 0, "{cluster}");
        let (status, health) = node.health();
        assert_eq!(status, 200);
        assert_eq!(health["status"], "ok", "{health}");
        assert_eq!(health["cluster"]["bus_up"], true, "{health}");
    }
    // Each node stored the peers announced elsewhere as remote: one seeder is left,
    // announced to C.
    // The gauge is published after the answers of its round, so it is waited for too.
    wait_for("A and B hold the seeder as remote, C as its own", || {
        a.figure("remote_peers") == 1
            && b.figure("remote_peers") == 1
            && c.figure("remote_peers") == 0
    });
}

#[test]
fn a_killed_node_s_peers_age_out_of_the_others() {
    let cluster = Cluster::new("killed");
    let a = cluster.udp_node("a", 3);
    let b = cluster.udp_node("b", 3);
    wait_until_joined(&[&a, &b]);
    let mut client = a.client();
    announce(&mut client, 2, 1, 100, AnnounceEvent::Started);
    // B refreshes one of its own peers all along, so that the torrent stays.
    let mut own = b.client();
    announce(&mut own, 2, 2, 100, AnnounceEvent::Started);
    wait_for("B has A's peer", || b.scrape(2) == (0, 0, 2));
    drop(a);
    let took = wait_for("A's peer ages out of B", || {
        announce(&mut own, 2, 2, 100, AnnounceEvent::None);
        b.scrape(2) == (0, 0, 1)
    });
    eprintln!("the killed node's peer left after {took:?} (max_peer_age_secs = 3)");
    wait_for("B holds no remote peer", || b.figure("remote_peers") == 0);
}

#[test]
fn without_nats_nodes_serve_their_own_swarms_and_converge_when_it_is_back() {
    let mut cluster = Cluster::new("down");
    let a = cluster.udp_node("a", 600);
    let b = cluster.udp_node("b", 600);
    wait_until_joined(&[&a, &b]);
    cluster.nats.stop();
    wait_for("both nodes see the bus down", || {
        a.figure("bus_up") == 0 && b.figure("bus_up") == 0
    });
    let (status, health) = a.health();
    assert_eq!(status, 200, "a node without its bus still serves");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["cluster"]["bus_up"], false, "{health}");

    // Both answer from their own swarms meanwhile.
    let mut on_a = a.client();
    let mut on_b = b.client();
    announce(&mut on_a, 3, 1, 100, AnnounceEvent::Started);
    assert_eq!(
        announce(&mut on_b, 3, 2, 0, AnnounceEvent::Started),
        Vec::<u16>::new(),
        "B cannot know A's peer while the bus is down"
    );
    assert_eq!(a.scrape(3), (0, 0, 1));
    assert_eq!(b.scrape(3), (1, 0, 0));

    cluster.nats.start_again().unwrap();
    let took = wait_for("both nodes have both peers after the bus is back", || {
        a.scrape(3) == (1, 0, 1) && b.scrape(3) == (1, 0, 1)
    });
    eprintln!("converged {took:?} after nats-server was back");
    assert!(a.figure("resyncs") >= 1 && b.figure("resyncs") >= 1);
    assert_eq!(a.health().1["status"], "ok");
}

/// An operator's restart at the wrong moment: the node starts while the NATS server is
/// down. It starts anyway, serves its own swarms and says the bus is down; once the
/// server is up it connects by itself and shares its swarms with the other node.
#[test]
fn a_node_started_while_nats_is_down_serves_and_joins_when_it_is_up() {
    let mut cluster = Cluster::new("down-at-start");
    cluster.nats.stop();
    let a = cluster.udp_node("a", 600);
    let b = cluster.udp_node("b", 600);
    let (status, health) = a.health();
    assert_eq!(status, 200, "a node without its bus still serves: {health}");
    assert_eq!(health["cluster"]["bus_up"], false, "{health}");
    let mut on_a = a.client();
    announce(&mut on_a, 4, 1, 100, AnnounceEvent::Started);
    assert_eq!(a.scrape(4), (0, 0, 1));

    cluster.nats.start_again().unwrap();
    wait_until_joined(&[&a, &b]);
    let took = wait_for("B holds the peer A took while the bus was down", || {
        b.scrape(4) == (0, 0, 1)
    });
    eprintln!("B had A's peer {took:?} after both nodes heard each other");
    assert_eq!(a.health().1["status"], "ok");
}

#[test]
fn a_node_started_late_catches_up_by_resync() {
    let cluster = Cluster::new("late");
    let a = cluster.udp_node("a", 600);
    let mut client = a.client();
    // 30 peers over 3 torrents, before the second node exists.
    for torrent in 10..13u8 {
        for peer in 0..10u8 {
            announce(&mut client, torrent, peer, 100, AnnounceEvent::Started);
        }
    }
    let b = cluster.udp_node("b", 600);
    let took = wait_for("the late node has every peer", || {
        (10..13u8).all(|torrent| b.scrape(torrent) == (0, 0, 10))
    });
    eprintln!("the late node caught up in {took:?}");
    assert!(b.figure("resyncs") >= 1);
    // Counted once the last chunk is in (B's) and sent (A's), which may be after the
    // scrapes above saw the peers; the gauge after the round that stored them.
    wait_for("B counts the peers of its resync", || {
        b.figure("resync_peers") >= 30
    });
    wait_for("B holds A's 30 peers as remote", || {
        b.figure("remote_peers") == 30
    });
    wait_for("A counts the resync it answered", || {
        a.figure("resyncs_served") >= 1
    });
}

/// The `i<n>e` after `key` in a bencoded body.
fn bencoded_int(body: &str, key: &str) -> Option<i64> {
    let rest = body.split(key).nth(1)?.strip_prefix('i')?;
    rest.split('e').next()?.parse().ok()
}

#[test]
fn an_http_node_serves_the_peers_of_a_udp_node() {
    let cluster = Cluster::new("http");
    let udp = cluster.udp_node("udp", 600);
    let http = cluster.http_node("http");
    wait_until_joined(&[&udp, &http]);
    let mut client = udp.client();
    announce(&mut client, 4, 1, 100, AnnounceEvent::Started);
    let hash = "%04".repeat(20);
    wait_for("the HTTP node counts the UDP node's leecher", || {
        let (status, body) = http_get(http.addr(), &format!("/scrape?info_hash={hash}"));
        status == 200 && bencoded_int(&body, "10:incomplete") == Some(1)
    });
    // A seeder announcing over HTTP gets the UDP node's peer.
    let (status, body) = http_get(
        http.addr(),
        &format!(
            "/announce?info_hash={hash}&peer_id={}&port=7000&uploaded=0&downloaded=0&left=0\
             &compact=1&numwant=10",
            "%07".repeat(20)
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(bencoded_int(&body, "8:complete"), Some(1), "{body}");
    assert_eq!(bencoded_int(&body, "10:incomplete"), Some(1), "{body}");
    // One compact peer: 127.0.0.1:10001.
    let port = 10_001u16.to_be_bytes();
    let expected = [127, 0, 0, 1, port[0], port[1]];
    let raw = body.as_bytes();
    assert!(
        raw.windows(8 + 6).any(|w| w.starts_with(b"5:peers6:")
            && w.get(8..) == Some(&expected[..])
            || w.starts_with(b"peers6:") && w.get(7..13) == Some(&expected[..])),
        "{body:?}"
    );
}

/// Two nodes in private mode on one database of `backend`, a client's peers moving
/// between them at every announce: credited once.
fn private_mode_across_nodes(backend: tracker_common::testing::accounting::Backend) {
    let cluster = Cluster::new(&format!("private-{backend:?}").to_lowercase());
    let sections = [cluster.section("p1", false), cluster.section("p2", false)];
    tracker_common::testing::operator::peers_moving_between_nodes(
        env!("CARGO_BIN_EXE_tracker_udp").as_ref(),
        &mut private_client::UdpAnnounceClient::new(),
        backend,
        [&sections[0], &sections[1]],
    );
}

#[test]
fn postgres_private_mode_across_nodes_credits_a_moving_peer_once() {
    private_mode_across_nodes(tracker_common::testing::accounting::Backend::Postgres);
}

#[test]
fn mysql_private_mode_across_nodes_credits_a_moving_peer_once() {
    private_mode_across_nodes(tracker_common::testing::accounting::Backend::Mysql);
}

#[test]
fn nodes_log_in_with_the_user_and_password_of_the_url() {
    let cluster = Cluster::with_nats("auth", &["--user", "shoal", "--pass", "s3cret"]);
    let port = cluster.nats.port();
    let a = cluster.udp_node_at("a", 600, &format!("nats://shoal:s3cret@127.0.0.1:{port}"));
    let b = cluster.udp_node_at("b", 600, &format!("nats://shoal:s3cret@127.0.0.1:{port}"));
    let wrong = cluster.udp_node_at("c", 600, &format!("nats://shoal:wrong@127.0.0.1:{port}"));
    wait_until_joined(&[&a, &b]);
    let mut client = a.client();
    announce(&mut client, 6, 1, 100, AnnounceEvent::Started);
    wait_for("B has A's peer", || b.scrape(6) == (0, 0, 1));
    // Refused by the server: its bus stays down, and it serves its own swarms.
    assert_eq!(wrong.figure("bus_up"), 0);
    assert_eq!(wrong.figure("live_nodes"), 0);
    assert_eq!(wrong.health().1["status"], "degraded");
    assert_eq!(wrong.scrape(6), (0, 0, 0));
    // The server's refusal is logged (again every 10 s while it lasts), and the password
    // in none of the lines after the start (the URL's line itself may come before
    // "listening on", which the harness reads; the redaction has a unit test).
    let mut logged = Vec::new();
    wait_for("C logs the server's refusal", || {
        logged.extend(wrong.spawned.lines.try_iter());
        logged.iter().any(|l| l.contains("authorization violation"))
    });
    assert!(!logged.iter().any(|l| l.contains("wrong")), "{logged:#?}");
}

#[test]
fn nodes_reach_nats_over_tls_checked_against_the_configured_root() {
    let dir = temp_dir("cluster-nats-tls-certs");
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());
    let cluster = Cluster::with_nats(
        "tls",
        &["--tls", "--tlscert", &cert_arg, "--tlskey", &key_arg],
    );
    let url = format!("tls://127.0.0.1:{}", cluster.nats.port());
    let with_root = |id: &str, root: &Path| {
        let config = cluster.dir.join(format!("{id}.toml"));
        std::fs::write(
            &config,
            format!(
                "[network]\naddress = \"127.0.0.1:0\"\nrecv_buffer_bytes = 0\n\
                 [swarm]\nmax_peers_per_ip = 10000\n\
                 [workers]\nsocket_workers = 1\nrequest_workers = 2\n\
                 [statistics]\ninterval_secs = 0\n[metrics]\naddress = \"127.0.0.1:0\"\n{}\
                 tls_ca_path = {:?}\n",
                cluster.section(id, true).replace(&cluster.nats.url(), &url),
                root.display().to_string()
            ),
        )
        .unwrap();
        Node::start(env!("CARGO_BIN_EXE_tracker_udp").as_ref(), &config)
    };
    let a = with_root("a", &cert);
    let b = with_root("b", &cert);
    wait_until_joined(&[&a, &b]);
    let mut client = a.client();
    announce(&mut client, 7, 1, 100, AnnounceEvent::Started);
    wait_for("B has A's peer, over TLS", || b.scrape(7) == (0, 0, 1));

    // A node that trusts another root refuses the server's certificate: its bus stays
    // down.
    let other = temp_dir("cluster-nats-tls-other-root");
    let other_root = other.join("root.pem");
    let stranger = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(&other_root, stranger.cert.pem()).unwrap();
    let c = with_root("c", &other_root);
    let mut lines = Vec::new();
    // (The client reports a refused certificate as an I/O error, no more.)
    wait_for("C logs that it cannot connect", || {
        lines.extend(c.spawned.lines.try_iter());
        lines
            .iter()
            .any(|l| l.contains("cluster: NATS: client error"))
    });
    assert_eq!(c.figure("bus_up"), 0);
    assert_eq!(a.figure("live_nodes"), 1, "C never joined");
}
