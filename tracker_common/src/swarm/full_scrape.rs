//! Full scrapes (a scrape naming no torrent): gathered from every request worker, merged,
//! written once and shared by every answer until the cache period ends.
//!
//! A socket worker asks each request worker for its busiest torrents, keeps the busiest
//! `max_torrents` of all the parts, sorted by info hash, and writes the answer's body
//! once with the protocol's writer (HTTP a bencoded dictionary, WebSocket a JSON
//! message). The body is an `Arc<[u8]>`: every answer for the cache period references
//! it, and no connection holds a copy (see [`crate::net::shared_bytes`] for how connections
//! write it). However many clients ask, it costs one walk over the torrents per cache
//! period and socket worker.
//!
//! Pure: no I/O, no clock (time comes in as `Instant` arguments), no channels. The
//! socket worker sends the requests [`FullScrapes::ask`] says to send, hands in the
//! parts that come back, and answers the waiters that [`FullScrapes::expire`] hands
//! back (a part lost to a full channel) with its protocol's `overloaded` failure.
//!
//! `Arc<[u8]>` rather than `bytes::Bytes`: the body is never sliced, the one copy out of
//! the `Vec` it is written into is made once per cache period, and a reference count
//! needs no further dependency.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::swarm::ScrapeCounts;
use crate::types::InfoHash;

/// One torrent of a full scrape and its counts.
pub type ScrapeFile = (InfoHash, ScrapeCounts);

/// A protocol's writer of a full scrape's body: appends the answer for `files` (at
/// most the configured number, sorted by info hash, each once).
pub type WriteBody = fn(files: &[ScrapeFile], out: &mut Vec<u8>);

/// The settings of a socket worker's full scrapes.
#[derive(Copy, Clone, Debug)]
pub struct FullScrapeSettings {
    /// Most torrents in an answer (the busiest ones); at least 1 (0, which refuses full
    /// scrapes, is the socket worker's to answer).
    pub max_torrents: usize,
    /// How many request workers send a part.
    pub parts: usize,
    /// How long an answer is reused.
    pub cache_for: Duration,
    /// A gathering whose parts have not all come by then is given up.
    pub timeout: Duration,
    /// The protocol's writer of the body.
    pub write_body: WriteBody,
}

/// What a socket worker does with a full scrape it received.
#[derive(Debug, PartialEq, Eq)]
pub enum Ask<W> {
    /// The cached answer is fresh: answer `waiter` with it now.
    Cached {
        /// The waiter handed back.
        waiter: W,
        /// The shared body.
        body: Arc<[u8]>,
    },
    /// A gathering is in flight; the waiter was added to it.
    Joined,
    /// A gathering started with the waiter: send a full scrape of at most `limit`
    /// torrents to every request worker.
    Start {
        /// The most torrents each request worker sends.
        limit: usize,
    },
}

struct InFlight<W> {
    waiting: Vec<W>,
    parts_left: usize,
    files: Vec<ScrapeFile>,
    started: Instant,
}

/// One socket worker's full scrapes: the cached answer while it is fresh, and the one
/// being gathered with its waiters. `W` is what the protocol needs to answer a waiter
/// (a connection and its request).
pub struct FullScrapes<W> {
    settings: FullScrapeSettings,
    cached: Option<(Instant, Arc<[u8]>)>,
    in_flight: Option<InFlight<W>>,
}

impl<W> FullScrapes<W> {
    /// Nothing cached, nothing in flight.
    pub fn new(settings: FullScrapeSettings) -> Self {
        Self {
            settings,
            cached: None,
            in_flight: None,
        }
    }

    /// A full scrape from `waiter` at `now`: answered from the cache, or added to the
    /// gathering in flight, or the first waiter of a new one.
    pub fn ask(&mut self, waiter: W, now: Instant) -> Ask<W> {
        if let Some((made, body)) = &self.cached
            && now.saturating_duration_since(*made) < self.settings.cache_for
        {
            return Ask::Cached {
                waiter,
                body: Arc::clone(body),
            };
        }
        if let Some(in_flight) = &mut self.in_flight {
            in_flight.waiting.push(waiter);
            return Ask::Joined;
        }
        self.in_flight = Some(InFlight {
            waiting: vec![waiter],
            parts_left: self.settings.parts,
            files: Vec::new(),
            started: now,
        });
        Ask::Start {
            limit: self.settings.max_torrents,
        }
    }

    /// Adds one request worker's part (its busiest torrents). Once every part is in,
    /// returns the answer's body, cached from `now` on, and the waiters to answer with
    /// it. A part of a gathering given up is ignored.
    pub fn part(&mut self, files: &[ScrapeFile], now: Instant) -> Option<(Arc<[u8]>, Vec<W>)> {
        let in_flight = self.in_flight.as_mut()?;
        in_flight.files.extend_from_slice(files);
        in_flight.parts_left = in_flight.parts_left.saturating_sub(1);
        if in_flight.parts_left > 0 {
            return None;
        }
        let mut done = self.in_flight.take()?;
        busiest_by_hash(&mut done.files, self.settings.max_torrents);
        let mut body = Vec::new();
        (self.settings.write_body)(&done.files, &mut body);
        let body: Arc<[u8]> = body.into();
        self.cached = Some((now, Arc::clone(&body)));
        Some((body, done.waiting))
    }

    /// Gives up a gathering older than the timeout at `now`: returns its waiters, to be
    /// answered `overloaded` (empty, without allocating, if there is none).
    pub fn expire(&mut self, now: Instant) -> Vec<W> {
        let timeout = self.settings.timeout;
        match self
            .in_flight
            .take_if(|f| now.saturating_duration_since(f.started) > timeout)
        {
            Some(lost) => lost.waiting,
            None => Vec::new(),
        }
    }

    /// Whether a gathering is in flight.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }
}

/// Keeps the `max` torrents with the most peers (seeders and leechers), then sorts
/// them by info hash: bencode wants its keys sorted, and one order for every protocol
/// makes an answer depend on the swarm only. Among torrents with as many peers as the
/// last one kept, which are kept is not specified.
pub fn busiest_by_hash(files: &mut Vec<ScrapeFile>, max: usize) {
    let peers =
        |(_, c): &ScrapeFile| std::cmp::Reverse(u64::from(c.seeders) + u64::from(c.leechers));
    if max == 0 {
        files.clear();
    } else if files.len() > max {
        // The busiest `max` before position `max`, in O(n).
        files.select_nth_unstable_by_key(max - 1, peers);
        files.truncate(max);
    }
    files.sort_unstable_by_key(|(hash, _)| *hash);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: u8, peers: u32) -> ScrapeFile {
        (
            InfoHash([n; 20]),
            ScrapeCounts {
                seeders: peers,
                completed: 7,
                leechers: 0,
            },
        )
    }

    /// A body listing each torrent's first byte and seeders.
    fn write_body(files: &[ScrapeFile], out: &mut Vec<u8>) {
        for (hash, counts) in files {
            out.extend_from_slice(format!("{}:{};", hash.0[0], counts.seeders).as_bytes());
        }
    }

    fn settings(parts: usize) -> FullScrapeSettings {
        FullScrapeSettings {
            max_torrents: 3,
            parts,
            cache_for: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            write_body,
        }
    }

    #[test]
    fn gathers_every_part_then_answers_every_waiter_with_one_shared_body() {
        let mut scrapes = FullScrapes::new(settings(2));
        let t0 = Instant::now();
        assert_eq!(scrapes.ask("a", t0), Ask::Start { limit: 3 });
        assert_eq!(scrapes.ask("b", t0), Ask::Joined);
        assert_eq!(scrapes.part(&[file(9, 5), file(1, 1)], t0), None);
        assert_eq!(scrapes.ask("c", t0), Ask::Joined);
        let (body, waiters) = scrapes
            .part(&[file(5, 9), file(3, 2), file(7, 0)], t0)
            .unwrap();
        // The busiest three (9, 5, 2 peers), sorted by hash.
        assert_eq!(&*body, b"3:2;5:9;9:5;");
        assert_eq!(waiters, vec!["a", "b", "c"]);
        assert!(!scrapes.in_flight());
        // Cached: the same allocation, not a copy.
        let Ask::Cached {
            waiter,
            body: again,
        } = scrapes.ask("d", t0 + Duration::from_secs(59))
        else {
            panic!("cached");
        };
        assert_eq!(waiter, "d");
        assert!(Arc::ptr_eq(&body, &again));
        // Stale: a new gathering.
        assert_eq!(
            scrapes.ask("e", t0 + Duration::from_secs(60)),
            Ask::Start { limit: 3 }
        );
    }

    #[test]
    fn a_gathering_with_a_lost_part_hands_its_waiters_back_once() {
        let mut scrapes = FullScrapes::new(settings(2));
        let t0 = Instant::now();
        assert!(scrapes.expire(t0).is_empty());
        assert_eq!(scrapes.ask(1, t0), Ask::Start { limit: 3 });
        assert_eq!(scrapes.ask(2, t0 + Duration::from_secs(5)), Ask::Joined);
        assert_eq!(scrapes.part(&[file(1, 1)], t0), None);
        assert!(
            scrapes.expire(t0 + Duration::from_secs(10)).is_empty(),
            "not older"
        );
        assert_eq!(scrapes.expire(t0 + Duration::from_secs(11)), vec![1, 2]);
        assert!(scrapes.expire(t0 + Duration::from_secs(12)).is_empty());
        // The lost part comes after all: ignored, nothing cached.
        assert_eq!(scrapes.part(&[file(2, 2)], t0), None);
        assert_eq!(scrapes.ask(3, t0), Ask::Start { limit: 3 });
    }

    #[test]
    fn busiest_counts_seeders_and_leechers_and_sorts_by_hash() {
        let leechers = |n: u8, l: u32| {
            (
                InfoHash([n; 20]),
                ScrapeCounts {
                    seeders: 0,
                    completed: 1000,
                    leechers: l,
                },
            )
        };
        let mut files = vec![
            file(4, 3),
            leechers(1, 4),
            file(3, u32::MAX),
            leechers(2, u32::MAX),
            file(5, 0),
        ];
        busiest_by_hash(&mut files, 3);
        let hashes: Vec<u8> = files.iter().map(|(h, _)| h.0[0]).collect();
        assert_eq!(hashes, vec![1, 2, 3]);
        busiest_by_hash(&mut files, 5);
        assert_eq!(files.len(), 3, "fewer than the limit: all kept");
        busiest_by_hash(&mut files, 0);
        assert!(files.is_empty());
    }
}
