//! Keeps `documents/grafana-dashboard.json` honest: every metric its queries name must be
//! served at `/metrics` by at least one of the three trackers, with the labels and label
//! values the queries use, and every served metric must have a panel. A renamed metric,
//! label or label value fails here rather than leaving an empty panel in production.
//!
//! The figures come from the real endpoint: a [`MetricsServer`] for each protocol on
//! port 0, public and in private mode (whose `shoal_private_*` series only a private
//! tracker serves), read over HTTP as Prometheus would. The queries are read with a
//! small PromQL tokenizer that knows just what the checks need: selectors
//! (`name{label op "value"}`), grouping clauses (`by (..)`, `without (..)`, `on (..)`,
//! `ignoring (..)`) and `label_values(name, label)`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tracker_common::observe::history::History;
use tracker_common::observe::metrics::{self, Identity, MetricsServer};
use tracker_common::observe::statistics::{Protocol, Statistics};
use tracker_common::runtime::supervisor::ShutdownFlag;
use tracker_common::testing::http_get;

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../documents/grafana-dashboard.json"
);

/// Labels Prometheus adds to every series it scrapes: a query may group by them.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// Sample name → label name → the values seen, over all three protocols.
type Exposed = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// What each protocol's tracker serves at `/metrics`, public and private, alone and as a
/// cluster node, from a metrics server on port 0.
fn exposed() -> Exposed {
    let mut all = Exposed::new();
    for protocol in [Protocol::Udp, Protocol::Http, Protocol::Ws] {
        for (private, cluster) in [(false, false), (true, false), (false, true)] {
            parse_samples(&served(protocol, private, cluster), &mut all);
        }
    }
    all
}

/// The `/metrics` text of a `protocol` tracker, in private mode if `private`, a cluster
/// node if `cluster`.
fn served(protocol: Protocol, private: bool, cluster: bool) -> String {
    let statistics = Arc::new(Statistics::new(1, 1));
    if private {
        statistics.private().enable();
    }
    if cluster {
        statistics
            .cluster()
            .enabled
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let (listener, addr) = metrics::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let shutdown = ShutdownFlag::new();
    let server = MetricsServer::new(
        listener,
        statistics,
        Identity {
            protocol,
            version: env!("CARGO_PKG_VERSION"),
            start_unix_secs: 1,
        },
        shutdown.clone(),
        History::new(Duration::from_secs(10)),
    )
    .unwrap();
    let thread = std::thread::spawn(move || server.run());
    let (status, body) = http_get(addr, "/metrics");
    shutdown.set();
    thread.join().unwrap().unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// Adds the sample lines of an OpenMetrics text to `into`: the names as Prometheus
/// stores them (`shoal_requests_total`, not the family name `shoal_requests`).
fn parse_samples(text: &str, into: &mut Exposed) {
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let end = line.find(['{', ' ']).unwrap();
        let labels = into.entry(line[..end].to_owned()).or_default();
        if line[end..].starts_with('{') {
            let close = line.rfind('}').unwrap();
            // Label values here are plain words: no escaped quotes or commas inside.
            for pair in line[end + 1..close].split(',') {
                let (name, value) = pair.split_once('=').unwrap();
                labels
                    .entry(name.to_owned())
                    .or_default()
                    .insert(value.trim_matches('"').to_owned());
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    /// A name, keyword, number or `$variable`.
    Word(String),
    /// A quoted string, without its quotes.
    Text(String),
    /// `=`, `!=`, `=~`, `!~`.
    Match(&'static str),
    /// Any other character.
    Punct(char),
}

fn tokens(query: &str) -> Vec<Token> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '$';
    let chars: Vec<char> = query.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if word(c) {
            let start = i;
            while i < chars.len() && word(chars[i]) {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else if c == '"' || c == '\'' || c == '`' {
            let start = i + 1;
            i = start;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            out.push(Token::Text(
                chars[start..i.min(chars.len())].iter().collect(),
            ));
            i += 1;
        } else {
            let op = match (c, next) {
                ('=', Some('~')) => Some("=~"),
                ('!', Some('~')) => Some("!~"),
                ('!', Some('=')) => Some("!="),
                ('=', Some('=')) => None,
                ('=', _) => Some("="),
                _ => None,
            };
            match op {
                Some(op) => {
                    out.push(Token::Match(op));
                    i += op.len();
                }
                None => {
                    out.push(Token::Punct(c));
                    i += 1;
                }
            }
        }
    }
    out
}

/// One `shoal_*` selector of a query.
#[derive(Debug, Default)]
struct Selector {
    metric: String,
    /// (label, operator, value)
    matchers: Vec<(String, &'static str, String)>,
}

/// What a query names: its selectors, the labels of its grouping clauses and those of
/// `label_values(metric, label)`.
#[derive(Debug, Default)]
struct Query {
    selectors: Vec<Selector>,
    grouping: Vec<String>,
    label_values: Vec<(String, String)>,
}

fn read_query(query: &str) -> Result<Query, String> {
    let tokens = tokens(query);
    let word = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) => Some(w.as_str()),
        _ => None,
    };
    let punct = |i: usize, c: char| tokens.get(i) == Some(&Token::Punct(c));
    let mut out = Query::default();
    let mut i = 0;
    while i < tokens.len() {
        match word(i) {
            Some(name) if name.starts_with("shoal_") => {
                let mut selector = Selector {
                    metric: name.to_owned(),
                    ..Selector::default()
                };
                i += 1;
                if punct(i, '{') {
                    i += 1;
                    while !punct(i, '}') {
                        match (word(i), tokens.get(i + 1), tokens.get(i + 2)) {
                            (Some(label), Some(Token::Match(op)), Some(Token::Text(value))) => {
                                selector
                                    .matchers
                                    .push((label.to_owned(), op, value.clone()));
                                i += 3;
                            }
                            _ => return Err(format!("unreadable matcher in {query}")),
                        }
                        if punct(i, ',') {
                            i += 1;
                        }
                    }
                    i += 1;
                }
                out.selectors.push(selector);
            }
            Some("by" | "without" | "on" | "ignoring" | "group_left" | "group_right")
                if punct(i + 1, '(') =>
            {
                i += 2;
                while !punct(i, ')') {
                    match word(i) {
                        Some(label) => out.grouping.push(label.to_owned()),
                        None if punct(i, ',') => {}
                        None => return Err(format!("unreadable grouping in {query}")),
                    }
                    i += 1;
                }
                i += 1;
            }
            Some("label_values") if punct(i + 1, '(') && punct(i + 3, ',') => {
                match (word(i + 2), word(i + 4)) {
                    (Some(metric), Some(label)) => {
                        out.label_values.push((metric.to_owned(), label.to_owned()));
                    }
                    _ => return Err(format!("unreadable label_values in {query}")),
                }
                // The metric is read again as a selector.
                i += 2;
            }
            _ => i += 1,
        }
    }
    Ok(out)
}

/// Every panel, rows' nested panels included.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in panels.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Everything wrong with `dashboard` against what the trackers serve; empty when it is
/// right. Also returns the metrics its queries use.
fn problems(dashboard: &Value, exposed: &Exposed) -> (Vec<String>, BTreeSet<String>) {
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();

    for key in ["title", "uid"] {
        if dashboard[key].as_str().is_none_or(str::is_empty) {
            problems.push(format!("no {key}"));
        }
    }
    if !dashboard["schemaVersion"].is_u64() {
        problems.push("no schemaVersion".into());
    }
    let variables = dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let variable = |name: &str| variables.iter().find(|v| v["name"] == name);
    match variable("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        other => problems.push(format!(
            "templating needs a datasource variable of Prometheus data sources, has {other:?}"
        )),
    }
    let protocol = variable("protocol");
    match protocol {
        Some(v) if v["type"] == "query" => {}
        other => problems.push(format!(
            "templating needs a protocol query variable, has {other:?}"
        )),
    }

    // (where, query, legend)
    let mut queries: Vec<(String, String, String)> = Vec::new();
    if let Some(v) = protocol {
        for query in [&v["definition"], &v["query"]["query"], &v["query"]] {
            if let Some(q) = query.as_str() {
                queries.push(("variable protocol".into(), q.to_owned(), String::new()));
            }
        }
    }
    let panels = all_panels(dashboard);
    if panels.iter().all(|p| p["type"] == "row") {
        problems.push("no panels".into());
    }
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?");
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("panel {title:?} has no queries"));
        }
        for source in
            std::iter::once(&panel["datasource"]).chain(targets.iter().map(|t| &t["datasource"]))
        {
            if source["uid"] != "${datasource}" {
                problems.push(format!(
                    "panel {title:?}: data source {source} is not the variable ${{datasource}}"
                ));
            }
        }
        for target in &targets {
            match target["expr"].as_str() {
                Some(expr) => queries.push((
                    format!("panel {title:?}"),
                    expr.to_owned(),
                    target["legendFormat"].as_str().unwrap_or("").to_owned(),
                )),
                None => problems.push(format!("panel {title:?} has a query without expr")),
            }
        }
    }

    for (place, text, legend) in &queries {
        let query = match read_query(text) {
            Ok(query) => query,
            Err(err) => {
                problems.push(format!("{place}: {err}"));
                continue;
            }
        };
        let mut labels: BTreeSet<&str> = TARGET_LABELS.into_iter().collect();
        let mut all_served = true;
        for selector in &query.selectors {
            used.insert(selector.metric.clone());
            let Some(served) = exposed.get(&selector.metric) else {
                all_served = false;
                problems.push(format!(
                    "{place}: {} is not served by any tracker",
                    selector.metric
                ));
                continue;
            };
            labels.extend(served.keys().map(String::as_str));
            if place.starts_with("panel")
                && !selector
                    .matchers
                    .iter()
                    .any(|(l, op, v)| l == "protocol" && *op == "=~" && v == "$protocol")
            {
                problems.push(format!(
                    "{place}: {} does not select protocol=~\"$protocol\"",
                    selector.metric
                ));
            }
            for (label, op, value) in &selector.matchers {
                match served.get(label) {
                    None => {
                        problems.push(format!("{place}: {} has no label {label}", selector.metric))
                    }
                    Some(values)
                        if *op == "=" && !value.contains('$') && !values.contains(value) =>
                    {
                        problems.push(format!(
                            "{place}: {}{{{label}}} is never {value:?}, only {values:?}",
                            selector.metric
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        for (metric, label) in &query.label_values {
            if !exposed.get(metric).is_some_and(|l| l.contains_key(label)) {
                problems.push(format!("{place}: {metric} has no label {label}"));
            }
        }
        if !all_served {
            // The labels of an unknown metric are unknown: nothing more to check.
            continue;
        }
        for label in &query.grouping {
            if !labels.contains(label.as_str()) {
                problems.push(format!(
                    "{place}: groups by {label}, which none of its metrics has"
                ));
            }
        }
        // After aggregation only the grouping labels remain for the legend.
        let legend_labels: BTreeSet<&str> = if query.grouping.is_empty() {
            labels
        } else {
            query.grouping.iter().map(String::as_str).collect()
        };
        for part in legend.split("{{").skip(1) {
            let label = part.split("}}").next().unwrap_or("").trim();
            if !legend_labels.contains(label) {
                problems.push(format!(
                    "{place}: legend {legend:?} names {label}, which the query does not keep"
                ));
            }
        }
    }
    (problems, used)
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(DASHBOARD).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn dashboard_reads_only_metrics_the_trackers_serve() {
    let exposed = exposed();
    let (problems, used) = problems(&dashboard(), &exposed);
    assert!(problems.is_empty(), "{DASHBOARD}:\n{}", problems.join("\n"));
    // Every series a tracker serves is on the dashboard: a new one needs a panel.
    let unused: Vec<_> = exposed.keys().filter(|m| !used.contains(*m)).collect();
    assert!(unused.is_empty(), "no panel reads {unused:?}");
}

/// The first test sees private mode's and the cluster's series only because [`exposed`]
/// also serves trackers in private mode and cluster nodes: each must come from its
/// mode, and only from it.
#[test]
fn private_and_cluster_series_come_from_their_modes_only() {
    for protocol in [Protocol::Udp, Protocol::Http, Protocol::Ws] {
        let series = |private: bool, cluster: bool, prefix: &str| {
            let mut exposed = Exposed::new();
            parse_samples(&served(protocol, private, cluster), &mut exposed);
            exposed
                .into_keys()
                .filter(|m| m.starts_with(prefix))
                .count()
        };
        assert_eq!(series(false, false, "shoal_private_"), 0, "{protocol:?}");
        assert_eq!(series(false, true, "shoal_private_"), 0, "{protocol:?}");
        assert!(series(true, false, "shoal_private_") > 0, "{protocol:?}");
        assert_eq!(series(false, false, "shoal_cluster_"), 0, "{protocol:?}");
        assert_eq!(series(true, false, "shoal_cluster_"), 0, "{protocol:?}");
        assert!(series(false, true, "shoal_cluster_") > 0, "{protocol:?}");
    }
}

/// A small dashboard of the same shape as the real one, written here so that the test
/// below does not depend on how the real file happens to be formatted.
fn small_dashboard() -> Value {
    let source = serde_json::json!({ "type": "prometheus", "uid": "${datasource}" });
    let panel = |expr: &str, legend: &str| {
        serde_json::json!({
            "type": "timeseries",
            "title": expr,
            "datasource": source,
            "targets": [{ "datasource": source, "expr": expr, "legendFormat": legend }],
        })
    };
    serde_json::json!({
        "title": "t",
        "uid": "u",
        "schemaVersion": 39,
        "templating": { "list": [
            { "name": "datasource", "type": "datasource", "query": "prometheus" },
            {
                "name": "protocol",
                "type": "query",
                "datasource": source,
                "definition": "label_values(shoal_requests_total, protocol)",
            },
        ] },
        "panels": [
            { "type": "row", "title": "r", "panels": [] },
            panel(
                "sum by (protocol, cause) (rate(shoal_errors_total{protocol=~\"$protocol\", \
                 cause=\"dropped\"}[$__rate_interval]))",
                "{{protocol}} {{cause}}",
            ),
            panel("shoal_torrents{protocol=~\"$protocol\"}", "{{protocol}} {{instance}}"),
        ],
    })
}

/// The checks are not vacuous: a renamed metric, label or label value, a legend naming
/// a label the query drops, a selector without the protocol variable and a missing
/// datasource variable are each caught.
#[test]
fn renamed_metrics_and_labels_are_caught() {
    let exposed = exposed();
    let text = small_dashboard().to_string();
    let (found, _) = problems(&small_dashboard(), &exposed);
    assert!(found.is_empty(), "{found:?}");
    for (from, to, expected) in [
        (
            "shoal_torrents{",
            "shoal_torrent{",
            "shoal_torrent is not served",
        ),
        (
            "label_values(shoal_requests_total,",
            "label_values(shoal_requests,",
            "shoal_requests is not served",
        ),
        (
            "label_values(shoal_requests_total, protocol)",
            "label_values(shoal_requests_total, proto)",
            "has no label proto",
        ),
        (
            r#"cause=\"dropped\""#,
            r#"cause=\"drops\""#,
            r#"is never "drops""#,
        ),
        (
            r#"cause=\"dropped\""#,
            r#"reason=\"dropped\""#,
            "has no label reason",
        ),
        (
            "by (protocol, cause)",
            "by (protocol, reason)",
            "groups by reason",
        ),
        (
            "{{protocol}} {{cause}}",
            "{{protocol}} {{kind}}",
            "names kind",
        ),
        (
            r#"shoal_torrents{protocol=~\"$protocol\"}"#,
            "shoal_torrents",
            "does not select protocol",
        ),
        (
            r#""name":"datasource""#,
            r#""name":"source""#,
            "datasource variable",
        ),
        (
            r#""uid":"${datasource}""#,
            r#""uid":"prom""#,
            "is not the variable",
        ),
    ] {
        assert!(text.contains(from), "{from} not in {text}");
        let broken: Value = serde_json::from_str(&text.replace(from, to)).unwrap();
        let (found, _) = problems(&broken, &exposed);
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "{from} -> {to}: {found:?}"
        );
    }
}

#[test]
fn queries_are_read_as_written() {
    let query = read_query(
        "sum by (protocol, kind) (rate(shoal_x_total{protocol=~\"$protocol\",kind=\"a\"}[5m])) \
         / on(protocol) shoal_y",
    )
    .unwrap();
    let selectors: Vec<_> = query.selectors.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(selectors, ["shoal_x_total", "shoal_y"]);
    assert_eq!(
        query.selectors[0].matchers,
        [
            ("protocol".to_owned(), "=~", "$protocol".to_owned()),
            ("kind".to_owned(), "=", "a".to_owned())
        ]
    );
    assert_eq!(query.grouping, ["protocol", "kind", "protocol"]);
    let variable = read_query("label_values(shoal_x_total, protocol)").unwrap();
    assert_eq!(
        variable.label_values,
        [("shoal_x_total".to_owned(), "protocol".to_owned())]
    );
}
