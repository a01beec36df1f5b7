//! The load tester's TLS client config: rustls with the `ring` provider (as the trackers
//! use), trusting either the PEM certificates of `network.tls_ca_path` or, when that is
//! empty, any certificate at all.
//!
//! Not verifying is for load tests over loopback against a tracker with a self-signed
//! test certificate, and nothing else: [`AcceptAnyServerCertificate`] is named for what
//! it does so that it is not mistaken for a verifier. The handshake signatures are
//! still checked, so the server must hold the key of the certificate it sends; only
//! who issued that certificate, and for what name, goes unchecked.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The client config for every TLS connection of a run: trusting the certificates in
/// `ca_path`, or any certificate if `ca_path` is empty. Offers HTTP/1.1 by ALPN.
///
/// # Errors
/// The file cannot be read or holds no usable certificate; the message names the key.
pub(crate) fn client_config(ca_path: &Path) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("tls: protocol versions")?;
    let mut config = if ca_path.as_os_str().is_empty() {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCertificate(provider)))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(trusted(ca_path)?)
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates of the PEM file at `path`, as trust anchors.
fn trusted(path: &Path) -> anyhow::Result<RootCertStore> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|err| {
            anyhow::anyhow!(
                "network.tls_ca_path: cannot read certificates from {}: {err}",
                path.display()
            )
        })?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        anyhow::bail!(
            "network.tls_ca_path: no usable certificate in {}",
            path.display()
        );
    }
    Ok(roots)
}

/// A `ServerCertVerifier` that accepts every certificate, whoever issued it and for
/// whatever name: for load tests over loopback against a self-signed test certificate
/// only. It still checks the handshake signatures against the certificate's key.
#[derive(Debug)]
pub(crate) struct AcceptAnyServerCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_names_the_key() {
        let dir = std::env::temp_dir().join(format!("shoal-load-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        for path in [dir.join("missing.pem"), empty] {
            let msg = format!("{:#}", client_config(&path).unwrap_err());
            assert!(msg.starts_with("network.tls_ca_path"), "{msg}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
        client_config(Path::new("")).unwrap();
    }
}
