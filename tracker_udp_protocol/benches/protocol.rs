//! Parse and write cost of the UDP tracker messages on the hot path, one realistic
//! static input each. Writing goes into one reused buffer, as the tracker does.
//!
//! Run: `cargo bench -p tracker_udp_protocol`; compare with `-- --save-baseline NAME`
//! and `-- --baseline NAME`.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{Criterion, criterion_group, criterion_main};
use tracker_udp_protocol::{
    AnnounceEvent, AnnounceRequest, AnnounceResponse, ConnectRequest, ConnectResponse,
    ConnectionId, InfoHash, PeerId, Request, Response, ResponsePeer, ScrapeRequest, ScrapeResponse,
    TorrentScrapeStatistics, TransactionId,
};

/// The tracker's default scrape limit.
const MAX_SCRAPE_TORRENTS: u8 = 74;
/// The tracker's default URL data limit (`protocol.max_url_data_bytes`).
const MAX_URL_DATA_BYTES: usize = 128;

fn request_bytes(request: &Request) -> Vec<u8> {
    let mut bytes = Vec::new();
    request
        .write_bytes(&mut bytes)
        .expect("writing into a Vec cannot fail");
    bytes
}

fn connect_request() -> Vec<u8> {
    request_bytes(&Request::Connect(ConnectRequest {
        transaction_id: TransactionId(0x1234_5678),
    }))
}

/// A typical client announce: no BEP 41 options, tracker-default peer count.
fn announce_request() -> Vec<u8> {
    request_bytes(&Request::Announce(AnnounceRequest {
        connection_id: ConnectionId(0x0123_4567_89ab_cdef),
        transaction_id: TransactionId(0x1122_3344),
        info_hash: InfoHash([0x5a; 20]),
        peer_id: PeerId(*b"-SH0100-0123456789ab"),
        bytes_downloaded: 1_000_000,
        bytes_left: 5_000_000_000,
        bytes_uploaded: 256,
        event: AnnounceEvent::Started,
        ip_address: None,
        key: 0xdead_beef,
        peers_wanted: -1,
        port: 6881,
        url_data: Vec::new(),
    }))
}

fn scrape_request() -> Vec<u8> {
    request_bytes(&Request::Scrape(ScrapeRequest {
        connection_id: ConnectionId(0x0123_4567_89ab_cdef),
        transaction_id: TransactionId(0x1122_3344),
        info_hashes: (0..10u8).map(|i| InfoHash([i; 20])).collect(),
    }))
}

fn bench_parse(c: &mut Criterion, name: &str, bytes: &[u8]) {
    c.bench_function(name, |b| {
        b.iter(|| {
            Request::parse_bytes(
                black_box(bytes),
                black_box(MAX_SCRAPE_TORRENTS),
                black_box(MAX_URL_DATA_BYTES),
            )
        })
    });
}

fn bench_write(c: &mut Criterion, name: &str, response: &Response) {
    // Larger than any response, reused across iterations: no allocation inside.
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    c.bench_function(name, |b| {
        b.iter(|| {
            buf.clear();
            black_box(response)
                .write_bytes(&mut buf)
                .expect("writing into a Vec cannot fail");
            black_box(buf.len())
        })
    });
}

fn benches(c: &mut Criterion) {
    bench_parse(c, "udp/connect_request/parse", &connect_request());
    bench_parse(c, "udp/announce_request/parse", &announce_request());
    bench_parse(c, "udp/scrape_request/parse", &scrape_request());

    let connect = Response::Connect(ConnectResponse {
        transaction_id: TransactionId(0x1234_5678),
        connection_id: ConnectionId(0x0123_4567_89ab_cdef),
    });
    bench_write(c, "udp/connect_response/write", &connect);

    let announce = Response::AnnounceIpv4(AnnounceResponse {
        transaction_id: TransactionId(0x1122_3344),
        announce_interval: 1800,
        leechers: 20,
        seeders: 30,
        peers: (0..50u8)
            .map(|i| ResponsePeer {
                ip: Ipv4Addr::new(10, 0, i / 16, i),
                port: 6881 + u16::from(i),
            })
            .collect(),
    });
    bench_write(c, "udp/announce_response/write", &announce);

    let scrape = Response::Scrape(ScrapeResponse {
        transaction_id: TransactionId(0x1122_3344),
        torrent_stats: (0..10)
            .map(|i| TorrentScrapeStatistics {
                seeders: i * 10,
                completed: i * 100,
                leechers: i,
            })
            .collect(),
    });
    bench_write(c, "udp/scrape_response/write", &scrape);
}

criterion_group!(protocol, benches);
criterion_main!(protocol);
