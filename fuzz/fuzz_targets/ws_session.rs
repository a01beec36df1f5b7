//! Arbitrary bytes into a server-side WebSocket session, fed whole and then in chunks
//! whose sizes come from the input itself. Nothing may panic, no call uses more bytes
//! than it was given, a closed session reads nothing more, and the events and the bytes
//! written (answers, pongs, close frames) are the same however the input is cut.
//!
//! Input layout: byte 0 holds flags (bit 0: put a valid upgrade request first, so that
//! the frames are reached; bit 1: a small handshake limit; bit 2: a small message
//! limit), the next 8 bytes chunk sizes (cycled, each 1 to 64), the rest the client's
//! bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_ws_protocol::session::{Event, Phase, Session, SessionLimits};

const REQUEST: &[u8] = b"GET /announce HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// Room for control frames after each event, cycled: a pong of up to 127 bytes fits
/// some and not others.
const ROOMS: [usize; 4] = [usize::MAX, 0, 60, 127];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (sizes, body) = rest.split_at(rest.len().min(8));
    let limits = SessionLimits {
        max_handshake_bytes: if flags & 2 != 0 { 64 } else { 1024 },
        max_message_bytes: if flags & 4 != 0 { 16 } else { 4096 },
    };
    let mut input = if flags & 1 != 0 {
        REQUEST.to_vec()
    } else {
        Vec::new()
    };
    input.extend_from_slice(body);
    let chunks: Vec<usize> = sizes.iter().map(|&b| usize::from(b & 0x3f) + 1).collect();
    let whole = drive(&input, None, &limits);
    let cut = drive(&input, Some(&chunks), &limits);
    assert_eq!(
        cut, whole,
        "the same input, cut, gives the same events and bytes"
    );
});

/// Feeds `input` in chunks of `chunks`' sizes (cycled; all at once for `None`), calling
/// `receive` until it needs more, accepting an upgrade and answering any other request;
/// after each event, writes the control frames waiting and, every third event, says
/// they left. Returns the events and the bytes written.
fn drive(
    input: &[u8],
    chunks: Option<&[usize]>,
    limits: &SessionLimits,
) -> (Vec<Event<'static>>, Vec<u8>) {
    let mut session = Session::new();
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut sizes = chunks.unwrap_or_default().iter().copied().cycle();
    let mut rest = input;
    loop {
        let take = match chunks {
            Some(_) => sizes.next().unwrap_or(1).min(rest.len()),
            None => rest.len(),
        };
        let (chunk, after) = rest.split_at(take);
        buf.extend_from_slice(chunk);
        rest = after;
        let mut pos = 0;
        loop {
            let Some(left) = buf.get_mut(pos..) else {
                panic!("position past the buffer");
            };
            let given = left.len();
            let received = session.receive(left, limits);
            assert!(received.consumed <= given, "used more than given");
            pos += received.consumed;
            match received.event {
                Event::Incomplete => break,
                Event::NotReading => {
                    assert!(matches!(session.phase(), Phase::Answering | Phase::Closed));
                    break;
                }
                event => {
                    match event {
                        Event::Upgrade { .. } => assert!(session.accept(&mut out)),
                        Event::IndexPage | Event::Refused { .. } => {
                            assert!(session.answer_http(400, "Bad Request", "", &mut out));
                        }
                        Event::Close { .. } | Event::Failed { .. } => {
                            assert_eq!(session.phase(), Phase::Closed);
                            assert!(session.control_waiting(), "a close frame waits");
                        }
                        _ => assert!(session.is_open()),
                    }
                    events.push(event.into_owned());
                }
            }
            let room = ROOMS.get(events.len() % ROOMS.len()).copied().unwrap_or(0);
            session.write_control(&mut out, room);
            if events.len() % 3 == 0 {
                session.control_flushed();
            }
        }
        buf.drain(..pos);
        if rest.is_empty() {
            break;
        }
    }
    (events, out)
}
