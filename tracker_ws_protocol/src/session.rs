//! The server side of one WebSocket connection (RFC 6455) as a state machine without
//! I/O: the caller hands it the bytes it read, gets back one [`Event`] at a time, and
//! asks it for the control frames (pongs, the close frame) to write when it has room.
//! The tracker's socket worker drives it as quinn drives quinn-proto.
//!
//! # Phases
//! [`Phase::Handshake`] (reading the HTTP upgrade request) → [`Phase::Answering`] (the
//! caller decides: [`Session::accept`] or [`Session::answer_http`]) → [`Phase::Open`]
//! (frames) → [`Phase::Closed`] (nothing more is read; a close frame may still wait to
//! be written).
//!
//! # Rules it enforces
//! - **One frame per call.** [`Session::receive`] reads at most one frame (or the
//!   upgrade request) from the front of its input and says how many bytes it used, so
//!   the caller bounds the work one connection gets per turn and can stop in the middle
//!   of a buffer and resume there. Input that does not hold a whole frame is the normal
//!   [`Event::Incomplete`], not an error.
//! - **The same bytes give the same events, however they are cut.** Events depend on
//!   the bytes only, never on how they arrived: an upgrade request is judged on its
//!   first `max_handshake_bytes + 1` bytes at most, and a frame once it is whole.
//! - **Messages** are text, whole and UTF-8 (RFC 6455, 5.6 and 8.1): a message may come
//!   in fragments (5.4), kept here until the last one, at most `max_message_bytes` in
//!   all; ping, pong and close frames may come between two fragments. A message in one
//!   frame is handed out as a slice of the input, with no copy.
//! - **Protocol errors close the connection with their code** (7.4.1):
//!   a binary message 1003, a text message that is not UTF-8 1007, a message larger
//!   than `max_message_bytes` 1009, a continuation of no message or a message begun
//!   inside another 1002, and what [`read_frame`] refuses (an unmasked frame, a
//!   reserved bit or opcode, a control frame that is fragmented or longer than 125
//!   bytes: 1002; a data frame larger than `max_message_bytes`: 1009). A control
//!   frame's bound is its own, 125 bytes, whatever the message limit.
//! - **A client's close frame is answered** with the code [`close_reply`] gives (5.5.1),
//!   and nothing more is read.
//! - **Pings are answered with at most one pong waiting** (5.5.3 lets an endpoint answer
//!   only the latest of several pings): a ping replaces the payload of the pong not yet
//!   handed out, and the next pong is handed out only once the caller says the one
//!   before has left its buffer ([`Session::control_flushed`]). A client that pings and
//!   never reads therefore holds one pong's worth (127 bytes), however fast it pings.
//!   Pongs are read and dropped.
//! - **Bounded memory**: the fragments of one message (`max_message_bytes`), one pong
//!   payload (125 bytes), the accept key between the upgrade request and its answer; an
//!   idle open session holds no allocation.
//!
//! # What it must not do
//! No I/O, no clock, no logging, no configuration (limits are [`SessionLimits`], passed
//! at each call), and no panic on any input: like the rest of the crate it denies
//! `unwrap`, `expect`, `panic!` and unchecked indexing. Deadlines (the handshake's, the
//! idle timeout and its ping, the grace for a closing connection's last bytes) are the
//! caller's, as are application messages: the caller writes its text frames with
//! [`write_frame`] into the same buffer as the control frames.

use std::borrow::Cow;

use tracker_types::PasskeyParam;

use crate::websocket::{
    Frame, FrameKind, Upgrade, close_code, close_payload, close_reply, http_answer, parse_upgrade,
    read_frame, switching_protocols, write_frame,
};

/// Header bytes of a server control frame: its payload is at most 125 bytes, so its
/// length fits the header's 7 bits, and a server frame carries no mask (RFC 6455, 5.2).
const CONTROL_HEADER: usize = 2;

/// Most bytes of a control frame's payload (RFC 6455, 5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// The bounds a session applies to its input.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// Most bytes of the upgrade request, headers included; a longer one is refused
    /// with 431.
    pub max_handshake_bytes: usize,
    /// Most bytes of a message's payload, all its fragments together; a larger one
    /// closes the connection with 1009.
    pub max_message_bytes: usize,
}

/// Where a session is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading the HTTP upgrade request.
    Handshake,
    /// The request is read: the caller answers it, with [`Session::accept`] (an upgrade
    /// only) or [`Session::answer_http`]. Nothing is read meanwhile.
    Answering,
    /// WebSocket frames both ways.
    Open,
    /// Nothing more is read; a close frame may still wait for
    /// [`Session::write_control`].
    Closed,
}

/// What one call of [`Session::receive`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<'i> {
    /// The input does not hold a whole frame (or the whole upgrade request): call again
    /// with more.
    Incomplete,
    /// The session reads nothing in its phase: a request waits for its answer, or the
    /// connection is closed.
    NotReading,
    /// A WebSocket upgrade request: the caller checks it, then calls
    /// [`Session::accept`] or [`Session::answer_http`].
    Upgrade {
        /// The `Origin` header, if sent.
        origin: Option<Vec<u8>>,
        /// The passkey of the request's path (see [`crate::websocket::upgrade_passkey`]);
        /// `None` for a path that is not one of the tracker's.
        passkey: Option<PasskeyParam>,
    },
    /// `GET /` without an upgrade: the caller answers with its page
    /// ([`Session::answer_http`]).
    IndexPage,
    /// A request to refuse with this status and reason ([`Session::answer_http`]).
    Refused {
        /// The HTTP status.
        status: u16,
        /// Its reason phrase.
        reason: &'static str,
    },
    /// A whole text message: a slice of the input when it came in one frame, the
    /// fragments joined when it came in several.
    Message(Cow<'i, str>),
    /// A fragment of a message, kept until its last one comes.
    Fragment,
    /// A ping: its pong waits for [`Session::write_control`].
    Ping,
    /// A pong, dropped.
    Pong,
    /// The client closed the connection: the answering close frame, with `code`, waits
    /// for [`Session::write_control`], and nothing more is read.
    Close {
        /// The code of the answering close frame.
        code: u16,
    },
    /// The client broke the protocol: a close frame with `code` waits for
    /// [`Session::write_control`], and nothing more is read.
    Failed {
        /// The close code (RFC 6455, 7.4.1).
        code: u16,
    },
}

impl Event<'_> {
    /// Whether the call read a whole frame from the client (a message's last frame, a
    /// fragment, a ping, a pong or a close): what a caller's idle timer counts as a
    /// sign of life.
    pub fn is_frame(&self) -> bool {
        matches!(
            self,
            Self::Message(_) | Self::Fragment | Self::Ping | Self::Pong | Self::Close { .. }
        )
    }

    /// The same event, owning its text (for tests and fuzzing, which keep events
    /// beyond their input).
    pub fn into_owned(self) -> Event<'static> {
        match self {
            Self::Incomplete => Event::Incomplete,
            Self::NotReading => Event::NotReading,
            Self::Upgrade { origin, passkey } => Event::Upgrade { origin, passkey },
            Self::IndexPage => Event::IndexPage,
            Self::Refused { status, reason } => Event::Refused { status, reason },
            Self::Message(text) => Event::Message(Cow::Owned(text.into_owned())),
            Self::Fragment => Event::Fragment,
            Self::Ping => Event::Ping,
            Self::Pong => Event::Pong,
            Self::Close { code } => Event::Close { code },
            Self::Failed { code } => Event::Failed { code },
        }
    }
}

/// What [`Session::receive`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received<'i> {
    /// Bytes of the input used: the next call starts after them.
    pub consumed: usize,
    /// What they held.
    pub event: Event<'i>,
}

/// One server-side WebSocket connection's protocol state (see the [module
/// docs](self)). [`Default`] is a new connection, waiting for its upgrade request.
#[derive(Debug, Default)]
pub struct Session {
    state: State,
    /// The fragments of a message in progress; `None` between messages.
    fragments: Option<Vec<u8>>,
    /// The payload of the latest ping not yet answered.
    pong: Option<Vec<u8>>,
    /// A pong was handed out and the caller has not yet said it left its buffer.
    pong_unflushed: bool,
    /// The code of the close frame waiting to be handed out.
    close: Option<u16>,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Handshake,
    /// `accept_key`: `Some` for an upgrade request, which may be accepted.
    Answering {
        accept_key: Option<String>,
    },
    Open,
    Closed,
}

impl Session {
    /// A new connection, waiting for its upgrade request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the session is.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Handshake => Phase::Handshake,
            State::Answering { .. } => Phase::Answering,
            State::Open => Phase::Open,
            State::Closed => Phase::Closed,
        }
    }

    /// Whether the connection is open: frames are read, and the caller may send
    /// messages.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// Whether [`Self::receive`] reads input in this phase (the handshake, or open):
    /// whether the caller keeps the bytes not yet used for the next call.
    pub fn is_reading(&self) -> bool {
        matches!(self.state, State::Handshake | State::Open)
    }

    /// Reads the upgrade request or one frame from the front of `input` (unmasking a
    /// frame's payload in place), and says what it held and how many bytes it used.
    /// The caller drops those bytes (or starts its next call after them), and calls
    /// again for the next frame.
    ///
    /// See the [module docs](self) for the rules; a [`Event::Failed`] or
    /// [`Event::Close`] leaves the session [`Phase::Closed`] with a close frame
    /// waiting.
    pub fn receive<'i>(&mut self, input: &'i mut [u8], limits: &SessionLimits) -> Received<'i> {
        match self.state {
            State::Handshake => self.receive_request(input, limits),
            State::Open => self.receive_frame(input, limits),
            State::Answering { .. } | State::Closed => Received {
                consumed: 0,
                event: Event::NotReading,
            },
        }
    }

    fn receive_request<'i>(&mut self, input: &[u8], limits: &SessionLimits) -> Received<'i> {
        // One byte past the limit tells a request too long from one that fits: looking
        // no further makes the answer the same however the bytes arrive (an error past
        // the limit would otherwise be found, or not, depending on the cut).
        let window = input
            .get(..limits.max_handshake_bytes.saturating_add(1))
            .unwrap_or(input);
        let (consumed, event, accept_key) = match parse_upgrade(window, limits.max_handshake_bytes)
        {
            Upgrade::Incomplete => {
                return Received {
                    consumed: 0,
                    event: Event::Incomplete,
                };
            }
            Upgrade::WebSocket {
                len,
                accept_key,
                origin,
                passkey,
            } => (len, Event::Upgrade { origin, passkey }, Some(accept_key)),
            Upgrade::IndexPage => (0, Event::IndexPage, None),
            Upgrade::Refuse(status, reason) => (0, Event::Refused { status, reason }, None),
        };
        self.state = State::Answering { accept_key };
        Received { consumed, event }
    }

    fn receive_frame<'i>(&mut self, input: &'i mut [u8], limits: &SessionLimits) -> Received<'i> {
        let max = limits.max_message_bytes;
        // A control frame is bounded by its own limit, whatever the messages' is.
        let (kind, fin, payload, len) = match read_frame(input, max.max(MAX_CONTROL_PAYLOAD)) {
            Frame::Incomplete => {
                return Received {
                    consumed: 0,
                    event: Event::Incomplete,
                };
            }
            Frame::Error(code) => {
                return Received {
                    consumed: 0,
                    event: self.fail(code),
                };
            }
            Frame::Whole {
                kind,
                fin,
                payload,
                len,
            } => (kind, fin, payload, len),
        };
        let input: &'i [u8] = input;
        let data = input.get(payload).unwrap_or_default();
        let event = match kind {
            FrameKind::Text if self.fragments.is_none() && data.len() > max => {
                self.fail(close_code::TOO_BIG)
            }
            FrameKind::Text if self.fragments.is_none() => {
                if !fin {
                    self.fragments = Some(data.to_vec());
                    Event::Fragment
                } else {
                    match std::str::from_utf8(data) {
                        Ok(text) => Event::Message(Cow::Borrowed(text)),
                        Err(_) => self.fail(close_code::INVALID_DATA),
                    }
                }
            }
            FrameKind::Continuation if self.fragments.is_some() => {
                let mut message = self.fragments.take().unwrap_or_default();
                if message.len().saturating_add(data.len()) > max {
                    self.fail(close_code::TOO_BIG)
                } else {
                    message.extend_from_slice(data);
                    if !fin {
                        self.fragments = Some(message);
                        Event::Fragment
                    } else {
                        // UTF-8 is checked on the whole message: a character may be cut
                        // between two fragments.
                        match String::from_utf8(message) {
                            Ok(text) => Event::Message(Cow::Owned(text)),
                            Err(_) => self.fail(close_code::INVALID_DATA),
                        }
                    }
                }
            }
            FrameKind::Binary => self.fail(close_code::UNSUPPORTED_DATA),
            // A new message inside a fragmented one, or a continuation of none.
            FrameKind::Text | FrameKind::Continuation => self.fail(close_code::PROTOCOL_ERROR),
            FrameKind::Ping => {
                match &mut self.pong {
                    Some(pong) => {
                        pong.clear();
                        pong.extend_from_slice(data);
                    }
                    None => self.pong = Some(data.to_vec()),
                }
                Event::Ping
            }
            FrameKind::Pong => Event::Pong,
            FrameKind::Close => {
                let code = close_reply(data);
                self.close_with(code);
                Event::Close { code }
            }
        };
        Received {
            consumed: len,
            event,
        }
    }

    /// Closes with `code` for a protocol error.
    fn fail(&mut self, code: u16) -> Event<'static> {
        self.close_with(code);
        Event::Failed { code }
    }

    /// Queues the close frame with `code` and reads no more: the frame is the last one
    /// the connection sends, so a pong still waiting is dropped.
    fn close_with(&mut self, code: u16) {
        self.close = Some(code);
        self.state = State::Closed;
        self.fragments = None;
        self.pong = None;
    }

    /// Answers an upgrade request ([`Event::Upgrade`]) with `101 Switching Protocols`,
    /// appended to `out`, and opens the connection. Returns `false`, writing nothing,
    /// when no upgrade request waits for its answer.
    pub fn accept(&mut self, out: &mut Vec<u8>) -> bool {
        let State::Answering {
            accept_key: Some(key),
        } = &self.state
        else {
            return false;
        };
        switching_protocols(key, out);
        self.state = State::Open;
        true
    }

    /// Answers the request with a plain HTTP answer appended to `out` (see
    /// [`http_answer`]) and closes: a refusal, or the index page. Returns `false`,
    /// writing nothing, once the connection is open or closed: HTTP is over then.
    pub fn answer_http(
        &mut self,
        status: u16,
        reason: &str,
        body: &str,
        out: &mut Vec<u8>,
    ) -> bool {
        if !matches!(self.state, State::Handshake | State::Answering { .. }) {
            return false;
        }
        http_answer(status, reason, body, out);
        self.state = State::Closed;
        true
    }

    /// The caller closes the connection with `code` (a policy's, say): an open
    /// connection's close frame waits for [`Self::write_control`]. Before the upgrade
    /// there is no WebSocket to close, and once closed the close frame already given is
    /// the last: the session is just closed.
    pub fn close(&mut self, code: u16) {
        match self.state {
            State::Open => self.close_with(code),
            State::Handshake | State::Answering { .. } => self.state = State::Closed,
            State::Closed => {}
        }
    }

    /// The client's side of the transport ended (end of file): nothing more will come,
    /// so the session is closed with no close frame of its own; one already waiting
    /// stays.
    pub fn end_of_input(&mut self) {
        self.state = State::Closed;
        self.fragments = None;
        self.pong = None;
    }

    /// Whether [`Self::write_control`] has a frame to write now, given room for it.
    pub fn control_waiting(&self) -> bool {
        self.close.is_some()
            || (self.pong.is_some() && !self.pong_unflushed && matches!(self.state, State::Open))
    }

    /// Appends the control frames waiting to `out` and returns their bytes: the close
    /// frame, whatever the room (4 bytes, the connection's last; the caller closes once
    /// it is out), or else the pong of the latest ping if it fits in `room` bytes and
    /// the pong handed out before it has left the caller's buffer (see
    /// [`Self::control_flushed`]).
    pub fn write_control(&mut self, out: &mut Vec<u8>, room: usize) -> usize {
        let start = out.len();
        if let Some(code) = self.close.take() {
            write_frame(out, FrameKind::Close, &close_payload(code));
        } else if matches!(self.state, State::Open)
            && !self.pong_unflushed
            && let Some(payload) = self
                .pong
                .take_if(|payload| CONTROL_HEADER.saturating_add(payload.len()) <= room)
        {
            write_frame(out, FrameKind::Pong, &payload);
            self.pong_unflushed = true;
        }
        out.len().saturating_sub(start)
    }

    /// The caller's word that every control frame [`Self::write_control`] handed out
    /// has left its buffer (the transport took it): the next pong may be handed out.
    pub fn control_flushed(&mut self) {
        self.pong_unflushed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SessionLimits = SessionLimits {
        max_handshake_bytes: 1024,
        max_message_bytes: 64,
    };

    /// The upgrade request of RFC 6455, 1.2 (its key gives the accept key of 1.3).
    const REQUEST: &[u8] = b"GET /announce HTTP/1.1\r\nHost: server.example.com\r\n\
        Upgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\nSec-WebSocket-Version: 13\r\n\r\n";

    // Opcodes (RFC 6455, 5.2).
    const CONTINUATION: u8 = 0x0;
    const TEXT: u8 = 0x1;
    const BINARY: u8 = 0x2;
    const CLOSE: u8 = 0x8;
    const PING: u8 = 0x9;
    const PONG: u8 = 0xA;

    /// A client frame as RFC 6455, 5.2 lays it out: FIN and the opcode; the mask bit
    /// and the payload length in 7 bits, or 126 and 16 bits, or 127 and 64 bits; the
    /// mask; the payload XORed with the mask, byte `i` with mask byte `i % 4`.
    fn frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= 0xffff {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn whole(opcode: u8, payload: &[u8]) -> Vec<u8> {
        frame(true, opcode, payload, [0x37, 0xfa, 0x21, 0x3d])
    }

    /// A session past its upgrade.
    fn open() -> Session {
        let mut session = Session::new();
        let mut input = REQUEST.to_vec();
        let received = session.receive(&mut input, &LIMITS);
        assert!(matches!(received.event, Event::Upgrade { .. }));
        assert!(session.accept(&mut Vec::new()));
        session
    }

    /// Feeds `bytes` to `session` whole, one call per frame until it needs more or
    /// stops reading; the events, owned.
    fn events(session: &mut Session, bytes: &[u8]) -> Vec<Event<'static>> {
        let mut input = bytes.to_vec();
        let mut pos = 0;
        let mut out = Vec::new();
        loop {
            let received = session.receive(&mut input[pos..], &LIMITS);
            pos += received.consumed;
            match received.event {
                Event::Incomplete | Event::NotReading => return out,
                event => out.push(event.into_owned()),
            }
        }
    }

    /// The control frames waiting, written with room enough.
    fn control(session: &mut Session) -> Vec<u8> {
        let mut out = Vec::new();
        session.write_control(&mut out, usize::MAX);
        out
    }

    fn message(text: &str) -> Event<'static> {
        Event::Message(Cow::Owned(text.to_owned()))
    }

    /// A server frame (RFC 6455, 5.2): FIN, opcode, unmasked length, payload.
    fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x80 | opcode, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    fn close_frame(code: u16) -> Vec<u8> {
        server_frame(CLOSE, &code.to_be_bytes())
    }

    #[test]
    fn the_upgrade_is_read_then_answered_by_the_caller() {
        let mut session = Session::new();
        assert_eq!(session.phase(), Phase::Handshake);
        assert!(session.is_reading());
        // Cut short: read more.
        let mut part = REQUEST[..REQUEST.len() - 1].to_vec();
        assert_eq!(
            session.receive(&mut part, &LIMITS),
            Received {
                consumed: 0,
                event: Event::Incomplete
            }
        );
        // Whole, with a frame right behind it: the request's bytes only are used.
        let mut input = REQUEST.to_vec();
        input.extend_from_slice(&whole(TEXT, b"{}"));
        let received = session.receive(&mut input, &LIMITS);
        assert_eq!(received.consumed, REQUEST.len());
        assert_eq!(
            received.event,
            Event::Upgrade {
                origin: Some(b"http://example.com".to_vec()),
                passkey: Some(PasskeyParam::Missing),
            }
        );
        assert_eq!(session.phase(), Phase::Answering);
        assert!(!session.is_reading());
        // Nothing is read before the answer.
        let rest = &mut input[REQUEST.len()..];
        assert_eq!(session.receive(rest, &LIMITS).event, Event::NotReading);
        let mut out = Vec::new();
        assert!(session.accept(&mut out));
        // RFC 6455, 1.3: this key's accept value.
        assert_eq!(
            out,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
        assert!(session.is_open() && session.is_reading());
        assert!(!session.accept(&mut out), "accepted once only");
        assert!(!session.answer_http(400, "Bad Request", "", &mut out));
        assert_eq!(session.receive(rest, &LIMITS).event, message("{}"));
    }

    #[test]
    fn refused_requests_and_the_index_page_are_answered_then_closed() {
        let limits = SessionLimits {
            max_handshake_bytes: 256,
            ..LIMITS
        };
        let cases: [(&[u8], Event<'static>); 4] = [
            (b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", Event::IndexPage),
            (
                b"POST / HTTP/1.1\r\nHost: t\r\n\r\n",
                Event::Refused {
                    status: 405,
                    reason: "Method Not Allowed",
                },
            ),
            (
                b"\x00garbage\r\n\r\n",
                Event::Refused {
                    status: 400,
                    reason: "Bad Request",
                },
            ),
            // No end in sight past the limit.
            (
                &[b'a'; 300],
                Event::Refused {
                    status: 431,
                    reason: "Request Header Fields Too Large",
                },
            ),
        ];
        for (request, expected) in cases {
            let mut session = Session::new();
            let mut input = request.to_vec();
            assert_eq!(session.receive(&mut input, &limits).event, expected);
            assert!(!session.accept(&mut Vec::new()), "not an upgrade");
            let mut out = Vec::new();
            assert!(session.answer_http(403, "Forbidden", "no\n", &mut out));
            assert!(
                out.starts_with(b"HTTP/1.1 403 Forbidden\r\n") && out.ends_with(b"\r\n\r\nno\n")
            );
            assert_eq!(session.phase(), Phase::Closed);
            assert_eq!(
                session.receive(&mut input, &limits).event,
                Event::NotReading
            );
            assert!(control(&mut session).is_empty());
        }
    }

    #[test]
    fn a_request_longer_than_the_limit_is_refused_431_however_it_arrives() {
        let limits = SessionLimits {
            max_handshake_bytes: 64,
            ..LIMITS
        };
        // Headers that go on past the limit, with an error (a NUL in a header name)
        // after it: judged on the first 65 bytes, it is too long, not bad.
        let mut request = b"GET / HTTP/1.1\r\nHost: t\r\nX: ".to_vec();
        request.extend_from_slice(&[b'a'; 60]);
        request.extend_from_slice(b"\r\nBad\x00Name: x\r\n\r\n");
        let too_long = Event::Refused {
            status: 431,
            reason: "Request Header Fields Too Large",
        };
        for cut in 0..request.len() {
            let mut session = Session::new();
            let mut first = request[..cut].to_vec();
            let event = session.receive(&mut first, &limits).event;
            if event == Event::Incomplete {
                let mut all = request.clone();
                assert_eq!(session.receive(&mut all, &limits).event, too_long, "{cut}");
            } else {
                assert_eq!(event, too_long, "{cut}");
            }
        }
    }

    #[test]
    fn one_call_reads_one_frame() {
        let mut session = open();
        let mut input = whole(PING, b"a");
        input.extend_from_slice(&whole(TEXT, b"{}"));
        input.extend_from_slice(&whole(PONG, b""));
        let lens = [6 + 1, 6 + 2, 6];
        let expected = [Event::Ping, message("{}"), Event::Pong];
        let mut pos = 0;
        for (len, expected) in lens.into_iter().zip(expected) {
            let received = session.receive(&mut input[pos..], &LIMITS);
            assert_eq!(received.consumed, len);
            assert_eq!(received.event, expected);
            pos += len;
        }
        assert_eq!(
            session.receive(&mut input[pos..], &LIMITS),
            Received {
                consumed: 0,
                event: Event::Incomplete
            }
        );
    }

    #[test]
    fn a_message_in_one_frame_is_a_slice_of_the_input() {
        let mut session = open();
        let mut input = whole(TEXT, "{\"é\":1}".as_bytes());
        let received = session.receive(&mut input, &LIMITS);
        assert!(matches!(
            received.event,
            Event::Message(Cow::Borrowed("{\"é\":1}"))
        ));
    }

    #[test]
    fn a_ping_is_answered_by_one_pong_with_the_latest_payload() {
        let mut session = open();
        assert_eq!(events(&mut session, &whole(PING, b"first")), [Event::Ping]);
        assert!(session.control_waiting());
        assert_eq!(control(&mut session), server_frame(PONG, b"first"));
        // Two more pings while that pong has not left the caller's buffer: no pong
        // yet, then one only, with the latest payload.
        let mut pings = whole(PING, b"second");
        pings.extend_from_slice(&whole(PING, b"third"));
        assert_eq!(events(&mut session, &pings), [Event::Ping, Event::Ping]);
        assert!(!session.control_waiting());
        assert!(control(&mut session).is_empty());
        session.control_flushed();
        assert_eq!(control(&mut session), server_frame(PONG, b"third"));
        session.control_flushed();
        assert!(control(&mut session).is_empty(), "one pong for the three");
        // An empty ping gets an empty pong.
        events(&mut session, &whole(PING, b""));
        assert_eq!(control(&mut session), server_frame(PONG, b""));
    }

    #[test]
    fn a_pong_waits_for_room() {
        let mut session = open();
        events(&mut session, &whole(PING, &[7; 125]));
        let mut out = Vec::new();
        assert_eq!(
            session.write_control(&mut out, 126),
            0,
            "127 bytes do not fit"
        );
        assert!(out.is_empty());
        assert_eq!(session.write_control(&mut out, 127), 127);
        assert_eq!(out, server_frame(PONG, &[7; 125]));
    }

    #[test]
    fn pongs_are_read_and_dropped() {
        let mut session = open();
        let mut input = whole(PONG, b"unsolicited");
        input.extend_from_slice(&whole(PONG, b""));
        assert_eq!(events(&mut session, &input), [Event::Pong, Event::Pong]);
        assert!(!session.control_waiting());
        assert!(control(&mut session).is_empty());
        assert!(session.is_open());
    }

    #[test]
    fn a_close_is_echoed_by_rfc_6455s_rules_and_ends_reading() {
        // (the client's close payload, the code answered)
        let cases: [(&[u8], u16); 6] = [
            (b"", 1000),
            (&[0x03, 0xe8], 1000),
            (&[0x0f, 0xa0, b'b', b'y', b'e'], 4000),
            // One byte cannot hold a code; 1005 is never sent in a frame.
            (&[0x03], 1002),
            (&[0x03, 0xed], 1002),
            // A reason that is not UTF-8.
            (&[0x03, 0xe8, 0xff], 1007),
        ];
        for (payload, code) in cases {
            let mut session = open();
            // A ping before it: its pong is dropped, the close frame is the last.
            let mut input = whole(PING, b"p");
            input.extend_from_slice(&whole(CLOSE, payload));
            input.extend_from_slice(&whole(TEXT, b"{}"));
            assert_eq!(
                events(&mut session, &input),
                [Event::Ping, Event::Close { code }],
                "{payload:?}"
            );
            assert_eq!(session.phase(), Phase::Closed);
            assert!(!session.is_reading());
            assert!(session.control_waiting());
            assert_eq!(control(&mut session), close_frame(code), "{payload:?}");
            assert!(control(&mut session).is_empty(), "one close frame");
        }
    }

    /// The events and control output of `bytes` fed to an open session.
    fn run(bytes: &[u8]) -> (Vec<Event<'static>>, Vec<u8>) {
        let mut session = open();
        let events = events(&mut session, bytes);
        (events, control(&mut session))
    }

    #[test]
    fn protocol_errors_close_with_their_codes() {
        let text_then = |frame: Vec<u8>| {
            let mut bytes = whole(TEXT, b"{}");
            bytes.extend_from_slice(&frame);
            bytes
        };
        let cases: [(&str, Vec<u8>, u16); 9] = [
            ("binary", whole(BINARY, b"\x01\x02"), 1003),
            (
                "binary fragment",
                frame(false, BINARY, b"\x01", [1; 4]),
                1003,
            ),
            ("not UTF-8", whole(TEXT, b"{\xff}"), 1007),
            ("too big", whole(TEXT, &[b' '; 65]), 1009),
            ("continuation of none", whole(CONTINUATION, b"x"), 1002),
            ("unmasked", vec![0x81, 0x02, b'{', b'}'], 1002),
            ("reserved bit", vec![0xc1, 0x80, 0, 0, 0, 0], 1002),
            ("fragmented ping", frame(false, PING, b"", [1; 4]), 1002),
            ("long ping", whole(PING, &[0; 126]), 1002),
        ];
        for (what, bytes, code) in cases {
            let (events, output) = run(&text_then(bytes));
            assert_eq!(events, [message("{}"), Event::Failed { code }], "{what}");
            assert_eq!(output, close_frame(code), "{what}");
        }
    }

    #[test]
    fn fragments_make_one_message_within_the_limit() {
        let mut bytes = frame(false, TEXT, b"{\"a\":", [1, 2, 3, 4]);
        bytes.extend_from_slice(&frame(false, CONTINUATION, b"", [5; 4]));
        bytes.extend_from_slice(&frame(true, CONTINUATION, b"1}", [9; 4]));
        let (events, output) = run(&bytes);
        assert_eq!(
            events,
            [Event::Fragment, Event::Fragment, message("{\"a\":1}")]
        );
        assert!(output.is_empty());
        // A character cut between two fragments is whole in the message.
        let e_acute = "é".as_bytes();
        let mut bytes = frame(false, TEXT, &e_acute[..1], [1; 4]);
        bytes.extend_from_slice(&frame(true, CONTINUATION, &e_acute[1..], [2; 4]));
        assert_eq!(run(&bytes).0, [Event::Fragment, message("é")]);
        // Exactly the limit, in two fragments.
        let mut bytes = frame(false, TEXT, &[b'a'; 32], [3; 4]);
        bytes.extend_from_slice(&frame(true, CONTINUATION, &[b'a'; 32], [4; 4]));
        assert_eq!(run(&bytes).0, [Event::Fragment, message(&"a".repeat(64))]);
    }

    #[test]
    fn fragments_over_the_limit_close_with_1009() {
        let mut bytes = frame(false, TEXT, &[b'a'; 40], [3; 4]);
        bytes.extend_from_slice(&frame(true, CONTINUATION, &[b'a'; 25], [4; 4]));
        let (events, output) = run(&bytes);
        assert_eq!(events, [Event::Fragment, Event::Failed { code: 1009 }]);
        assert_eq!(output, close_frame(1009));
        // Not UTF-8 once whole.
        let mut bytes = frame(false, TEXT, b"a", [3; 4]);
        bytes.extend_from_slice(&frame(true, CONTINUATION, b"\xc3", [4; 4]));
        assert_eq!(
            run(&bytes).0,
            [Event::Fragment, Event::Failed { code: 1007 }]
        );
    }

    #[test]
    fn a_message_begun_inside_another_closes_with_1002() {
        let mut bytes = frame(false, TEXT, b"a", [3; 4]);
        bytes.extend_from_slice(&whole(TEXT, b"b"));
        let (events, output) = run(&bytes);
        assert_eq!(events, [Event::Fragment, Event::Failed { code: 1002 }]);
        assert_eq!(output, close_frame(1002));
    }

    #[test]
    fn control_frames_may_come_between_fragments() {
        // RFC 6455, 5.4: control frames may be injected in the middle of a fragmented
        // message.
        let mut bytes = frame(false, TEXT, b"{", [1; 4]);
        bytes.extend_from_slice(&whole(PING, b"hi"));
        bytes.extend_from_slice(&frame(false, CONTINUATION, b"\"x\"", [2; 4]));
        bytes.extend_from_slice(&whole(PONG, b""));
        bytes.extend_from_slice(&frame(true, CONTINUATION, b":1}", [3; 4]));
        let (events, output) = run(&bytes);
        assert_eq!(
            events,
            [
                Event::Fragment,
                Event::Ping,
                Event::Fragment,
                Event::Pong,
                message("{\"x\":1}")
            ]
        );
        assert_eq!(output, server_frame(PONG, b"hi"));
        // A close between fragments ends the message unread.
        let mut bytes = frame(false, TEXT, b"{", [1; 4]);
        bytes.extend_from_slice(&whole(CLOSE, &[0x03, 0xe8]));
        bytes.extend_from_slice(&frame(true, CONTINUATION, b"}", [3; 4]));
        assert_eq!(
            run(&bytes).0,
            [Event::Fragment, Event::Close { code: 1000 }]
        );
    }

    #[test]
    fn the_caller_may_close() {
        let mut session = open();
        events(&mut session, &whole(PING, b"p"));
        session.close(close_code::POLICY_VIOLATION);
        assert_eq!(session.phase(), Phase::Closed);
        assert_eq!(control(&mut session), close_frame(1008), "no pong after it");
        session.close(close_code::NORMAL);
        assert!(control(&mut session).is_empty(), "closed once");
        // Before the upgrade there is no WebSocket to close.
        let mut session = Session::new();
        session.close(close_code::POLICY_VIOLATION);
        assert_eq!(session.phase(), Phase::Closed);
        assert!(control(&mut session).is_empty());
    }

    #[test]
    fn the_end_of_input_closes_without_a_frame_but_keeps_one_waiting() {
        let mut session = open();
        events(&mut session, &whole(PING, b"p"));
        session.end_of_input();
        assert_eq!(session.phase(), Phase::Closed);
        assert!(control(&mut session).is_empty(), "no pong, no close");
        let mut session = open();
        events(&mut session, &whole(CLOSE, b""));
        session.end_of_input();
        assert_eq!(control(&mut session), close_frame(1000));
    }

    #[test]
    fn every_frame_is_a_sign_of_life() {
        for event in [
            message("x"),
            Event::Fragment,
            Event::Ping,
            Event::Pong,
            Event::Close { code: 1000 },
        ] {
            assert!(event.is_frame(), "{event:?}");
        }
        for event in [
            Event::Incomplete,
            Event::NotReading,
            Event::IndexPage,
            Event::Failed { code: 1002 },
        ] {
            assert!(!event.is_frame(), "{event:?}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// What a client may send, as the test's model sees it.
        #[derive(Clone, Debug)]
        enum Item {
            /// A text message in one frame.
            Text(String),
            /// A text message in fragments, each possibly followed by a ping or pong.
            Fragmented(Vec<(String, Option<Control>)>),
            Control(Control),
            /// A close frame's payload and the code that answers it (RFC 6455, 7.4).
            Close(Vec<u8>, u16),
            Binary(Vec<u8>),
        }

        #[derive(Clone, Debug)]
        enum Control {
            Ping(Vec<u8>),
            Pong(Vec<u8>),
        }

        fn control() -> impl Strategy<Value = Control> {
            let payload = || proptest::collection::vec(any::<u8>(), 0..=125);
            prop_oneof![
                payload().prop_map(Control::Ping),
                payload().prop_map(Control::Pong)
            ]
        }

        fn item() -> impl Strategy<Value = Item> {
            let close = prop_oneof![
                Just((vec![], 1000)),
                (
                    prop_oneof![1000u16..=1003, 1007u16..=1014, 3000u16..=4999],
                    "[a-z ]{0,20}"
                )
                    .prop_map(|(code, reason)| {
                        let mut payload = code.to_be_bytes().to_vec();
                        payload.extend_from_slice(reason.as_bytes());
                        (payload, code)
                    }),
                prop_oneof![0u16..1000, 1004u16..=1006, 1015u16..3000, 5000u16..]
                    .prop_map(|code| (code.to_be_bytes().to_vec(), 1002)),
            ];
            prop_oneof![
                4 => ".{0,40}".prop_map(Item::Text),
                3 => proptest::collection::vec((".{0,12}", proptest::option::of(control())), 2..5)
                    .prop_map(Item::Fragmented),
                3 => control().prop_map(Item::Control),
                1 => close.prop_map(|(payload, code)| Item::Close(payload, code)),
                1 => proptest::collection::vec(any::<u8>(), 0..10).prop_map(Item::Binary),
            ]
        }

        /// The client's bytes: the upgrade request, then the items' frames, each with
        /// its own mask.
        fn serialize(items: &[Item], masks: &mut impl Iterator<Item = [u8; 4]>) -> Vec<u8> {
            let mut out = REQUEST.to_vec();
            let mut put = |fin: bool, opcode: u8, payload: &[u8]| {
                let mask = masks.next().unwrap_or([0x55; 4]);
                out.extend_from_slice(&frame(fin, opcode, payload, mask));
            };
            let control = |c: &Control| match c {
                Control::Ping(payload) => (PING, payload.clone()),
                Control::Pong(payload) => (PONG, payload.clone()),
            };
            for item in items {
                match item {
                    Item::Text(text) => put(true, TEXT, text.as_bytes()),
                    Item::Fragmented(parts) => {
                        let last = parts.len() - 1;
                        for (i, (part, between)) in parts.iter().enumerate() {
                            let opcode = if i == 0 { TEXT } else { CONTINUATION };
                            put(i == last, opcode, part.as_bytes());
                            if let (Some(c), false) = (between, i == last) {
                                let (opcode, payload) = control(c);
                                put(true, opcode, &payload);
                            }
                        }
                    }
                    Item::Control(c) => {
                        let (opcode, payload) = control(c);
                        put(true, opcode, &payload);
                    }
                    Item::Close(payload, _) => put(true, CLOSE, payload),
                    Item::Binary(payload) => put(true, BINARY, payload),
                }
            }
            out
        }

        /// The events the rules give for `items`, with the limit `max` on a message.
        fn model(items: &[Item], max: usize) -> Vec<Event<'static>> {
            let mut events = vec![Event::Upgrade {
                origin: Some(b"http://example.com".to_vec()),
                passkey: Some(PasskeyParam::Missing),
            }];
            let control_event = |c: &Control| match c {
                Control::Ping(_) => Event::Ping,
                Control::Pong(_) => Event::Pong,
            };
            for item in items {
                match item {
                    Item::Text(text) if text.len() > max => {
                        events.push(Event::Failed { code: 1009 });
                        return events;
                    }
                    Item::Text(text) => events.push(message(text)),
                    Item::Fragmented(parts) => {
                        let mut whole = String::new();
                        let last = parts.len() - 1;
                        for (i, (part, control)) in parts.iter().enumerate() {
                            whole.push_str(part);
                            if whole.len() > max {
                                events.push(Event::Failed { code: 1009 });
                                return events;
                            }
                            if i == last {
                                events.push(message(&whole));
                            } else {
                                events.push(Event::Fragment);
                                if let Some(c) = control {
                                    events.push(control_event(c));
                                }
                            }
                        }
                    }
                    Item::Control(c) => events.push(control_event(c)),
                    Item::Close(_, code) => {
                        events.push(Event::Close { code: *code });
                        return events;
                    }
                    Item::Binary(_) => {
                        events.push(Event::Failed { code: 1003 });
                        return events;
                    }
                }
            }
            events
        }

        /// Feeds `bytes` in chunks of the given sizes (the rest in one last chunk),
        /// accepting the upgrade. After each event it writes the control frames waiting
        /// with room from `rooms` (cycled), and says they left its buffer after every
        /// third event: what it does depends on the events only, so the output must
        /// too. Returns the events (neither `Incomplete` nor `NotReading`) and the
        /// bytes out.
        fn drive(
            bytes: &[u8],
            chunks: &[usize],
            rooms: &[usize],
            limits: &SessionLimits,
        ) -> (Vec<Event<'static>>, Vec<u8>) {
            let mut session = Session::new();
            let mut buf = Vec::new();
            let mut events = Vec::new();
            let mut out = Vec::new();
            let mut rest = bytes;
            let mut chunks = chunks.iter().copied();
            loop {
                let take = chunks.next().unwrap_or(rest.len()).min(rest.len());
                buf.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                let mut pos = 0;
                loop {
                    let left = buf.len() - pos;
                    let received = session.receive(&mut buf[pos..], limits);
                    assert!(received.consumed <= left);
                    pos += received.consumed;
                    match received.event {
                        Event::Incomplete | Event::NotReading => break,
                        event => {
                            if matches!(event, Event::Upgrade { .. }) {
                                session.accept(&mut out);
                            } else if matches!(event, Event::IndexPage | Event::Refused { .. }) {
                                session.answer_http(400, "Bad Request", "", &mut out);
                            }
                            events.push(event.into_owned());
                        }
                    }
                    let room = rooms
                        .get(events.len() % rooms.len().max(1))
                        .copied()
                        .unwrap_or(usize::MAX);
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

        proptest! {
            /// Frames a client sends give the events the rules say, and the same events
            /// and the same bytes out whether they come all at once, a byte at a time,
            /// or cut anywhere.
            #[test]
            fn the_same_bytes_give_the_same_events_however_cut(
                items in proptest::collection::vec(item(), 0..12),
                masks in proptest::collection::vec(any::<[u8; 4]>(), 64),
                cuts in proptest::collection::vec(0usize..40, 0..40),
                rooms in proptest::collection::vec(prop_oneof![0usize..140, Just(usize::MAX)], 1..5),
            ) {
                let limits = SessionLimits { max_handshake_bytes: 1024, max_message_bytes: 40 };
                let bytes = serialize(&items, &mut masks.into_iter().cycle());
                let (events, out) = drive(&bytes, &[], &rooms, &limits);
                prop_assert_eq!(&events, &model(&items, limits.max_message_bytes));
                let bytewise = drive(&bytes, &vec![1; bytes.len()], &rooms, &limits);
                prop_assert_eq!(&bytewise.0, &events);
                prop_assert_eq!(&bytewise.1, &out);
                let cut = drive(&bytes, &cuts, &rooms, &limits);
                prop_assert_eq!(&cut.0, &events);
                prop_assert_eq!(&cut.1, &out);
            }

            /// Any bytes, before or after the upgrade, cut anywhere: no panic, and the
            /// same events and bytes out as when they come whole.
            #[test]
            fn arbitrary_bytes_never_panic_and_give_the_same_events_however_cut(
                bytes in proptest::collection::vec(any::<u8>(), 0..1500),
                upgraded in any::<bool>(),
                cuts in proptest::collection::vec(0usize..64, 0..64),
                max_handshake_bytes in 0usize..300,
                max_message_bytes in 0usize..300,
            ) {
                let limits = SessionLimits { max_handshake_bytes, max_message_bytes };
                let mut input = if upgraded { REQUEST.to_vec() } else { Vec::new() };
                input.extend_from_slice(&bytes);
                let whole = drive(&input, &[], &[usize::MAX], &limits);
                let cut = drive(&input, &cuts, &[usize::MAX], &limits);
                prop_assert_eq!(cut, whole);
            }
        }
    }
}
