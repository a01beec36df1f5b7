//! Bencoded answers and the HTTP/1.1 framing around them; and parsing them back, for
//! load testers and tests.
//!
//! Writing appends to a caller's buffer and allocates nothing else (numbers and
//! addresses are formatted on the stack); the one exception is a scrape answer whose
//! torrents are not already in strictly increasing hash order, which is sorted through
//! a list of references. Reading back allocates freely: it serves tests and load
//! testers, not the tracker.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ascii::{IpText, parse_u64, push_i64, push_u64};
use crate::bencode::{self, Value};
use crate::{InfoHash, PeerId, ResponsePeerWithId, ScrapeCounts};

/// Headers read from one response; a tracker sends three or four.
const MAX_RESPONSE_HEADERS: usize = 32;

/// An announce answer (BEP 3, 23, 7, 24).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceResponse<'a> {
    /// `interval`: seconds until the next announce.
    pub interval: u32,
    /// `min interval`: the least seconds between announces.
    pub min_interval: u32,
    /// `complete`: seeders.
    pub complete: u32,
    /// `incomplete`: leechers.
    pub incomplete: u32,
    /// IPv4 peers.
    pub peers_v4: &'a [ResponsePeerWithId<Ipv4Addr>],
    /// IPv6 peers.
    pub peers_v6: &'a [ResponsePeerWithId<Ipv6Addr>],
    /// Compact: `peers` is a string of 6-byte IPv4 entries (BEP 23) and `peers6` one of
    /// 18-byte IPv6 entries (BEP 7). Otherwise `peers` is a list of dictionaries with
    /// `ip` (text), `port` and, unless `no_peer_id`, `peer id`, for both families.
    pub compact: bool,
    /// Leave `peer id` out of non-compact entries.
    pub no_peer_id: bool,
    /// `external ip` (BEP 24): the client's address as 4 or 16 raw bytes.
    pub external_ip: Option<IpAddr>,
}

impl AnnounceResponse<'_> {
    /// Appends the bencoded dictionary (keys in sorted order, as bencode requires).
    ///
    /// `peers` is always written, empty when there are none (BEP 3 requires it);
    /// `peers6` only when compact and there are IPv6 peers; `external ip` only when set.
    pub fn write_body(&self, out: &mut Vec<u8>) {
        out.push(b'd');
        push_int_entry(out, b"complete", i64::from(self.complete));
        match self.external_ip {
            Some(IpAddr::V4(ip)) => push_bytes_entry(out, b"external ip", &ip.octets()),
            Some(IpAddr::V6(ip)) => push_bytes_entry(out, b"external ip", &ip.octets()),
            None => {}
        }
        push_int_entry(out, b"incomplete", i64::from(self.incomplete));
        push_int_entry(out, b"interval", i64::from(self.interval));
        push_int_entry(out, b"min interval", i64::from(self.min_interval));
        push_bytes(out, b"peers");
        if self.compact {
            // BEP 23: 4 address bytes and 2 port bytes per peer, network byte order.
            push_length(out, self.peers_v4.len().saturating_mul(6));
            for peer in self.peers_v4 {
                out.extend_from_slice(&peer.ip.octets());
                out.extend_from_slice(&peer.port.to_be_bytes());
            }
            if !self.peers_v6.is_empty() {
                // BEP 7: 16 address bytes and 2 port bytes per peer.
                push_bytes(out, b"peers6");
                push_length(out, self.peers_v6.len().saturating_mul(18));
                for peer in self.peers_v6 {
                    out.extend_from_slice(&peer.ip.octets());
                    out.extend_from_slice(&peer.port.to_be_bytes());
                }
            }
        } else {
            // BEP 3: a list of dictionaries, one list for both families (BEP 7 puts
            // `peers6` in compact answers only).
            out.push(b'l');
            for peer in self.peers_v4 {
                self.push_peer_dict(out, IpAddr::V4(peer.ip), peer.port, &peer.peer_id);
            }
            for peer in self.peers_v6 {
                self.push_peer_dict(out, IpAddr::V6(peer.ip), peer.port, &peer.peer_id);
            }
            out.push(b'e');
        }
        out.push(b'e');
    }

    /// `d2:ip..7:peer id20:..4:porti..ee`, keys in sorted order.
    fn push_peer_dict(&self, out: &mut Vec<u8>, ip: IpAddr, port: u16, peer_id: &PeerId) {
        out.push(b'd');
        push_bytes_entry(out, b"ip", IpText::new(ip).as_bytes());
        if !self.no_peer_id {
            push_bytes_entry(out, b"peer id", &peer_id.0);
        }
        push_int_entry(out, b"port", i64::from(port));
        out.push(b'e');
    }
}

/// A scrape answer (BEP 48): `files` maps each info hash (20 raw bytes) to `complete`,
/// `downloaded` and `incomplete`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeResponse<'a> {
    /// The torrents, in any order (written sorted by hash, as bencode requires).
    pub files: &'a [(InfoHash, ScrapeCounts)],
}

impl ScrapeResponse<'_> {
    /// Appends the bencoded dictionary.
    ///
    /// A hash given more than once is written once, with the counts of its first
    /// entry: bencode allows each key once.
    pub fn write_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"d5:filesd");
        let strictly_sorted = self.files.windows(2).all(|pair| match pair {
            [(a, _), (b, _)] => a < b,
            _ => true,
        });
        if strictly_sorted {
            // What a tracker answering a client's (usually one-hash) scrape passes:
            // written straight through, without allocating.
            for (hash, counts) in self.files {
                push_scrape_entry(out, hash, counts);
            }
        } else {
            let mut sorted: Vec<&(InfoHash, ScrapeCounts)> = self.files.iter().collect();
            // Stable, so that of repeated hashes the first entry is the one kept.
            sorted.sort_by_key(|(hash, _)| *hash);
            sorted.dedup_by_key(|(hash, _)| *hash);
            for (hash, counts) in sorted {
                push_scrape_entry(out, hash, counts);
            }
        }
        out.extend_from_slice(b"ee");
    }
}

/// Appends `d14:failure reason{len}:{reason}e`.
pub fn write_failure_body(reason: &str, out: &mut Vec<u8>) {
    out.push(b'd');
    push_bytes_entry(out, b"failure reason", reason.as_bytes());
    out.push(b'e');
}

/// Appends a whole HTTP/1.1 response: status line, `Content-Type`, `Content-Length`,
/// `Connection: keep-alive` or `close`, a blank line, then `body`.
pub fn write_http_response(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    content_type: &str,
    keep_alive: bool,
    body: &[u8],
) {
    write_http_head(out, status, reason, content_type, keep_alive, body.len());
    out.extend_from_slice(body);
}

/// Appends what [`write_http_response`] writes before the body, for a body of
/// `body_len` bytes that the caller sends from elsewhere (a shared cached answer).
pub fn write_http_head(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    content_type: &str,
    keep_alive: bool,
    body_len: usize,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_u64(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: ");
    push_u64(out, body_len as u64);
    // Said either way: HTTP/1.0 clients need `keep-alive` spelled out to keep it.
    out.extend_from_slice(if keep_alive {
        b"\r\nConnection: keep-alive\r\n\r\n"
    } else {
        b"\r\nConnection: close\r\n\r\n"
    });
}

/// The most bytes of the head [`write_http_head`] writes with status 200 and
/// `text/plain`: the status line, a 20-digit `Content-Length` and `keep-alive`.
pub const MAX_OK_HEAD_BYTES: usize = 128;

/// The most bytes of a whole 200 answer (head and body) to an announce of up to
/// `peers` peers, however written: the counts and intervals of 10 digits
/// (`u32::MAX`), a 16-byte `external ip`, and each peer as a non-compact dictionary
/// with its peer id and the longest address text (45 bytes, an IPv4-mapped IPv6
/// address), which is longer than its compact form. A tracker checks its outgoing
/// bounds against it when it reads its config.
pub const fn max_announce_answer_bytes(peers: usize) -> usize {
    // d2:ip45:<45>7:peer id20:<20>4:porti65535ee
    const PEER: usize = 1 + 4 + 3 + 45 + 9 + 3 + 20 + 6 + 7 + 1;
    // d8:completei..e11:external ip16:<16>10:incompletei..e8:intervali..e
    // 12:min intervali..e5:peersl..e (or the compact strings, with peers6), e
    const FIXED: usize = 256;
    MAX_OK_HEAD_BYTES
        .saturating_add(FIXED)
        .saturating_add(peers.saturating_mul(PEER))
}

/// The most bytes of a whole 200 answer (head and body) to a scrape of up to `files`
/// torrents: each its 20-byte hash and three counts of 10 digits (`u32::MAX`).
pub const fn max_scrape_answer_bytes(files: usize) -> usize {
    // 20:<20>d8:completei..e10:downloadedi..e10:incompletei..ee
    const FILE: usize = 3 + 20 + 1 + 10 + 12 + 13 + 12 + 13 + 12 + 1;
    // d5:filesd .. ee
    const FIXED: usize = 9 + 2;
    MAX_OK_HEAD_BYTES
        .saturating_add(FIXED)
        .saturating_add(files.saturating_mul(FILE))
}

/// An HTTP response read back (load testers and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Whether the server keeps the connection open.
    pub keep_alive: bool,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

/// Parses one HTTP response from the start of `bytes`: `Ok(None)` until it is whole,
/// then the response and the bytes it took.
///
/// # Errors
/// Not an HTTP/1.x response with a `Content-Length` of at most `max_body` bytes.
pub fn parse_http_response(
    bytes: &[u8],
    max_body: usize,
) -> Result<Option<(HttpResponse, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut head = httparse::Response::new(&mut headers);
    let head_len = match head.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => return Err(format!("http response: {err}")),
    };
    let mut content_length = None;
    let mut close = false;
    let mut keep_alive = false;
    for header in head.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let length = parse_u64(header.value.trim_ascii())
                .ok_or("http response: malformed Content-Length")?;
            if content_length.is_some_and(|earlier| earlier != length) {
                return Err("http response: conflicting Content-Length".to_owned());
            }
            content_length = Some(length);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("http response: Transfer-Encoding not supported".to_owned());
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let keep_alive = match head.version {
        Some(1) => !close,
        _ => keep_alive && !close,
    };
    let length = content_length.ok_or("http response: no Content-Length")?;
    let length = usize::try_from(length)
        .ok()
        .filter(|length| *length <= max_body)
        .ok_or_else(|| format!("http response: body of {length} bytes, above {max_body}"))?;
    let Some(end) = head_len.checked_add(length) else {
        return Err("http response: body too large".to_owned());
    };
    let Some(body) = bytes.get(head_len..end) else {
        return Ok(None);
    };
    Ok(Some((
        HttpResponse {
            status: head.code.unwrap_or_default(),
            keep_alive,
            body: body.to_vec(),
        },
        end,
    )))
}

/// A peer of a parsed announce answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPeer {
    /// Its address.
    pub ip: IpAddr,
    /// Its port.
    pub port: u16,
    /// Its peer id, in non-compact answers that carry one.
    pub peer_id: Option<PeerId>,
}

/// An announce answer read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedAnnounce {
    /// `interval`.
    pub interval: i64,
    /// `min interval`, if present.
    pub min_interval: Option<i64>,
    /// `complete`.
    pub complete: i64,
    /// `incomplete`.
    pub incomplete: i64,
    /// Every peer of `peers` and `peers6`, compact or not, in order.
    pub peers: Vec<ParsedPeer>,
    /// `external ip`, if present and 4 or 16 bytes.
    pub external_ip: Option<IpAddr>,
}

/// A tracker answer body read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackerResponse {
    /// An announce answer.
    Announce(ParsedAnnounce),
    /// A scrape answer: each hash with (complete, downloaded, incomplete).
    Scrape(Vec<(InfoHash, ScrapeCounts)>),
    /// A `failure reason`.
    Failure(String),
}

impl TrackerResponse {
    /// Parses a bencoded answer body.
    ///
    /// A dictionary with `failure reason` is a failure (BEP 3), else one with `files` a
    /// scrape (BEP 48), else one with `interval` an announce (BEP 3, 23, 7, 24). Keys
    /// this crate does not know are ignored.
    ///
    /// # Errors
    /// Not bencode (read strictly, see [`bencode`]), or not a tracker answer: a missing
    /// or ill-typed `complete`, `incomplete`, `peers`; a compact `peers` not a multiple
    /// of 6 bytes or `peers6` of 18; a scrape entry without its three counts, or with
    /// counts outside `u32`; a peer dictionary without `ip` and `port`, or whose `ip`
    /// is a host name rather than an IP address.
    pub fn parse_body(body: &[u8]) -> Result<Self, String> {
        let Value::Dict(dict) = bencode::decode(body)? else {
            return Err("tracker answer: not a dictionary".to_owned());
        };
        if let Some(reason) = dict.get(&b"failure reason"[..]) {
            let Value::Bytes(reason) = reason else {
                return Err("tracker answer: failure reason not a string".to_owned());
            };
            Ok(Self::Failure(String::from_utf8_lossy(reason).into_owned()))
        } else if let Some(files) = dict.get(&b"files"[..]) {
            parse_files(files).map(Self::Scrape)
        } else if dict.contains_key(&b"interval"[..]) {
            parse_announce(&dict).map(Self::Announce)
        } else {
            Err("tracker answer: no failure reason, files or interval".to_owned())
        }
    }
}

// --- writing ---

/// `{len}:`
fn push_length(out: &mut Vec<u8>, len: usize) {
    push_u64(out, len as u64);
    out.push(b':');
}

/// `{len}:{bytes}`
fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    push_length(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// `{key}i{value}e`
fn push_int_entry(out: &mut Vec<u8>, key: &[u8], value: i64) {
    push_bytes(out, key);
    out.push(b'i');
    push_i64(out, value);
    out.push(b'e');
}

/// `{key}{len}:{value}`
fn push_bytes_entry(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    push_bytes(out, key);
    push_bytes(out, value);
}

/// `20:{hash}d8:completei..e10:downloadedi..e10:incompletei..ee` (BEP 48).
fn push_scrape_entry(out: &mut Vec<u8>, hash: &InfoHash, counts: &ScrapeCounts) {
    push_bytes(out, &hash.0);
    out.push(b'd');
    push_int_entry(out, b"complete", i64::from(counts.seeders));
    push_int_entry(out, b"downloaded", i64::from(counts.completed));
    push_int_entry(out, b"incomplete", i64::from(counts.leechers));
    out.push(b'e');
}

// --- reading back ---

type Dict = BTreeMap<Vec<u8>, Value>;

fn int(dict: &Dict, key: &str) -> Result<Option<i64>, String> {
    match dict.get(key.as_bytes()) {
        Some(Value::Int(value)) => Ok(Some(*value)),
        Some(_) => Err(format!("tracker answer: {key} not an integer")),
        None => Ok(None),
    }
}

fn required_int(dict: &Dict, key: &str) -> Result<i64, String> {
    int(dict, key)?.ok_or_else(|| format!("tracker answer: no {key}"))
}

fn parse_files(files: &Value) -> Result<Vec<(InfoHash, ScrapeCounts)>, String> {
    let Value::Dict(files) = files else {
        return Err("scrape answer: files not a dictionary".to_owned());
    };
    files
        .iter()
        .map(|(hash, counts)| {
            let hash: [u8; 20] = hash
                .as_slice()
                .try_into()
                .map_err(|_| "scrape answer: info hash not 20 bytes".to_owned())?;
            let Value::Dict(counts) = counts else {
                return Err("scrape answer: counts not a dictionary".to_owned());
            };
            let count = |key| {
                u32::try_from(required_int(counts, key)?)
                    .map_err(|_| format!("scrape answer: {key} outside u32"))
            };
            Ok((
                InfoHash(hash),
                ScrapeCounts {
                    seeders: count("complete")?,
                    completed: count("downloaded")?,
                    leechers: count("incomplete")?,
                },
            ))
        })
        .collect()
}

fn parse_announce(dict: &Dict) -> Result<ParsedAnnounce, String> {
    let mut peers = match dict.get(&b"peers"[..]) {
        Some(Value::Bytes(compact)) => compact_peers::<6>(compact, "peers")?,
        Some(Value::List(list)) => list.iter().map(peer_dict).collect::<Result<_, _>>()?,
        Some(_) => return Err("announce answer: peers neither string nor list".to_owned()),
        None => return Err("announce answer: no peers".to_owned()),
    };
    match dict.get(&b"peers6"[..]) {
        Some(Value::Bytes(compact)) => peers.extend(compact_peers::<18>(compact, "peers6")?),
        Some(_) => return Err("announce answer: peers6 not a string".to_owned()),
        None => {}
    }
    let external_ip = match dict.get(&b"external ip"[..]) {
        Some(Value::Bytes(ip)) => match ip.len() {
            4 => <[u8; 4]>::try_from(ip.as_slice()).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(ip.as_slice()).ok().map(IpAddr::from),
            _ => None,
        },
        _ => None,
    };
    Ok(ParsedAnnounce {
        interval: required_int(dict, "interval")?,
        min_interval: int(dict, "min interval")?,
        complete: required_int(dict, "complete")?,
        incomplete: required_int(dict, "incomplete")?,
        peers,
        external_ip,
    })
}

/// Compact peers of `N` bytes each: the address (4 or 16 bytes), then the port.
fn compact_peers<const N: usize>(bytes: &[u8], key: &str) -> Result<Vec<ParsedPeer>, String> {
    let chunks = bytes.chunks_exact(N);
    if !chunks.remainder().is_empty() {
        return Err(format!(
            "announce answer: {key} not a multiple of {N} bytes"
        ));
    }
    Ok(chunks
        .filter_map(|entry| {
            let (ip, port) = entry.split_last_chunk::<2>()?;
            let ip = match ip.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(ip).ok()?),
                _ => IpAddr::from(<[u8; 16]>::try_from(ip).ok()?),
            };
            Some(ParsedPeer {
                ip,
                port: u16::from_be_bytes(*port),
                peer_id: None,
            })
        })
        .collect())
}

/// `{ip: text, peer id: 20 bytes (optional), port: int}` (BEP 3).
fn peer_dict(peer: &Value) -> Result<ParsedPeer, String> {
    let Value::Dict(peer) = peer else {
        return Err("announce answer: peer not a dictionary".to_owned());
    };
    let ip = match peer.get(&b"ip"[..]) {
        Some(Value::Bytes(text)) => std::str::from_utf8(text)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or("announce answer: peer ip not an address")?,
        _ => return Err("announce answer: peer without ip".to_owned()),
    };
    let port = u16::try_from(required_int(peer, "port")?)
        .map_err(|_| "announce answer: peer port outside u16".to_owned())?;
    let peer_id = match peer.get(&b"peer id"[..]) {
        Some(Value::Bytes(id)) => {
            Some(PeerId(id.as_slice().try_into().map_err(|_| {
                "announce answer: peer id not 20 bytes".to_owned()
            })?))
        }
        Some(_) => return Err("announce answer: peer id not a string".to_owned()),
        None => None,
    };
    Ok(ParsedPeer { ip, port, peer_id })
}

#[cfg(test)]
mod tests {
    //! Answers: BEP 3 (<https://www.bittorrent.org/beps/bep_0003.html>, "Trackers"),
    //! BEP 23 (<https://www.bittorrent.org/beps/bep_0023.html>, compact `peers`),
    //! BEP 7 (<https://www.bittorrent.org/beps/bep_0007.html>, `peers6`),
    //! BEP 24 (<https://www.bittorrent.org/beps/bep_0024.html>, `external ip`),
    //! BEP 48 (<https://www.bittorrent.org/beps/bep_0048.html>, scrape).

    use super::*;
    use proptest::prelude::*;

    const PEER_ID: PeerId = PeerId(*b"-SH0100-abcdefghijkl");

    #[test]
    fn the_largest_answers_fit_their_bounds() {
        let whole = |body: &[u8]| {
            let mut out = Vec::new();
            write_http_response(&mut out, 200, "OK", "text/plain", true, body);
            out.len()
        };
        let mut head = Vec::new();
        write_http_head(&mut head, 200, "OK", "text/plain", true, usize::MAX);
        assert!(head.len() <= MAX_OK_HEAD_BYTES, "{}", head.len());
        // The longest address texts (39 bytes for IPv6 without a run of zeros), the
        // largest numbers, every optional key.
        let long_v6 = Ipv6Addr::new(
            0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xfffe, 0xfffe,
        );
        for n in [0usize, 1, 7, 50, 200] {
            let v4 = vec![
                ResponsePeerWithId {
                    ip: Ipv4Addr::new(255, 255, 255, 255),
                    port: u16::MAX,
                    peer_id: PEER_ID,
                };
                n
            ];
            let v6 = vec![
                ResponsePeerWithId {
                    ip: long_v6,
                    port: u16::MAX,
                    peer_id: PEER_ID,
                };
                n
            ];
            for compact in [true, false] {
                // Peers of one family, as a tracker answers.
                for (peers_v4, peers_v6) in [(&v4[..], &v6[..0]), (&v4[..0], &v6[..])] {
                    let answer = AnnounceResponse {
                        interval: u32::MAX,
                        min_interval: u32::MAX,
                        complete: u32::MAX,
                        incomplete: u32::MAX,
                        peers_v4,
                        peers_v6,
                        compact,
                        no_peer_id: false,
                        external_ip: Some(IpAddr::V6(long_v6)),
                    };
                    let mut body = Vec::new();
                    answer.write_body(&mut body);
                    assert!(
                        whole(&body) <= max_announce_answer_bytes(n),
                        "{n} {compact}"
                    );
                }
            }
            let files: Vec<(InfoHash, ScrapeCounts)> = (0..n)
                .map(|i| {
                    let mut hash = [0xff; 20];
                    hash[..8].copy_from_slice(&(i as u64).to_be_bytes());
                    let counts = ScrapeCounts {
                        seeders: u32::MAX,
                        completed: u32::MAX,
                        leechers: u32::MAX,
                    };
                    (InfoHash(hash), counts)
                })
                .collect();
            let mut body = Vec::new();
            ScrapeResponse { files: &files }.write_body(&mut body);
            assert!(whole(&body) <= max_scrape_answer_bytes(n), "{n}");
        }
    }

    fn v4_peer() -> ResponsePeerWithId<Ipv4Addr> {
        ResponsePeerWithId {
            ip: Ipv4Addr::new(192, 0, 2, 1),
            port: 6881,
            peer_id: PEER_ID,
        }
    }

    fn v6_peer() -> ResponsePeerWithId<Ipv6Addr> {
        ResponsePeerWithId {
            ip: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            port: 6882,
            peer_id: PEER_ID,
        }
    }

    fn announce<'a>(
        peers_v4: &'a [ResponsePeerWithId<Ipv4Addr>],
        peers_v6: &'a [ResponsePeerWithId<Ipv6Addr>],
    ) -> AnnounceResponse<'a> {
        AnnounceResponse {
            interval: 1800,
            min_interval: 900,
            complete: 5,
            incomplete: 3,
            peers_v4,
            peers_v6,
            compact: true,
            no_peer_id: false,
            external_ip: None,
        }
    }

    fn body(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out);
        out
    }

    #[rustfmt::skip]
    const COMPACT_V4: &[u8] = &[
        b'd',
        b'8', b':', b'c', b'o', b'm', b'p', b'l', b'e', b't', b'e',   // "complete": seeders
        b'i', b'5', b'e',                                             // 5
        b'1', b'0', b':', b'i', b'n', b'c', b'o', b'm', b'p', b'l', b'e', b't', b'e',
        b'i', b'3', b'e',                                             // "incomplete": 3
        b'8', b':', b'i', b'n', b't', b'e', b'r', b'v', b'a', b'l',
        b'i', b'1', b'8', b'0', b'0', b'e',                           // "interval": 1800
        b'1', b'2', b':', b'm', b'i', b'n', b' ', b'i', b'n', b't', b'e', b'r', b'v', b'a', b'l',
        b'i', b'9', b'0', b'0', b'e',                                 // "min interval": 900
        b'5', b':', b'p', b'e', b'e', b'r', b's',                     // "peers" (BEP 23):
        b'6', b':',                                                   //   one 6-byte entry
        0xc0, 0x00, 0x02, 0x01,                                       //   192.0.2.1
        0x1a, 0xe1,                                                   //   port 6881, big-endian
        b'e',
    ];

    #[test]
    fn compact_v4_known_answer() {
        let peers = [v4_peer()];
        let written = body(|out| announce(&peers, &[]).write_body(out));
        assert_eq!(written, COMPACT_V4);
        assert_eq!(
            TrackerResponse::parse_body(COMPACT_V4),
            Ok(TrackerResponse::Announce(ParsedAnnounce {
                interval: 1800,
                min_interval: Some(900),
                complete: 5,
                incomplete: 3,
                peers: vec![ParsedPeer {
                    ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                    port: 6881,
                    peer_id: None,
                }],
                external_ip: None,
            }))
        );
    }

    #[test]
    fn compact_v6_and_external_ip_known_answer() {
        let peers6 = [v6_peer()];
        let response = AnnounceResponse {
            external_ip: Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))),
            ..announce(&[], &peers6)
        };
        let expected = [
            &b"d8:completei5e"[..],
            b"11:external ip4:",
            &[198, 51, 100, 7], // BEP 24: 4 raw bytes
            b"10:incompletei3e8:intervali1800e12:min intervali900e",
            b"5:peers0:",   // no IPv4 peers: still present
            b"6:peers618:", // BEP 7: one 18-byte entry
            &[
                0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
            ], // 2001:db8::1
            &[0x1a, 0xe2],  // port 6882
            b"e",
        ]
        .concat();
        assert_eq!(body(|out| response.write_body(out)), expected);
        let Ok(TrackerResponse::Announce(parsed)) = TrackerResponse::parse_body(&expected) else {
            panic!("announce");
        };
        assert_eq!(parsed.external_ip, response.external_ip);
        assert_eq!(
            parsed.peers,
            vec![ParsedPeer {
                ip: IpAddr::V6(v6_peer().ip),
                port: 6882,
                peer_id: None,
            }]
        );
    }

    #[test]
    fn non_compact_known_answer() {
        let (peers, peers6) = ([v4_peer()], [v6_peer()]);
        let response = AnnounceResponse {
            compact: false,
            external_ip: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ..announce(&peers, &peers6)
        };
        let expected = [
            &b"d8:completei5e"[..],
            b"11:external ip16:",
            &Ipv6Addr::LOCALHOST.octets(), // BEP 24: 16 raw bytes
            b"10:incompletei3e8:intervali1800e12:min intervali900e",
            b"5:peersl", // BEP 3: a list of dicts,
            b"d2:ip9:192.0.2.17:peer id20:-SH0100-abcdefghijkl4:porti6881ee",
            b"d2:ip11:2001:db8::17:peer id20:-SH0100-abcdefghijkl4:porti6882ee",
            b"e", // no peers6 (compact only)
            b"e",
        ]
        .concat();
        assert_eq!(body(|out| response.write_body(out)), expected);
        let Ok(TrackerResponse::Announce(parsed)) = TrackerResponse::parse_body(&expected) else {
            panic!("announce");
        };
        assert_eq!(
            parsed.peers,
            vec![
                ParsedPeer {
                    ip: IpAddr::V4(v4_peer().ip),
                    port: 6881,
                    peer_id: Some(PEER_ID),
                },
                ParsedPeer {
                    ip: IpAddr::V6(v6_peer().ip),
                    port: 6882,
                    peer_id: Some(PEER_ID),
                },
            ]
        );

        // no_peer_id: the `peer id` entries go.
        let response = AnnounceResponse {
            no_peer_id: true,
            external_ip: None,
            ..response
        };
        assert_eq!(
            body(|out| response.write_body(out)),
            concat!(
                "d8:completei5e10:incompletei3e8:intervali1800e12:min intervali900e",
                "5:peersl",
                "d2:ip9:192.0.2.14:porti6881ee",
                "d2:ip11:2001:db8::14:porti6882ee",
                "ee",
            )
            .as_bytes()
        );
    }

    #[test]
    fn scrape_known_answer() {
        let a = InfoHash([b'a'; 20]);
        let b = InfoHash([b'b'; 20]);
        let counts = |seeders, completed, leechers| ScrapeCounts {
            seeders,
            completed,
            leechers,
        };
        // Out of order and with `b` twice: written sorted, `b` once (its first counts).
        let files = [
            (b, counts(1, 2, 3)),
            (a, counts(4, 5, 6)),
            (b, counts(7, 8, 9)),
        ];
        let expected = concat!(
            "d5:filesd",               // BEP 48
            "20:aaaaaaaaaaaaaaaaaaaa", // info hash a
            "d8:completei4e10:downloadedi5e10:incompletei6ee",
            "20:bbbbbbbbbbbbbbbbbbbb", // info hash b
            "d8:completei1e10:downloadedi2e10:incompletei3ee",
            "ee",
        );
        let written = body(|out| ScrapeResponse { files: &files }.write_body(out));
        assert_eq!(String::from_utf8(written).unwrap(), expected);
        assert_eq!(
            TrackerResponse::parse_body(expected.as_bytes()),
            Ok(TrackerResponse::Scrape(vec![
                (a, counts(4, 5, 6)),
                (b, counts(1, 2, 3))
            ]))
        );
        // Already sorted: the same bytes, written straight through.
        let sorted = [(a, counts(4, 5, 6)), (b, counts(1, 2, 3))];
        let written = body(|out| ScrapeResponse { files: &sorted }.write_body(out));
        assert_eq!(written, expected.as_bytes());
        assert_eq!(
            body(|out| ScrapeResponse { files: &[] }.write_body(out)),
            b"d5:filesdee"
        );
    }

    #[test]
    fn failure_known_answer() {
        // BEP 3: "failure reason" and a human-readable string, nothing else.
        let written = body(|out| write_failure_body("missing info_hash", out));
        assert_eq!(written, b"d14:failure reason17:missing info_hashe");
        assert_eq!(
            TrackerResponse::parse_body(&written),
            Ok(TrackerResponse::Failure("missing info_hash".to_owned()))
        );
    }

    #[test]
    fn parse_body_refuses_what_is_not_an_answer() {
        for body in [
            &b""[..],
            b"le",
            b"de",
            b"d14:failure reasoni1ee",
            b"d5:filesleee",
            b"d5:filesd3:abcdeee",
            b"d8:intervali1ee", // no peers
            b"d8:completei1e10:incompletei1e8:intervali1e5:peers5:12345e", // not 6n bytes
            b"d8:completei1e10:incompletei1e8:intervali1e5:peers0:6:peers61:xe",
            b"d8:completei1e10:incompletei1e8:intervali1e5:peersld2:ip4:host4:porti1eeee",
        ] {
            assert!(
                TrackerResponse::parse_body(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    // --- HTTP framing ---

    #[test]
    fn http_response_known_answer() {
        let written = body(|out| write_http_response(out, 200, "OK", "text/plain", true, b"de"));
        assert_eq!(
            written,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nde"
        );
        let expected = HttpResponse {
            status: 200,
            keep_alive: true,
            body: b"de".to_vec(),
        };
        assert_eq!(
            parse_http_response(&written, 2),
            Ok(Some((expected, written.len())))
        );
        for len in 0..written.len() {
            assert_eq!(
                parse_http_response(written.get(..len).unwrap(), 2),
                Ok(None),
                "{len}"
            );
        }
        assert!(parse_http_response(&written, 1).is_err());

        let closing =
            body(|out| write_http_response(out, 404, "Not Found", "text/plain", false, b""));
        let mut pipelined = closing.clone();
        pipelined.extend_from_slice(b"HTTP/1.1 200");
        assert_eq!(
            parse_http_response(&pipelined, 0),
            Ok(Some((
                HttpResponse {
                    status: 404,
                    keep_alive: false,
                    body: Vec::new()
                },
                closing.len()
            )))
        );
    }

    #[test]
    fn http_response_keep_alive_and_length_rules() {
        let keep_alive = |head: &str| {
            parse_http_response(head.as_bytes(), 0).map(|r| r.map(|(r, _)| r.keep_alive))
        };
        assert_eq!(
            keep_alive("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            Ok(Some(true))
        );
        assert_eq!(
            keep_alive("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
            Ok(Some(false))
        );
        assert_eq!(
            keep_alive("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"),
            Ok(Some(true))
        );
        assert!(keep_alive("HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(keep_alive("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(
            keep_alive("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\n")
                .is_err()
        );
        assert!(keep_alive("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(
            keep_alive("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n").is_err()
        );
    }

    // --- round trips ---

    fn v4_peers() -> impl Strategy<Value = Vec<ResponsePeerWithId<Ipv4Addr>>> {
        proptest::collection::vec(
            (any::<Ipv4Addr>(), any::<u16>(), any::<[u8; 20]>()).prop_map(|(ip, port, id)| {
                ResponsePeerWithId {
                    ip,
                    port,
                    peer_id: PeerId(id),
                }
            }),
            0..8,
        )
    }

    fn v6_peers() -> impl Strategy<Value = Vec<ResponsePeerWithId<Ipv6Addr>>> {
        proptest::collection::vec(
            (any::<Ipv6Addr>(), any::<u16>(), any::<[u8; 20]>()).prop_map(|(ip, port, id)| {
                ResponsePeerWithId {
                    ip,
                    port,
                    peer_id: PeerId(id),
                }
            }),
            0..8,
        )
    }

    proptest! {
        #[test]
        fn announce_round_trip(
            (interval, min_interval, complete, incomplete) in any::<(u32, u32, u32, u32)>(),
            peers_v4 in v4_peers(),
            peers_v6 in v6_peers(),
            (compact, no_peer_id) in any::<(bool, bool)>(),
            external_ip in any::<Option<IpAddr>>(),
        ) {
            let response = AnnounceResponse {
                interval, min_interval, complete, incomplete,
                peers_v4: &peers_v4, peers_v6: &peers_v6,
                compact, no_peer_id, external_ip,
            };
            let written = body(|out| response.write_body(out));
            let with_id = !compact && !no_peer_id;
            let peers = peers_v4
                .iter()
                .map(|p| (IpAddr::V4(p.ip), p.port, p.peer_id))
                .chain(peers_v6.iter().map(|p| (IpAddr::V6(p.ip), p.port, p.peer_id)))
                .map(|(ip, port, id)| ParsedPeer { ip, port, peer_id: with_id.then_some(id) })
                .collect();
            prop_assert_eq!(
                TrackerResponse::parse_body(&written),
                Ok(TrackerResponse::Announce(ParsedAnnounce {
                    interval: interval.into(),
                    min_interval: Some(min_interval.into()),
                    complete: complete.into(),
                    incomplete: incomplete.into(),
                    peers,
                    external_ip,
                }))
            );
        }

        #[test]
        fn scrape_round_trip(files in proptest::collection::vec(
            (any::<[u8; 20]>(), any::<(u32, u32, u32)>()).prop_map(|(hash, (seeders, completed, leechers))| {
                (InfoHash(hash), ScrapeCounts { seeders, completed, leechers })
            }),
            0..8,
        )) {
            let written = body(|out| ScrapeResponse { files: &files }.write_body(out));
            // What a reader gets: each hash once, with its first counts, sorted.
            let mut expected: Vec<(InfoHash, ScrapeCounts)> = Vec::new();
            for (hash, counts) in &files {
                if !expected.iter().any(|(seen, _)| seen == hash) {
                    expected.push((*hash, *counts));
                }
            }
            expected.sort_by_key(|(hash, _)| *hash);
            prop_assert_eq!(TrackerResponse::parse_body(&written), Ok(TrackerResponse::Scrape(expected)));
        }

        #[test]
        fn failure_round_trip(reason in ".{0,64}") {
            let written = body(|out| write_failure_body(&reason, out));
            prop_assert_eq!(TrackerResponse::parse_body(&written), Ok(TrackerResponse::Failure(reason)));
        }

        #[test]
        fn http_response_round_trip(
            status in 100u16..1000,
            keep_alive in any::<bool>(),
            response_body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let written = body(|out| write_http_response(out, status, "Reason", "text/plain", keep_alive, &response_body));
            prop_assert_eq!(
                parse_http_response(&written, response_body.len()),
                Ok(Some((HttpResponse { status, keep_alive, body: response_body }, written.len())))
            );
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_http_response(&bytes, 1024);
            let _ = TrackerResponse::parse_body(&bytes);
        }

        #[test]
        fn answer_like_bytes_never_panic(
            head in "d(5:filesd|8:intervali1e|5:peers|6:peers6|14:failure reason)?",
            tail in proptest::collection::vec(
                prop_oneof![Just(b'i'), Just(b'l'), Just(b'd'), Just(b'e'), Just(b':'), b'0'..=b'9'],
                0..256,
            ),
        ) {
            let bytes = [head.as_bytes(), &tail].concat();
            let _ = TrackerResponse::parse_body(&bytes);
        }
    }
}
