//! Who the simulated browsers are and what they put in their messages: a peer id per
//! connection, offer ids that name the offering connection, session descriptions shaped
//! like a browser's; and the checks of the offers and answers relayed to them. Pure: no
//! I/O, randomness comes in as an argument.

use rand::Rng;

use tracker_ws_protocol::{OfferId, PeerId, RawValue};

use super::Config;

/// The peer id prefix of every simulated browser, in the `-XXnnnn-` form of real
/// clients (WebTorrent sends `-WW0208-`).
const PEER_ID_PREFIX: &[u8; 8] = b"-SH0100-";

/// What every connection of a run shares: the identities and the texts of the
/// messages.
#[derive(Clone, Debug)]
pub(crate) struct Messages {
    seed: u64,
    connections: u32,
    offer: Box<RawValue>,
    answer: Box<RawValue>,
}

impl Messages {
    /// The messages of a validated config.
    pub(crate) fn new(config: &Config) -> Self {
        let connections = config
            .run
            .workers
            .saturating_mul(config.network.connections_per_worker);
        Self {
            seed: config.workload.seed,
            connections: u32::try_from(connections).unwrap_or(u32::MAX),
            offer: session_description("offer", config.webtorrent.sdp_bytes),
            answer: session_description("answer", config.webtorrent.sdp_bytes),
        }
    }

    /// The session description every offer carries.
    pub(crate) fn offer(&self) -> &RawValue {
        &self.offer
    }

    /// The session description every answer carries.
    pub(crate) fn answer(&self) -> &RawValue {
        &self.answer
    }

    /// The peer id of connection `connection` (numbered across the workers): the
    /// prefix, the number in 8 hex digits, 4 hex digits of the seed. Printable, as
    /// browsers' are, and distinct for every connection.
    pub(crate) fn peer_id(&self, connection: u32) -> PeerId {
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(PEER_ID_PREFIX);
        let tail = (u64::from(connection) << 16) | (mix(self.seed) & 0xffff);
        for (i, byte) in id[8..].iter_mut().enumerate() {
            let nibble = (tail >> (4 * (11 - i))) & 0xf;
            *byte = b"0123456789abcdef"[nibble as usize];
        }
        PeerId(id)
    }

    /// The connection whose peer id this is, if it is one of this run's.
    pub(crate) fn connection_of(&self, peer_id: &PeerId) -> Option<u32> {
        let hex = std::str::from_utf8(peer_id.0.get(8..16)?).ok()?;
        let connection = u32::from_str_radix(hex, 16).ok()?;
        (connection < self.connections && self.peer_id(connection) == *peer_id)
            .then_some(connection)
    }

    /// Whether a relayed offer is one this run made for connection `me`: made by
    /// another connection of the run, whose peer id it carries, with the description
    /// sent byte for byte.
    ///
    /// # Errors
    /// What is wrong with it.
    pub(crate) fn check_offer(
        &self,
        me: u32,
        peer_id: &PeerId,
        offer_id: &OfferId,
        offer: &RawValue,
    ) -> Result<(), &'static str> {
        let offerer = offerer(offer_id);
        if offerer >= self.connections || self.peer_id(offerer) != *peer_id {
            return Err("an offer whose offer id and peer id name no connection of this test");
        }
        if offerer == me {
            return Err("an offer relayed to its own offerer");
        }
        if offer.get() != self.offer.get() {
            return Err("an offer whose description was not relayed as sent");
        }
        Ok(())
    }

    /// Whether a relayed answer is one to an offer of connection `me`, from another
    /// connection of the run, with the description sent byte for byte.
    ///
    /// # Errors
    /// What is wrong with it.
    pub(crate) fn check_answer(
        &self,
        me: u32,
        peer_id: &PeerId,
        offer_id: &OfferId,
        answer: &RawValue,
    ) -> Result<(), &'static str> {
        if offerer(offer_id) != me {
            return Err("an answer to an offer this connection did not make");
        }
        match self.connection_of(peer_id) {
            None => return Err("an answer from a peer id of no connection of this test"),
            Some(answerer) if answerer == me => return Err("an answer from its own offerer"),
            Some(_) => {}
        }
        if answer.get() != self.answer.get() {
            return Err("an answer whose description was not relayed as sent");
        }
        Ok(())
    }
}

/// The id of offer `index` of announce number `announce` of connection `connection`:
/// the connection (4 bytes, big-endian), the announce (8), the index (1), then 7 random
/// bytes. Like a browser's, it is 20 bytes of every value.
pub(crate) fn offer_id(connection: u32, announce: u64, index: u8, rng: &mut impl Rng) -> OfferId {
    let mut id = [0u8; 20];
    id[..4].copy_from_slice(&connection.to_be_bytes());
    id[4..12].copy_from_slice(&announce.to_be_bytes());
    id[12] = index;
    rng.fill(&mut id[13..]);
    OfferId(id)
}

/// The connection that made the offer with this id.
pub(crate) fn offerer(offer_id: &OfferId) -> u32 {
    let [a, b, c, d, ..] = offer_id.0;
    u32::from_be_bytes([a, b, c, d])
}

/// SplitMix64's finalizer.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A session description as a browser's WebRTC stack writes it for a data channel
/// (`kind` "offer" or "answer"), with `sdp_bytes` bytes of SDP text: the lines of a
/// Chromium data-channel description, then host candidates as needed, cut to length.
/// The JSON object `{"type":KIND,"sdp":TEXT}`, CRLFs escaped as `JSON.stringify` does.
pub(crate) fn session_description(kind: &str, sdp_bytes: usize) -> Box<RawValue> {
    let setup = if kind == "offer" { "actpass" } else { "active" };
    let mut sdp = format!(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=group:BUNDLE 0\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n\
         m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
         a=ice-ufrag:EsAw\r\na=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\na=ice-options:trickle\r\n\
         a=fingerprint:sha-256 2C:6A:94:3E:8D:1B:0F:77:A1:5C:D2:4E:90:3B:C8:61:\
         7E:0D:B5:42:99:1A:F3:6C:28:E7:5D:0B:84:C1:3F:A6\r\n\
         a=setup:{setup}\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n"
    );
    let mut candidate = 0u32;
    while sdp.len() < sdp_bytes {
        sdp.push_str(&format!(
            "a=candidate:{} 1 udp 2113937151 7f3c{:04x}-2b1e-4d5a-9c3f-0e8b6a1d{:04x}.local \
             5{:04} typ host generation 0 network-cost 999\r\n",
            1_467_250_027 + candidate,
            candidate,
            candidate,
            candidate % 10_000
        ));
        candidate += 1;
    }
    sdp.truncate(sdp_bytes);
    let json = format!(
        r#"{{"type":"{kind}","sdp":"{}"}}"#,
        sdp.replace('\r', "\\r").replace('\n', "\\n")
    );
    RawValue::from_string(json).expect("the description is valid JSON: ASCII, escaped")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn messages(workers: usize, per_worker: usize) -> Messages {
        let mut config = Config::default();
        config.run.workers = workers;
        config.network.connections_per_worker = per_worker;
        Messages::new(&config)
    }

    #[test]
    fn descriptions_have_the_size_asked_and_parse_as_json() {
        for bytes in [16, 100, 500, 1000, 4096] {
            for kind in ["offer", "answer"] {
                let raw = session_description(kind, bytes);
                let value: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
                assert_eq!(value["type"], kind);
                let sdp = value["sdp"].as_str().unwrap();
                assert_eq!(sdp.len(), bytes);
                assert!(sdp.starts_with("v=0\r\n"));
            }
        }
    }

    #[test]
    fn peer_ids_name_their_connection() {
        let m = messages(3, 1000);
        let mut seen = std::collections::HashSet::new();
        for connection in [0, 1, 15, 16, 999, 1000, 2999] {
            let id = m.peer_id(connection);
            assert!(id.0.iter().all(u8::is_ascii_graphic), "{id:?}");
            assert!(seen.insert(id));
            assert_eq!(m.connection_of(&id), Some(connection));
        }
        // Beyond the run's connections, or not of this shape.
        assert_eq!(m.connection_of(&m.peer_id(3000)), None);
        assert_eq!(m.connection_of(&PeerId(*b"-WW0208-abcdefghijkl")), None);
        let mut forged = m.peer_id(7);
        forged.0[19] ^= 1;
        assert_eq!(m.connection_of(&forged), None);
    }

    #[test]
    fn relayed_offers_and_answers_are_checked() {
        let m = messages(1, 4);
        let mut rng = SmallRng::seed_from_u64(1);
        let id = offer_id(2, 77, 9, &mut rng);
        assert_eq!(offerer(&id), 2);
        let offer = m.offer().to_owned();
        let answer = m.answer().to_owned();
        // Connection 2's offer, relayed to connection 0.
        m.check_offer(0, &m.peer_id(2), &id, &offer).unwrap();
        assert!(m.check_offer(2, &m.peer_id(2), &id, &offer).is_err());
        assert!(m.check_offer(0, &m.peer_id(3), &id, &offer).is_err());
        assert!(m.check_offer(0, &m.peer_id(2), &id, &answer).is_err());
        let far = offer_id(4, 0, 0, &mut rng);
        assert!(m.check_offer(0, &m.peer_id(2), &far, &offer).is_err());
        // Connection 0's answer to it, relayed to connection 2.
        m.check_answer(2, &m.peer_id(0), &id, &answer).unwrap();
        assert!(m.check_answer(1, &m.peer_id(0), &id, &answer).is_err());
        assert!(m.check_answer(2, &m.peer_id(2), &id, &answer).is_err());
        assert!(m.check_answer(2, &m.peer_id(0), &id, &offer).is_err());
    }
}
