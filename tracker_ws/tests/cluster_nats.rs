//! WebSocket trackers as nodes of one cluster over a real `nats-server` (Debian's
//! package, started by the test on a loopback port): WebTorrent clients on different
//! nodes see each other, and their offers and answers cross from node to node.
//!
//! Every wait has a deadline far above what it takes; no test rests on something not
//! arriving in time.

mod common;

use std::time::Duration;

use common::{
    Client, announce, answer, info_hash, offer_id, offers, peer_id, sdp, start, test_config,
};
use tracker_common::testing::nats::{CLUSTER_DEADLINE, TestNats};
use tracker_common::testing::{Spawned, http_get, server_port, temp_dir};
use tracker_ws::Tracker;
use tracker_ws_protocol::{AnnounceEvent, AnnounceRequest, ParsedOutMessage};

/// Long enough for anything that happens here (a resync tried twice included).
const DEADLINE: Duration = CLUSTER_DEADLINE;

/// Starts node `id` of the cluster on `nats`. A peer's plain re-announces are published
/// once per `refresh_window_secs`.
fn node(nats: &TestNats, id: &str, refresh_window_secs: u32) -> Tracker {
    let mut config = test_config("127.0.0.1:0");
    config.cluster.enabled = true;
    config.cluster.nats_url = nats.url();
    config.cluster.name = "ws-test".into();
    config.cluster.node_id = id.into();
    config.cluster.refresh_window_secs = refresh_window_secs;
    start(config)
}

/// `name` of the node's `/stats.json` `cluster` object.
fn figure(node: &Tracker, name: &str) -> u64 {
    let metrics = node.metrics_addr().expect("metrics are on");
    let (status, body) = http_get(metrics, "/stats.json");
    assert_eq!(status, 200, "{body}");
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    stats["cluster"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no cluster.{name} in {body}"))
}

/// Waits until `f` holds, at most [`DEADLINE`]; how long it took.
fn wait_for(what: &str, f: impl FnMut() -> bool) -> Duration {
    tracker_common::testing::wait_until(what, DEADLINE, f)
}

fn wait_until_joined(nodes: &[&Tracker]) {
    for node in nodes {
        wait_for("every node hears the others", || {
            figure(node, "live_nodes") == nodes.len() as u64 - 1
        });
    }
}

/// (complete, downloaded, incomplete) of torrent `n` on `node`, asked on a new connection.
fn scrape(node: &Tracker, n: u8) -> (u32, u32, u32) {
    let files = Client::connect(node.local_addr()).scrape(&[info_hash(n)]);
    let counts = files.first().map(|(_, counts)| *counts).expect("one file");
    (counts.seeders, counts.completed, counts.leechers)
}

/// An announce of peer `peer` with `n` offers (ids from `first`).
fn with_offers(torrent: u8, peer: u8, left: u64, first: u8, n: u8) -> AnnounceRequest {
    AnnounceRequest {
        numwant: Some(u64::from(n)),
        offers: offers(first, n),
        ..announce(
            info_hash(torrent),
            peer_id(peer),
            Some(left),
            AnnounceEvent::Started,
        )
    }
}

/// The next message that is not an announce answer.
fn next_relayed(client: &mut Client) -> ParsedOutMessage {
    loop {
        match client.next() {
            ParsedOutMessage::AnnounceResponse { .. } => {}
            other => return other,
        }
    }
}

#[test]
fn offers_and_answers_cross_nodes() {
    let nats = TestNats::start().unwrap_or_else(|err| panic!("{err:#}"));
    let a = node(&nats, "a", 600);
    let b = node(&nats, "b", 600);
    wait_until_joined(&[&a, &b]);

    // A leecher on node A; node B hears of it.
    let mut leecher = Client::connect(a.local_addr());
    assert_eq!(
        leecher.announce_counts(announce(
            info_hash(1),
            peer_id(1),
            Some(10),
            AnnounceEvent::Started
        )),
        (0, 1)
    );
    let took = wait_for("B holds A's leecher", || scrape(&b, 1) == (0, 0, 1));
    println!("a peer announced to A reached B in {took:?}");

    // A seeder on node B offers: its offer goes to the leecher on A, as sent.
    let mut seeder = Client::connect(b.local_addr());
    seeder.announce(with_offers(1, 2, 0, 10, 1));
    let sent = offers(10, 1);
    match next_relayed(&mut leecher) {
        ParsedOutMessage::Offer {
            info_hash: hash,
            peer_id: from,
            offer_id: id,
            offer,
        } => {
            assert_eq!((hash, from, id), (info_hash(1), peer_id(2), offer_id(10)));
            assert_eq!(offer.get(), sent[0].offer.get());
        }
        other => panic!("expected the relayed offer, got {other:?}"),
    }
    // The seeder's own answer from B counts both peers, the leecher on A included.
    match seeder.next() {
        ParsedOutMessage::AnnounceResponse {
            complete,
            incomplete,
            ..
        } => assert_eq!((complete, incomplete), (1, 1)),
        other => panic!("expected the seeder's announce answer, got {other:?}"),
    }

    // The leecher answers on A; the answer reaches the seeder on B.
    leecher.announce(answer(
        info_hash(1),
        peer_id(1),
        peer_id(2),
        offer_id(10),
        "reply",
    ));
    match next_relayed(&mut seeder) {
        ParsedOutMessage::Answer {
            info_hash: hash,
            peer_id: from,
            offer_id: id,
            answer: relayed,
        } => {
            assert_eq!((hash, from, id), (info_hash(1), peer_id(1), offer_id(10)));
            assert_eq!(relayed.get(), sdp("answer", "reply").get());
        }
        other => panic!("expected the relayed answer, got {other:?}"),
    }
    assert!(figure(&b, "relays_published") >= 1);
    assert!(figure(&a, "relays_delivered") >= 1);
    assert!(figure(&a, "relays_published") >= 1);
    assert!(figure(&b, "relays_delivered") >= 1);

    // The leecher's connection closes: it leaves node B too.
    drop(leecher);
    wait_for("the leecher leaves B", || scrape(&b, 1) == (1, 0, 0));
    assert_eq!(scrape(&a, 1), (1, 0, 0));
    a.shutdown();
    b.shutdown();
}

#[test]
fn a_peer_id_held_on_another_node_cannot_be_taken_until_it_leaves_there() {
    let nats = TestNats::start().unwrap_or_else(|err| panic!("{err:#}"));
    let a = node(&nats, "a", 600);
    let b = node(&nats, "b", 600);
    wait_until_joined(&[&a, &b]);

    let mut owner = Client::connect(a.local_addr());
    owner.announce_counts(announce(
        info_hash(1),
        peer_id(1),
        Some(10),
        AnnounceEvent::Started,
    ));
    wait_for("B holds the peer", || scrape(&b, 1) == (0, 0, 1));

    // Another client on B announcing the same peer id is not stored, and gets no
    // offer relayed: answers for peer 1 still go to its owner on A.
    let mut taker = Client::connect(b.local_addr());
    taker.announce(with_offers(1, 1, 0, 20, 1));
    match taker.next() {
        ParsedOutMessage::AnnounceResponse {
            complete,
            incomplete,
            ..
        } => assert_eq!((complete, incomplete), (0, 1)),
        other => panic!("expected an announce answer, got {other:?}"),
    }
    let mut answerer = Client::connect(b.local_addr());
    answerer.announce_counts(announce(
        info_hash(1),
        peer_id(3),
        Some(10),
        AnnounceEvent::Started,
    ));
    answerer.announce(answer(
        info_hash(1),
        peer_id(3),
        peer_id(1),
        offer_id(20),
        "for one",
    ));
    match next_relayed(&mut owner) {
        ParsedOutMessage::Answer { peer_id: from, .. } => assert_eq!(from, peer_id(3)),
        other => panic!("expected the answer at the owner, got {other:?}"),
    }

    // The owner leaves A (its connection closes); then the peer id is free on B, and A
    // holds it as B's.
    drop(owner);
    wait_for("B lets the peer go", || scrape(&b, 1) == (0, 0, 1));
    let mut moved = Client::connect(b.local_addr());
    assert_eq!(
        moved.announce_counts(announce(
            info_hash(1),
            peer_id(1),
            Some(0),
            AnnounceEvent::Started
        )),
        (1, 1)
    );
    wait_for("A holds the moved peer as a seeder", || {
        scrape(&a, 1) == (1, 0, 1)
    });
    a.shutdown();
    b.shutdown();
}

#[test]
fn a_node_that_starts_later_learns_the_webtorrent_peers_by_resync() {
    let nats = TestNats::start().unwrap_or_else(|err| panic!("{err:#}"));
    let a = node(&nats, "a", 600);
    // Two peers on A, one of whose downloads completed; neither announces again, so
    // only a resync can tell a node that starts now (the refresh window is 600 s).
    let mut seeder = Client::connect(a.local_addr());
    seeder.announce_counts(announce(
        info_hash(1),
        peer_id(1),
        Some(10),
        AnnounceEvent::Started,
    ));
    seeder.announce_counts(announce(
        info_hash(1),
        peer_id(1),
        Some(0),
        AnnounceEvent::Completed,
    ));
    let mut leecher = Client::connect(a.local_addr());
    leecher.announce_counts(announce(
        info_hash(1),
        peer_id(2),
        Some(10),
        AnnounceEvent::Started,
    ));

    let c = node(&nats, "c", 600);
    wait_until_joined(&[&a, &c]);
    let took = wait_for("C holds A's peers and completed count", || {
        scrape(&c, 1) == (1, 1, 1)
    });
    println!("node C caught up in {took:?} after joining");
    // Counted once the last chunk is in, which may be after the peers are.
    wait_for("C counts the peers of its resync", || {
        figure(&c, "resync_peers") >= 2
    });

    // And an offer from C reaches them on A.
    let mut newcomer = Client::connect(c.local_addr());
    newcomer.announce(with_offers(1, 3, 10, 30, 2));
    for client in [&mut seeder, &mut leecher] {
        match next_relayed(client) {
            ParsedOutMessage::Offer { peer_id: from, .. } => assert_eq!(from, peer_id(3)),
            other => panic!("expected an offer from C, got {other:?}"),
        }
    }
    a.shutdown();
    c.shutdown();
}

/// A node as a process of its own, to be killed.
fn node_process(nats: &TestNats, id: &str, dir: &std::path::Path) -> Spawned {
    let config = dir.join(format!("{id}.toml"));
    std::fs::write(
        &config,
        format!(
            "[network]\naddress = \"127.0.0.1:0\"\n[statistics]\ninterval_secs = 0\n\
             [metrics]\naddress = \"127.0.0.1:0\"\n[ws]\nmax_connections_per_ip = 0\n\
             [cluster]\nenabled = true\nnats_url = {:?}\nname = \"ws-test\"\n\
             node_id = \"{id}\"\n",
            nats.url()
        ),
    )
    .unwrap();
    Spawned::start(env!("CARGO_BIN_EXE_tracker_ws").as_ref(), &config)
}

/// The peers on a node's connections are reachable only through it: when its process
/// dies (no departure is ever published), the other nodes drop them once they have not
/// heard it for a while, and a node restarted under the same id starts afresh.
#[test]
fn the_peers_of_a_node_that_dies_leave_the_others() {
    let nats = TestNats::start().unwrap_or_else(|err| panic!("{err:#}"));
    let dir = temp_dir("ws-cluster-node-dies");
    let b = node(&nats, "b", 600);
    let mut a = node_process(&nats, "a", &dir);
    wait_for("B hears A", || figure(&b, "live_nodes") == 1);

    let mut client = Client::connect(a.addr);
    client.announce_counts(announce(
        info_hash(1),
        peer_id(1),
        Some(10),
        AnnounceEvent::Started,
    ));
    wait_for("B holds A's peer", || scrape(&b, 1) == (0, 0, 1));

    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let took = wait_for("B drops the dead node's peer", || {
        scrape(&b, 1) == (0, 0, 0)
    });
    println!("the dead node's peer left B {took:?} after the kill");
    assert_eq!(figure(&b, "live_nodes"), 0);

    // Restarted under the same id: heard as a node again, its new peers shared.
    let a = node_process(&nats, "a", &dir);
    wait_for("B hears A again", || figure(&b, "live_nodes") == 1);
    let mut client = Client::connect(a.addr);
    client.announce_counts(announce(
        info_hash(1),
        peer_id(2),
        Some(0),
        AnnounceEvent::Started,
    ));
    wait_for("B holds the restarted node's peer", || {
        scrape(&b, 1) == (1, 0, 0)
    });
    drop(a);
    b.shutdown();
}

/// WebSocket nodes keep to subjects of their own, with `ws` after the cluster's name, so
/// that they can share a NATS server and a cluster name with UDP and HTTP nodes without
/// the two kinds of swarm mixing: read from the server's own list of subscriptions.
#[test]
fn webtorrent_swarms_have_subjects_of_their_own() {
    let monitor = server_port().unwrap();
    let monitor_port = monitor.to_string();
    let nats = TestNats::start_with(&["-m", &monitor_port]).unwrap_or_else(|err| panic!("{err:#}"));
    let w = node(&nats, "w", 600);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], monitor));
    let mut subjects = Vec::new();
    wait_for("the node's subscriptions are listed", || {
        let (status, body) = http_get(addr, "/connz?subs=1");
        assert_eq!(status, 200, "{body}");
        let connz: serde_json::Value = serde_json::from_str(&body).unwrap();
        subjects = connz["connections"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["name"] == "shoal w")
            .flat_map(|c| {
                c["subscriptions_list"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|s| s.as_str().map(str::to_owned))
            .filter(|s| !s.starts_with("_INBOX"))
            .collect();
        subjects.len() >= 3
    });
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "shoal.ws-test.ws.peers.*",
            "shoal.ws-test.ws.relay.w",
            "shoal.ws-test.ws.sync.w"
        ]
    );
    w.shutdown();
}
