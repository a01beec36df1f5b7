//! The private-mode tests' clients: UDP (connect, then announce with the passkey in the
//! BEP 41 URL data, resent on timeout) and a plain HTTP announce for the workspace's
//! `tracker_http` binary.

#![allow(dead_code)] // Each test file uses its part.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tracker_common::types::AnnounceEvent;

use tracker_common::private::passkey::Passkey;
use tracker_common::testing::accounting::{AnnounceClient, ScriptPeer, Step};
use tracker_udp_protocol::{
    AnnounceRequest, ConnectRequest, ConnectionId, Request, Response, TransactionId,
};

/// The BEP 41 URL data of an announce URL with `passkey`.
pub(crate) fn passkey_url(passkey: &Passkey) -> Vec<u8> {
    format!("/{passkey}/announce").into_bytes()
}

/// The scenarios' client: connect, then announce with `/PASSKEY/announce` in the URL
/// data, each resent on timeout (UDP may drop a datagram; a repeated announce is
/// harmless, accounting credits it once).
pub(crate) struct UdpAnnounceClient {
    /// Send `uploaded` and `downloaded` as -1 (nonsense a client may send).
    pub(crate) negative_counters: bool,
    socket: UdpSocket,
    connection: Option<(SocketAddr, ConnectionId)>,
    next_tid: i32,
}

impl UdpAnnounceClient {
    const ATTEMPTS: usize = 5;

    pub(crate) fn new() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        Self {
            negative_counters: false,
            socket,
            connection: None,
            next_tid: 0,
        }
    }

    /// Sends `request` and returns the answer with its transaction id (older answers,
    /// to requests already resent, are skipped); `None` after a timeout.
    fn exchange(&mut self, tracker: SocketAddr, request: &Request) -> Option<Response> {
        let tid = match request {
            Request::Connect(r) => r.transaction_id,
            Request::Announce(r) => r.transaction_id,
            Request::Scrape(r) => r.transaction_id,
        };
        let mut bytes = Vec::new();
        request.write_bytes(&mut bytes).unwrap();
        self.socket.send_to(&bytes, tracker).unwrap();
        let mut buf = [0u8; 2048];
        loop {
            let (len, from) = self.socket.recv_from(&mut buf).ok()?;
            if from != tracker {
                continue;
            }
            match Response::parse_bytes(&buf[..len], true) {
                Ok(response) if response.transaction_id() == tid => return Some(response),
                _ => {}
            }
        }
    }

    fn tid(&mut self) -> TransactionId {
        self.next_tid += 1;
        TransactionId(self.next_tid)
    }

    fn connection_id(&mut self, tracker: SocketAddr) -> anyhow::Result<ConnectionId> {
        if let Some((addr, id)) = self.connection
            && addr == tracker
        {
            return Ok(id);
        }
        for _ in 0..Self::ATTEMPTS {
            let request = Request::Connect(ConnectRequest {
                transaction_id: self.tid(),
            });
            if let Some(Response::Connect(r)) = self.exchange(tracker, &request) {
                self.connection = Some((tracker, r.connection_id));
                return Ok(r.connection_id);
            }
        }
        anyhow::bail!("no answer to {} connects", Self::ATTEMPTS)
    }
}

impl AnnounceClient for UdpAnnounceClient {
    fn announce(
        &mut self,
        tracker: SocketAddr,
        peer: &ScriptPeer,
        step: &Step,
    ) -> anyhow::Result<()> {
        for _ in 0..Self::ATTEMPTS {
            let connection_id = self.connection_id(tracker)?;
            let request = Request::Announce(AnnounceRequest {
                connection_id,
                transaction_id: self.tid(),
                info_hash: peer.info_hash,
                peer_id: peer.peer_id,
                bytes_downloaded: if self.negative_counters {
                    -1
                } else {
                    i64::try_from(step.downloaded)?
                },
                bytes_left: i64::try_from(step.left)?,
                bytes_uploaded: if self.negative_counters {
                    -1
                } else {
                    i64::try_from(step.uploaded)?
                },
                event: step.event,
                ip_address: None,
                key: 1,
                peers_wanted: 10,
                port: peer.port,
                url_data: passkey_url(&peer.passkey),
            });
            match self.exchange(tracker, &request) {
                Some(Response::AnnounceIpv4(_)) => return Ok(()),
                Some(Response::Error(e)) if e.message.contains("connection id") => {
                    self.connection = None;
                }
                Some(Response::Error(e)) => anyhow::bail!("error answer: {}", e.message),
                Some(other) => anyhow::bail!("unexpected answer: {other:?}"),
                None => {}
            }
        }
        anyhow::bail!("no answer to {} announces", Self::ATTEMPTS)
    }

    fn reset(&mut self) {
        self.connection = None;
    }
}

/// An HTTP announce by hand: `GET /PASSKEY/announce?...` on a fresh connection, the
/// answer read to its end and checked to be an announce answer, not a failure.
pub(crate) struct PlainHttpClient {
    /// Leave `uploaded` and `downloaded` out.
    pub(crate) counters_missing: bool,
}

fn percent(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

impl AnnounceClient for PlainHttpClient {
    fn announce(
        &mut self,
        tracker: SocketAddr,
        peer: &ScriptPeer,
        step: &Step,
    ) -> anyhow::Result<()> {
        let event = match step.event {
            AnnounceEvent::None => "",
            AnnounceEvent::Started => "&event=started",
            AnnounceEvent::Completed => "&event=completed",
            AnnounceEvent::Stopped => "&event=stopped",
        };
        let counters = if self.counters_missing {
            String::new()
        } else {
            format!("&uploaded={}&downloaded={}", step.uploaded, step.downloaded)
        };
        let request = format!(
            "GET /{}/announce?info_hash={}&peer_id={}&port={}{counters}&left={}{event}\
             &compact=1 HTTP/1.1\r\nHost: {tracker}\r\nConnection: close\r\n\r\n",
            peer.passkey.as_str(),
            percent(&peer.info_hash.0),
            percent(&peer.peer_id.0),
            peer.port,
            step.left,
        );
        let mut stream =
            TcpStream::connect_timeout(&tracker, Duration::from_secs(5)).context("connect")?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(request.as_bytes()).context("send")?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).context("read")?;
        let text = String::from_utf8_lossy(&answer);
        anyhow::ensure!(text.starts_with("HTTP/1.1 200"), "answer: {text}");
        anyhow::ensure!(
            text.contains("8:interval") && !text.contains("failure reason"),
            "not an announce answer: {text}"
        );
        Ok(())
    }
}

/// The workspace's `tracker_http` binary, beside this crate's.
pub(crate) fn tracker_http() -> PathBuf {
    let path =
        std::path::Path::new(env!("CARGO_BIN_EXE_tracker_udp")).with_file_name("tracker_http");
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace; cargo test \
         --workspace builds it)",
        path.display()
    );
    path
}
