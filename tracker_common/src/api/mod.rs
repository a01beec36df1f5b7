//! The admin API: the operator changes and reads a running tracker over HTTP, with a
//! bearer token, instead of editing files and sending signals.
//!
//! Off by default. When `[api] enabled`, the tracker reads the token from
//! `api.token_path` (its first line; the tracker refuses to start without one) and serves
//! on `api.address` (loopback by default) with the operator's HTTP server
//! ([`crate::net::http_server`]: a thread of its own, bounded connections, a deadline per
//! request), never on the request path: socket workers and request workers do not wait
//! for it. What it changes reaches the workers the way a reload does (a list swapped
//! whole), and what it reads of the swarms it asks the request workers, each between two
//! rounds of requests.
//!
//! Every path under `/api/v1/` needs `Authorization: Bearer TOKEN`, compared in
//! constant time; without it the answer is 401, whatever the path (so the routes are
//! not revealed). `GET /health` needs none: it is the metrics listener's answer, for load
//! balancers. The routes are [`routes::ROUTES`]; `GET /api/v1/openapi.json` describes
//! them (a test checks the two agree).
//!
//! # Layout
//! - this module: the `[api]` section and the token;
//! - [`routes`]: paths to routes, and the route table (no I/O);
//! - [`service`]: the answers.

pub mod routes;
pub mod service;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

pub use service::{ApiContext, ApiService};

/// Shortest token accepted: 16 characters (96 bits or more of a random token).
pub const MIN_TOKEN_LEN: usize = 16;

/// Declares a tracker's `[api]` config section, `ApiConfig`, whose default address is
/// 127.0.0.1 on `$port`. A macro for the metrics section's reason: the default port
/// differs per tracker, and serde fills a key left out of the file from the section's
/// own `Default`.
#[macro_export]
macro_rules! api_config_section {
    ($port:literal) => {
        $crate::config_section! {
            /// The admin API: stats, torrents, the access list, bans, passkeys and
            /// reloads over HTTP with a bearer token, under /api/v1/ (described at
            /// /api/v1/openapi.json), and /health without one.
            pub struct ApiConfig {
                /// Serve the admin API.
                pub enabled: bool,
                /// Address and port of the admin API (plain HTTP). Whoever holds the
                /// token can change the access list, bans and passkeys and read every
                /// peer's address: keep it on loopback, or behind a TLS proxy on a
                /// private network. Port 0 lets the OS choose (the chosen port is
                /// logged).
                pub address: ::std::net::SocketAddr,
                /// File whose first line is the bearer token (at least 16 characters;
                /// make it long and random, and readable by the tracker's user alone).
                /// Read at start; the API refuses to start without it.
                pub token_path: ::std::path::PathBuf,
            }
        }

        impl Default for ApiConfig {
            fn default() -> Self {
                Self {
                    enabled: false,
                    address: ::std::net::SocketAddr::from(([127, 0, 0, 1], $port)),
                    token_path: ::std::path::PathBuf::new(),
                }
            }
        }

        impl ApiConfig {
            /// Checks values that cannot work.
            ///
            /// # Errors
            /// A message naming the key.
            pub fn validate(&self) -> ::anyhow::Result<()> {
                $crate::api::validate(self.enabled, &self.token_path)
            }

            /// Where the API listens and its token file, if it is on.
            pub fn settings(&self) -> Option<$crate::api::ApiSettings> {
                self.enabled.then(|| $crate::api::ApiSettings {
                    address: self.address,
                    token_path: self.token_path.clone(),
                })
            }
        }
    };
}

/// What starting the API needs of its section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiSettings {
    /// Where it listens.
    pub address: SocketAddr,
    /// The token's file.
    pub token_path: PathBuf,
}

/// The section's checks: a token file is named when the API is on.
///
/// # Errors
/// A message naming the key.
pub fn validate(enabled: bool, token_path: &Path) -> anyhow::Result<()> {
    if enabled && token_path.as_os_str().is_empty() {
        anyhow::bail!("api.token_path: must be set when api.enabled is true");
    }
    Ok(())
}

/// Reads the token: the first line of `path`, without surrounding whitespace.
///
/// # Errors
/// The file cannot be read, or its first line is shorter than [`MIN_TOKEN_LEN`]; the
/// message names the key and the file, never the token.
pub fn read_token(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("api.token_path: read {}", path.display()))?;
    let token = text.lines().next().unwrap_or_default().trim();
    if token.len() < MIN_TOKEN_LEN {
        anyhow::bail!(
            "api.token_path: the first line of {} must be a token of at least {MIN_TOKEN_LEN} \
             characters",
            path.display()
        );
    }
    Ok(token.as_bytes().to_vec())
}

/// Whether `given` equals `expected`, in a time that depends on their lengths only, not
/// on where they first differ: a client timing the 401s learns nothing of the token but
/// its length.
pub fn same_token(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(given.len() != expected.len());
    for (index, byte) in expected.iter().enumerate() {
        // Past the end of `given` the comparison goes on with a byte that never
        // matches the length check's outcome: the work is the same.
        let other = given.get(index).copied().unwrap_or(!byte);
        difference |= byte ^ other;
    }
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        let token = b"0123456789abcdef0123";
        assert!(same_token(token, token));
        assert!(!same_token(b"0123456789abcdef012", token));
        assert!(!same_token(b"0123456789abcdef01234", token));
        assert!(!same_token(b"1123456789abcdef0123", token));
        assert!(!same_token(b"0123456789abcdef0124", token));
        assert!(!same_token(b"", token));
        assert!(same_token(b"", b""));
    }

    #[test]
    fn token_file_is_checked() {
        let dir = std::env::temp_dir().join(format!("shoal-api-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "  0123456789abcdef  \nsecond line\n").unwrap();
        assert_eq!(read_token(&path).unwrap(), b"0123456789abcdef");
        std::fs::write(&path, "short\n").unwrap();
        let err = format!("{:#}", read_token(&path).unwrap_err());
        assert!(
            err.contains("api.token_path") && err.contains("16"),
            "{err}"
        );
        assert!(!err.contains("short"), "the message shows no token: {err}");
        std::fs::write(&path, "").unwrap();
        assert!(read_token(&path).is_err());
        let missing = format!("{:#}", read_token(&dir.join("nope")).unwrap_err());
        assert!(missing.contains("api.token_path") && missing.contains("nope"));
        assert!(validate(true, Path::new("")).is_err());
        assert!(validate(false, Path::new("")).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
