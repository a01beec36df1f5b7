//! What the hot path allocates, counted: a tracker parses every client message and
//! writes every answer, so both must stay off the allocator except where the API
//! hands out owned data (offers and answers, a scrape's list).
//!
//! A counting global allocator, per thread, so the test harness's other threads do not
//! count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tracker_ws_protocol::{
    Action, InMessage, InfoHash, Limits, OfferId, OutMessage, PeerId, RawValue, ScrapeCounts,
    parse_in_message, write_out_message,
};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to `System` unchanged; the counter is a
// thread-local `Cell` with a const initializer, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made on this thread by `f`.
fn allocations<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATIONS.with(Cell::get);
    let value = f();
    (ALLOCATIONS.with(Cell::get) - before, value)
}

const LIMITS: Limits = Limits {
    max_offers: 10,
    max_scrape_torrents: 64,
};

#[test]
fn parsing_an_announce_without_offers_allocates_nothing() {
    // Binary strings with escapes (`\u0012`, `\"`, `\\`), two-byte characters and a
    // `\u00XX` spelling: what sends serde_json's own string parser to its scratch
    // buffer.
    let text = concat!(
        r#"{"numwant":0,"uploaded":12.5,"downloaded":0,"left":null,"event":"update","#,
        r#""action":"announce","info_hash":"\u00124Vx"#,
        "\u{9a}\u{bc}\u{de}\u{f1}",
        r#"#Eg\"\\\u00ab\u00cd\u00ef\u00124Vx","#,
        r#""peer_id":"-WW0208-Zm9vYmFyYmF6","trackerid":"x","extra":[1,"\n"],"more":{"a":"\n"}}"#,
    );
    // (Unknown fields nested two deep would cost one: serde_json skips a value with
    // its scratch buffer as the stack of the enclosing arrays and objects, past the
    // innermost one. The client sends none.)
    let (count, parsed) = allocations(|| parse_in_message(text.as_bytes(), &LIMITS));
    assert!(matches!(parsed, Ok(InMessage::Announce(_))), "{parsed:?}");
    assert_eq!(count, 0);
}

#[test]
fn parsing_a_failure_allocates_nothing() {
    let text = br#"{"action":"announce","info_hash":"\u0000aaaaaaaaaaaaaaaaaaa","peer_id":5}"#;
    let (count, parsed) = allocations(|| parse_in_message(text, &LIMITS));
    assert_eq!(parsed.map_err(|e| e.reason()), Err("invalid peer_id"));
    assert_eq!(count, 0);
}

#[test]
fn parsing_offers_allocates_only_what_it_hands_out() {
    // One list and one box per offer.
    let text = concat!(
        r#"{"action":"announce","info_hash":"\u0000aaaaaaaaaaaaaaaaaaa","#,
        r#""peer_id":"bbbbbbbbbbbbbbbbbbbb","offers":["#,
        r#"{"offer":{"type":"offer","sdp":"v=0\r\n"},"offer_id":"\u0001ccccccccccccccccccc"}"#,
        "]}",
    );
    let (count, parsed) = allocations(|| parse_in_message(text.as_bytes(), &LIMITS));
    let Ok(InMessage::Announce(announce)) = parsed else {
        panic!("{parsed:?}");
    };
    assert_eq!(announce.offers.len(), 1);
    assert_eq!(count, 2);
}

#[test]
fn writing_into_a_buffer_with_room_allocates_nothing() {
    let sdp = RawValue::from_string(r#"{"type":"offer","sdp":"v=0\r\n"}"#.to_owned()).unwrap();
    let files = [(InfoHash([0; 20]), ScrapeCounts::default()); 4];
    let messages = [
        OutMessage::AnnounceResponse {
            info_hash: InfoHash([0x22; 20]),
            interval: 120,
            complete: u32::MAX,
            incomplete: 0,
        },
        OutMessage::Offer {
            info_hash: InfoHash([0x5c; 20]),
            peer_id: PeerId([0xff; 20]),
            offer_id: OfferId([0x01; 20]),
            offer: &sdp,
        },
        OutMessage::Answer {
            info_hash: InfoHash([0x80; 20]),
            peer_id: PeerId([b'a'; 20]),
            offer_id: OfferId([0x7f; 20]),
            answer: &sdp,
        },
        OutMessage::ScrapeResponse { files: &files },
        OutMessage::Failure {
            reason: "invalid \"peer_id\"\n",
            action: Some(Action::Announce),
            info_hash: Some(InfoHash([0; 20])),
        },
    ];
    let mut out = Vec::with_capacity(4096);
    for message in &messages {
        out.clear();
        let (count, ()) = allocations(|| write_out_message(message, &mut out));
        assert_eq!(count, 0, "{message:?}");
        assert!(!out.is_empty());
    }
}
