//! The server side of one HTTP/1.1 tracker connection as a state machine without I/O:
//! the caller hands it the bytes it read and gets back one request at a time, hands it
//! each request's answer whenever it is known, and takes back the answers to write, in
//! request order. The tracker's socket worker drives it as quinn drives quinn-proto.
//!
//! # Rules it enforces
//! - **One request per call.** [`Session::receive`] parses at most one request (with
//!   [`parse_request`]) from the front of the caller's input and says how many bytes it
//!   used; input that does not hold a whole request is the normal [`Event::Incomplete`].
//!   Events depend on the bytes (and on what the caller did between calls: answers
//!   given, bytes written), never on how the bytes were cut: [`parse_request`] judges
//!   a request on its first `max_request_bytes` bytes at most.
//! - **Sequence numbers.** Every request read, a refused one included, gets the next
//!   number (0, 1, ...); answers name their request by it.
//! - **Answers go out in request order**, whatever order they come in
//!   ([`Session::answer`]): [`Session::next_output`] hands out the answer of the oldest
//!   request only once it is known, then the next.
//! - **Bounded pipeline.** At most [`SessionLimits::max_pipelined`] requests wait for
//!   or hold their answers; no further request is parsed until answers are handed out.
//! - **Bounded bytes.** No request is parsed while the bytes of the answers held here
//!   plus the caller's unsent bytes (which the caller states at each call: it knows them
//!   exactly) reach [`SessionLimits::max_queued_bytes`]: parsing stops, not only
//!   reading. With nothing queued a request is always parsed, so that one answer larger
//!   than the bound still gets through.
//! - **A bad request** ([`HttpError`]) is answered with its status and
//!   `Connection: close`, written here, after the answers before it; nothing after it is
//!   parsed.
//! - **Keep-alive.** After a request without keep-alive nothing more is parsed. Once
//!   nothing more will be parsed and every answer is handed out, the session is
//!   [finished](Session::is_finished): the caller closes once its own bytes are out.
//! - **End of input** ([`Session::end_of_input`]): whole requests already received are
//!   still parsed and answered; a half request is dropped.
//! - **Lost answers.** An answer that never comes would hold the connection for ever:
//!   [`Session::expire`] answers "overloaded" (a bencoded `failure reason`, status 200
//!   as clients expect) every unanswered request of a connection whose oldest
//!   unanswered request has stayed so for a deadline; [`Session::overloaded`] does it for
//!   one request at once. A real answer that comes later replaces the failure if that is
//!   not handed out yet, and is dropped otherwise.
//!
//! # What it must not do
//! No I/O, no clock (the caller passes `now` to [`Session::expire`]), no logging, no
//! configuration (limits are [`SessionLimits`], passed at each call), and no panic on
//! any input: like the rest of the crate it denies `unwrap`, `expect`, `panic!` and
//! unchecked indexing. What a request asks for, and what its answer says, are the
//! caller's: the session frames only the answers it writes itself (refusals and
//! "overloaded" failures).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::request::{HttpError, Parsed, Request, RequestLimits, parse_request};
use crate::response::{write_failure_body, write_http_response};

/// The bounds a session applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionLimits<'a> {
    /// The parser's bounds.
    pub request: RequestLimits<'a>,
    /// Most requests waiting for or holding their answers; 0 acts as 1.
    pub max_pipelined: usize,
    /// No request is parsed while the answers held plus the caller's unsent bytes reach
    /// this many bytes (unless nothing at all is queued).
    pub max_queued_bytes: usize,
}

/// An HTTP response, ready to write: `bytes` (a whole response, or a head), then the
/// `shared` body if any (a cached answer many connections reference rather than copy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The response's bytes, or its head when `shared` follows.
    pub bytes: Vec<u8>,
    /// A shared body, written after `bytes`.
    pub shared: Option<Arc<[u8]>>,
}

impl Answer {
    /// Bytes it puts on the wire, the shared body's included.
    pub fn len(&self) -> usize {
        self.bytes
            .len()
            .saturating_add(self.shared.as_ref().map_or(0, |body| body.len()))
    }

    /// Whether it puts no byte on the wire.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Vec<u8>> for Answer {
    fn from(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            shared: None,
        }
    }
}

/// What one call of [`Session::receive`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The input does not hold a whole request: call again with more.
    Incomplete,
    /// No request is parsed now: the pipeline is full, the byte bound is reached, or
    /// nothing more will be parsed (see [`Session::is_reading`]).
    NotReading,
    /// A request: the caller answers it with [`Session::answer`], naming `seq`.
    Request {
        /// Its sequence number.
        seq: u64,
        /// The request.
        request: Request,
    },
    /// A request refused with this error: its answer is queued here, and nothing more
    /// is parsed.
    Bad(HttpError),
}

/// What [`Session::receive`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes of the input used: the caller drops them (or starts its next call after
    /// them).
    pub consumed: usize,
    /// What they held.
    pub event: Event,
}

/// What [`Session::answer`] did with an answer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Answered {
    /// It is the request's answer.
    Queued,
    /// It replaced the "overloaded" failure the request had been given.
    Replaced,
    /// Dropped: the request has its answer already (or handed out), or is unknown.
    Dropped,
}

/// An answer handed out by [`Session::next_output`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// The sequence number of the request it answers.
    pub seq: u64,
    /// The answer.
    pub answer: Answer,
}

/// One request of the pipeline.
#[derive(Debug)]
struct Slot {
    keep_alive: bool,
    answer: Option<Answer>,
    /// The answer is an "overloaded" failure, which a real answer may replace.
    overloaded: bool,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
enum State {
    /// Requests are parsed, and more input is wanted.
    #[default]
    Open,
    /// The input has ended: whole requests received are still parsed.
    InputEnded,
    /// Nothing more is parsed.
    Closing,
}

/// One server-side HTTP/1.1 connection's protocol state (see the [module docs](self)).
/// [`Default`] is a new connection.
#[derive(Debug, Default)]
pub struct Session {
    state: State,
    /// Requests not handed out yet, in order: the first has sequence number `first_seq`,
    /// the others follow without gaps.
    pipeline: VecDeque<Slot>,
    first_seq: u64,
    /// Bytes of the answers in `pipeline`.
    held: usize,
    /// The oldest unanswered request as [`Session::expire`] last saw it, and since when.
    waiting_head: Option<(u64, Instant)>,
}

impl Session {
    /// A new connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether [`Self::receive`] may still give requests: the caller keeps the bytes it
    /// has not used, for later calls. `false` once nothing more will be parsed (a bad
    /// request, a request without keep-alive, or the end of input reached): the caller
    /// drops what it holds.
    pub fn is_reading(&self) -> bool {
        self.state != State::Closing
    }

    /// Whether the caller should read more input now: the input has not ended, nothing
    /// stops parsing, and the pipeline and the byte bound (with `unsent` bytes of the
    /// caller's) have room.
    pub fn wants_input(&self, limits: &SessionLimits<'_>, unsent: usize) -> bool {
        self.state == State::Open && self.has_room(limits, unsent)
    }

    fn has_room(&self, limits: &SessionLimits<'_>, unsent: usize) -> bool {
        let queued = self.held.saturating_add(unsent);
        self.pipeline.len() < limits.max_pipelined.max(1)
            && (queued == 0 || queued < limits.max_queued_bytes)
    }

    /// Whether nothing more will be parsed and every answer has been handed out: the
    /// caller closes the connection once its own bytes are out.
    pub fn is_finished(&self) -> bool {
        self.state == State::Closing && self.pipeline.is_empty()
    }

    /// Requests waiting for or holding their answers.
    pub fn pipelined(&self) -> usize {
        self.pipeline.len()
    }

    /// Bytes of the answers held, not handed out yet.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Parses one request from the front of `input`, the caller holding `unsent` bytes
    /// it was handed and has not written yet, and says what it found and how many bytes
    /// it used. See the [module docs](self) for the rules.
    pub fn receive(&mut self, input: &[u8], limits: &SessionLimits<'_>, unsent: usize) -> Received {
        let not_reading = Received {
            consumed: 0,
            event: Event::NotReading,
        };
        if self.state == State::Closing || !self.has_room(limits, unsent) {
            return not_reading;
        }
        match parse_request(input, &limits.request) {
            Ok(Parsed::Incomplete) => {
                if self.state == State::InputEnded {
                    // Nothing more will come: what is left (half a request, or
                    // nothing) is dropped.
                    self.state = State::Closing;
                    return Received {
                        consumed: input.len(),
                        event: Event::NotReading,
                    };
                }
                Received {
                    consumed: 0,
                    event: Event::Incomplete,
                }
            }
            Ok(Parsed::Complete { request, len }) => {
                if !request.keep_alive {
                    self.state = State::Closing;
                }
                let seq = self.push(Slot {
                    keep_alive: request.keep_alive,
                    answer: None,
                    overloaded: false,
                });
                Received {
                    consumed: len.min(input.len()),
                    event: Event::Request { seq, request },
                }
            }
            Err(error) => {
                let mut bytes = Vec::new();
                let body = format!("{}\n", error.reason());
                write_http_response(
                    &mut bytes,
                    error.status(),
                    error.reason(),
                    "text/plain",
                    false,
                    body.as_bytes(),
                );
                self.held = self.held.saturating_add(bytes.len());
                self.push(Slot {
                    keep_alive: false,
                    answer: Some(bytes.into()),
                    overloaded: false,
                });
                self.state = State::Closing;
                Received {
                    consumed: 0,
                    event: Event::Bad(error),
                }
            }
        }
    }

    /// Adds a request to the pipeline; its sequence number.
    fn push(&mut self, slot: Slot) -> u64 {
        let seq = self.next_seq();
        self.pipeline.push_back(slot);
        seq
    }

    /// The sequence number the next request gets.
    fn next_seq(&self) -> u64 {
        self.first_seq.wrapping_add(self.pipeline.len() as u64)
    }

    fn slot_mut(&mut self, seq: u64) -> Option<&mut Slot> {
        let index = usize::try_from(seq.wrapping_sub(self.first_seq)).ok()?;
        self.pipeline.get_mut(index)
    }

    /// Whether request `seq` asked to keep the connection open; `None` once its answer
    /// is handed out (or for a number never given).
    pub fn keep_alive(&self, seq: u64) -> Option<bool> {
        let index = usize::try_from(seq.wrapping_sub(self.first_seq)).ok()?;
        self.pipeline.get(index).map(|slot| slot.keep_alive)
    }

    /// Gives request `seq` its answer, in any order: it is handed out after the answers
    /// before it. An answer for a request given an "overloaded" failure replaces it if
    /// that is not handed out yet.
    pub fn answer(&mut self, seq: u64, answer: Answer) -> Answered {
        let len = answer.len();
        let Some(slot) = self.slot_mut(seq) else {
            return Answered::Dropped;
        };
        let (answered, old) = match (&slot.answer, slot.overloaded) {
            (None, _) => (Answered::Queued, 0),
            (Some(old), true) => (Answered::Replaced, old.len()),
            (Some(_), false) => return Answered::Dropped,
        };
        slot.answer = Some(answer);
        slot.overloaded = false;
        self.held = self.held.saturating_sub(old).saturating_add(len);
        answered
    }

    /// Answers request `seq` with an "overloaded" failure carrying `reason` (its answer
    /// was lost, or could not be asked for), unless it has an answer. Returns whether it
    /// did.
    pub fn overloaded(&mut self, seq: u64, reason: &str) -> bool {
        let Some(slot) = self.slot_mut(seq) else {
            return false;
        };
        if slot.answer.is_some() {
            return false;
        }
        let mut body = Vec::new();
        write_failure_body(reason, &mut body);
        let mut bytes = Vec::with_capacity(body.len().saturating_add(128));
        write_http_response(&mut bytes, 200, "OK", "text/plain", slot.keep_alive, &body);
        let len = bytes.len();
        slot.answer = Some(bytes.into());
        slot.overloaded = true;
        self.held = self.held.saturating_add(len);
        true
    }

    /// The deadline for lost answers, called now and then (the tracker: once a
    /// second) with the time `now`: when the oldest unanswered request is the one an
    /// earlier call saw so, at least `deadline` before, its answer is taken as lost, and
    /// it and every unanswered request after it (which could go out only after it) are
    /// answered "overloaded" with `reason`. Returns how many were.
    pub fn expire(&mut self, now: Instant, deadline: Duration, reason: &str) -> usize {
        let head = self
            .pipeline
            .iter()
            .position(|slot| slot.answer.is_none())
            .map(|index| self.first_seq.wrapping_add(index as u64));
        let expired = match (head, self.waiting_head) {
            (None, _) => {
                self.waiting_head = None;
                false
            }
            (Some(seq), Some((seen, since))) if seq == seen => {
                now.saturating_duration_since(since) >= deadline
            }
            (Some(seq), _) => {
                self.waiting_head = Some((seq, now));
                false
            }
        };
        if !expired {
            return 0;
        }
        self.waiting_head = None;
        let unanswered: Vec<u64> = (0..self.pipeline.len() as u64)
            .map(|i| self.first_seq.wrapping_add(i))
            .collect();
        unanswered
            .into_iter()
            .filter(|&seq| self.overloaded(seq, reason))
            .count()
    }

    /// Whether [`Self::next_output`] has an answer to hand out.
    pub fn has_output(&self) -> bool {
        self.pipeline
            .front()
            .is_some_and(|slot| slot.answer.is_some())
    }

    /// Hands out the answer of the oldest request, if it is known: the caller writes it
    /// (its bytes then its shared body) and counts it among its unsent bytes until it
    /// is written.
    pub fn next_output(&mut self) -> Option<Output> {
        let answer = self.pipeline.front_mut()?.answer.take()?;
        self.pipeline.pop_front();
        let seq = self.first_seq;
        self.first_seq = self.first_seq.wrapping_add(1);
        self.held = self.held.saturating_sub(answer.len());
        if self.pipeline.is_empty() {
            // An idle keep-alive connection keeps no allocation.
            self.pipeline = VecDeque::new();
        }
        Some(Output { seq, answer })
    }

    /// Appends every answer ready to hand out to `out` in order: each answer's bytes,
    /// then its shared body, given to `shared` with the length of `out` it follows.
    /// Returns how many answers it wrote.
    pub fn write_output(
        &mut self,
        out: &mut Vec<u8>,
        mut shared: impl FnMut(usize, Arc<[u8]>),
    ) -> usize {
        let mut n = 0;
        while let Some(output) = self.next_output() {
            out.extend_from_slice(&output.answer.bytes);
            if let Some(body) = output.answer.shared {
                shared(out.len(), body);
            }
            n += 1;
        }
        n
    }

    /// The client's side of the transport ended: nothing more will come. Whole requests
    /// the caller still holds are parsed by the next calls of [`Self::receive`]; the
    /// first call that finds no whole request drops what is left.
    pub fn end_of_input(&mut self) {
        if self.state == State::Open {
            self.state = State::InputEnded;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AnnounceEvent, AnnounceRequest, InfoHash, PasskeyParam, PeerId, RequestKind};

    fn limits(max_pipelined: usize, max_queued_bytes: usize) -> SessionLimits<'static> {
        SessionLimits {
            request: RequestLimits {
                max_request_bytes: 1024,
                max_scrape_hashes: 10,
                forwarded_header: None,
            },
            max_pipelined,
            max_queued_bytes,
        }
    }

    const INDEX: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    const INDEX_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

    /// Calls `receive` until it needs more or stops: the events, and the bytes used.
    fn events(
        session: &mut Session,
        input: &[u8],
        limits: &SessionLimits<'_>,
        unsent: usize,
    ) -> (Vec<Event>, usize) {
        let mut pos = 0;
        let mut out = Vec::new();
        loop {
            let received = session.receive(&input[pos..], limits, unsent);
            pos += received.consumed;
            match received.event {
                Event::Incomplete | Event::NotReading => return (out, pos),
                event => out.push(event),
            }
        }
    }

    fn seqs(events: &[Event]) -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Request { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect()
    }

    /// The answers ready, through [`Session::write_output`]: the bytes, and each shared
    /// body with the position it follows.
    fn output(session: &mut Session) -> (Vec<u8>, Vec<(usize, Vec<u8>)>) {
        let mut out = Vec::new();
        let mut bodies = Vec::new();
        session.write_output(&mut out, |at, body| bodies.push((at, body.to_vec())));
        (out, bodies)
    }

    /// The bytes of every answer ready, shared bodies in place.
    fn wire(session: &mut Session) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(o) = session.next_output() {
            out.extend_from_slice(&o.answer.bytes);
            if let Some(body) = o.answer.shared {
                out.extend_from_slice(&body);
            }
        }
        out
    }

    #[test]
    fn answers_go_out_in_request_order_whatever_order_they_come_in() {
        let mut session = Session::new();
        let input = [INDEX, INDEX, INDEX].concat();
        let (events, used) = events(&mut session, &input, &limits(16, 1 << 20), 0);
        assert_eq!(seqs(&events), [0, 1, 2]);
        assert_eq!(used, input.len());
        assert_eq!(session.answer(2, b"two".to_vec().into()), Answered::Queued);
        assert!(!session.has_output(), "0 is not answered");
        assert!(session.next_output().is_none());
        let body: Arc<[u8]> = Arc::from(&b"-shared"[..]);
        let zero = Answer {
            bytes: b"zero".to_vec(),
            shared: Some(Arc::clone(&body)),
        };
        assert_eq!(session.answer(0, zero.clone()), Answered::Queued);
        assert_eq!(session.held_bytes(), 3 + 4 + 7);
        assert_eq!(
            session.next_output(),
            Some(Output {
                seq: 0,
                answer: zero
            })
        );
        assert!(session.next_output().is_none(), "1 is not answered");
        assert_eq!(session.answer(1, b"one".to_vec().into()), Answered::Queued);
        assert_eq!(wire(&mut session), b"onetwo");
        assert_eq!(session.pipelined(), 0);
        assert_eq!(session.held_bytes(), 0);
        // Answered twice, or after it went out: dropped.
        assert_eq!(
            session.answer(1, b"again".to_vec().into()),
            Answered::Dropped
        );
        assert_eq!(
            session.answer(7, b"never".to_vec().into()),
            Answered::Dropped
        );
        assert!(!session.is_finished(), "keep-alive");
    }

    #[test]
    fn shared_bodies_follow_their_heads() {
        let mut session = Session::new();
        events(
            &mut session,
            &[INDEX, INDEX, INDEX].concat(),
            &limits(16, 1 << 20),
            0,
        );
        let body: Arc<[u8]> = Arc::from(&b"BODY"[..]);
        for seq in [0, 2] {
            let answer = Answer {
                bytes: format!("head{seq};").into_bytes(),
                shared: Some(Arc::clone(&body)),
            };
            session.answer(seq, answer);
        }
        session.answer(1, b"one;".to_vec().into());
        assert_eq!(
            output(&mut session),
            (
                b"head0;one;head2;".to_vec(),
                vec![(6, b"BODY".to_vec()), (16, b"BODY".to_vec())]
            )
        );
    }

    #[test]
    fn the_pipeline_is_bounded() {
        let mut session = Session::new();
        let limits = limits(2, 1 << 20);
        let input = [INDEX, INDEX, INDEX].concat();
        let (first, used) = events(&mut session, &input, &limits, 0);
        assert_eq!(seqs(&first), [0, 1]);
        assert_eq!(used, 2 * INDEX.len(), "the third stays in the input");
        assert!(!session.wants_input(&limits, 0));
        assert!(session.is_reading());
        // An answer held does not make room; one handed out does.
        session.answer(1, b"1".to_vec().into());
        assert_eq!(
            session.receive(&input[used..], &limits, 0).event,
            Event::NotReading
        );
        session.answer(0, b"0".to_vec().into());
        assert_eq!(wire(&mut session), b"01");
        let (rest, _) = events(&mut session, &input[used..], &limits, 0);
        assert_eq!(seqs(&rest), [2]);
    }

    #[test]
    fn the_byte_bound_stops_parsing_until_bytes_are_written() {
        let mut session = Session::new();
        let limits = limits(16, 100);
        let input = [INDEX, INDEX, INDEX].concat();
        assert!(matches!(
            session.receive(&input, &limits, 0).event,
            Event::Request { seq: 0, .. }
        ));
        // 99 bytes held: under the bound.
        session.answer(0, vec![b'a'; 99].into());
        let at = INDEX.len();
        assert!(matches!(
            session.receive(&input[at..], &limits, 0).event,
            Event::Request { seq: 1, .. }
        ));
        // 99 held and 1 unsent of the caller's: the bound is reached.
        assert!(!session.wants_input(&limits, 1));
        let at = at + INDEX.len();
        assert_eq!(
            session.receive(&input[at..], &limits, 1).event,
            Event::NotReading
        );
        // Handed out, the bytes are the caller's: still counted while unsent.
        let out = session.next_output().unwrap();
        assert_eq!(session.held_bytes(), 0);
        // 99 handed out and 1 more of the caller's: still at the bound.
        let unsent = out.answer.len() + 1;
        assert_eq!(
            session.receive(&input[at..], &limits, unsent).event,
            Event::NotReading
        );
        // Written: parsing resumes.
        assert!(session.wants_input(&limits, 0));
        assert!(matches!(
            session.receive(&input[at..], &limits, 0).event,
            Event::Request { seq: 2, .. }
        ));
        // One answer larger than the bound still gets through when nothing else waits.
        let mut session = Session::new();
        let limits = super::tests::limits(16, 10);
        session.receive(&input, &limits, 0);
        session.answer(0, vec![b'b'; 500].into());
        assert_eq!(session.next_output().unwrap().answer.len(), 500);
        assert!(matches!(
            session.receive(&input, &limits, 0).event,
            Event::Request { seq: 1, .. }
        ));
    }

    #[test]
    fn a_bad_request_is_answered_after_those_before_it_then_the_connection_closes() {
        let mut session = Session::new();
        let input = [INDEX, b"POST / HTTP/1.1\r\nHost: t\r\n\r\n", INDEX].concat();
        let (events, used) = events(&mut session, &input, &limits(16, 1 << 20), 0);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1], Event::Bad(HttpError::MethodNotAllowed));
        assert_eq!(
            used,
            INDEX.len(),
            "nothing is used after the request before it"
        );
        assert!(!session.is_reading());
        assert!(!session.wants_input(&limits(16, 1 << 20), 0));
        // Its answer waits for the one before it.
        assert!(!session.has_output());
        assert!(!session.is_finished());
        session.answer(0, b"first;".to_vec().into());
        let expected: &[u8] = b"first;HTTP/1.1 405 Method Not Allowed\r\n\
            Content-Type: text/plain\r\nContent-Length: 19\r\nConnection: close\r\n\r\n\
            Method Not Allowed\n";
        assert_eq!(wire(&mut session), expected);
        assert!(session.is_finished());
        assert_eq!(
            session
                .receive(&input[used..], &limits(16, 1 << 20), 0)
                .event,
            Event::NotReading
        );
    }

    #[test]
    fn nothing_is_parsed_after_a_request_without_keep_alive() {
        let mut session = Session::new();
        let input = [INDEX, INDEX_CLOSE, INDEX].concat();
        let (events, used) = events(&mut session, &input, &limits(16, 1 << 20), 0);
        assert_eq!(seqs(&events), [0, 1]);
        assert_eq!(used, INDEX.len() + INDEX_CLOSE.len());
        assert_eq!(session.keep_alive(0), Some(true));
        assert_eq!(session.keep_alive(1), Some(false));
        assert!(!session.is_reading());
        session.answer(1, b"b".to_vec().into());
        assert!(!session.is_finished(), "answers still to go out");
        session.answer(0, b"a".to_vec().into());
        assert_eq!(output(&mut session), (b"ab".to_vec(), vec![]));
        assert!(session.is_finished());
    }

    #[test]
    fn at_the_end_of_input_whole_requests_are_answered_and_half_a_request_dropped() {
        let mut session = Session::new();
        let limits = limits(1, 1 << 20);
        let input = [INDEX, INDEX, &INDEX[..10]].concat();
        let (first, used) = events(&mut session, &input, &limits, 0);
        assert_eq!(seqs(&first), [0]);
        session.end_of_input();
        assert!(session.is_reading(), "a whole request is still held");
        assert!(!session.wants_input(&limits, 0), "no more input comes");
        session.answer(0, b"0".to_vec().into());
        assert_eq!(wire(&mut session), b"0");
        let rest = &input[used..];
        let received = session.receive(rest, &limits, 0);
        assert!(matches!(received.event, Event::Request { seq: 1, .. }));
        let rest = &rest[received.consumed..];
        // The pipeline is full: the rest waits.
        assert_eq!(
            session.receive(rest, &limits, 0),
            Received {
                consumed: 0,
                event: Event::NotReading
            },
        );
        assert!(session.is_reading());
        session.answer(1, b"1".to_vec().into());
        assert_eq!(wire(&mut session), b"1");
        assert!(!session.is_finished(), "the rest is not looked at yet");
        assert_eq!(
            session.receive(rest, &limits, 0),
            Received {
                consumed: 10,
                event: Event::NotReading
            },
            "the half request is dropped"
        );
        assert!(!session.is_reading());
        assert!(session.is_finished());
        // With nothing held, the end of input finishes at the next call.
        let mut session = Session::new();
        session.end_of_input();
        assert_eq!(session.receive(b"", &limits, 0).event, Event::NotReading);
        assert!(session.is_finished());
    }

    #[test]
    fn a_late_answer_replaces_an_overloaded_failure_not_yet_handed_out() {
        let mut session = Session::new();
        let limits = limits(16, 1 << 20);
        let input = [INDEX, INDEX_CLOSE].concat();
        events(&mut session, &input, &limits, 0);
        assert!(session.overloaded(0, "busy"));
        assert!(!session.overloaded(0, "busy"), "once");
        assert!(session.overloaded(1, "busy"));
        assert_eq!(
            session.answer(0, b"late".to_vec().into()),
            Answered::Replaced
        );
        assert_eq!(session.held_bytes(), 4 + session_failure(false).len());
        assert_eq!(
            session.answer(0, b"later".to_vec().into()),
            Answered::Dropped
        );
        let mut expected = b"late".to_vec();
        expected.extend_from_slice(&session_failure(false));
        assert_eq!(wire(&mut session), expected);
        assert_eq!(
            session.answer(1, b"too late".to_vec().into()),
            Answered::Dropped
        );
        // A request answered is not made overloaded.
        let mut session = Session::new();
        events(&mut session, INDEX, &limits, 0);
        session.answer(0, b"x".to_vec().into());
        assert!(!session.overloaded(0, "busy"));
    }

    /// The failure "busy" answers, as BEP 3 and HTTP/1.1 frame it.
    fn session_failure(keep_alive: bool) -> Vec<u8> {
        // d14:failure reason4:busye
        let body = b"d14:failure reason4:busye";
        let connection = if keep_alive { "keep-alive" } else { "close" };
        let mut out = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: {connection}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn answers_lost_past_the_deadline_become_overloaded_failures() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let deadline = Duration::from_secs(10);
        let mut session = Session::new();
        let limits = limits(16, 1 << 20);
        events(&mut session, &[INDEX, INDEX, INDEX].concat(), &limits, 0);
        session.answer(1, b"one".to_vec().into());
        // First seen unanswered at 1; under the deadline at 10.
        assert_eq!(session.expire(at(1), deadline, "busy"), 0);
        assert_eq!(session.expire(at(10), deadline, "busy"), 0);
        // Its answer comes: the next one has its own clock, from when it is seen.
        session.answer(0, b"zero".to_vec().into());
        assert_eq!(session.expire(at(30), deadline, "busy"), 0);
        assert_eq!(session.expire(at(39), deadline, "busy"), 0);
        assert_eq!(session.expire(at(40), deadline, "busy"), 1);
        let mut expected = b"zeroone".to_vec();
        expected.extend_from_slice(&session_failure(true));
        assert_eq!(wire(&mut session), expected);
        // Nothing waits: nothing is remembered.
        assert_eq!(session.expire(at(100), deadline, "busy"), 0);
        events(&mut session, INDEX, &limits, 0);
        assert_eq!(session.expire(at(105), deadline, "busy"), 0);
        assert_eq!(session.expire(at(115), deadline, "busy"), 1);
        // The real answer, late: it replaces the failure.
        assert_eq!(
            session.answer(3, b"three".to_vec().into()),
            Answered::Replaced
        );
        assert_eq!(wire(&mut session), b"three");
    }

    mod properties {
        use super::*;
        use crate::ScrapeRequest;
        use proptest::prelude::*;

        /// What a client may send, as the test's model sees it.
        #[derive(Clone, Debug)]
        enum Item {
            /// A request and whether it keeps the connection open.
            Valid(RequestKind, bool),
            /// A `POST`, which the tracker refuses 405.
            Post,
        }

        fn hash() -> impl Strategy<Value = [u8; 20]> {
            any::<[u8; 20]>()
        }

        fn item() -> impl Strategy<Value = Item> {
            let announce = (hash(), hash(), any::<u16>(), any::<u64>(), any::<bool>()).prop_map(
                |(info_hash, peer_id, port, left, compact)| {
                    RequestKind::Announce(AnnounceRequest {
                        info_hash: InfoHash(info_hash),
                        peer_id: PeerId(peer_id),
                        port,
                        uploaded: Some(0),
                        downloaded: Some(0),
                        left,
                        event: AnnounceEvent::Started,
                        numwant: Some(5),
                        compact,
                        no_peer_id: false,
                        ip: None,
                        passkey: PasskeyParam::Missing,
                    })
                },
            );
            let scrape = proptest::collection::vec(hash(), 1..4).prop_map(|hashes| {
                RequestKind::Scrape(ScrapeRequest {
                    info_hashes: hashes.into_iter().map(InfoHash).collect(),
                    passkey: PasskeyParam::Missing,
                })
            });
            let kind = prop_oneof![announce, scrape, Just(RequestKind::Index)];
            prop_oneof![
                12 => (kind, prop::bool::weighted(0.9)).prop_map(|(k, keep)| Item::Valid(k, keep)),
                1 => Just(Item::Post),
            ]
        }

        fn write(item: &Item, out: &mut Vec<u8>) {
            match item {
                Item::Valid(RequestKind::Announce(a), keep_alive) => {
                    a.write_http(out, "t", *keep_alive)
                }
                Item::Valid(RequestKind::Scrape(s), keep_alive) => {
                    s.write_http(out, "t", *keep_alive)
                }
                Item::Valid(_, keep_alive) => {
                    out.extend_from_slice(b"GET / HTTP/1.1\r\nHost: t\r\n");
                    if !keep_alive {
                        out.extend_from_slice(b"Connection: close\r\n");
                    }
                    out.extend_from_slice(b"\r\n");
                }
                Item::Post => out.extend_from_slice(b"POST / HTTP/1.1\r\nHost: t\r\n\r\n"),
            }
        }

        /// The test's answer to request `seq`: whole bytes, or a head and a shared body.
        fn answer_for(seq: u64) -> Answer {
            let bytes = format!("<answer {seq}>").into_bytes();
            let shared = (seq % 3 == 1).then(|| Arc::from(format!("[body {seq}]").as_bytes()));
            Answer { bytes, shared }
        }

        /// What the rules say: the events, and the bytes out.
        fn model(items: &[Item]) -> (Vec<Event>, Vec<u8>) {
            let mut events = Vec::new();
            let mut out = Vec::new();
            for (seq, item) in (0u64..).zip(items) {
                match item {
                    Item::Valid(kind, keep_alive) => {
                        events.push(Event::Request {
                            seq,
                            request: Request {
                                kind: kind.clone(),
                                keep_alive: *keep_alive,
                                forwarded_for: None,
                            },
                        });
                        let answer = answer_for(seq);
                        out.extend_from_slice(&answer.bytes);
                        out.extend_from_slice(answer.shared.as_deref().unwrap_or_default());
                        if !keep_alive {
                            break;
                        }
                    }
                    Item::Post => {
                        events.push(Event::Bad(HttpError::MethodNotAllowed));
                        out.extend_from_slice(
                            b"HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\n\
                              Content-Length: 19\r\nConnection: close\r\n\r\n\
                              Method Not Allowed\n",
                        );
                        break;
                    }
                }
            }
            (events, out)
        }

        /// How the test's caller behaves; what it does depends on the events only,
        /// never on how the input is cut.
        #[derive(Clone, Debug)]
        struct Caller {
            /// Requests left unanswered before the caller answers them all, last first.
            delay: usize,
            /// Bytes written after each event, cycled.
            rooms: Vec<usize>,
        }

        /// Feeds `bytes` in chunks of the given sizes (the rest in one last chunk), then
        /// ends the input; answers as `caller` says. Returns the events (neither
        /// `Incomplete` nor `NotReading`), the bytes out, and whether the session
        /// finished.
        fn drive(
            bytes: &[u8],
            chunks: &[usize],
            limits: &SessionLimits<'_>,
            caller: &Caller,
        ) -> (Vec<Event>, Vec<u8>, bool) {
            let mut session = Session::new();
            let mut buf = Vec::new();
            let mut events = Vec::new();
            let mut wire = Vec::new();
            let mut unsent = 0usize;
            let mut unanswered: Vec<u64> = Vec::new();
            let mut rest = bytes;
            let mut chunks = chunks.iter().copied();
            let answer_all = |session: &mut Session, unanswered: &mut Vec<u64>| {
                for seq in unanswered.drain(..).rev() {
                    assert_eq!(session.answer(seq, answer_for(seq)), Answered::Queued);
                }
            };
            let mut ended = false;
            loop {
                let take = chunks.next().unwrap_or(rest.len()).min(rest.len());
                buf.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if rest.is_empty() && !ended {
                    // Bytes and the end may come together.
                    session.end_of_input();
                    ended = true;
                }
                let mut pos = 0;
                loop {
                    let received = session.receive(&buf[pos..], limits, unsent);
                    assert!(received.consumed <= buf.len() - pos);
                    pos += received.consumed;
                    match received.event {
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
                            unanswered.push(seq);
                            if unanswered.len() > caller.delay {
                                answer_all(&mut session, &mut unanswered);
                            }
                        }
                        Event::Bad(_) => {}
                    }
                    if !matches!(received.event, Event::NotReading) {
                        events.push(received.event);
                    }
                    while let Some(output) = session.next_output() {
                        wire.extend_from_slice(&output.answer.bytes);
                        wire.extend_from_slice(output.answer.shared.as_deref().unwrap_or_default());
                        unsent += output.answer.len();
                    }
                    let room = caller.rooms[events.len() % caller.rooms.len()];
                    unsent = unsent.saturating_sub(room);
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

        fn caller() -> impl Strategy<Value = Caller> {
            (
                0usize..4,
                proptest::collection::vec(prop_oneof![0usize..40, Just(usize::MAX)], 1..4),
            )
                .prop_map(|(delay, rooms)| Caller { delay, rooms })
        }

        proptest! {
            /// Requests a client pipelines give the events and the bytes out the rules
            /// say, whether they come all at once, a byte at a time, or cut anywhere,
            /// whatever order their answers come in and however slowly they are written.
            #[test]
            fn the_same_requests_give_the_same_events_and_bytes_however_cut(
                items in proptest::collection::vec(item(), 0..10),
                half in 0usize..200,
                cuts in proptest::collection::vec(0usize..80, 0..40),
                caller in caller(),
                max_pipelined in 1usize..5,
                max_queued_bytes in 0usize..200,
            ) {
                let limits = SessionLimits { max_pipelined, max_queued_bytes, ..limits(0, 0) };
                let mut bytes = Vec::new();
                for item in &items {
                    write(item, &mut bytes);
                }
                // Half of one more request, which the end of input drops.
                let mut last = Vec::new();
                write(&Item::Valid(RequestKind::Index, true), &mut last);
                bytes.extend_from_slice(&last[..half.min(last.len() - 1)]);
                let (events, out) = model(&items);
                let whole = drive(&bytes, &[], &limits, &caller);
                prop_assert_eq!(&whole.0, &events);
                prop_assert_eq!(&whole.1, &out);
                prop_assert!(whole.2, "finished once the input ended and all is out");
                let bytewise = drive(&bytes, &vec![1; bytes.len()], &limits, &caller);
                prop_assert_eq!(&bytewise, &whole);
                let cut = drive(&bytes, &cuts, &limits, &caller);
                prop_assert_eq!(&cut, &whole);
            }

            /// Any bytes, cut anywhere: no panic, and the same events and bytes out as
            /// when they come whole.
            #[test]
            fn arbitrary_bytes_never_panic_and_give_the_same_events_however_cut(
                bytes in proptest::collection::vec(any::<u8>(), 0..1500),
                valid_first in any::<bool>(),
                cuts in proptest::collection::vec(0usize..64, 0..64),
                caller in caller(),
                max_request_bytes in 0usize..300,
            ) {
                let mut limits = limits(3, 64);
                limits.request.max_request_bytes = max_request_bytes;
                let mut input = if valid_first { INDEX.to_vec() } else { Vec::new() };
                input.extend_from_slice(&bytes);
                let whole = drive(&input, &[], &limits, &caller);
                let cut = drive(&input, &cuts, &limits, &caller);
                prop_assert_eq!(cut, whole);
            }
        }
    }
}
