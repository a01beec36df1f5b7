//! The client side of WebSocket (RFC 6455) as the load workers use it: the HTTP upgrade
//! that opens a connection, masked frames out, unmasked frames in. tungstenite supplies
//! the frame header codec and the key derivation; the buffers are the connection's own,
//! so that many connections cost no more than their bytes in flight.
//!
//! No extensions are offered, so a server frame with a reserved bit set is a protocol
//! error, as is a masked server frame.

use std::io::Cursor;
use std::ops::Range;

use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// Most bytes of the server's `101 Switching Protocols` answer that are waited for.
const MAX_UPGRADE_ANSWER_BYTES: usize = 8192;

/// Appends the upgrade request that opens a connection to `host` (the server's address
/// as `ip:port`), with the `Sec-WebSocket-Key` `key` and, unless empty, an `Origin`
/// header, as a browser sends it.
pub(crate) fn upgrade_request(host: &str, key: &str, origin: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"GET / HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(
        b"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Key: ",
    );
    out.extend_from_slice(key.as_bytes());
    if !origin.is_empty() {
        out.extend_from_slice(b"\r\nOrigin: ");
        out.extend_from_slice(origin.as_bytes());
    }
    out.extend_from_slice(b"\r\nUser-Agent: tracker_load_test\r\n\r\n");
}

/// What the server answered to the upgrade request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum UpgradeAnswer {
    /// Not all of it is there yet.
    Incomplete,
    /// `101 Switching Protocols` with the right accept key: frames follow its `len`
    /// bytes.
    Accepted {
        /// Bytes of the answer.
        len: usize,
    },
    /// Anything else: why.
    Refused(String),
}

/// Reads the server's answer to an upgrade request at the start of `buf`; `accept_key`
/// is the `Sec-WebSocket-Accept` the request's key calls for.
pub(crate) fn parse_upgrade_answer(buf: &[u8], accept_key: &str) -> UpgradeAnswer {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_UPGRADE_ANSWER_BYTES => {
            return UpgradeAnswer::Refused("upgrade answer too long".to_string());
        }
        Ok(httparse::Status::Partial) => return UpgradeAnswer::Incomplete,
        Err(err) => return UpgradeAnswer::Refused(format!("upgrade answer: {err}")),
    };
    if response.code != Some(101) {
        return UpgradeAnswer::Refused(format!(
            "upgrade answered {} {}",
            response.code.unwrap_or(0),
            response.reason.unwrap_or_default()
        ));
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.trim_ascii())
    };
    let has_token = |name: &str, token: &str| {
        header(name).is_some_and(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    if !has_token("Upgrade", "websocket") || !has_token("Connection", "upgrade") {
        return UpgradeAnswer::Refused("101 without Upgrade: websocket".to_string());
    }
    if header("Sec-WebSocket-Accept") != Some(accept_key.as_bytes()) {
        return UpgradeAnswer::Refused("wrong Sec-WebSocket-Accept".to_string());
    }
    if header("Sec-WebSocket-Extensions").is_some() {
        return UpgradeAnswer::Refused("an extension that was not offered".to_string());
    }
    UpgradeAnswer::Accepted { len }
}

/// The frames a client sends.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ClientFrame {
    /// A whole text message.
    Text,
    /// An answer to a ping.
    Pong,
    /// Close.
    Close,
}

/// Appends a final frame of `kind` carrying `payload`, masked with `mask` as a client
/// must mask every frame (RFC 6455, 5.3).
pub(crate) fn write_frame(kind: ClientFrame, payload: &[u8], mask: [u8; 4], out: &mut Vec<u8>) {
    let opcode = match kind {
        ClientFrame::Text => OpCode::Data(Data::Text),
        ClientFrame::Pong => OpCode::Control(Control::Pong),
        ClientFrame::Close => OpCode::Control(Control::Close),
    };
    let header = FrameHeader {
        is_final: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask: Some(mask),
    };
    // Formatting into a Vec cannot fail.
    let _ = header.format(payload.len() as u64, out);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(masked) = out.get_mut(start..) {
        apply_mask(masked, mask);
    }
}

/// XORs `bytes` with the repeated `mask`, eight bytes at a time where it can.
fn apply_mask(bytes: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = bytes.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // The tail starts at a multiple of 8, so of 4: the mask starts over.
    for (byte, m) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
    }
}

/// The kinds of frames a server sends.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ServerFrame {
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

/// One frame read from the server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Not all of it is there yet.
    Incomplete,
    /// A whole frame.
    Whole {
        /// What it carries.
        kind: ServerFrame,
        /// The FIN bit.
        fin: bool,
        /// The payload's place in the buffer.
        payload: Range<usize>,
        /// Bytes of the frame, header included.
        len: usize,
    },
    /// The server broke the protocol: why.
    Error(&'static str),
}

/// Reads the frame at the start of `buf`. `max_payload` bounds a frame's payload.
pub(crate) fn read_frame(buf: &[u8], max_payload: usize) -> Frame {
    let mut cursor = Cursor::new(buf);
    let (header, payload_len) = match FrameHeader::parse(&mut cursor) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Frame::Incomplete,
        Err(_) => return Frame::Error("bad frame header"),
    };
    let header_len = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
    if header.rsv1 || header.rsv2 || header.rsv3 {
        return Frame::Error("reserved bit set");
    }
    if header.mask.is_some() {
        return Frame::Error("masked server frame");
    }
    let kind = match header.opcode {
        OpCode::Data(Data::Text) => ServerFrame::Text,
        OpCode::Data(Data::Binary) => ServerFrame::Binary,
        OpCode::Data(Data::Continue) => ServerFrame::Continuation,
        OpCode::Control(Control::Close) => ServerFrame::Close,
        OpCode::Control(Control::Ping) => ServerFrame::Ping,
        OpCode::Control(Control::Pong) => ServerFrame::Pong,
        OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_)) => {
            return Frame::Error("reserved opcode");
        }
    };
    let control = matches!(
        kind,
        ServerFrame::Close | ServerFrame::Ping | ServerFrame::Pong
    );
    if control && (payload_len > 125 || !header.is_final) {
        return Frame::Error("control frame too long or fragmented");
    }
    let payload_len = match usize::try_from(payload_len) {
        Ok(len) if len <= max_payload => len,
        _ => return Frame::Error("frame larger than network.max_message_bytes"),
    };
    let len = header_len + payload_len;
    if buf.len() < len {
        return Frame::Incomplete;
    }
    Frame::Whole {
        kind,
        fin: header.is_final,
        payload: header_len..len,
        len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upgrade_request_is_what_a_server_accepts() {
        let key = tungstenite::handshake::client::generate_key();
        let mut out = Vec::new();
        upgrade_request("127.0.0.1:6970", &key, "http://localhost", &mut out);
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut request = httparse::Request::new(&mut headers);
        assert_eq!(
            request.parse(&out).unwrap(),
            httparse::Status::Complete(out.len())
        );
        assert_eq!(request.method, Some("GET"));
        let get = |name: &str| {
            request
                .headers
                .iter()
                .find(|h| h.name == name)
                .map(|h| h.value)
        };
        assert_eq!(get("Sec-WebSocket-Key"), Some(key.as_bytes()));
        assert_eq!(get("Sec-WebSocket-Version"), Some(&b"13"[..]));
        assert_eq!(get("Origin"), Some(&b"http://localhost"[..]));
        let mut without = Vec::new();
        upgrade_request("127.0.0.1:1", &key, "", &mut without);
        assert!(!String::from_utf8(without).unwrap().contains("Origin"));
    }

    #[test]
    fn upgrade_answers_are_checked() {
        // The example of RFC 6455, 1.3.
        let accept = tungstenite::handshake::derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let good = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81";
        assert_eq!(
            parse_upgrade_answer(good, &accept),
            UpgradeAnswer::Accepted {
                len: good.len() - 1
            }
        );
        assert_eq!(
            parse_upgrade_answer(&good[..40], &accept),
            UpgradeAnswer::Incomplete
        );
        let wrong_key = String::from_utf8_lossy(good).replace("xOo=", "xOx=");
        assert!(matches!(
            parse_upgrade_answer(wrong_key.as_bytes(), &accept),
            UpgradeAnswer::Refused(_)
        ));
        let refused = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(
            parse_upgrade_answer(refused, &accept),
            UpgradeAnswer::Refused(why) if why.contains("403")
        ));
    }

    #[test]
    fn client_frames_are_masked_and_read_back() {
        for len in [0usize, 5, 125, 126, 500, 65_535, 65_536, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mask = [0x37, 0xfa, 0x21, 0x3d];
            let mut out = vec![0xee];
            write_frame(ClientFrame::Text, &payload, mask, &mut out);
            let frame = &out[1..];
            let mut cursor = Cursor::new(frame);
            let (header, parsed_len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert_eq!(header.mask, Some(mask));
            assert_eq!(header.opcode, OpCode::Data(Data::Text));
            assert!(header.is_final);
            assert_eq!(parsed_len, len as u64);
            let start = cursor.position() as usize;
            let unmasked: Vec<u8> = frame[start..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(unmasked, payload, "len {len}");
        }
    }

    fn server_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n < 65_536 => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn server_frames_are_read_whole_or_not_at_all() {
        let text = server_frame(0x81, b"{\"action\":\"announce\"}");
        assert_eq!(
            read_frame(&text, 1024),
            Frame::Whole {
                kind: ServerFrame::Text,
                fin: true,
                payload: 2..text.len(),
                len: text.len()
            }
        );
        for cut in 0..text.len() {
            assert_eq!(read_frame(&text[..cut], 1024), Frame::Incomplete, "{cut}");
        }
        let long = server_frame(0x01, &[b'a'; 300]);
        assert!(matches!(
            read_frame(&long, 1024),
            Frame::Whole {
                kind: ServerFrame::Text,
                fin: false,
                ..
            }
        ));
        assert!(matches!(read_frame(&long, 299), Frame::Error(_)));
        let ping = server_frame(0x89, b"hi");
        assert!(matches!(
            read_frame(&ping, 1024),
            Frame::Whole {
                kind: ServerFrame::Ping,
                ..
            }
        ));
        // A fragmented ping, a reserved bit, a masked frame, a reserved opcode.
        for bad in [
            server_frame(0x09, b"hi"),
            server_frame(0xc1, b"x"),
            vec![0x81, 0x81, 1, 2, 3, 4, b'x'],
            server_frame(0x83, b"x"),
        ] {
            assert!(matches!(read_frame(&bad, 1024), Frame::Error(_)), "{bad:?}");
        }
    }
}
