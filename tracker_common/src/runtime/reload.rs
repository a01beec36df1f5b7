//! What SIGUSR1 and the admin API's `POST /api/v1/reload` do: re-read every file the
//! tracker reads at start and may be changed while it runs (the access list, the bans,
//! the passkeys, a tracker's own such as its TLS certificates), each part on its own: a
//! part that fails keeps what was in force and does not stop the others.
//!
//! Each part's outcome is logged (an error at `error`), and handed back for the API's
//! answer.

use std::sync::{Arc, Mutex};

/// One part of a reload and how it went.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReloadPart {
    /// What was re-read: "access_list", "bans", "passkeys", "tls", ...
    pub part: &'static str,
    /// Whether it worked (if not, what was in force stays).
    pub ok: bool,
    /// What it did, or why it failed.
    pub message: String,
}

impl ReloadPart {
    /// A part that worked.
    pub fn done(part: &'static str, message: impl Into<String>) -> Self {
        Self {
            part,
            ok: true,
            message: message.into(),
        }
    }

    /// What the part is, in words, for the log: "access list", "tls certificates".
    pub fn label(&self) -> String {
        match self.part {
            "tls" => "tls certificates".to_string(),
            part => part.replace('_', " "),
        }
    }

    /// A part that failed; `error` is shown with its causes.
    pub fn failed(part: &'static str, error: &anyhow::Error) -> Self {
        Self {
            part,
            ok: false,
            message: format!("{error:#}"),
        }
    }
}

/// A part of the reload.
pub type ReloadFn = Arc<dyn Fn() -> Vec<ReloadPart> + Send + Sync>;

/// The whole reload: its parts, in order. Cheap to clone; one reload runs at a time
/// (a SIGUSR1 during an API reload waits for it).
#[derive(Clone, Default)]
pub struct Reloader {
    parts: Vec<ReloadFn>,
    running: Arc<Mutex<()>>,
}

impl Reloader {
    /// Adds a part, run after those added before.
    pub fn add(&mut self, part: impl Fn() -> Vec<ReloadPart> + Send + Sync + 'static) {
        self.parts.push(Arc::new(part));
    }

    /// Runs every part, logs each outcome, and returns them.
    pub fn run(&self) -> Vec<ReloadPart> {
        // A part that panicked poisoned nothing this needs: the lock guards no data.
        let _running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let outcomes: Vec<ReloadPart> = self.parts.iter().flat_map(|part| part()).collect();
        for outcome in &outcomes {
            let what = outcome.label();
            if outcome.ok {
                log::info!("{what} reloaded: {}", outcome.message);
            } else {
                log::error!(
                    "{what} reload failed, keeping what was in force: {}",
                    outcome.message
                );
            }
        }
        outcomes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_run_in_order_and_a_failure_stops_none() {
        let mut reloader = Reloader::default();
        reloader.add(|| vec![ReloadPart::done("a", "1 thing")]);
        reloader.add(|| vec![ReloadPart::failed("b", &anyhow::anyhow!("bad line 3"))]);
        reloader.add(|| vec![ReloadPart::done("c", "fine")]);
        let outcomes = reloader.clone().run();
        let parts: Vec<_> = outcomes.iter().map(|o| (o.part, o.ok)).collect();
        assert_eq!(parts, [("a", true), ("b", false), ("c", true)]);
        assert_eq!(outcomes[1].message, "bad line 3");
        assert_eq!(ReloadPart::done("access_list", "").label(), "access list");
        assert_eq!(ReloadPart::done("tls", "").label(), "tls certificates");
    }
}
