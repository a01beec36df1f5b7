//! Arbitrary bytes into the HTTP tracker parsers.
//!
//! A request that parses as an announce or a scrape must write back (`write_http`) to
//! bytes that parse to the same request, passkey included (a private tracker's
//! `/PASSKEY/announce`, `/announce/PASSKEY`); a scrape never keeps more hashes than its
//! limit; the answer parsers (read by load testers) may fail but never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_http_protocol::{
    Parsed, RequestKind, RequestLimits, TrackerResponse, bencode, parse_http_response,
    parse_request,
};

/// The tracker's default limits.
const LIMITS: RequestLimits<'static> = RequestLimits {
    max_request_bytes: 2048,
    max_scrape_hashes: 74,
    forwarded_header: Some("X-Forwarded-For"),
};

fuzz_target!(|data: &[u8]| {
    if let Ok(Parsed::Complete { request, len }) = parse_request(data, &LIMITS) {
        assert!(
            len <= data.len() && len <= LIMITS.max_request_bytes,
            "length"
        );
        let mut bytes = Vec::new();
        match &request.kind {
            RequestKind::Announce(announce) => {
                announce.write_http(&mut bytes, "tracker.example", request.keep_alive)
            }
            RequestKind::Scrape(scrape) => {
                assert!(
                    scrape.info_hashes.len() <= LIMITS.max_scrape_hashes,
                    "scrape limit"
                );
                scrape.write_http(&mut bytes, "tracker.example", request.keep_alive)
            }
            RequestKind::Index | RequestKind::Failure(_) => return,
        }
        // Written in full percent-encoding, the request may be longer than the input
        // was: the limit under test is the input's, not the writer's.
        let limits = RequestLimits {
            max_request_bytes: bytes.len(),
            ..LIMITS
        };
        let Ok(Parsed::Complete {
            request: again,
            len,
        }) = parse_request(&bytes, &limits)
        else {
            panic!(
                "written request does not parse: {:?}",
                String::from_utf8_lossy(&bytes)
            );
        };
        assert_eq!(len, bytes.len(), "written request length");
        assert_eq!(again.kind, request.kind, "request round trip");
        assert_eq!(
            again.keep_alive, request.keep_alive,
            "keep-alive round trip"
        );
    }

    let _ = parse_http_response(data, 4096);
    let _ = TrackerResponse::parse_body(data);
    let _ = bencode::decode(data);
});
