//! The client side of the WebSocket upgrade (RFC 6455, 4.1) as the load workers use it:
//! the request that opens a connection, and the check of the server's `101` answer.
//! The frames after it are `tracker_ws_protocol::websocket`'s, shared with the tracker;
//! tungstenite makes the key and derives the accept key.
//!
//! No extensions are offered, so an answer that accepts one is refused.

/// Most bytes of the server's `101 Switching Protocols` answer that are waited for.
const MAX_UPGRADE_ANSWER_BYTES: usize = 8192;

/// Appends the upgrade request that opens a connection to `path` (`/`, or
/// `/PASSKEY/announce` on a private tracker) at `host` (the server's address as
/// `ip:port`), with the `Sec-WebSocket-Key` `key` and, unless empty, an `Origin` header,
/// as a browser sends it.
pub(crate) fn upgrade_request(host: &str, path: &str, key: &str, origin: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upgrade_request_is_what_a_server_accepts() {
        let key = tungstenite::handshake::client::generate_key();
        let mut out = Vec::new();
        let path = "/abcdefghijklmnopqrstuvwxyz012345/announce";
        upgrade_request("127.0.0.1:6970", path, &key, "http://localhost", &mut out);
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut request = httparse::Request::new(&mut headers);
        assert_eq!(
            request.parse(&out).unwrap(),
            httparse::Status::Complete(out.len())
        );
        assert_eq!(request.method, Some("GET"));
        assert_eq!(request.path, Some(path));
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
        upgrade_request("127.0.0.1:1", "/", &key, "", &mut without);
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
}
