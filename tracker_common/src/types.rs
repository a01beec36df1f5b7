//! Value types shared by every protocol: info hashes, peer ids, announce events and the
//! peer entries of announce responses.
//!
//! They are defined in `tracker_types`, the crate the wire formats build on (so that a
//! wire format compiles without this crate), and re-exported here so that the trackers
//! keep their paths.

pub use tracker_types::{
    AnnounceEvent, AnnouncePeer, InfoHash, Ip, PeerId, ResponsePeer, ResponsePeerWithId,
};
