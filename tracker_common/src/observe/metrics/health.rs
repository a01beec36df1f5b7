//! `GET /health`: whether every part of the tracker is up, as a status code that a load
//! balancer, a container runtime or a monitor reads, and a small JSON body that a person
//! reads.
//!
//! - 200 while every thread of the tracker is alive: `"status": "ok"`, or `"degraded"`
//!   when, in private mode, the last attempt to commit credit to the accounting database
//!   failed. Announces are still answered then and the credit waits until a commit
//!   works again, so a load balancer must not take the tracker out of service for it:
//!   that would turn a database outage into a tracker outage. `"problems"` says it,
//!   and `"accounting"` shows the state.
//! - 503 with `"status": "down"` once a supervised thread has ended ([`EndedThreads`]):
//!   the process is on its way out.
//!
//! `"problems"` has one sentence per part that is down or failing.
//!
//! What "threads alive" rests on: the supervisor ends the process when any worker
//! returns or panics, and each thread records its name as it ends, before the
//! supervisor hears of it. So while this answers and no thread has recorded itself, every
//! worker is running. A worker that is alive but stuck (a loop that never returns to its
//! poll) is not seen: the workers publish no heartbeat, and one would cost a store on
//! every socket and request worker's loop.
//!
//! A pure function of what it is given: no I/O, no clock.
//!
//! [`EndedThreads`]: crate::runtime::supervisor::EndedThreads

use serde_json::json;

use crate::cluster::stats::ClusterSnapshot;
use crate::observe::metrics::Identity;
use crate::private::stats::PrivateSnapshot;

/// The answer to `/health`.
#[derive(Clone, Debug, PartialEq)]
pub struct Health {
    /// Whether every thread is alive: 200 if so, 503 if not.
    pub ok: bool,
    /// The body: `status`, `protocol`, `version`, `start_time_unix_secs`, `problems`
    /// and, in private mode, `accounting`.
    pub body: serde_json::Value,
}

/// The tracker's health from its private-mode figures (all zero when private mode is
/// off) and the first thread that ended, if one has (see
/// [`EndedThreads::first`](crate::runtime::supervisor::EndedThreads::first)).
pub fn check(
    private: &PrivateSnapshot,
    cluster: &ClusterSnapshot,
    id: &Identity,
    ended_thread: Option<&str>,
) -> Health {
    let mut problems = Vec::new();
    if cluster.enabled && !cluster.bus_up {
        problems.push(
            "cluster: NATS is not reachable; this node answers from its own swarms and \
             keeps reconnecting"
                .to_string(),
        );
    }
    if let Some(name) = ended_thread {
        problems.push(format!("thread {name} has stopped"));
    }
    let accounting_ok = private.commit_failures_in_a_row == 0 && private.database_up;
    if private.enabled && private.commit_failures_in_a_row > 0 {
        problems.push(format!(
            "accounting database: the last {} commit attempts failed; announces are \
             answered and their credit waits",
            private.commit_failures_in_a_row
        ));
    } else if private.enabled && !private.database_up {
        problems.push(
            "accounting database: not open yet; announces are answered and their credit \
             waits"
                .to_string(),
        );
    }
    let ok = ended_thread.is_none();
    let status = match (ok, problems.is_empty()) {
        (false, _) => "down",
        (true, true) => "ok",
        (true, false) => "degraded",
    };
    let mut body = json!({
        "status": status,
        "protocol": id.protocol.label(),
        "version": id.version,
        "start_time_unix_secs": id.start_unix_secs,
        "problems": problems,
    });
    if private.enabled
        && let Some(map) = body.as_object_mut()
    {
        map.insert(
            "accounting".into(),
            json!({
                "status": if accounting_ok { "ok" } else { "failing" },
                "commit_failures_in_a_row": private.commit_failures_in_a_row,
                "last_commit_unix_secs": private.last_commit_unix_secs,
                "credits_pending": private.credits_pending,
                "database_up": private.database_up,
                "batches_committed": private.batches_committed,
                "batches_failed": private.batches_failed,
            }),
        );
    }
    if cluster.enabled
        && let Some(map) = body.as_object_mut()
    {
        map.insert(
            "cluster".into(),
            json!({
                "bus_up": cluster.bus_up,
                "live_nodes": cluster.live_nodes,
                "remote_peers": cluster.remote_peers,
                "resyncs": cluster.resyncs,
            }),
        );
    }
    Health { ok, body }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::statistics::Protocol;

    fn id() -> Identity {
        Identity {
            protocol: Protocol::Ws,
            version: "1.2.3",
            start_unix_secs: 7,
        }
    }

    #[test]
    fn a_cluster_node_without_its_bus_is_degraded_but_serves() {
        let mut cluster = ClusterSnapshot {
            enabled: true,
            bus_up: true,
            live_nodes: 2,
            ..ClusterSnapshot::default()
        };
        let health = check(&PrivateSnapshot::default(), &cluster, &id(), None);
        assert_eq!(health.body["status"], "ok");
        assert_eq!(health.body["cluster"]["bus_up"], true);
        assert_eq!(health.body["cluster"]["live_nodes"], 2);
        cluster.bus_up = false;
        let health = check(&PrivateSnapshot::default(), &cluster, &id(), None);
        assert!(health.ok);
        assert_eq!(health.body["status"], "degraded");
        assert!(
            health.body["problems"][0]
                .as_str()
                .is_some_and(|p| p.starts_with("cluster: NATS is not reachable")),
            "{}",
            health.body
        );
    }

    #[test]
    fn public_and_whole_is_ok_without_accounting() {
        let health = check(
            &PrivateSnapshot::default(),
            &ClusterSnapshot::default(),
            &id(),
            None,
        );
        assert!(health.ok);
        assert_eq!(
            health.body,
            json!({
                "status": "ok",
                "protocol": "ws",
                "version": "1.2.3",
                "start_time_unix_secs": 7,
                "problems": [],
            })
        );
    }

    #[test]
    fn an_ended_thread_is_down_and_named() {
        let health = check(
            &PrivateSnapshot::default(),
            &ClusterSnapshot::default(),
            &id(),
            Some("request-02"),
        );
        assert!(!health.ok);
        assert_eq!(health.body["status"], "down");
        assert_eq!(health.body["problems"][0], "thread request-02 has stopped");
    }

    #[test]
    fn private_mode_reports_its_accounting_and_a_failing_database_degrades_but_serves() {
        let mut private = PrivateSnapshot {
            enabled: true,
            credits_pending: 5,
            batches_committed: 4,
            last_commit_unix_secs: 1_800_000_000,
            database_up: true,
            ..PrivateSnapshot::default()
        };
        let health = check(&private, &ClusterSnapshot::default(), &id(), None);
        assert!(health.ok, "{}", health.body);
        assert_eq!(
            health.body["accounting"],
            json!({
                "status": "ok",
                "commit_failures_in_a_row": 0,
                "last_commit_unix_secs": 1_800_000_000u64,
                "credits_pending": 5,
                "database_up": true,
                "batches_committed": 4,
                "batches_failed": 0,
            })
        );

        private.database_up = false;
        let health = check(&private, &ClusterSnapshot::default(), &id(), None);
        assert!(health.ok);
        assert_eq!(health.body["status"], "degraded", "a database not open yet");
        assert_eq!(health.body["accounting"]["status"], "failing");

        private.commit_failures_in_a_row = 3;
        private.batches_failed = 3;
        let health = check(&private, &ClusterSnapshot::default(), &id(), None);
        assert!(health.ok, "the tracker still serves: 200");
        assert_eq!(health.body["status"], "degraded");
        assert_eq!(health.body["accounting"]["status"], "failing");
        assert_eq!(
            health.body["problems"],
            json!([
                "accounting database: the last 3 commit attempts failed; announces are \
                 answered and their credit waits"
            ])
        );
        // A stopped thread is down whatever the database does.
        let health = check(
            &private,
            &ClusterSnapshot::default(),
            &id(),
            Some("socket-01"),
        );
        assert!(!health.ok);
        assert_eq!(health.body["status"], "down");
        assert_eq!(health.body["problems"].as_array().map(Vec::len), Some(2));
    }
}
