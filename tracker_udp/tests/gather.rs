//! Gathering (`network.gather_micros`): after a round of a few datagrams the socket
//! worker waits before it reads again. Whatever arrives in the wait must be read and
//! answered after it, none lost, whichever round it falls in.

mod common;

use std::collections::BTreeSet;

use common::*;
use tracker_common::net::gather::{GATHER_BELOW, GATHER_FROM, MAX_GATHER_MICROS};
use tracker_common::types::AnnounceEvent;
use tracker_udp_protocol::{Request, Response};

/// Bursts of announces sized around the rule's bounds, each sent while the worker may
/// be in the wait that the previous burst's round started: every one is answered,
/// each with its own transaction id.
#[test]
fn datagrams_that_arrive_during_the_wait_are_all_answered() {
    let mut config = test_config("127.0.0.1:0");
    config.workers.socket_workers = 1;
    config.workers.request_workers = 1;
    config.network.gather_micros = MAX_GATHER_MICROS;
    // A burst fits in the receive buffer whatever the OS default.
    config.network.recv_buffer_bytes = 1 << 20;
    let tracker = start(config);
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());

    for (round, burst) in [
        GATHER_FROM,
        GATHER_FROM + 1,
        GATHER_BELOW - 1,
        1,
        GATHER_BELOW,
        GATHER_FROM,
        2 * GATHER_BELOW,
    ]
    .into_iter()
    .enumerate()
    {
        let mut sent = BTreeSet::new();
        for i in 0..burst {
            let request = client.announce_request(
                info_hash(u8::try_from(i % 200).unwrap()),
                peer_id(7),
                6881,
                100,
                AnnounceEvent::Started,
                10,
            );
            sent.insert(request.transaction_id.0);
            client.send(&Request::Announce(request));
        }
        let mut answered = BTreeSet::new();
        while answered.len() < burst {
            let bytes = client
                .recv_raw()
                .unwrap_or_else(|| panic!("burst {round} of {burst}: {answered:?} answered"));
            match Response::parse_bytes(&bytes, true).unwrap() {
                Response::AnnounceIpv4(r) => assert!(answered.insert(r.transaction_id.0)),
                other => panic!("burst {round}: not an announce answer: {other:?}"),
            }
        }
        assert_eq!(answered, sent, "burst {round} of {burst}");
    }
}
