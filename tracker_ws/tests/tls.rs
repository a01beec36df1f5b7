//! wss://: the WebSocket upgrade and messages over TLS with a certificate made in the
//! test, plain connections refused on a TLS port, and certificates reloaded without a
//! restart (a broken file keeps the old ones).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use rustls::pki_types::CertificateDer;
use tracker_common::testing::tls_client;
use tracker_ws_protocol::{
    AnnounceEvent, InMessage, ParsedOutMessage, parse_out_message, write_in_message,
};
use tungstenite::Message;

/// A self-signed certificate for 127.0.0.1, written as PEM files in `dir`.
fn make_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf, CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    (cert_path, key_path, certified.cert.der().clone())
}

fn temp_dir(name: &str) -> PathBuf {
    tracker_common::testing::temp_dir(&format!("wss-{name}"))
}

fn tls_config(cert: &Path, key: &Path) -> tracker_ws::Config {
    let mut config = test_config("127.0.0.1:0");
    config.tls.enabled = true;
    config.tls.certificate_chain_path = cert.to_path_buf();
    config.tls.private_key_path = key.to_path_buf();
    config
}

/// Announces over wss:// and returns the reply's (complete, incomplete).
fn announce_over_tls(
    addr: SocketAddr,
    trusted: &CertificateDer<'static>,
    torrent: u8,
) -> (u32, u32) {
    let stream = tls_client(addr, trusted).unwrap();
    let (mut ws, _) =
        tungstenite::client::client(format!("wss://{addr}/announce"), stream).unwrap();
    let mut json = Vec::new();
    let request = announce(
        info_hash(torrent),
        peer_id(1),
        Some(1),
        AnnounceEvent::Started,
    );
    write_in_message(&InMessage::Announce(request), &mut json);
    ws.send(Message::text(String::from_utf8(json).unwrap()))
        .unwrap();
    loop {
        if let Message::Text(text) = ws.read().unwrap() {
            match parse_out_message(text.as_bytes()).unwrap() {
                ParsedOutMessage::AnnounceResponse {
                    complete,
                    incomplete,
                    ..
                } => return (complete, incomplete),
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn messages_over_tls_and_plain_connections_are_refused() {
    let dir = temp_dir("announce");
    let (cert, key, der) = make_certificate(&dir, "a");
    let tracker = start(tls_config(&cert, &key));
    let addr = tracker.local_addr();
    assert_eq!(announce_over_tls(addr, &der, 1), (0, 1));
    // The first connection closed: its peer left.
    assert!(eventually(Duration::from_secs(3), || tracker
        .connections()
        .open
        == 0));
    assert_eq!(announce_over_tls(addr, &der, 2), (0, 1));

    // A plain upgrade on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    tracker.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn certificates_are_reloaded_and_a_broken_file_keeps_the_old_ones() {
    let dir = temp_dir("reload");
    let (cert, key, first) = make_certificate(&dir, "live");
    let tracker = start(tls_config(&cert, &key));
    let addr = tracker.local_addr();
    assert!(tls_client(addr, &first).is_ok());

    let (new_cert, new_key, second) = make_certificate(&dir, "next");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    tracker.reload_tls().unwrap();
    assert_eq!(announce_over_tls(addr, &second, 1), (0, 1));
    assert!(
        tls_client(addr, &first).is_err(),
        "new connections get the new certificate"
    );

    std::fs::write(&key, "not a key\n").unwrap();
    let err = tracker.reload_tls().unwrap_err();
    assert!(format!("{err:#}").contains("live.key"), "{err:#}");
    assert!(tls_client(addr, &second).is_ok());
    tracker.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}
