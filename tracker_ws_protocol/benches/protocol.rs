//! Parse and write cost of the WebTorrent tracker messages on the hot path, one
//! realistic static input each. Writing goes into one reused buffer, as the tracker
//! does.
//!
//! Run: `cargo bench -p tracker_ws_protocol`; compare with `-- --save-baseline NAME`
//! and `-- --baseline NAME`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tracker_ws_protocol::{
    Action, AnnounceEvent, AnnounceRequest, InMessage, InfoHash, Limits, Offer, OfferId,
    OutMessage, PeerId, RawValue, ScrapeCounts, ScrapeRequest, parse_in_message, write_in_message,
    write_out_message,
};

/// The tracker's default limits.
const LIMITS: Limits = Limits {
    max_offers: 10,
    max_scrape_torrents: 64,
};

/// A browser's non-trickle data-channel offer: about 800 bytes of SDP, with host and
/// server-reflexive candidates, JSON-escaped line ends.
fn sdp(kind: &str) -> Box<RawValue> {
    let sdp = concat!(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",
        "a=group:BUNDLE 0\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n",
        "a=candidate:842163049 1 udp 1677729535 203.0.113.7 50000 typ srflx ",
        "raddr 0.0.0.0 rport 0 generation 0 network-cost 999\r\n",
        "a=candidate:1510613869 1 udp 2113937151 a1b2c3d4-e5f6.local 50000 typ host ",
        "generation 0 network-cost 999\r\n",
        "a=ice-ufrag:Ab1c\r\na=ice-pwd:Zx9yWv8uTs7rQp6oNm5lKj4i\r\n",
        "a=ice-options:trickle\r\n",
        "a=fingerprint:sha-256 3A:4B:5C:6D:7E:8F:90:A1:B2:C3:D4:E5:F6:07:18:29:",
        "3A:4B:5C:6D:7E:8F:90:A1:B2:C3:D4:E5:F6:07:18:29\r\n",
        "a=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n",
    );
    let text = serde_json::to_string(&serde_json::json!({ "type": kind, "sdp": sdp }))
        .expect("a JSON object");
    RawValue::from_string(text).expect("valid JSON")
}

fn text_of(message: &InMessage) -> Vec<u8> {
    let mut out = Vec::new();
    write_in_message(message, &mut out);
    out
}

/// A hash with bytes of every JSON spelling: plain, escaped, two-byte UTF-8.
const HASH: [u8; 20] = [
    0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf1, 0x23, 0x45, //
    0x67, 0x89, 0xab, 0xcd, 0xef, 0x12, 0x34, 0x56, 0x78, 0x9a,
];

/// The client's usual announce: five offers (its cap), counts, an event.
fn announce_with_offers() -> Vec<u8> {
    text_of(&InMessage::Announce(AnnounceRequest {
        info_hash: InfoHash(HASH),
        peer_id: PeerId(*b"-WW0208-Zm9vYmFyYmF6"),
        event: AnnounceEvent::Started,
        left: Some(1_000_000),
        uploaded: Some(0),
        downloaded: Some(16384),
        numwant: Some(5),
        offers: (0..5u8)
            .map(|i| Offer {
                offer_id: OfferId([0xe0 + i; 20]),
                offer: sdp("offer"),
            })
            .collect(),
        answer: None,
    }))
}

/// A periodic announce without offers (`numwant` 0), as a seeder with no room sends.
fn announce_plain() -> Vec<u8> {
    text_of(&InMessage::Announce(AnnounceRequest {
        info_hash: InfoHash(HASH),
        peer_id: PeerId(*b"-WW0208-Zm9vYmFyYmF6"),
        event: AnnounceEvent::None,
        left: Some(0),
        uploaded: Some(123_456_789),
        downloaded: Some(1_000_000),
        numwant: Some(0),
        offers: Vec::new(),
        answer: None,
    }))
}

fn scrape() -> Vec<u8> {
    text_of(&InMessage::Scrape(ScrapeRequest::InfoHashes(vec![
        InfoHash(HASH),
    ])))
}

fn bench_parse(c: &mut Criterion) {
    for (name, text) in [
        ("ws/announce_offers/parse", announce_with_offers()),
        ("ws/announce_plain/parse", announce_plain()),
        ("ws/scrape/parse", scrape()),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| parse_in_message(black_box(&text), black_box(&LIMITS)))
        });
    }
}

fn bench_write(c: &mut Criterion) {
    let offer = sdp("offer");
    let files = [(
        InfoHash(HASH),
        ScrapeCounts {
            seeders: 12,
            completed: 340,
            leechers: 5,
        },
    )];
    for (name, message) in [
        (
            "ws/announce_response/write",
            OutMessage::AnnounceResponse {
                info_hash: InfoHash(HASH),
                interval: 120,
                complete: 12,
                incomplete: 5,
            },
        ),
        (
            "ws/offer/write",
            OutMessage::Offer {
                info_hash: InfoHash(HASH),
                peer_id: PeerId(*b"-WW0208-Zm9vYmFyYmF6"),
                offer_id: OfferId([0xe0; 20]),
                offer: &offer,
            },
        ),
        (
            "ws/scrape_response/write",
            OutMessage::ScrapeResponse { files: &files },
        ),
        (
            "ws/failure/write",
            OutMessage::Failure {
                reason: "invalid peer_id",
                action: Some(Action::Announce),
                info_hash: Some(InfoHash(HASH)),
            },
        ),
    ] {
        let mut out = Vec::with_capacity(4096);
        c.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                write_out_message(black_box(&message), &mut out);
                black_box(out.len())
            })
        });
    }
}

criterion_group!(benches, bench_parse, bench_write);
criterion_main!(benches);
