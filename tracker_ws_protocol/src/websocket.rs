//! The WebSocket layer (RFC 6455) that carries the messages: the HTTP upgrade that opens
//! a connection, and frames. tungstenite supplies the frame header codec and the accept
//! key; buffers stay the caller's, so that a tracker's idle connection holds none.
//!
//! Only what a tracker and its load tester need: no extensions (a frame with a reserved
//! bit set is a protocol error), client frames must be masked and server frames not,
//! control frames must be whole and at most 125 bytes. No I/O, like the rest of the
//! crate.

use std::io::Cursor;

use tracker_types::{PasskeyParam, split_passkey_path};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// Close codes the tracker sends (RFC 6455, 7.4.1).
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A data type the tracker does not take (binary messages).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A text message that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// The tracker's policy ends the connection (a passkey revoked while it was open).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A message larger than the tracker takes.
    pub const TOO_BIG: u16 = 1009;
}

/// What the first request on a connection asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Upgrade {
    /// Not all of it is there yet.
    Incomplete,
    /// A WebSocket upgrade: answer [`switching_protocols`] with this accept key.
    WebSocket {
        /// Bytes of the request.
        len: usize,
        /// `Sec-WebSocket-Accept`.
        accept_key: String,
        /// The `Origin` header, if sent.
        origin: Option<Vec<u8>>,
        /// The passkey the path carries (see [`upgrade_passkey`]); `None` for a path
        /// that is not one of the tracker's.
        passkey: Option<PasskeyParam>,
    },
    /// `GET /` without an upgrade: the tracker's small page.
    IndexPage,
    /// Anything else: this status and reason, then close.
    Refuse(u16, &'static str),
}

/// The passkey of an upgrade request's path (its part before any `?`): `/` carries
/// none; `/announce`, `/PASSKEY/announce`, `/announce/PASSKEY` and the same with
/// `scrape` are read by [`split_passkey_path`] (a WebSocket connection serves both, so
/// the endpoint does not matter). `None` for any other path.
pub fn upgrade_passkey(path: &[u8]) -> Option<PasskeyParam> {
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    if path == b"/" {
        return Some(PasskeyParam::Missing);
    }
    split_passkey_path(path).map(|found| PasskeyParam::from_segment(found.passkey))
}

/// Reads the upgrade request at the start of `buf`.
pub fn parse_upgrade(buf: &[u8], max_bytes: usize) -> Upgrade {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= max_bytes => len,
        Ok(httparse::Status::Complete(_)) => {
            return Upgrade::Refuse(431, "Request Header Fields Too Large");
        }
        Ok(httparse::Status::Partial) if buf.len() > max_bytes => {
            return Upgrade::Refuse(431, "Request Header Fields Too Large");
        }
        Ok(httparse::Status::Partial) => return Upgrade::Incomplete,
        Err(httparse::Error::TooManyHeaders) => {
            return Upgrade::Refuse(431, "Request Header Fields Too Large");
        }
        Err(_) => return Upgrade::Refuse(400, "Bad Request"),
    };
    if request.method != Some("GET") {
        return Upgrade::Refuse(405, "Method Not Allowed");
    }
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let has_token = |name: &str, token: &str| {
        header(name).is_some_and(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    let upgrade = has_token("Upgrade", "websocket");
    if !upgrade {
        let path = request.path.unwrap_or_default();
        return if path == "/" || path.starts_with("/?") {
            Upgrade::IndexPage
        } else {
            Upgrade::Refuse(426, "Upgrade Required")
        };
    }
    if !has_token("Connection", "upgrade") || header("Sec-WebSocket-Version") != Some(b"13") {
        return Upgrade::Refuse(400, "Bad Request");
    }
    let Some(key) = header("Sec-WebSocket-Key").map(<[u8]>::trim_ascii) else {
        return Upgrade::Refuse(400, "Bad Request");
    };
    // A 16-byte nonce in base64.
    if key.len() != 24 {
        return Upgrade::Refuse(400, "Bad Request");
    }
    Upgrade::WebSocket {
        len,
        accept_key: tungstenite::handshake::derive_accept_key(key),
        origin: header("Origin").map(<[u8]>::to_vec),
        passkey: upgrade_passkey(request.path.unwrap_or_default().as_bytes()),
    }
}

/// The `101 Switching Protocols` answer to an upgrade.
pub fn switching_protocols(accept_key: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept_key.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// A plain HTTP answer that closes the connection.
pub fn http_answer(status: u16, reason: &str, body: &str, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// One frame read from a client.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not all of it is there yet.
    Incomplete,
    /// A whole frame: its kind, whether it ends a message, where its (unmasked, in
    /// place) payload lies in the buffer, and the frame's whole length.
    Whole {
        /// What it carries.
        kind: FrameKind,
        /// The FIN bit.
        fin: bool,
        /// The payload's place in the buffer.
        payload: std::ops::Range<usize>,
        /// Bytes of the frame, header included.
        len: usize,
    },
    /// The client broke the protocol: close with this code.
    Error(u16),
}

/// The kinds of frames the tracker handles.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// The first frame of a text message.
    Text,
    /// The first frame of a binary message.
    Binary,
    /// A further frame of a fragmented message.
    Continuation,
    /// Close.
    Close,
    /// Ping.
    Ping,
    /// Pong.
    Pong,
}

/// Reads the client frame at the start of `buf` (a tracker reading), unmasking its
/// payload in place once it is all there. `max_payload` bounds a data frame's payload.
/// An unmasked frame is a protocol error.
pub fn read_frame(buf: &mut [u8], max_payload: usize) -> Frame {
    read_any_frame(buf, max_payload, true)
}

/// Reads the server frame at the start of `buf` (a client reading). A masked frame is a
/// protocol error.
pub fn read_server_frame(buf: &mut [u8], max_payload: usize) -> Frame {
    read_any_frame(buf, max_payload, false)
}

fn read_any_frame(buf: &mut [u8], max_payload: usize, from_client: bool) -> Frame {
    let mut cursor = Cursor::new(&*buf);
    let (header, payload_len) = match FrameHeader::parse(&mut cursor) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Frame::Incomplete,
        Err(_) => return Frame::Error(close_code::PROTOCOL_ERROR),
    };
    let header_len = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
    if header.rsv1 || header.rsv2 || header.rsv3 {
        return Frame::Error(close_code::PROTOCOL_ERROR);
    }
    if header.mask.is_some() != from_client {
        return Frame::Error(close_code::PROTOCOL_ERROR);
    }
    let kind = match header.opcode {
        OpCode::Data(Data::Text) => FrameKind::Text,
        OpCode::Data(Data::Binary) => FrameKind::Binary,
        OpCode::Data(Data::Continue) => FrameKind::Continuation,
        OpCode::Control(Control::Close) => FrameKind::Close,
        OpCode::Control(Control::Ping) => FrameKind::Ping,
        OpCode::Control(Control::Pong) => FrameKind::Pong,
        OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_)) => {
            return Frame::Error(close_code::PROTOCOL_ERROR);
        }
    };
    let control = matches!(kind, FrameKind::Close | FrameKind::Ping | FrameKind::Pong);
    if control && (payload_len > 125 || !header.is_final) {
        return Frame::Error(close_code::PROTOCOL_ERROR);
    }
    let Ok(payload_len) = usize::try_from(payload_len) else {
        return Frame::Error(close_code::TOO_BIG);
    };
    if payload_len > max_payload {
        return Frame::Error(close_code::TOO_BIG);
    }
    let end = header_len.saturating_add(payload_len);
    let Some(payload) = buf.get_mut(header_len..end) else {
        return Frame::Incomplete;
    };
    if let Some(mask) = header.mask {
        unmask(payload, mask);
    }
    Frame::Whole {
        kind,
        fin: header.is_final,
        payload: header_len..end,
        len: end,
    }
}

/// XORs `payload` with a 4-byte `mask`, repeated (RFC 6455, 5.3), eight bytes at a time:
/// offers of a few kilobytes each pass through here. Masking and unmasking are the same.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let [a, b, c, d] = mask;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // Chunks of 8 keep the mask's phase, so the rest starts at mask byte 0.
    for (byte, m) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
    }
}

/// Appends a whole, unmasked server frame.
pub fn write_frame(out: &mut Vec<u8>, kind: FrameKind, payload: &[u8]) {
    write_any_frame(out, kind, payload, None);
}

/// The longest header of an unmasked server frame: 2 bytes, and 8 of payload length
/// past 65,535 bytes (RFC 6455, 5.2).
pub const MAX_SERVER_FRAME_HEADER: usize = 10;

/// Appends the header of an unmasked server frame whose `payload_len` bytes of payload
/// the caller sends from elsewhere (a shared cached message): with the payload, what
/// [`write_frame`] writes.
pub fn write_frame_header(out: &mut Vec<u8>, kind: FrameKind, payload_len: usize) {
    let header = FrameHeader {
        is_final: true,
        opcode: opcode(kind),
        ..FrameHeader::default()
    };
    // Writing to a Vec cannot fail.
    let _ = header.format(payload_len as u64, out);
}

/// Appends a whole client frame, masked with `mask` (which a client must choose at
/// random for each frame; RFC 6455, 5.3).
pub fn write_client_frame(out: &mut Vec<u8>, kind: FrameKind, payload: &[u8], mask: [u8; 4]) {
    write_any_frame(out, kind, payload, Some(mask));
}

fn opcode(kind: FrameKind) -> OpCode {
    match kind {
        FrameKind::Text => OpCode::Data(Data::Text),
        FrameKind::Binary => OpCode::Data(Data::Binary),
        FrameKind::Continuation => OpCode::Data(Data::Continue),
        FrameKind::Close => OpCode::Control(Control::Close),
        FrameKind::Ping => OpCode::Control(Control::Ping),
        FrameKind::Pong => OpCode::Control(Control::Pong),
    }
}

fn write_any_frame(out: &mut Vec<u8>, kind: FrameKind, payload: &[u8], mask: Option<[u8; 4]>) {
    let header = FrameHeader {
        is_final: true,
        opcode: opcode(kind),
        mask,
        ..FrameHeader::default()
    };
    // Writing to a Vec cannot fail.
    let _ = header.format(payload.len() as u64, out);
    let start = out.len();
    out.extend_from_slice(payload);
    if let (Some(mask), Some(written)) = (mask, out.get_mut(start..)) {
        unmask(written, mask);
    }
}

/// A close frame's payload: the code and no reason.
pub fn close_payload(code: u16) -> [u8; 2] {
    code.to_be_bytes()
}

/// The code to answer a client's close frame with `payload` (RFC 6455, 5.5.1 and 7.4):
/// - no payload: [`close_code::NORMAL`];
/// - a code an endpoint may send, with a reason that is UTF-8: that code, echoed;
/// - one byte, or a code no endpoint may send (below 1000; 1004, 1005, 1006 and 1015,
///   which are reserved or only reported locally; 1016 to 2999, not assigned;
///   5000 and above): [`close_code::PROTOCOL_ERROR`];
/// - a reason that is not UTF-8: [`close_code::INVALID_DATA`].
///
/// The codes that may be sent are RFC 6455's (1000 to 1003, 1007 to 1011), those IANA
/// registered since (1012 to 1014), and the ranges left to libraries and applications
/// (3000 to 4999).
pub fn close_reply(payload: &[u8]) -> u16 {
    let [high, low, reason @ ..] = payload else {
        return if payload.is_empty() {
            close_code::NORMAL
        } else {
            close_code::PROTOCOL_ERROR
        };
    };
    let code = u16::from_be_bytes([*high, *low]);
    let may_be_sent = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !may_be_sent {
        close_code::PROTOCOL_ERROR
    } else if std::str::from_utf8(reason).is_err() {
        close_code::INVALID_DATA
    } else {
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_frames_are_answered_by_rfc_6455s_rules() {
        // No payload: a normal closure.
        assert_eq!(close_reply(b""), 1000);
        // One byte cannot hold a code.
        assert_eq!(close_reply(&[0x03]), 1002);
        // Codes an endpoint may send are echoed, with or without a UTF-8 reason.
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999,
        ] {
            assert_eq!(close_reply(&code.to_be_bytes()), code, "{code}");
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice("bye, ünïcode".as_bytes());
            assert_eq!(close_reply(&payload), code, "{code} with a reason");
        }
        // Reserved, local-only, unassigned and out-of-range codes are a protocol error.
        for code in [
            0u16,
            999,
            1004,
            1005,
            1006,
            1015,
            1016,
            2000,
            2999,
            5000,
            u16::MAX,
        ] {
            assert_eq!(close_reply(&code.to_be_bytes()), 1002, "{code}");
        }
        // A reason that is not UTF-8 is invalid data.
        assert_eq!(close_reply(&[0x03, 0xe8, 0xff, 0xfe]), 1007);
        assert_eq!(close_reply(&[0x03, 0xe8, 0xc3]), 1007, "a cut sequence");
    }

    fn masked(kind_byte: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![kind_byte];
        if payload.len() < 126 {
            out.push(0x80 | payload.len() as u8);
        } else {
            out.push(0x80 | 126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn unmasking_matches_the_byte_by_byte_rule() {
        let mask = [0xA1, 0x02, 0xF3, 0x44];
        for len in 0..70 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let mut fast = data.clone();
            unmask(&mut fast, mask);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(fast, slow, "len {len}");
        }
    }

    #[test]
    fn reads_a_masked_text_frame_in_place() {
        let mut buf = masked(0x81, b"{\"action\":\"scrape\"}");
        let total = buf.len();
        let Frame::Whole {
            kind,
            fin,
            payload,
            len,
        } = read_frame(&mut buf, 1024)
        else {
            panic!("not whole");
        };
        assert_eq!((kind, fin, len), (FrameKind::Text, true, total));
        assert_eq!(&buf[payload], b"{\"action\":\"scrape\"}");
    }

    #[test]
    fn partial_frames_are_incomplete_and_bad_ones_errors() {
        let whole = masked(0x81, &[b'x'; 300]);
        for cut in 0..whole.len() {
            let mut part = whole[..cut].to_vec();
            assert_eq!(read_frame(&mut part, 1024), Frame::Incomplete, "cut {cut}");
        }
        // Unmasked, reserved bit, reserved opcode, long control, fragmented control,
        // oversize.
        let mut unmasked = vec![0x81, 0x01, b'x'];
        assert_eq!(read_frame(&mut unmasked, 1024), Frame::Error(1002));
        let mut rsv = masked(0xC1, b"x");
        assert_eq!(read_frame(&mut rsv, 1024), Frame::Error(1002));
        let mut reserved = masked(0x83, b"x");
        assert_eq!(read_frame(&mut reserved, 1024), Frame::Error(1002));
        let mut long_ping = masked(0x89, &[0; 126]);
        assert_eq!(read_frame(&mut long_ping, 1024), Frame::Error(1002));
        let mut split_ping = masked(0x09, b"x");
        assert_eq!(read_frame(&mut split_ping, 1024), Frame::Error(1002));
        let mut big = masked(0x81, &[b'x'; 300]);
        assert_eq!(read_frame(&mut big, 299), Frame::Error(1009));
    }

    #[test]
    fn written_frames_have_the_right_header() {
        for len in [0usize, 1, 125, 126, 65_535, 65_536, 70_000] {
            let mut out = b"before".to_vec();
            write_frame(&mut out, FrameKind::Text, &vec![b'a'; len]);
            let frame = &out[6..];
            let mut cursor = Cursor::new(frame);
            let (header, payload_len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert_eq!(header.opcode, OpCode::Data(Data::Text));
            assert!(header.is_final && header.mask.is_none());
            assert_eq!(payload_len as usize, len);
            assert_eq!(frame.len() - cursor.position() as usize, len, "len {len}");
        }
    }

    #[test]
    fn upgrade_requests() {
        let req = b"GET /announce HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\
                    Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://a.example\r\n\r\n";
        match parse_upgrade(req, 4096) {
            Upgrade::WebSocket {
                len,
                accept_key,
                origin,
                passkey,
            } => {
                assert_eq!(len, req.len());
                assert_eq!(passkey, Some(PasskeyParam::Missing));
                // RFC 6455, 1.3.
                assert_eq!(accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
                assert_eq!(origin.as_deref(), Some(&b"https://a.example"[..]));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_upgrade(&req[..40], 4096), Upgrade::Incomplete);
        assert_eq!(
            parse_upgrade(req, 64),
            Upgrade::Refuse(431, "Request Header Fields Too Large")
        );
        assert_eq!(
            parse_upgrade(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", 4096),
            Upgrade::IndexPage
        );
        assert_eq!(
            parse_upgrade(b"POST / HTTP/1.1\r\nHost: t\r\n\r\n", 4096),
            Upgrade::Refuse(405, "Method Not Allowed")
        );
        assert_eq!(
            parse_upgrade(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n", 4096),
            Upgrade::Refuse(426, "Upgrade Required")
        );
        let old_version = String::from_utf8_lossy(req).replace("Version: 13", "Version: 8");
        assert_eq!(
            parse_upgrade(old_version.as_bytes(), 4096),
            Upgrade::Refuse(400, "Bad Request")
        );
        assert_eq!(
            parse_upgrade(b"\x00\x01garbage\r\n\r\n", 4096),
            Upgrade::Refuse(400, "Bad Request")
        );
    }

    /// An upgrade request for `path`, as a browser sends it.
    fn upgrade_to(path: &str) -> Vec<u8> {
        format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .into_bytes()
    }

    fn passkey_of(path: &str) -> Option<PasskeyParam> {
        match parse_upgrade(&upgrade_to(path), 4096) {
            Upgrade::WebSocket { passkey, .. } => passkey,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn upgrade_paths_carry_the_passkey() {
        const KEY: &str = "abcdefghijklmnopqrstuvwxyz012345";
        let key = Some(PasskeyParam::Key(
            tracker_types::Passkey::parse(KEY.as_bytes()).unwrap(),
        ));
        for (path, expected) in [
            ("/", Some(PasskeyParam::Missing)),
            ("/?x=1", Some(PasskeyParam::Missing)),
            ("/announce", Some(PasskeyParam::Missing)),
            ("/scrape", Some(PasskeyParam::Missing)),
            ("/announce?info_hash=x", Some(PasskeyParam::Missing)),
            (&format!("/{KEY}/announce"), key),
            (&format!("/announce/{KEY}"), key),
            (&format!("/{KEY}/scrape"), key),
            (&format!("/scrape/{KEY}"), key),
            (&format!("/{KEY}/announce?a=b/c"), key),
            // A segment that is not a passkey is still one: refused as unknown.
            ("/short/announce", Some(PasskeyParam::Malformed)),
            (
                "/abcdefghijklmnopqrstuvwxyz01234-/announce",
                Some(PasskeyParam::Malformed),
            ),
            // Not one of the tracker's paths.
            ("/x", None),
            ("/ws", None),
            ("//announce", None),
            ("/announce/", None),
            (&format!("/{KEY}"), None),
            (&format!("/a/{KEY}/announce"), None),
            ("?/announce", None),
        ] {
            assert_eq!(passkey_of(path), expected, "{path}");
        }
    }

    mod round_trips {
        use super::super::*;
        use super::passkey_of;
        use proptest::prelude::*;

        fn kind() -> impl Strategy<Value = FrameKind> {
            prop_oneof![
                Just(FrameKind::Text),
                Just(FrameKind::Binary),
                Just(FrameKind::Continuation),
                Just(FrameKind::Close),
                Just(FrameKind::Ping),
                Just(FrameKind::Pong),
            ]
        }

        fn is_control(kind: FrameKind) -> bool {
            matches!(kind, FrameKind::Close | FrameKind::Ping | FrameKind::Pong)
        }

        proptest! {
            /// What a client writes, a tracker reads back whole, and the other way round;
            /// every cut short of the whole frame is incomplete.
            #[test]
            fn frames_read_back_as_written(
                kind in kind(),
                payload in proptest::collection::vec(any::<u8>(), 0..70_000),
                mask in any::<[u8; 4]>(),
                client in any::<bool>(),
            ) {
                let payload = if is_control(kind) { &payload[..payload.len().min(125)] } else { &payload[..] };
                let mut bytes = Vec::new();
                if client {
                    write_client_frame(&mut bytes, kind, payload, mask);
                } else {
                    write_frame(&mut bytes, kind, payload);
                }
                let read = |buf: &mut [u8]| if client { read_frame(buf, 1 << 20) } else { read_server_frame(buf, 1 << 20) };
                let total = bytes.len();
                for cut in [0, 1, total / 2, total.saturating_sub(1)] {
                    if cut < total {
                        let mut part = bytes[..cut].to_vec();
                        prop_assert_eq!(read(&mut part), Frame::Incomplete);
                    }
                }
                let mut buf = bytes.clone();
                match read(&mut buf) {
                    Frame::Whole { kind: got, fin, payload: range, len } => {
                        prop_assert_eq!(got, kind);
                        prop_assert!(fin);
                        prop_assert_eq!(len, total);
                        prop_assert_eq!(&buf[range], payload);
                    }
                    other => prop_assert!(false, "{:?}", other),
                }
                // The other side's reader refuses it: masking is one-way.
                let mut buf = bytes;
                let wrong = if client { read_server_frame(&mut buf, 1 << 20) } else { read_frame(&mut buf, 1 << 20) };
                prop_assert_eq!(wrong, Frame::Error(close_code::PROTOCOL_ERROR));
            }

            /// A passkey in any of the path forms is found; any path parses without
            /// panic, and one that names a passkey segment names it as sent.
            #[test]
            fn upgrade_paths_find_the_passkey(
                key in "[0-9A-Za-z]{32}",
                form in 0usize..4,
                query in proptest::option::of("[ -~]{0,20}"),
                other in "/[!-~]{0,40}",
            ) {
                use tracker_types::Passkey;
                let path = match form {
                    0 => format!("/{key}/announce"),
                    1 => format!("/announce/{key}"),
                    2 => format!("/{key}/scrape"),
                    _ => format!("/scrape/{key}"),
                };
                let path = match query {
                    Some(q) => format!("{path}?{}", q.replace(' ', "+")),
                    None => path,
                };
                let expected = Passkey::parse(key.as_bytes()).map(PasskeyParam::Key);
                prop_assert_eq!(upgrade_passkey(path.as_bytes()), expected);
                prop_assert_eq!(passkey_of(&path), expected);
                if let Some(found) = upgrade_passkey(other.as_bytes()) {
                    let before_query = other.split('?').next().unwrap_or_default();
                    prop_assert!(before_query == "/" || split_passkey_path(before_query.as_bytes()).is_some());
                    prop_assert_eq!(found == PasskeyParam::Missing, !before_query.trim_start_matches('/').contains('/'));
                }
            }

            /// Any bytes: no panic, and a whole frame lies within the input.
            #[test]
            fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
                let len = bytes.len();
                for client in [true, false] {
                    let mut buf = bytes.clone();
                    let frame = if client { read_frame(&mut buf, 200) } else { read_server_frame(&mut buf, 200) };
                    if let Frame::Whole { payload, len: frame_len, .. } = frame {
                        prop_assert!(payload.end <= frame_len && frame_len <= len);
                    }
                }
                let _ = parse_upgrade(&bytes, 256);
                bytes.truncate(0);
            }
        }
    }
}
