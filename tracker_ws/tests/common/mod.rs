//! Helpers for the integration tests: an in-process WebSocket tracker on an ephemeral
//! port and a small WebTorrent client (tungstenite over real TCP connections).
#![allow(dead_code, unreachable_pub)]

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tracker_ws::{Config, Tracker};
use tracker_ws_protocol::{
    AnnounceEvent, AnnounceRequest, Answer, InMessage, InfoHash, Offer, OfferId, ParsedOutMessage,
    PeerId, RawValue, ScrapeRequest, parse_out_message, write_in_message,
};
use tungstenite::{Message, WebSocket};

/// A config for tests: the given address, small worker counts, no periodic log.
pub fn test_config(address: &str) -> Config {
    let mut config = Config::default();
    config.network.address = address.parse().unwrap();
    config.network.poll_timeout_ms = 10;
    config.workers.socket_workers = 2;
    config.workers.request_workers = 2;
    config.statistics.interval_secs = 0;
    // Tests run side by side: the metrics endpoint takes a port of its own choosing.
    config.metrics.address = "127.0.0.1:0".parse().unwrap();
    config.swarm.max_archived_torrents = 0;
    // Every test client connects from 127.0.0.1, some by the thousand.
    config.ws.max_connections_per_ip = 0;
    config
}

/// Starts a tracker in-process.
pub fn start(config: Config) -> Tracker {
    if config.network.address.is_ipv6() && std::net::TcpListener::bind("[::1]:0").is_err() {
        panic!("this test needs IPv6 loopback (::1), which this host does not have");
    }
    tracker_ws::start(config).expect("start tracker")
}

pub fn info_hash(n: u8) -> InfoHash {
    InfoHash([n; 20])
}

pub fn peer_id(n: u8) -> PeerId {
    PeerId([n; 20])
}

pub fn offer_id(n: u8) -> OfferId {
    OfferId([n; 20])
}

/// A session description object as browsers send them.
pub fn sdp(kind: &str, text: &str) -> Box<RawValue> {
    let json = serde_json::json!({ "type": kind, "sdp": text }).to_string();
    RawValue::from_string(json).unwrap()
}

/// An announce with no offers.
pub fn announce(
    hash: InfoHash,
    peer: PeerId,
    left: Option<u64>,
    event: AnnounceEvent,
) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: hash,
        peer_id: peer,
        event,
        left,
        uploaded: Some(0),
        downloaded: Some(0),
        numwant: None,
        offers: Vec::new(),
        answer: None,
    }
}

/// `n` offers with ids `first..first+n` and an SDP naming each.
pub fn offers(first: u8, n: u8) -> Vec<Offer> {
    (first..first + n)
        .map(|i| Offer {
            offer_id: offer_id(i),
            offer: sdp("offer", &format!("v=0 offer {i} \"quoted\" \\ \u{e9}")),
        })
        .collect()
}

/// An answer message from `from` to `to` about offer `id`.
pub fn answer(
    hash: InfoHash,
    from: PeerId,
    to: PeerId,
    id: OfferId,
    text: &str,
) -> AnnounceRequest {
    AnnounceRequest {
        answer: Some(Answer {
            to_peer_id: to,
            offer_id: id,
            answer: sdp("answer", text),
        }),
        ..announce(hash, from, None, AnnounceEvent::None)
    }
}

/// A WebTorrent client on one WebSocket connection.
pub struct Client {
    pub ws: WebSocket<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        Self::connect_path(addr, "/announce")
    }

    /// A connection upgraded on `path` (`/PASSKEY/announce`, say).
    pub fn connect_path(addr: SocketAddr, path: &str) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (ws, _) = tungstenite::client::client(format!("ws://{addr}{path}"), stream)
            .expect("websocket handshake");
        Self { ws }
    }

    pub fn send(&mut self, message: &InMessage) {
        let mut json = Vec::new();
        write_in_message(message, &mut json);
        self.send_text(String::from_utf8(json).unwrap());
    }

    pub fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).unwrap();
    }

    /// Writes `count` copies of `message` at once without reading anything, as a client
    /// that pipelines and never reads would. Gives up quietly after 5 s blocked: a
    /// tracker that stops reading it is one of the outcomes tests look for.
    pub fn send_burst_unread(&mut self, message: &InMessage, count: usize) {
        self.send_all_unread(&vec![message.clone(); count]);
    }

    /// Writes `messages` at once, reading nothing meanwhile (see
    /// [`Client::send_burst_unread`]).
    pub fn send_all_unread(&mut self, messages: &[InMessage]) {
        use std::io::Write as _;
        let mut frames = Vec::new();
        let mut json = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            json.clear();
            write_in_message(message, &mut json);
            let mask = (i as u32).wrapping_mul(0x9E37_79B9).to_be_bytes();
            tracker_ws_protocol::websocket::write_client_frame(
                &mut frames,
                tracker_ws_protocol::websocket::FrameKind::Text,
                &json,
                mask,
            );
        }
        let stream = self.ws.get_mut();
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = stream.write_all(&frames);
    }

    pub fn announce(&mut self, request: AnnounceRequest) {
        self.send(&InMessage::Announce(request));
    }

    pub fn scrape(
        &mut self,
        hashes: &[InfoHash],
    ) -> Vec<(InfoHash, tracker_ws_protocol::ScrapeCounts)> {
        self.send(&InMessage::Scrape(ScrapeRequest::InfoHashes(
            hashes.to_vec(),
        )));
        match self.next() {
            ParsedOutMessage::ScrapeResponse { files } => files,
            other => panic!("expected a scrape answer, got {other:?}"),
        }
    }

    /// The next message from the tracker; panics if none comes within the read timeout.
    pub fn next(&mut self) -> ParsedOutMessage {
        self.try_next().expect("the tracker sent no message")
    }

    /// The next text message, or `None` once the connection is closed.
    pub fn try_next(&mut self) -> Option<ParsedOutMessage> {
        loop {
            match self.ws.read() {
                Ok(Message::Text(text)) => {
                    return Some(parse_out_message(text.as_bytes()).unwrap());
                }
                Ok(Message::Close(_)) => return None,
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return None;
                }
                Err(err) => panic!("read: {err}"),
            }
        }
    }

    /// Announces and returns (complete, incomplete) from the reply.
    pub fn announce_counts(&mut self, request: AnnounceRequest) -> (u32, u32) {
        let hash = request.info_hash;
        self.announce(request);
        match self.next() {
            ParsedOutMessage::AnnounceResponse {
                info_hash,
                complete,
                incomplete,
                ..
            } => {
                assert_eq!(info_hash, hash);
                (complete, incomplete)
            }
            other => panic!("expected an announce reply, got {other:?}"),
        }
    }

    /// The close frame's code the tracker sent, reading past anything before it.
    pub fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.ws.read() {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

/// Polls `f` until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
