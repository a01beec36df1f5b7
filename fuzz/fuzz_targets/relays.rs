//! Arbitrary bytes into the cluster's relay message decoder.
//!
//! Whatever decodes must write back to exactly the same bytes (the format has one
//! encoding per value); nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_cluster_protocol::{RelayWriter, decode_relays};

fuzz_target!(|data: &[u8]| {
    if let Ok(relays) = decode_relays(data) {
        let mut writer = RelayWriter::new();
        for relay in &relays {
            assert!(writer.push(relay), "a decoded relay is always writable");
        }
        assert_eq!(writer.count() as usize, relays.len());
        assert_eq!(writer.finish(), data, "relay round trip");
    }
});
