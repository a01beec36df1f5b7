//! Arbitrary datagrams into the UDP tracker parsers.
//!
//! Whatever parses, as a request or as a response of either address family, must
//! write back to bytes that parse to the same value; URL data never exceeds its limit;
//! the passkey private mode reads from it is spelled by the URL's path; nothing may
//! panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_udp_protocol::{PasskeyParam, Request, Response};

/// The tracker's default scrape limit.
const MAX_SCRAPE_TORRENTS: u8 = 74;
/// The tracker's default URL data limit (`protocol.max_url_data_bytes`).
const MAX_URL_DATA_BYTES: usize = 128;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = Request::parse_bytes(data, MAX_SCRAPE_TORRENTS, MAX_URL_DATA_BYTES) {
        if let Request::Announce(announce) = &request {
            assert!(announce.url_data.capacity() <= MAX_URL_DATA_BYTES, "url data limit");
            let path = announce.url_path();
            assert!(announce.url_data.starts_with(path) && !path.contains(&b'?'));
            if let PasskeyParam::Key(key) = announce.passkey() {
                assert!(path.windows(32).any(|w| w == key.0), "passkey from the path");
            }
        }
        let mut bytes = Vec::new();
        request
            .write_bytes(&mut bytes)
            .expect("writing into a Vec cannot fail");
        let again = Request::parse_bytes(&bytes, MAX_SCRAPE_TORRENTS, MAX_URL_DATA_BYTES);
        assert_eq!(again.as_ref(), Ok(&request), "request round trip");
    }

    for ipv4 in [true, false] {
        if let Ok(response) = Response::parse_bytes(data, ipv4) {
            let mut bytes = Vec::new();
            response
                .write_bytes(&mut bytes)
                .expect("writing into a Vec cannot fail");
            let again = Response::parse_bytes(&bytes, ipv4);
            assert_eq!(
                again.as_ref(),
                Ok(&response),
                "response round trip (ipv4: {ipv4})"
            );
        }
    }
});
