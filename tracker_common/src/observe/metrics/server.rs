//! The metrics listener: the operator's HTTP server ([`crate::net::http_server`]: one
//! thread, one mio poll, many connections at once, each with a deadline and bounds)
//! serving the figures, `/health` and the page.
//!
//! The history of the page's charts is sampled on this thread, between two polls, on
//! its own timer: it has one owner and needs no lock.
//!
//! It is for a scraper on a trusted network, not for the public: its address defaults
//! to loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpListener;

use crate::net::http_server::{self, HttpServer, Request, Service, response, status};
pub use crate::net::http_server::{
    Limits, MAX_CONNECTIONS, MAX_DRAINED_BYTES, MAX_REQUEST_BYTES, REQUEST_TIMEOUT,
};
use crate::observe::history::History;
use crate::observe::metrics::{ASSETS, Identity, encode_prometheus, health, to_json};
use crate::observe::statistics::Statistics;
use crate::runtime::supervisor::{EndedThreads, ShutdownFlag};

/// Binds the metrics listener.
///
/// # Errors
/// The address cannot be bound.
pub fn bind(address: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    http_server::bind("metrics", address)
}

/// The metrics server: what it serves, where, and within which limits.
pub struct MetricsServer(HttpServer<MetricsService>);

/// What the metrics listener answers.
struct MetricsService {
    statistics: Arc<Statistics>,
    identity: Identity,
    history: History,
    ended: EndedThreads,
}

impl MetricsServer {
    /// A server on `listener` (see [`bind`]) serving the `statistics` of the tracker
    /// `identity`, sampling `history`, until `shutdown`, within [`Limits::default`]; it
    /// knows of no threads until [`MetricsServer::with_ended_threads`].
    ///
    /// # Errors
    /// The poll could not be made, or the listener registered with it.
    pub fn new(
        listener: TcpListener,
        statistics: Arc<Statistics>,
        identity: Identity,
        shutdown: ShutdownFlag,
        history: History,
    ) -> anyhow::Result<Self> {
        let service = MetricsService {
            statistics,
            identity,
            history,
            ended: EndedThreads::default(),
        };
        Ok(Self(HttpServer::new(
            "metrics",
            listener,
            service,
            shutdown,
            Limits::default(),
        )?))
    }

    /// The same server within `limits`.
    pub fn with_limits(self, limits: Limits) -> Self {
        Self(self.0.with_limits(limits))
    }

    /// The same server, whose `/health` reports the threads that `ended` records (the
    /// supervisor's, see [`crate::runtime::supervisor::Supervisor::ended_threads`]).
    pub fn with_ended_threads(mut self, ended: EndedThreads) -> Self {
        self.0.service_mut().ended = ended;
        self
    }

    /// Serves until shutdown, and samples the history on its timer.
    ///
    /// # Errors
    /// The poll failed.
    pub fn run(self) -> anyhow::Result<()> {
        self.0.run()
    }
}

impl Service for MetricsService {
    fn tick(&mut self, now: Instant) -> Instant {
        self.history
            .push(unix_now_ms(), &self.statistics.snapshot());
        now + self.history.interval()
    }

    fn answer(&mut self, request: &Request<'_>) -> Vec<u8> {
        if request.method != "GET" {
            return status(405, "Method Not Allowed");
        }
        // A query string changes nothing.
        let path = request.path();
        if let Some((_, content_type, body)) = ASSETS.iter().find(|(p, _, _)| *p == path) {
            return response(200, "OK", content_type, body);
        }
        if path == "/history.json" {
            return match serde_json::to_vec(&self.history.to_json(self.identity.protocol)) {
                Ok(body) => response(200, "OK", "application/json", &body),
                Err(_) => status(500, "Internal Server Error"),
            };
        }
        let snapshot = self.statistics.snapshot();
        match path {
            "/metrics" => match encode_prometheus(&snapshot, &self.identity) {
                Ok(body) => response(
                    200,
                    "OK",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body.as_bytes(),
                ),
                Err(_) => status(500, "Internal Server Error"),
            },
            "/stats.json" => match serde_json::to_vec(&to_json(&snapshot, &self.identity)) {
                Ok(body) => response(200, "OK", "application/json", &body),
                Err(_) => status(500, "Internal Server Error"),
            },
            "/health" => health_answer(&self.statistics, &self.identity, &self.ended),
            _ => status(404, "Not Found"),
        }
    }
}

/// The whole answer to `/health`: 200 or 503 with the JSON body of [`health::check`].
pub fn health_answer(
    statistics: &Statistics,
    identity: &Identity,
    ended: &EndedThreads,
) -> Vec<u8> {
    let snapshot = statistics.snapshot();
    let health = health::check(
        &snapshot.private,
        &snapshot.cluster,
        identity,
        ended.first(),
    );
    let (code, reason) = if health.ok {
        (200, "OK")
    } else {
        (503, "Service Unavailable")
    };
    match serde_json::to_vec(&health.body) {
        Ok(body) => response(code, reason, "application/json", &body),
        Err(_) => status(500, "Internal Server Error"),
    }
}

fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;
    use std::sync::atomic::Ordering;
    use std::thread::JoinHandle;
    use std::time::Duration;

    use super::*;
    use crate::observe::statistics::{Family, Protocol, RequestKind};
    use crate::runtime::supervisor::Supervisor;
    use crate::testing::http_get;

    /// A server on an ephemeral port, in a thread of its own.
    struct Running {
        addr: SocketAddr,
        shutdown: ShutdownFlag,
        thread: JoinHandle<anyhow::Result<()>>,
    }

    impl Running {
        fn start(statistics: Arc<Statistics>, protocol: Protocol, limits: Limits) -> Self {
            Self::start_with(statistics, protocol, limits, EndedThreads::default())
        }

        fn start_with(
            statistics: Arc<Statistics>,
            protocol: Protocol,
            limits: Limits,
            ended: EndedThreads,
        ) -> Self {
            let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let shutdown = ShutdownFlag::new();
            let identity = Identity {
                protocol,
                version: "9.8.7",
                start_unix_secs: 35,
            };
            let server = MetricsServer::new(
                listener,
                statistics,
                identity,
                shutdown.clone(),
                History::new(Duration::from_secs(1)),
            )
            .unwrap()
            .with_limits(limits)
            .with_ended_threads(ended);
            let thread = std::thread::spawn(move || server.run());
            Self {
                addr,
                shutdown,
                thread,
            }
        }

        fn stop(self) {
            self.shutdown.set();
            self.thread.join().unwrap().unwrap();
        }
    }

    fn ask(server: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(server).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    /// Waits (10 s at most, far beyond any deadline used here) for the server to close
    /// `stream` without answering: a read gives end of file, or a reset when the server
    /// closed with bytes of ours unread.
    fn closed_by_server(mut stream: TcpStream) {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 64];
        match stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("an answer instead of a close: {:?}", &buf[..n]),
            Err(err) => assert!(
                matches!(
                    err.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ),
                "not closed: {err}"
            ),
        }
    }

    #[test]
    fn server_answers_paths_and_bounds_requests() {
        let statistics = Arc::new(Statistics::new(1, 1));
        statistics
            .socket(0)
            .request(RequestKind::Announce, Family::Ipv6);
        let server = Running::start(statistics, Protocol::Http, Limits::default());
        let addr = server.addr;

        let metrics = ask(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
        assert!(metrics.contains(
            "shoal_requests_total{protocol=\"http\",kind=\"announce\",family=\"ipv6\"} 1\n"
        ));
        let json = ask(addr, b"GET /stats.json?x=1 HTTP/1.1\r\n\r\n");
        assert!(
            json.contains("Content-Type: application/json\r\n"),
            "{json}"
        );
        let body = json.split("\r\n\r\n").nth(1).unwrap();
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(value["requests"]["announce"]["ipv6"], 1);
        assert!(ask(addr, b"GET /nothing HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        assert!(ask(addr, b"GET /page.js/x HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        assert!(ask(addr, b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
        assert!(ask(addr, b"\x00\x01 nonsense\r\n\r\n").starts_with("HTTP/1.1 400 "));
        let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n", "a".repeat(10_000));
        assert!(ask(addr, huge.as_bytes()).starts_with("HTTP/1.1 431 "));
        // A request head that arrives in pieces is read whole.
        let mut pieces = TcpStream::connect(addr).unwrap();
        pieces
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        for piece in [&b"GET /metr"[..], b"ics HTTP/1.1\r\n", b"\r\n"] {
            pieces.write_all(piece).unwrap();
            pieces.flush().unwrap();
        }
        let mut answer = String::new();
        pieces.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");

        server.stop();
    }

    /// The case: clients that hold connections (silent, half a request, a byte
    /// at a time, not reading the answer) while Prometheus scrapes. The one-connection
    /// server this replaced served them in turn, each until its deadline, and the scrape
    /// waited past Prometheus's 10 s timeout; now it is answered at once, and 1 s is the
    /// issue's bound, not a measure of how long it takes.
    #[test]
    fn slow_clients_do_not_delay_a_scrape() {
        let server = Running::start(
            Arc::new(Statistics::new(1, 1)),
            Protocol::Udp,
            Limits::default(),
        );
        let addr = server.addr;
        let idle: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let mut partial = TcpStream::connect(addr).unwrap();
        partial.write_all(b"GET /metrics HTTP/1.1\r\nHo").unwrap();
        // Asks for the largest file and never reads it.
        let mut unread = TcpStream::connect(addr).unwrap();
        unread
            .write_all(b"GET /uplot.min.js HTTP/1.1\r\n\r\n")
            .unwrap();
        // A byte every 100 ms, until the server closes the connection (or 30 s).
        let mut dribbling = TcpStream::connect(addr).unwrap();
        let dribbler = std::thread::spawn(move || {
            let head = format!("GET /metrics HTTP/1.1\r\nX: {}", "a".repeat(300));
            for byte in head.as_bytes() {
                if dribbling.write_all(&[*byte]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });

        let started = Instant::now();
        let answer = ask(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        let took = started.elapsed();
        eprintln!("/metrics answered in {took:?} with 8 slow clients connected");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), length, "the whole answer");
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert!(took < Duration::from_secs(1), "{took:?}");

        drop((idle, partial, unread));
        dribbler.join().unwrap();
        server.stop();
    }

    /// The deadline is on the whole request, not on each read: a client that keeps
    /// sending a byte at a time is closed at it as a silent one is.
    #[test]
    fn a_connection_past_its_deadline_is_closed() {
        let limits = Limits {
            request_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let server = Running::start(Arc::new(Statistics::new(1, 1)), Protocol::Udp, limits);
        let silent = TcpStream::connect(server.addr).unwrap();
        let mut dribbling = TcpStream::connect(server.addr).unwrap();
        let reader = dribbling.try_clone().unwrap();
        // A byte every 50 ms for 30 s at most, longer than the reader waits: a timeout
        // per read would never fire, and the reader would see no close.
        let dribbler = std::thread::spawn(move || {
            let head = format!("GET /metrics HTTP/1.1\r\nX: {}", "a".repeat(600));
            for byte in head.as_bytes() {
                if dribbling.write_all(&[*byte]).is_err() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        });
        closed_by_server(silent);
        closed_by_server(reader);
        assert!(dribbler.join().unwrap(), "the dribbler was never cut off");
        // And the server goes on.
        assert!(ask(server.addr, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 "));
        server.stop();
    }

    /// At the cap, one more connection is closed at accept; once a slot is free, a
    /// scrape is served. Nothing here waits on a clock: the held connections are
    /// accepted before the extra one (the backlog is first in, first out) and their
    /// deadline is far away, and a slot is known to be free once the client has read
    /// the end of an answer, which the server sends by closing.
    #[test]
    fn connections_over_the_cap_are_closed_at_accept() {
        let limits = Limits {
            request_timeout: Duration::from_secs(600),
            max_connections: 3,
            ..Limits::default()
        };
        let server = Running::start(Arc::new(Statistics::new(1, 1)), Protocol::Ws, limits);
        let mut held: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect(server.addr).unwrap())
            .collect();
        closed_by_server(TcpStream::connect(server.addr).unwrap());

        let mut first = held.remove(0);
        first
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        first.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut answer = String::new();
        first.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(ask(server.addr, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 "));
        drop(held);
        server.stop();
    }

    #[test]
    fn health_reports_the_threads_and_private_accounting() {
        let statistics = Arc::new(Statistics::new(1, 1));
        let mut supervisor = Supervisor::new(ShutdownFlag::new());
        let server = Running::start_with(
            statistics.clone(),
            Protocol::Http,
            Limits::default(),
            supervisor.ended_threads(),
        );
        let health = |expected: u16| -> serde_json::Value {
            let (status, body) = http_get(server.addr, "/health");
            assert_eq!(status, expected, "{body}");
            serde_json::from_str(&body).unwrap()
        };

        // Public mode: no accounting.
        let public = health(200);
        assert_eq!(public["status"], "ok");
        assert_eq!(public["protocol"], "http");
        assert_eq!(public["problems"], serde_json::json!([]));
        assert!(public.get("accounting").is_none(), "{public}");

        // Private mode: its accounting state; a failing database degrades it, and the
        // tracker still serves (200).
        let private = statistics.private();
        private.enable();
        private.database_up.store(1, Ordering::Relaxed);
        private.writer_pending.store(5, Ordering::Relaxed);
        private
            .last_commit_unix_secs
            .store(1_800_000_000, Ordering::Relaxed);
        let ok = health(200);
        assert_eq!(ok["accounting"]["status"], "ok");
        assert_eq!(ok["accounting"]["credits_pending"], 5);
        assert_eq!(ok["accounting"]["last_commit_unix_secs"], 1_800_000_000u64);
        private.commit_failures_in_a_row.store(2, Ordering::Relaxed);
        let failing = health(200);
        assert_eq!(failing["status"], "degraded");
        assert_eq!(failing["accounting"]["status"], "failing");
        assert!(
            failing["problems"][0]
                .as_str()
                .is_some_and(|p| p.starts_with("accounting database: the last 2 commit")),
            "{failing}"
        );
        private.commit_failures_in_a_row.store(0, Ordering::Relaxed);
        assert_eq!(health(200)["status"], "ok");

        // A supervised thread that ends is down, by name.
        supervisor.spawn("request-01", || Ok(())).unwrap();
        assert!(supervisor.wait().is_err());
        let stopped = health(503);
        assert_eq!(stopped["problems"][0], "thread request-01 has stopped");
        server.stop();
    }

    fn content_type(answer: &str) -> &str {
        answer
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: "))
            .unwrap()
    }

    #[test]
    fn server_serves_the_page_and_its_history() {
        let statistics = Arc::new(Statistics::new(1, 1));
        let server = Running::start(statistics.clone(), Protocol::Udp, Limits::default());
        let addr = server.addr;

        for (path, expected, body_part) in [
            ("/", "text/html; charset=utf-8", "<script src=\"/page.js\""),
            ("/?refresh=1", "text/html; charset=utf-8", "<!DOCTYPE html>"),
            (
                "/page.js",
                "text/javascript; charset=utf-8",
                "/history.json",
            ),
            ("/uplot.min.js", "text/javascript; charset=utf-8", "uPlot"),
            ("/uplot.min.css", "text/css; charset=utf-8", ".uplot"),
        ] {
            let answer = ask(addr, format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes());
            assert!(
                answer.starts_with("HTTP/1.1 200 OK\r\n"),
                "{path}: {answer}"
            );
            assert_eq!(content_type(&answer), expected, "{path}");
            assert!(answer.contains(body_part), "{path}");
        }
        assert!(ask(addr, b"HEAD / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));

        // The first sample is taken at start, the next a second later, with the
        // requests counted in between: the rate is positive.
        for _ in 0..10 {
            statistics
                .socket(0)
                .request(RequestKind::Announce, Family::Ipv4);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let history = loop {
            let answer = ask(addr, b"GET /history.json HTTP/1.1\r\n\r\n");
            assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
            assert_eq!(content_type(&answer), "application/json");
            let body = answer.split("\r\n\r\n").nth(1).unwrap();
            let history: serde_json::Value = serde_json::from_str(body).unwrap();
            if history["timestamps"].as_array().unwrap().len() >= 2 {
                break history;
            }
            assert!(Instant::now() < deadline, "no second sample: {history}");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(history["protocol"], "udp");
        assert_eq!(history["interval_secs"], 1);
        let announces = history["requests_per_sec"]["announce"].as_array().unwrap();
        assert!(announces[0].is_null());
        assert!(announces[1].as_f64().unwrap() > 0.0, "{history}");

        server.stop();
    }
}
