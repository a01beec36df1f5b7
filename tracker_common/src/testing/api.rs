//! The admin API's checks that are the same for every tracker: a client for it, and
//! scenarios over real HTTP against a running tracker's API (the refusals, the routes of
//! the OpenAPI document, the access list, the bans, the reload). Each tracker's tests
//! start their tracker with [`ApiFiles::config`]'s files and call them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// The token the scenarios use.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// An answer: status, head (lower case), body as JSON (`Value::Null` if not JSON).
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The response head, lower case.
    pub head: String,
    /// The body, parsed.
    pub json: Value,
}

/// A client of one tracker's admin API.
#[derive(Clone, Debug)]
pub struct ApiClient {
    /// Where the API listens.
    pub addr: SocketAddr,
    /// The token it sends, if any.
    pub token: Option<String>,
}

impl ApiClient {
    /// A client sending [`TOKEN`].
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            token: Some(TOKEN.to_string()),
        }
    }

    /// The same client with another token (`None`: no Authorization header).
    pub fn with_token(&self, token: Option<&str>) -> Self {
        Self {
            addr: self.addr,
            token: token.map(str::to_string),
        }
    }

    /// Sends `method path` with `body` (as is) and reads the whole answer.
    ///
    /// # Panics
    /// The connection failed or the answer is not HTTP: a failed test.
    pub fn send(&self, method: &str, path: &str, body: &str) -> Answer {
        let mut stream = TcpStream::connect(self.addr)
            .unwrap_or_else(|err| panic!("connect to the API at {}: {err}", self.addr));
        let timeout = Some(Duration::from_secs(20));
        stream.set_read_timeout(timeout).unwrap_or_default();
        stream.set_write_timeout(timeout).unwrap_or_default();
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if let Some(token) = &self.token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if !body.is_empty() {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream
            .write_all(request.as_bytes())
            .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
        let mut raw = Vec::new();
        // A reset after the whole answer (a body the server did not read) still leaves
        // the answer read.
        let _ = stream.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            panic!("{method} {path}: no HTTP answer in {text:?}");
        };
        let status = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("{method} {path}: no status in {head:?}"));
        Answer {
            status,
            head: head.to_lowercase(),
            json: serde_json::from_str(body).unwrap_or(Value::Null),
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Answer {
        self.send("GET", path, "")
    }
}

/// The files a tracker with the API on is started with, in a directory of their own.
pub struct ApiFiles {
    /// The directory; removed when dropped.
    pub dir: PathBuf,
    /// The token file.
    pub token: PathBuf,
    /// The access list (empty at first).
    pub access_list: PathBuf,
    /// The bans (empty at first).
    pub bans: PathBuf,
}

impl ApiFiles {
    /// Makes the files under a fresh directory named after `name`.
    ///
    /// # Panics
    /// The files cannot be written.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("shoal-api-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|err| panic!("create {dir:?}: {err}"));
        let files = Self {
            token: dir.join("token"),
            access_list: dir.join("access-list.txt"),
            bans: dir.join("bans.txt"),
            dir,
        };
        for (path, text) in [
            (&files.token, format!("{TOKEN}\n")),
            (&files.access_list, String::new()),
            (&files.bans, String::new()),
        ] {
            std::fs::write(path, text).unwrap_or_else(|err| panic!("write {path:?}: {err}"));
        }
        files
    }

    /// The text of `path`.
    pub fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|err| panic!("read {path:?}: {err}"))
    }
}

impl Drop for ApiFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Turns the API on in a tracker's `config` (any of the three: their sections have the
/// same fields) with `files`' token, on an ephemeral loopback port, with a deny-mode
/// access list and a bans file.
#[macro_export]
macro_rules! configure_api {
    ($config:expr, $files:expr) => {{
        let files: &$crate::testing::api::ApiFiles = $files;
        $config.api.enabled = true;
        $config.api.address = ::std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        $config.api.token_path = files.token.clone();
        $config.access_list.mode = $crate::swarm::access_list::AccessListMode::Deny;
        $config.access_list.path = files.access_list.clone();
        $config.bans.path = files.bans.clone();
    }};
}

/// The scenarios every tracker runs against its API, in an order where each finds what
/// the one before left: [`refusals`], [`access_list_edits`], [`ban_edits`],
/// [`reload_reports_errors`], [`private_routes_refused_in_public_mode`] and, last since
/// it touches every route, [`openapi_matches_routes`].
///
/// # Panics
/// As each of them.
pub fn all_scenarios(api: &ApiClient, files: &ApiFiles) {
    refusals(api);
    access_list_edits(api, &files.access_list);
    ban_edits(api, &files.bans);
    reload_reports_errors(api, files);
    private_routes_refused_in_public_mode(api);
    openapi_matches_routes(api);
}

const HASH: &str = "0123456789abcdef0123456789abcdef01234567";

/// Every refusal: no token, a wrong token (on a route and on no route), a malformed
/// info hash, CIDR or passkey, an unknown route, a method the route does not answer, a
/// body too large, a body that is not JSON, a limit out of range. `/health` needs no
/// token.
///
/// # Panics
/// An answer is not the one the rule says.
pub fn refusals(api: &ApiClient) {
    let expect = |answer: Answer, status: u16, what: &str| {
        assert_eq!(answer.status, status, "{what}: {answer:?}");
        answer
    };
    for client in [
        api.with_token(None),
        api.with_token(Some("wrong-token-0123456789abc")),
    ] {
        for (method, path) in [
            ("GET", "/api/v1/stats"),
            ("GET", "/api/v1/no-such-route"),
            ("PUT", &format!("/api/v1/access-list/{HASH}")),
            ("POST", "/api/v1/reload"),
            ("GET", "/api/v1/openapi.json"),
        ] {
            let answer = expect(client.send(method, path, ""), 401, path);
            assert!(
                answer.head.contains("www-authenticate: bearer"),
                "{answer:?}"
            );
        }
    }
    // A token that is the right one's prefix, or the right one with more.
    expect(
        api.with_token(Some(&TOKEN[..TOKEN.len() - 1]))
            .get("/api/v1/stats"),
        401,
        "prefix",
    );
    expect(
        api.with_token(Some(&format!("{TOKEN}x")))
            .get("/api/v1/stats"),
        401,
        "longer",
    );
    let health = expect(
        api.with_token(None).get("/health"),
        200,
        "health without a token",
    );
    assert_eq!(health.json["status"], "ok", "{health:?}");

    expect(
        api.get("/api/v1/torrents/not-a-hash"),
        400,
        "malformed info hash",
    );
    expect(
        api.get(&format!("/api/v1/torrents/{}", &HASH[..39])),
        400,
        "39 digits",
    );
    expect(
        api.send("PUT", "/api/v1/access-list/zz", ""),
        400,
        "malformed hash to list",
    );
    for cidr in [
        "10.0.0.1/8",
        "10.0.0.0/33",
        "nonsense",
        "10.0.0.0/8x",
        "2001:db8::/129",
    ] {
        let answer = expect(
            api.send("PUT", &format!("/api/v1/bans/{cidr}"), ""),
            400,
            cidr,
        );
        assert!(answer.json["error"].is_string(), "{answer:?}");
    }
    expect(
        api.send("DELETE", "/api/v1/bans/1.2.3", ""),
        400,
        "malformed ban to lift",
    );
    let unknown = expect(api.get("/api/v1/nothing-here"), 404, "unknown route");
    assert!(
        unknown.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("no route"))
    );
    expect(api.get("/api/v2/stats"), 404, "unknown version");
    expect(api.get("/"), 404, "root");
    let wrong = expect(api.send("DELETE", "/api/v1/stats", ""), 405, "wrong method");
    assert!(wrong.head.contains("allow: get"), "{wrong:?}");
    let wrong = expect(
        api.get(&format!("/api/v1/access-list/{HASH}")),
        405,
        "GET an entry",
    );
    assert!(wrong.head.contains("allow: put, delete"), "{wrong:?}");
    let big = "x".repeat(crate::api::service::MAX_BODY_BYTES + 1);
    expect(
        api.send("PUT", "/api/v1/bans/10.0.0.0/8", &big),
        413,
        "body too large",
    );
    expect(
        api.send("PUT", "/api/v1/bans/10.0.0.0/8", "{not json"),
        400,
        "not JSON",
    );
    expect(
        api.send(
            "PUT",
            "/api/v1/bans/10.0.0.0/8",
            r#"{"expires_in_secs": 5, "extra": 1}"#,
        ),
        400,
        "an unknown field",
    );
    expect(api.get("/api/v1/torrents?limit=0"), 400, "limit 0");
    expect(
        api.get("/api/v1/torrents?limit=100001"),
        400,
        "limit too large",
    );
    expect(
        api.get("/api/v1/torrents?limit=x"),
        400,
        "limit not a number",
    );
    expect(api.get("/api/v1/bans/%zz"), 400, "bad percent-encoding");
}

/// Every route of the OpenAPI document is served with the methods it lists, and no
/// other route exists: each documented method gets an answer of its route (not the 404
/// of an unknown route, nor a 405); each path gets a 405 for a method it does not list.
///
/// # Panics
/// The document and the routes disagree.
pub fn openapi_matches_routes(api: &ApiClient) {
    let doc = api.get("/api/v1/openapi.json");
    assert_eq!(doc.status, 200, "{doc:?}");
    assert_eq!(doc.json["openapi"], "3.0.3");
    let paths = doc.json["paths"].as_object().cloned().unwrap_or_default();
    assert!(paths.len() >= 10, "{paths:?}");
    for (path, item) in &paths {
        let concrete = path
            .replace("{info_hash}", HASH)
            .replace("{cidr}", "192.0.2.0/24")
            .replace("{passkey}", "abcdefghijklmnopqrstuvwxyz012345")
            .replace("{user_id}", "7");
        let methods: Vec<String> = item
            .as_object()
            .map(|ops| {
                ops.keys()
                    .filter(|k| ["get", "put", "post", "delete", "patch"].contains(&k.as_str()))
                    .map(|k| k.to_uppercase())
                    .collect()
            })
            .unwrap_or_default();
        assert!(!methods.is_empty(), "{path} lists no method");
        for method in ["GET", "PUT", "POST", "DELETE", "PATCH"] {
            // Bodies the documented methods accept, so that the answer is the route's.
            let body = match (path.as_str(), method) {
                (p, "PUT") if p.contains("users") => r#"{"can_leech": true}"#,
                _ => "",
            };
            let answer = api.send(method, &concrete, body);
            let unknown = answer.status == 404
                && answer.json["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("no route"));
            if methods.iter().any(|m| m == method) {
                assert!(
                    !unknown && answer.status != 405,
                    "{method} {concrete} is documented but not served: {answer:?}"
                );
            } else {
                assert_eq!(answer.status, 405, "{method} {concrete}: {answer:?}");
            }
        }
    }
    // Undo what the walk changed.
    let _ = api.send("DELETE", "/api/v1/bans/192.0.2.0/24", "");
    let _ = api.send("DELETE", &format!("/api/v1/access-list/{HASH}"), "");
}

/// The access list over the API: listed, written to the file, counted, unlisted, and a
/// reload reads back what the API wrote.
///
/// # Panics
/// An answer, the file or a counter is not what the rule says.
pub fn access_list_edits(api: &ApiClient, file: &Path) {
    let other = "ffffffffffffffffffffffffffffffffffffffff";
    let put = api.send("PUT", &format!("/api/v1/access-list/{HASH}"), "");
    assert_eq!(put.status, 201, "{put:?}");
    assert_eq!(
        api.send(
            "PUT",
            &format!("/api/v1/access-list/{}", HASH.to_uppercase()),
            ""
        )
        .status,
        200
    );
    assert_eq!(
        api.send("PUT", &format!("/api/v1/access-list/{other}"), "")
            .status,
        201
    );
    let list = api.get("/api/v1/access-list");
    assert_eq!(list.json["count"], 2, "{list:?}");
    assert_eq!(list.json["info_hashes"][0], HASH);
    let text = ApiFiles::read(file);
    assert!(text.contains(HASH) && text.contains(other), "{text}");
    let deleted = api.send("DELETE", &format!("/api/v1/access-list/{other}"), "");
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(
        api.send("DELETE", &format!("/api/v1/access-list/{other}"), "")
            .status,
        404
    );
    assert!(!ApiFiles::read(file).contains(other));
    let reload = api.send("POST", "/api/v1/reload", "");
    assert_eq!(reload.status, 200, "{reload:?}");
    let part = reload.json["parts"]
        .as_array()
        .and_then(|parts| parts.iter().find(|p| p["part"] == "access_list").cloned())
        .unwrap_or_default();
    assert_eq!(part["message"], "1 info hashes", "{reload:?}");
    let stats = api.get("/api/v1/stats");
    assert_eq!(stats.json["access_list"]["info_hashes"], 1, "{stats:?}");
    assert_eq!(
        stats.json["admin"]["changes"]["access_list"], 3,
        "{stats:?}"
    );
}

/// A reload whose access list file went bad says so, keeps the list in force, and still
/// reloads the other parts.
///
/// # Panics
/// As the others.
pub fn reload_reports_errors(api: &ApiClient, files: &ApiFiles) {
    std::fs::write(&files.access_list, "not a hash\n").unwrap_or_default();
    let reload = api.send("POST", "/api/v1/reload", "");
    assert_eq!(reload.status, 500, "{reload:?}");
    assert_eq!(reload.json["ok"], false);
    let parts = reload.json["parts"].as_array().cloned().unwrap_or_default();
    let failed: Vec<&Value> = parts.iter().filter(|p| p["ok"] == false).collect();
    assert_eq!(failed.len(), 1, "{reload:?}");
    assert_eq!(failed[0]["part"], "access_list");
    assert!(
        failed[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("line 1")),
        "{reload:?}"
    );
    assert!(
        parts.iter().any(|p| p["part"] == "bans" && p["ok"] == true),
        "{reload:?}"
    );
    let list = api.get("/api/v1/access-list");
    assert_eq!(list.json["count"], 1, "the list in force stays: {list:?}");
    std::fs::write(&files.access_list, format!("{HASH}\n")).unwrap_or_default();
    assert_eq!(api.send("POST", "/api/v1/reload", "").status, 200);
}

/// Bans over the API: banned (with and without an expiry), listed, written to the file,
/// replaced, lifted; an expired ban is not listed.
///
/// # Panics
/// As the others.
pub fn ban_edits(api: &ApiClient, file: &Path) {
    let put = api.send("PUT", "/api/v1/bans/198.51.100.0/24", "");
    assert_eq!(put.status, 201, "{put:?}");
    assert_eq!(put.json["network"], "198.51.100.0/24");
    assert!(put.json["expires_unix_secs"].is_null());
    let replaced = api.send(
        "PUT",
        "/api/v1/bans/198.51.100.0%2F24",
        r#"{"expires_in_secs": 3600}"#,
    );
    assert_eq!(replaced.status, 200, "{replaced:?}");
    assert!(
        replaced.json["expires_unix_secs"].as_u64().is_some(),
        "{replaced:?}"
    );
    assert_eq!(
        api.send("PUT", "/api/v1/bans/2001:db8::/48", "").status,
        201
    );
    let past = api.send(
        "PUT",
        "/api/v1/bans/192.0.2.1",
        r#"{"expires_unix_secs": 1}"#,
    );
    assert_eq!(past.status, 400, "an expiry in the past: {past:?}");
    let list = api.get("/api/v1/bans");
    assert_eq!(list.json["count"], 2, "{list:?}");
    let text = ApiFiles::read(file);
    assert!(
        text.contains("198.51.100.0/24 ") && text.contains("2001:db8::/48"),
        "{text}"
    );
    assert_eq!(
        api.send("DELETE", "/api/v1/bans/2001:db8::/48", "").status,
        200
    );
    assert_eq!(
        api.send("DELETE", "/api/v1/bans/2001:db8::/48", "").status,
        404
    );
    assert_eq!(
        api.send("DELETE", "/api/v1/bans/198.51.100.0/24", "")
            .status,
        200
    );
    assert_eq!(api.get("/api/v1/bans").json["count"], 0);
    let stats = api.get("/api/v1/stats");
    assert_eq!(stats.json["admin"]["changes"]["bans"], 5, "{stats:?}");
    assert_eq!(stats.json["bans"], 0, "{stats:?}");
}

/// Private-mode routes refuse with 409 when private mode is off.
///
/// # Panics
/// As the others.
pub fn private_routes_refused_in_public_mode(api: &ApiClient) {
    for (method, path, body) in [
        ("GET", "/api/v1/passkeys".to_string(), ""),
        (
            "PUT",
            "/api/v1/passkeys/abcdefghijklmnopqrstuvwxyz012345".to_string(),
            "",
        ),
        (
            "PUT",
            "/api/v1/users/7".to_string(),
            r#"{"can_leech": false}"#,
        ),
        ("DELETE", format!("/api/v1/registered-torrents/{HASH}"), ""),
    ] {
        let answer = api.send(method, &path, body);
        assert_eq!(answer.status, 409, "{method} {path}: {answer:?}");
    }
}

/// A TCP connection to `to` from the loopback address `from` (127.0.0.0/8 has many):
/// how a test client comes from an address other than 127.0.0.1.
///
/// # Panics
/// The socket cannot be bound or connected.
pub fn tcp_connect_from(from: std::net::IpAddr, to: SocketAddr) -> TcpStream {
    let domain = socket2::Domain::for_address(to);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)
        .unwrap_or_else(|err| panic!("socket: {err}"));
    socket
        .bind(&SocketAddr::new(from, 0).into())
        .unwrap_or_else(|err| panic!("bind {from}: {err}"));
    socket
        .connect_timeout(&to.into(), Duration::from_secs(10))
        .unwrap_or_else(|err| panic!("connect {from} to {to}: {err}"));
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap_or_default();
    stream
}

/// Whether the server closed `stream` without sending a byte: the read gives end of
/// file, or a reset (it closed with bytes of ours unread). A read that times out is a
/// failed test, not a "no".
///
/// # Panics
/// The read timed out, or bytes came.
pub fn closed_without_answer(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("{n} bytes came from a connection that should be closed"),
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => true,
        Err(err) => panic!("neither closed nor answered: {err}"),
    }
}
