//! TLS for the trackers that speak over TCP: the `[tls]` config section, a rustls
//! `ServerConfig` made from PEM files, and reloading it (SIGUSR1) without a restart.
//!
//! The crypto provider is rustls's `ring` backend: it builds with a C compiler alone,
//! which every machine that builds shoal has, whereas the default `aws-lc-rs` backend
//! needs cmake and more to build its C library. Both give the same TLS 1.2 and 1.3
//! cipher suites here.
//!
//! Connections take the config in force when they are accepted; a reload changes what
//! later connections get and never disturbs open ones. A reload that fails (a missing or
//! broken file, a key that does not match) keeps the old config.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config_section;

config_section! {
    /// TLS (HTTPS). When enabled, the port speaks TLS only.
    pub struct TlsConfig {
        /// Serve TLS on the port instead of plain text.
        pub enabled: bool,
        /// PEM file with the certificate chain, the server's certificate first.
        pub certificate_chain_path: PathBuf,
        /// PEM file with the private key (PKCS #8, PKCS #1 or SEC1).
        pub private_key_path: PathBuf,
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            certificate_chain_path: PathBuf::new(),
            private_key_path: PathBuf::new(),
        }
    }
}

impl TlsConfig {
    /// Checks the keys (not the files, which [`load_server_config`] reads).
    ///
    /// # Errors
    /// A message naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.enabled {
            if self.certificate_chain_path.as_os_str().is_empty() {
                anyhow::bail!("tls.certificate_chain_path: must be set when tls.enabled is true");
            }
            if self.private_key_path.as_os_str().is_empty() {
                anyhow::bail!("tls.private_key_path: must be set when tls.enabled is true");
            }
        }
        Ok(())
    }
}

/// The server config in force, swapped by a reload.
pub type SharedServerConfig = Arc<ArcSwap<ServerConfig>>;

/// Reads the certificate chain and key and makes a server config offering HTTP/1.1.
///
/// # Errors
/// A file cannot be read or holds no certificate / key, or the key does not fit the
/// certificate; the message names the file.
pub fn load_server_config(config: &TlsConfig) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = read_certificates(&config.certificate_chain_path)?;
    let key = PrivateKeyDer::from_pem_file(&config.private_key_path).map_err(|err| {
        anyhow::anyhow!(
            "tls.private_key_path: no private key read from {}: {err}",
            config.private_key_path.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("tls: protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "tls: the key in {} does not fit the certificate in {}",
                config.private_key_path.display(),
                config.certificate_chain_path.display()
            )
        })?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|err| {
            anyhow::anyhow!(
                "tls.certificate_chain_path: cannot read certificates from {}: {err}",
                path.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!(
            "tls.certificate_chain_path: no certificate in {}",
            path.display()
        );
    }
    Ok(certs)
}

/// Loads the server config for sharing with the socket workers.
///
/// # Errors
/// As [`load_server_config`].
pub fn shared(config: &TlsConfig) -> anyhow::Result<SharedServerConfig> {
    Ok(Arc::new(ArcSwap::new(load_server_config(config)?)))
}

/// Re-reads the files into `shared`; on error the old config stays.
///
/// # Errors
/// As [`load_server_config`].
pub fn reload(shared: &SharedServerConfig, config: &TlsConfig) -> anyhow::Result<()> {
    shared.store(load_server_config(config)?);
    Ok(())
}

/// The reload part (see [`crate::runtime::reload`]) that re-reads the certificates into
/// `shared`.
pub fn reload_part(
    shared: SharedServerConfig,
    config: TlsConfig,
) -> impl Fn() -> Vec<crate::runtime::reload::ReloadPart> + Send + Sync + 'static {
    use crate::runtime::reload::ReloadPart;
    move || {
        vec![match reload(&shared, &config) {
            Ok(()) => ReloadPart::done("tls", "certificates re-read"),
            Err(err) => ReloadPart::failed("tls", &err),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_keys() {
        let mut c = TlsConfig::default();
        c.validate().unwrap();
        c.enabled = true;
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.starts_with("tls.certificate_chain_path"), "{msg}");
        c.certificate_chain_path = "cert.pem".into();
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.starts_with("tls.private_key_path"), "{msg}");
    }

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = std::env::temp_dir().join(format!("shoal-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let config = TlsConfig {
            enabled: true,
            certificate_chain_path: dir.join("missing.pem"),
            private_key_path: empty.clone(),
        };
        let msg = format!("{:#}", load_server_config(&config).unwrap_err());
        assert!(msg.contains("missing.pem"), "{msg}");
        let config = TlsConfig {
            certificate_chain_path: empty.clone(),
            ..config
        };
        let msg = format!("{:#}", load_server_config(&config).unwrap_err());
        assert!(
            msg.contains("no certificate") && msg.contains("empty.pem"),
            "{msg}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
