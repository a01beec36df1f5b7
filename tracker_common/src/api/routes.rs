//! The admin API's routes: which path is which route, with its parameter decoded.
//!
//! Pure: no I/O. [`ROUTES`] is the one table of paths and methods; the service answers
//! 405 with an `Allow` header from it, and a test checks the OpenAPI document against it.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

/// A route: its path pattern (a `{name}` segment is a parameter) and its methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    /// What it is, for the service's dispatch.
    pub route: Route,
    /// The path, as the OpenAPI document writes it.
    pub path: &'static str,
    /// The methods it answers.
    pub methods: &'static [&'static str],
}

/// The routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/health`: no token.
    Health,
    /// The OpenAPI document.
    OpenApi,
    /// What `/stats.json` has.
    Stats,
    /// The busiest torrents.
    Torrents,
    /// One torrent (`{info_hash}`).
    Torrent,
    /// The access list.
    AccessList,
    /// One info hash of the access list.
    AccessListEntry,
    /// The bans.
    Bans,
    /// One ban (`{cidr}`, whose slash is part of the path).
    Ban,
    /// The passkeys in force.
    Passkeys,
    /// One passkey.
    Passkey,
    /// One user of the site's tables.
    User,
    /// One registered torrent and its multipliers.
    RegisteredTorrent,
    /// What SIGUSR1 does.
    Reload,
}

/// Every route. A parameter is the last segment; `{cidr}` takes the rest of the path.
pub const ROUTES: &[RouteSpec] = &[
    spec(Route::Health, "/health", &["GET"]),
    spec(Route::OpenApi, "/api/v1/openapi.json", &["GET"]),
    spec(Route::Stats, "/api/v1/stats", &["GET"]),
    spec(Route::Torrents, "/api/v1/torrents", &["GET"]),
    spec(Route::Torrent, "/api/v1/torrents/{info_hash}", &["GET"]),
    spec(Route::AccessList, "/api/v1/access-list", &["GET"]),
    spec(
        Route::AccessListEntry,
        "/api/v1/access-list/{info_hash}",
        &["PUT", "DELETE"],
    ),
    spec(Route::Bans, "/api/v1/bans", &["GET"]),
    spec(Route::Ban, "/api/v1/bans/{cidr}", &["PUT", "DELETE"]),
    spec(Route::Passkeys, "/api/v1/passkeys", &["GET"]),
    spec(
        Route::Passkey,
        "/api/v1/passkeys/{passkey}",
        &["PUT", "DELETE"],
    ),
    spec(Route::User, "/api/v1/users/{user_id}", &["PUT", "DELETE"]),
    spec(
        Route::RegisteredTorrent,
        "/api/v1/registered-torrents/{info_hash}",
        &["PUT", "DELETE"],
    ),
    spec(Route::Reload, "/api/v1/reload", &["POST"]),
];

const fn spec(route: Route, path: &'static str, methods: &'static [&'static str]) -> RouteSpec {
    RouteSpec {
        route,
        path,
        methods,
    }
}

/// A path matched to its route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matched {
    /// The route.
    pub spec: RouteSpec,
    /// Its parameter, percent-decoded; empty for a route without one.
    pub param: String,
}

/// Why a path matched no route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoMatch {
    /// No route has this path.
    NotFound,
    /// The route's parameter is not valid percent-encoded UTF-8.
    BadEncoding,
}

/// The route of `path` (without its query string).
///
/// # Errors
/// No route has it, or its parameter cannot be decoded.
pub fn match_path(path: &str) -> Result<Matched, NoMatch> {
    for spec in ROUTES {
        let Some((prefix, _)) = spec.path.split_once('{') else {
            if path == spec.path {
                return Ok(Matched {
                    spec: *spec,
                    param: String::new(),
                });
            }
            continue;
        };
        let Some(raw) = path.strip_prefix(prefix) else {
            continue;
        };
        // Only a CIDR holds a slash; every other parameter is one segment.
        if raw.is_empty() || (spec.route != Route::Ban && raw.contains('/')) {
            continue;
        }
        let param = percent_decode(raw).ok_or(NoMatch::BadEncoding)?;
        return Ok(Matched { spec: *spec, param });
    }
    Err(NoMatch::NotFound)
}

/// `text` with its `%XX` escapes decoded; `None` if one is malformed or the result is not
/// UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(byte);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The value of `key` in a query string (`a=1&b=2`), percent-decoded; the first if
/// given twice. `Some(Err(()))` when it cannot be decoded.
pub fn query_value(query: &str, key: &str) -> Option<Result<String, ()>> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v).ok_or(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_routes() {
        let m = match_path("/api/v1/stats").unwrap();
        assert_eq!((m.spec.route, m.param.as_str()), (Route::Stats, ""));
        let m = match_path("/api/v1/torrents/abc").unwrap();
        assert_eq!((m.spec.route, m.param.as_str()), (Route::Torrent, "abc"));
        let m = match_path("/api/v1/bans/203.0.113.0/24").unwrap();
        assert_eq!(
            (m.spec.route, m.param.as_str()),
            (Route::Ban, "203.0.113.0/24")
        );
        let m = match_path("/api/v1/bans/2001:db8::%2F48").unwrap();
        assert_eq!(
            (m.spec.route, m.param.as_str()),
            (Route::Ban, "2001:db8::/48")
        );
        let m = match_path("/health").unwrap();
        assert_eq!(m.spec.route, Route::Health);
        assert_eq!(match_path("/api/v1/torrents/a/b"), Err(NoMatch::NotFound));
        assert_eq!(match_path("/api/v1/torrents/"), Err(NoMatch::NotFound));
        assert_eq!(match_path("/api/v1/nothing"), Err(NoMatch::NotFound));
        assert_eq!(match_path("/api/v1/stats/"), Err(NoMatch::NotFound));
        assert_eq!(match_path("/api/v2/stats"), Err(NoMatch::NotFound));
        assert_eq!(
            match_path("/api/v1/passkeys/%zz"),
            Err(NoMatch::BadEncoding)
        );
        assert_eq!(
            match_path("/api/v1/passkeys/%ff"),
            Err(NoMatch::BadEncoding)
        );
    }

    #[test]
    fn every_route_matches_its_own_path() {
        for spec in ROUTES {
            let path = spec
                .path
                .replace("{cidr}", "10.0.0.0/8")
                .replace(['{', '}'], "");
            let matched = match_path(&path).unwrap();
            assert_eq!(matched.spec, *spec, "{path}");
        }
    }

    #[test]
    fn query_values() {
        assert_eq!(query_value("limit=5&x=1", "limit"), Some(Ok("5".into())));
        assert_eq!(query_value("x=1&limit=%35", "limit"), Some(Ok("5".into())));
        assert_eq!(query_value("limit", "limit"), Some(Ok(String::new())));
        assert_eq!(query_value("", "limit"), None);
        assert_eq!(query_value("limit=%", "limit"), Some(Err(())));
    }
}
