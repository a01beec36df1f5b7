//! HTTPS: announces over TLS with a certificate made in the test, plain HTTP refused on
//! a TLS port, and certificates reloaded without a restart (a broken file keeps the old
//! ones).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use rustls::pki_types::CertificateDer;
use tracker_common::testing::tls_client;
use tracker_http_protocol::{AnnounceEvent, HttpResponse, TrackerResponse, parse_http_response};

/// A self-signed certificate for 127.0.0.1, written as PEM files in `dir`.
fn make_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf, CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    (cert_path, key_path, certified.cert.der().clone())
}

fn exchange(stream: &mut impl ReadWrite, request: &[u8]) -> HttpResponse {
    stream.write_all(request).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((response, _)) = parse_http_response(&buf, 1 << 20).unwrap() {
            return response;
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before a whole response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn announce_bytes(port: u16) -> Vec<u8> {
    let mut bytes = Vec::new();
    announce(
        info_hash(1),
        peer_id(port as u8),
        port,
        0,
        AnnounceEvent::Started,
    )
    .write_http(&mut bytes, "127.0.0.1", true);
    bytes
}

fn temp_dir(name: &str) -> PathBuf {
    tracker_common::testing::temp_dir(&format!("tls-{name}"))
}

fn tls_config(cert: &Path, key: &Path) -> tracker_http::Config {
    let mut config = test_config("127.0.0.1:0");
    config.tls.enabled = true;
    config.tls.certificate_chain_path = cert.to_path_buf();
    config.tls.private_key_path = key.to_path_buf();
    config
}

#[test]
fn announces_over_tls_and_plain_http_is_refused() {
    let dir = temp_dir("announce");
    let (cert, key, der) = make_certificate(&dir, "a");
    let tracker = start(tls_config(&cert, &key));
    let addr = tracker.local_addr();

    let mut client = tls_client(addr, &der).unwrap();
    // Two requests on one TLS connection: keep-alive works through TLS.
    for port in [6001, 6002] {
        let response = exchange(&mut client, &announce_bytes(port));
        assert_eq!(response.status, 200);
        assert!(matches!(
            TrackerResponse::parse_body(&response.body).unwrap(),
            TrackerResponse::Announce(_)
        ));
    }
    assert_eq!(tracker.statistics().announce, 2);

    // Plain HTTP on the TLS port gets no HTTP answer, and the connection ends.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    assert!(eventually(Duration::from_secs(5), || tracker
        .connections()
        .open
        == 1));
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

    // New files under the same paths, then the reload SIGUSR1 does.
    let (new_cert, new_key, second) = make_certificate(&dir, "next");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    tracker.reload_tls().unwrap();
    let mut client = tls_client(addr, &second).unwrap();
    assert_eq!(exchange(&mut client, &announce_bytes(7001)).status, 200);
    assert!(
        tls_client(addr, &first).is_err(),
        "new connections must get the new certificate"
    );

    // A broken key: the reload fails, naming the file, and the certificate stays.
    std::fs::write(&key, "not a key\n").unwrap();
    let err = tracker.reload_tls().unwrap_err();
    assert!(format!("{err:#}").contains("live.key"), "{err:#}");
    let mut client = tls_client(addr, &second).unwrap();
    assert_eq!(exchange(&mut client, &announce_bytes(7002)).status, 200);
    tracker.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_start_with_a_missing_certificate_names_the_key() {
    let dir = temp_dir("missing");
    let config = tls_config(&dir.join("none.crt"), &dir.join("none.key"));
    let err = tracker_http::start(config).err().expect("start must fail");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("tls.certificate_chain_path") && msg.contains("none.crt"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
