//! The admin API's answers: the token check, then one handler per route.
//!
//! Every answer is JSON (`{"error": "..."}` for a refusal) but `/health`'s, which is the
//! metrics listener's. Changes are written first (the file, or the database) and swapped
//! into what the workers read only once written, so that a change the API confirmed
//! survives a restart and a reload, and a failed write changes nothing.
//!
//! The service runs on the API's one thread; what it asks of the request workers it
//! waits for [`QUERY_TIMEOUT`] at most, and a database write as long as the database
//! takes to answer or fail: an operator's request, not the tracker's, waits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::routes::{self, NoMatch, Route};
use crate::api::same_token;
use crate::net::bans::{Ban, BanConfig, BanList, Network, SharedBans};
use crate::net::http_server::{Request, Service, response_with};
use crate::observe::metrics::server::health_answer;
use crate::observe::metrics::{Identity, to_json};
use crate::observe::statistics::{AdminChange, Statistics, unix_now_secs};
use crate::private::admin::{InvalidChange, SiteAdmin, Written};
use crate::private::passkey::Passkey;
use crate::runtime::reload::Reloader;
use crate::runtime::request_worker::AdminQuery;
use crate::runtime::supervisor::EndedThreads;
use crate::swarm::ScrapeCounts;
use crate::swarm::access_list::{AccessListConfig, AccessListMode, SharedAccessList};
use crate::swarm::inspect::TorrentDetail;
use crate::swarm::routing::ShardRouter;
use crate::types::{InfoHash, PeerId};

/// How long the API waits for a request worker's answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest request body the API reads: a body is a few small JSON fields.
pub const MAX_BODY_BYTES: usize = 4096;
/// Torrents `GET /api/v1/torrents` lists when not told (`limit`), and at most.
const DEFAULT_TORRENTS: usize = 100;
const MAX_TORRENTS: usize = 10_000;
/// Peers `GET /api/v1/torrents/{info_hash}` lists when not told (`peers`), and at most.
const DEFAULT_PEERS: usize = 1000;
const MAX_PEERS: usize = 10_000;

/// Everything the API reads and changes.
pub struct ApiContext {
    /// The workers' counters.
    pub statistics: Arc<Statistics>,
    /// Which tracker this is.
    pub identity: Identity,
    /// The threads that ended, for `/health`.
    pub ended: EndedThreads,
    /// Which request worker owns which torrent.
    pub router: ShardRouter,
    /// To each request worker, by index.
    pub queries: Vec<crossbeam_channel::Sender<AdminQuery>>,
    /// The access list in force.
    pub access_list: SharedAccessList,
    /// Its mode and file.
    pub access_list_config: AccessListConfig,
    /// The bans in force.
    pub bans: SharedBans,
    /// Their file and bound.
    pub ban_config: BanConfig,
    /// Private mode's site tables; `None` in public mode.
    pub site: Option<SiteAdmin>,
    /// What SIGUSR1 does.
    pub reloader: Reloader,
    /// Held while the access list or the bans are read, changed and written, by this
    /// service and by a reload, so that neither undoes the other.
    pub edit_lock: Arc<Mutex<()>>,
}

/// The admin API's service.
pub struct ApiService {
    token: Vec<u8>,
    context: ApiContext,
}

/// A handler's answer: status and JSON body (headers are added where it is encoded).
struct Answer {
    code: u16,
    body: Value,
}

impl Answer {
    fn ok(body: Value) -> Self {
        Self { code: 200, body }
    }

    fn written(written: Written, body: Value) -> Self {
        Self {
            code: match written {
                Written::Created => 201,
                Written::Replaced => 200,
            },
            body,
        }
    }

    fn error(code: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            body: json!({ "error": message.into() }),
        }
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// The OpenAPI document of the routes.
pub const OPENAPI: &str = include_str!("openapi.json");

impl ApiService {
    /// The service with its `token` (see [`crate::api::read_token`]).
    pub fn new(token: Vec<u8>, context: ApiContext) -> Self {
        Self { token, context }
    }

    fn authorized(&self, request: &Request<'_>) -> bool {
        let given = request
            .header("authorization")
            .and_then(|value| value.strip_prefix(b"Bearer "))
            .unwrap_or_default();
        same_token(given, &self.token)
    }

    fn dispatch(&self, request: &Request<'_>, route: Route, param: &str) -> Answer {
        let c = &self.context;
        match (route, request.method) {
            (Route::OpenApi, _) => match serde_json::from_str(OPENAPI) {
                Ok(doc) => Answer::ok(doc),
                Err(_) => Answer::error(500, "the OpenAPI document is not valid JSON"),
            },
            (Route::Stats, _) => Answer::ok(to_json(&c.statistics.snapshot(), &c.identity)),
            (Route::Torrents, _) => self.torrents(request.query()),
            (Route::Torrent, _) => self.torrent(param, request.query()),
            (Route::AccessList, _) => self.access_list(),
            (Route::AccessListEntry, method) => self.edit_access_list(param, method == "PUT"),
            (Route::Bans, _) => self.bans(),
            (Route::Ban, "PUT") => self.put_ban(param, request.body),
            (Route::Ban, _) => self.delete_ban(param),
            (Route::Passkeys, _) => self.passkeys(),
            (Route::Passkey, method) => self.passkey(param, method == "PUT", request.body),
            (Route::User, method) => self.user(param, method == "PUT", request.body),
            (Route::RegisteredTorrent, method) => {
                self.registered_torrent(param, method == "PUT", request.body)
            }
            (Route::Reload, _) => {
                let parts = c.reloader.run();
                let ok = parts.iter().all(|part| part.ok);
                Answer {
                    code: if ok { 200 } else { 500 },
                    body: json!({ "ok": ok, "parts": parts }),
                }
            }
            // Answered before the token check.
            (Route::Health, _) => Answer::error(500, "health is answered elsewhere"),
        }
    }

    /// Asks request worker `shard` and waits for its answer.
    fn ask<T>(
        &self,
        shard: usize,
        query: impl FnOnce(crossbeam_channel::Sender<T>) -> AdminQuery,
    ) -> Result<crossbeam_channel::Receiver<T>, Answer> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let sent = self
            .context
            .queries
            .get(shard)
            .is_some_and(|sender| sender.try_send(query(reply)).is_ok());
        if sent {
            Ok(answer)
        } else {
            Err(Answer::error(
                503,
                format!("request worker {} is busy or stopped", shard + 1),
            ))
        }
    }

    fn torrents(&self, query: &str) -> Answer {
        let limit = match count_param(query, "limit", DEFAULT_TORRENTS, MAX_TORRENTS) {
            Ok(limit) => limit,
            Err(answer) => return answer,
        };
        let mut waiting = Vec::new();
        for shard in 0..self.context.queries.len() {
            match self.ask(shard, |reply| AdminQuery::Busiest { limit, reply }) {
                Ok(answer) => waiting.push((shard, answer)),
                Err(answer) => return answer,
            }
        }
        let mut all: Vec<(InfoHash, ScrapeCounts)> = Vec::new();
        for (shard, answer) in waiting {
            match answer.recv_timeout(QUERY_TIMEOUT) {
                Ok(part) => all.extend(part),
                Err(_) => return not_in_time(shard),
            }
        }
        let peers = |c: &ScrapeCounts| u64::from(c.seeders) + u64::from(c.leechers);
        all.sort_by(|a, b| peers(&b.1).cmp(&peers(&a.1)).then(a.0.0.cmp(&b.0.0)));
        all.truncate(limit);
        let torrents: Vec<Value> = all
            .iter()
            .map(|(hash, counts)| {
                json!({
                    "info_hash": hash.to_hex(),
                    "seeders": counts.seeders,
                    "leechers": counts.leechers,
                    "downloaded": counts.completed,
                })
            })
            .collect();
        Answer::ok(json!({ "torrents": torrents }))
    }

    fn torrent(&self, param: &str, query: &str) -> Answer {
        let info_hash = match parse_info_hash(param) {
            Ok(hash) => hash,
            Err(answer) => return answer,
        };
        let max_peers = match count_param(query, "peers", DEFAULT_PEERS, MAX_PEERS) {
            Ok(max) => max,
            Err(answer) => return answer,
        };
        let shard = self.context.router.shard(&info_hash);
        let answer = match self.ask(shard, |reply| AdminQuery::Torrent {
            info_hash,
            max_peers,
            reply,
        }) {
            Ok(answer) => answer,
            Err(answer) => return answer,
        };
        match answer.recv_timeout(QUERY_TIMEOUT) {
            Ok(Some(detail)) => Answer::ok(torrent_json(&detail)),
            Ok(None) => Answer::error(404, format!("torrent {param} is not tracked")),
            Err(_) => not_in_time(shard),
        }
    }

    fn access_list(&self) -> Answer {
        let list = self.context.access_list.load();
        let mut hashes: Vec<String> = list.hashes().map(InfoHash::to_hex).collect();
        hashes.sort_unstable();
        Answer::ok(json!({
            "mode": mode_name(list.mode()),
            "count": hashes.len(),
            "info_hashes": hashes,
        }))
    }

    fn edit_access_list(&self, param: &str, add: bool) -> Answer {
        let c = &self.context;
        let info_hash = match parse_info_hash(param) {
            Ok(hash) => hash,
            Err(answer) => return answer,
        };
        if c.access_list_config.mode == AccessListMode::Off {
            return Answer::error(
                409,
                "the access list is off: set access_list.mode and access_list.path",
            );
        }
        let _editing = lock(&c.edit_lock);
        let current = c.access_list.load_full();
        let listed = current.contains(&info_hash);
        if listed == add {
            return if add {
                Answer::ok(json!({ "info_hash": info_hash.to_hex(), "listed": true }))
            } else {
                Answer::error(
                    404,
                    format!("{} is not in the access list", info_hash.to_hex()),
                )
            };
        }
        let changed = if add {
            current.with(info_hash)
        } else {
            current.without(&info_hash)
        };
        if let Err(err) = changed.write_file(&c.access_list_config.path) {
            return Answer::error(500, format!("{err:#}"));
        }
        let len = changed.len();
        c.access_list.store(Arc::new(changed));
        c.statistics.access_list_loaded(len);
        c.statistics.admin().changed(AdminChange::AccessList);
        log::info!(
            "admin API: {} {} the access list ({len} info hashes)",
            info_hash.to_hex(),
            if add { "added to" } else { "removed from" }
        );
        let body = json!({ "info_hash": info_hash.to_hex(), "listed": add });
        if add {
            Answer::written(Written::Created, body)
        } else {
            Answer::ok(body)
        }
    }

    fn bans(&self) -> Answer {
        let list = self.context.bans.load();
        let now = unix_now_secs();
        let bans: Vec<Value> = list
            .bans()
            .filter(|ban| ban.expires_unix_secs.is_none_or(|at| at > now))
            .map(ban_json)
            .collect();
        Answer::ok(json!({ "count": bans.len(), "bans": bans }))
    }

    fn put_ban(&self, param: &str, body: &[u8]) -> Answer {
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct Body {
            expires_unix_secs: Option<u64>,
            expires_in_secs: Option<u64>,
        }
        let c = &self.context;
        let network = match param.parse::<Network>() {
            Ok(network) => network,
            Err(message) => return Answer::error(400, message),
        };
        let body: Body = match parse_body(body) {
            Ok(body) => body,
            Err(answer) => return answer,
        };
        let now = unix_now_secs();
        let expires_unix_secs = match (body.expires_unix_secs, body.expires_in_secs) {
            (Some(_), Some(_)) => {
                return Answer::error(400, "give expires_unix_secs or expires_in_secs, not both");
            }
            (Some(at), None) if at <= now => {
                return Answer::error(400, "expires_unix_secs is in the past");
            }
            (Some(at), None) => Some(at),
            (None, Some(0)) => return Answer::error(400, "expires_in_secs must be at least 1"),
            (None, Some(secs)) => Some(now.saturating_add(secs)),
            (None, None) => None,
        };
        if c.ban_config.path.as_os_str().is_empty() {
            return Answer::error(409, "bans are off: set bans.path to a file that keeps them");
        }
        let _editing = lock(&c.edit_lock);
        let current = c.bans.load_full();
        let ban = Ban {
            network,
            expires_unix_secs,
        };
        let existed = current.get(&network).is_some();
        let changed = current.without_expired(now).with(ban);
        if changed.len() > c.ban_config.max_bans {
            return Answer::error(
                409,
                format!("bans.max_bans ({}) reached", c.ban_config.max_bans),
            );
        }
        if let Err(answer) = self.store_bans(changed) {
            return answer;
        }
        log::info!("admin API: banned {network}");
        let written = if existed {
            Written::Replaced
        } else {
            Written::Created
        };
        Answer::written(written, ban_json(&ban))
    }

    fn delete_ban(&self, param: &str) -> Answer {
        let c = &self.context;
        let network = match param.parse::<Network>() {
            Ok(network) => network,
            Err(message) => return Answer::error(400, message),
        };
        let _editing = lock(&c.edit_lock);
        let current = c.bans.load_full();
        let Some(changed) = current.without(&network) else {
            return Answer::error(404, format!("{network} is not banned"));
        };
        if let Err(answer) = self.store_bans(changed.without_expired(unix_now_secs())) {
            return answer;
        }
        log::info!("admin API: lifted the ban of {network}");
        Answer::ok(json!({ "network": network.to_string(), "banned": false }))
    }

    /// Writes `changed` to the bans file, then puts it in force.
    fn store_bans(&self, changed: BanList) -> Result<(), Answer> {
        let c = &self.context;
        changed
            .write_file(&c.ban_config.path)
            .map_err(|err| Answer::error(500, format!("{err:#}")))?;
        c.statistics
            .admin()
            .bans
            .store(changed.len() as u64, std::sync::atomic::Ordering::Relaxed);
        c.bans.store(Arc::new(changed));
        c.statistics.admin().changed(AdminChange::Bans);
        Ok(())
    }

    fn site(&self) -> Result<&SiteAdmin, Answer> {
        self.context
            .site
            .as_ref()
            .ok_or_else(|| Answer::error(409, "private mode is off: set private.enabled"))
    }

    fn passkeys(&self) -> Answer {
        let site = match self.site() {
            Ok(site) => site,
            Err(answer) => return answer,
        };
        let passkeys: Vec<Value> = site
            .passkeys()
            .iter()
            .map(|(key, user)| json!({ "passkey": key.as_str(), "user_id": user }))
            .collect();
        Answer::ok(json!({ "count": passkeys.len(), "passkeys": passkeys }))
    }

    fn passkey(&self, param: &str, put: bool, body: &[u8]) -> Answer {
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct Body {
            user_id: Option<i64>,
        }
        let site = match self.site() {
            Ok(site) => site,
            Err(answer) => return answer,
        };
        let Some(passkey) = Passkey::parse(param.as_bytes()) else {
            return Answer::error(
                400,
                format!("{param:?} is not a passkey: 32 characters of 0-9, A-Z, a-z"),
            );
        };
        let outcome = if put {
            let body: Body = match parse_body(body) {
                Ok(body) => body,
                Err(answer) => return answer,
            };
            site.put_passkey(passkey, body.user_id).map(|written| {
                let user = site
                    .passkeys()
                    .iter()
                    .find(|(key, _)| *key == passkey)
                    .map(|(_, user)| *user);
                Answer::written(
                    written,
                    json!({ "passkey": passkey.as_str(), "user_id": user }),
                )
            })
        } else {
            site.delete_passkey(&passkey).map(|deleted| {
                if deleted {
                    Answer::ok(json!({ "passkey": passkey.as_str(), "deleted": true }))
                } else {
                    Answer::error(404, "no such passkey")
                }
            })
        };
        self.site_outcome(outcome, AdminChange::Passkeys)
    }

    fn user(&self, param: &str, put: bool, body: &[u8]) -> Answer {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            can_leech: bool,
        }
        let site = match self.site() {
            Ok(site) => site,
            Err(answer) => return answer,
        };
        let Ok(user) = param.parse::<i64>() else {
            return Answer::error(
                400,
                format!("{param:?} is not a user id (a 64-bit integer)"),
            );
        };
        let outcome = if put {
            let body: Body = match parse_required_body(body) {
                Ok(body) => body,
                Err(answer) => return answer,
            };
            site.put_user(user, body.can_leech).map(|written| {
                Answer::written(
                    written,
                    json!({ "user_id": user, "can_leech": body.can_leech }),
                )
            })
        } else {
            site.delete_user(user).map(|deleted| {
                if deleted {
                    Answer::ok(json!({ "user_id": user, "deleted": true }))
                } else {
                    Answer::error(404, "no such user")
                }
            })
        };
        self.site_outcome(outcome, AdminChange::Users)
    }

    fn registered_torrent(&self, param: &str, put: bool, body: &[u8]) -> Answer {
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct Body {
            upload_percent: Option<u32>,
            download_percent: Option<u32>,
        }
        let site = match self.site() {
            Ok(site) => site,
            Err(answer) => return answer,
        };
        let info_hash = match parse_info_hash(param) {
            Ok(hash) => hash,
            Err(answer) => return answer,
        };
        let outcome = if put {
            let body: Body = match parse_body(body) {
                Ok(body) => body,
                Err(answer) => return answer,
            };
            let upload = body.upload_percent.unwrap_or(100);
            let download = body.download_percent.unwrap_or(100);
            site.put_torrent(info_hash, upload, download)
                .map(|written| {
                    Answer::written(
                        written,
                        json!({
                            "info_hash": info_hash.to_hex(),
                            "upload_percent": upload,
                            "download_percent": download,
                        }),
                    )
                })
        } else {
            site.delete_torrent(&info_hash).map(|deleted| {
                if deleted {
                    Answer::ok(json!({ "info_hash": info_hash.to_hex(), "deleted": true }))
                } else {
                    Answer::error(404, "no such registered torrent")
                }
            })
        };
        self.site_outcome(outcome, AdminChange::RegisteredTorrents)
    }

    /// A site change's answer; a change that worked is counted, one that failed (the
    /// database down, say) is a 503: nothing changed, try again.
    fn site_outcome(&self, outcome: anyhow::Result<Answer>, kind: AdminChange) -> Answer {
        match outcome {
            Ok(answer) => {
                if answer.code < 300 {
                    self.context.statistics.admin().changed(kind);
                }
                answer
            }
            Err(err) if err.downcast_ref::<InvalidChange>().is_some() => {
                Answer::error(400, format!("{err:#}"))
            }
            Err(err) => Answer::error(503, format!("{err:#}")),
        }
    }
}

impl Service for ApiService {
    fn answer(&mut self, request: &Request<'_>) -> Vec<u8> {
        let matched = routes::match_path(request.path());
        if let Ok(m) = &matched
            && m.spec.route == Route::Health
            && request.method == "GET"
        {
            let c = &self.context;
            return health_answer(&c.statistics, &c.identity, &c.ended);
        }
        if !self.authorized(request) {
            self.context
                .statistics
                .admin()
                .unauthorized
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return encode(
                &Answer::error(401, "a valid Authorization: Bearer token is required"),
                &[("WWW-Authenticate", "Bearer")],
            );
        }
        let matched = match matched {
            Ok(matched) => matched,
            Err(NoMatch::NotFound) => {
                return encode(
                    &Answer::error(404, format!("no route {}", request.path())),
                    &[],
                );
            }
            Err(NoMatch::BadEncoding) => {
                return encode(
                    &Answer::error(400, "the path is not valid percent-encoding"),
                    &[],
                );
            }
        };
        if !matched.spec.methods.contains(&request.method) {
            let allow = matched.spec.methods.join(", ");
            return encode(
                &Answer::error(405, format!("{} answers {allow}", matched.spec.path)),
                &[("Allow", &allow)],
            );
        }
        encode(
            &self.dispatch(request, matched.spec.route, &matched.param),
            &[],
        )
    }
}

fn encode(answer: &Answer, headers: &[(&str, &str)]) -> Vec<u8> {
    let body = serde_json::to_vec(&answer.body).unwrap_or_default();
    response_with(
        answer.code,
        reason(answer.code),
        "application/json",
        headers,
        &body,
    )
}

fn lock(mutex: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn not_in_time(shard: usize) -> Answer {
    Answer::error(
        503,
        format!("request worker {} did not answer in time", shard + 1),
    )
}

fn parse_info_hash(text: &str) -> Result<InfoHash, Answer> {
    InfoHash::from_hex(text).ok_or_else(|| {
        Answer::error(
            400,
            format!("{text:?} is not an info hash: 40 hexadecimal digits"),
        )
    })
}

/// The number `key` of the query, `default` without one; 400 if it is not a number
/// from 1 to `max`.
fn count_param(query: &str, key: &str, default: usize, max: usize) -> Result<usize, Answer> {
    match routes::query_value(query, key) {
        None => Ok(default),
        Some(value) => value
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| Answer::error(400, format!("{key} must be a number from 1 to {max}"))),
    }
}

/// A JSON body, or the type's default for an empty one.
fn parse_body<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> Result<T, Answer> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_required_body(body)
}

fn parse_required_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Answer> {
    serde_json::from_slice(body)
        .map_err(|err| Answer::error(400, format!("the body is not what this route takes: {err}")))
}

fn mode_name(mode: AccessListMode) -> &'static str {
    match mode {
        AccessListMode::Off => "off",
        AccessListMode::Allow => "allow",
        AccessListMode::Deny => "deny",
    }
}

fn ban_json(ban: &Ban) -> Value {
    json!({
        "network": ban.network.to_string(),
        "expires_unix_secs": ban.expires_unix_secs,
    })
}

fn torrent_json(detail: &TorrentDetail) -> Value {
    let peers: Vec<Value> = detail
        .peers
        .iter()
        .map(|peer| {
            let (ip, port) = match peer.endpoint {
                // Stored addresses are canonical: an IPv4 client is in the IPv4 family.
                Some((ip, port)) => (Some(ip.to_string()), Some(port)),
                None => (None, None),
            };
            json!({
                "ip": ip,
                "port": port,
                "peer_id": peer.peer_id.as_ref().map(PeerId::to_hex),
                "seeder": peer.seeder,
                "age_secs": peer.age_secs,
                "remote": peer.remote,
            })
        })
        .collect();
    json!({
        "info_hash": detail.info_hash.to_hex(),
        "seeders": detail.counts.seeders,
        "leechers": detail.counts.leechers,
        "downloaded": detail.counts.completed,
        "peers_total": detail.num_peers,
        "peers": peers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_matches_the_routes() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut documented: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| ["get", "put", "post", "delete", "patch"].contains(&k.as_str()))
                    .map(move |method| (path.clone(), method.to_uppercase()))
            })
            .collect();
        documented.sort();
        let mut served: Vec<(String, String)> = routes::ROUTES
            .iter()
            .flat_map(|spec| {
                spec.methods
                    .iter()
                    .map(|m| (spec.path.to_string(), (*m).to_string()))
            })
            .collect();
        served.sort();
        assert_eq!(documented, served);
    }

    #[test]
    fn count_params() {
        assert_eq!(count_param("", "limit", 5, 10).ok(), Some(5));
        assert_eq!(count_param("limit=10", "limit", 5, 10).ok(), Some(10));
        for bad in ["limit=11", "limit=0", "limit=-1", "limit=x", "limit="] {
            assert_eq!(
                count_param(bad, "limit", 5, 10).err().map(|a| a.code),
                Some(400)
            );
        }
    }
}
