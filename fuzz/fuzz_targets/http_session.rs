//! Arbitrary bytes into a server-side HTTP/1.1 tracker session, fed whole and then in
//! chunks whose sizes come from the input itself. Nothing may panic, no call uses more
//! bytes than it was given, and the events and the bytes written (the caller's answers,
//! refusals) are the same however the input is cut.
//!
//! Input layout: byte 0 holds flags (bit 0: put a valid request first; bit 1: a small
//! request limit; bit 2: a pipeline of one; bit 3: a small byte bound; bits 4-5: how
//! many requests the caller leaves unanswered before it answers them, last first), the
//! next 8 bytes chunk sizes (cycled, each 1 to 64), the rest the client's bytes.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use tracker_http_protocol::RequestLimits;
use tracker_http_protocol::session::{Answer, Answered, Event, Session, SessionLimits};

const REQUEST: &[u8] = b"GET /announce?info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb\
    &port=1&left=0 HTTP/1.1\r\nHost: t\r\n\r\n";

/// Bytes the caller writes after each event, cycled.
const ROOMS: [usize; 4] = [usize::MAX, 0, 30, 7];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (sizes, body) = rest.split_at(rest.len().min(8));
    let limits = SessionLimits {
        request: RequestLimits {
            max_request_bytes: if flags & 2 != 0 { 64 } else { 1024 },
            max_scrape_hashes: 4,
            forwarded_header: Some("X-Forwarded-For"),
        },
        max_pipelined: if flags & 4 != 0 { 1 } else { 4 },
        max_queued_bytes: if flags & 8 != 0 { 16 } else { 4096 },
    };
    let delay = usize::from((flags >> 4) & 3);
    let mut input = if flags & 1 != 0 {
        REQUEST.to_vec()
    } else {
        Vec::new()
    };
    input.extend_from_slice(body);
    let chunks: Vec<usize> = sizes.iter().map(|&b| usize::from(b & 0x3f) + 1).collect();
    let whole = drive(&input, None, &limits, delay);
    let cut = drive(&input, Some(&chunks), &limits, delay);
    assert_eq!(
        cut, whole,
        "the same input, cut, gives the same events and bytes"
    );
});

/// The caller's answer to request `seq`: whole bytes, or a head and a shared body.
fn answer_for(seq: u64) -> Answer {
    Answer {
        bytes: format!("<{seq}>").into_bytes(),
        shared: (seq % 2 == 1).then(|| Arc::from(&b"[shared]"[..])),
    }
}

/// Feeds `input` in chunks of `chunks`' sizes (cycled; all at once for `None`), then
/// ends it, calling `receive` until it needs more; the caller answers requests once
/// more than `delay` wait, last first, and writes its bytes as [`ROOMS`] says after each
/// event. Returns the events, the bytes written and whether the session finished.
fn drive(
    input: &[u8],
    chunks: Option<&[usize]>,
    limits: &SessionLimits<'_>,
    delay: usize,
) -> (Vec<Event>, Vec<u8>, bool) {
    let mut session = Session::new();
    let mut events = Vec::new();
    let mut wire = Vec::new();
    let mut unsent = 0usize;
    let mut unanswered: Vec<u64> = Vec::new();
    let mut buf = Vec::new();
    let mut rest = input;
    let mut sizes = chunks.unwrap_or(&[]).iter().copied().cycle();
    let answer_all = |session: &mut Session, unanswered: &mut Vec<u64>| {
        for seq in unanswered.drain(..).rev() {
            assert_eq!(session.answer(seq, answer_for(seq)), Answered::Queued);
        }
    };
    loop {
        let take = match chunks {
            None => rest.len(),
            Some(_) => sizes.next().unwrap_or(rest.len()).min(rest.len()),
        };
        let (now, later) = rest.split_at(take);
        buf.extend_from_slice(now);
        rest = later;
        if rest.is_empty() {
            session.end_of_input();
        }
        let mut pos = 0;
        loop {
            let received = session.receive(&buf[pos..], limits, unsent);
            assert!(received.consumed <= buf.len() - pos, "used more than given");
            pos += received.consumed;
            match &received.event {
                Event::Incomplete => break,
                Event::NotReading => {
                    if !unanswered.is_empty() {
                        answer_all(&mut session, &mut unanswered);
                    } else if unsent > 0 {
                        unsent = 0;
                    } else {
                        break;
                    }
                }
                Event::Request { seq, .. } => {
                    unanswered.push(*seq);
                    if unanswered.len() > delay {
                        answer_all(&mut session, &mut unanswered);
                    }
                }
                Event::Bad(_) => assert!(!session.is_reading(), "nothing read after it"),
            }
            if !matches!(received.event, Event::NotReading) {
                events.push(received.event);
            }
            while let Some(output) = session.next_output() {
                wire.extend_from_slice(&output.answer.bytes);
                wire.extend_from_slice(output.answer.shared.as_deref().unwrap_or_default());
                unsent += output.answer.len();
            }
            unsent = unsent.saturating_sub(ROOMS[events.len() % ROOMS.len()]);
        }
        buf.drain(..pos);
        if !session.is_reading() {
            buf.clear();
        }
        if rest.is_empty() {
            break;
        }
    }
    answer_all(&mut session, &mut unanswered);
    while let Some(output) = session.next_output() {
        wire.extend_from_slice(&output.answer.bytes);
        wire.extend_from_slice(output.answer.shared.as_deref().unwrap_or_default());
    }
    (events, wire, session.is_finished())
}
