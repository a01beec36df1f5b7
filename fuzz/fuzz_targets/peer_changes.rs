//! Arbitrary bytes into the cluster's peer change batch decoder.
//!
//! Whatever decodes must write back to exactly the same bytes (the format has one
//! encoding per value); nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_cluster_protocol::{BatchWriter, decode_batch};

fuzz_target!(|data: &[u8]| {
    if let Ok((header, changes)) = decode_batch(data) {
        let mut writer = BatchWriter::new(&header);
        for change in &changes {
            writer.push(change);
        }
        assert_eq!(writer.count() as usize, changes.len());
        assert_eq!(writer.finish(), data, "batch round trip");
    }
});
