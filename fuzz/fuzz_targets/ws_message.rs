//! Arbitrary bytes into the WebTorrent tracker parsers.
//!
//! A client message that parses stays within its limits and must write back
//! (`write_in_message`) to text that parses to the same message; a tracker message
//! likewise (`write_out_message`, `parse_out_message`); nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_ws_protocol::{
    InMessage, Limits, ScrapeRequest, parse_in_message, parse_in_text, parse_out_message,
    write_in_message, write_out_message,
};

/// Small limits, so that inputs reach them.
const LIMITS: Limits = Limits {
    max_offers: 3,
    max_scrape_torrents: 4,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(
            parse_in_text(text, &LIMITS),
            parse_in_message(data, &LIMITS),
            "text and bytes parse alike"
        );
    }
    if let Ok(message) = parse_in_message(data, &LIMITS) {
        match &message {
            InMessage::Announce(announce) => {
                assert!(announce.offers.len() <= LIMITS.max_offers, "offer limit");
            }
            InMessage::Scrape(ScrapeRequest::InfoHashes(hashes)) => {
                assert!(hashes.len() <= LIMITS.max_scrape_torrents, "scrape limit");
            }
            InMessage::Scrape(ScrapeRequest::Full) => {}
        }
        let mut text = Vec::new();
        write_in_message(&message, &mut text);
        let again = parse_in_message(&text, &LIMITS);
        assert_eq!(again.as_ref(), Ok(&message), "client message round trip");
    }

    if let Ok(message) = parse_out_message(data) {
        let mut text = Vec::new();
        write_out_message(&message.as_out(), &mut text);
        let again = parse_out_message(&text);
        assert_eq!(again.as_ref(), Ok(&message), "tracker message round trip");
    }
});
