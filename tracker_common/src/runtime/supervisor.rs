//! Named worker threads under supervision, and the signal thread.
//!
//! A tracker with a dead worker is worse than no tracker: it keeps its port and silently
//! drops a share of the traffic. So every worker runs under a [`Supervisor`]; the moment
//! one returns or panics, [`Supervisor::wait`] reports it and the process ends with an
//! error naming the thread. The exception is a requested shutdown (SIGTERM, SIGINT, or
//! [`ShutdownFlag::set`] in tests): then workers return one by one and that is success.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::{Receiver, Sender};

/// Set once when the tracker should stop; workers check it every loop iteration.
#[derive(Clone, Debug, Default)]
pub struct ShutdownFlag(Arc<AtomicBool>);

impl ShutdownFlag {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every worker to stop.
    pub fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The name of the first supervised thread that ended, for the metrics endpoint's
/// `/health`. Each thread records itself as it ends, before the supervisor hears of it,
/// so in the moment between a worker's death and the process's exit (or for as long as
/// a test keeps a tracker whose worker died) the health check already says so.
#[derive(Clone, Debug, Default)]
pub struct EndedThreads(Arc<OnceLock<String>>);

impl EndedThreads {
    /// The first thread that ended, if any has.
    pub fn first(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

struct WorkerExit {
    name: String,
    outcome: Result<anyhow::Result<()>, String>,
}

/// Spawns named threads and notices when any of them ends.
pub struct Supervisor {
    shutdown: ShutdownFlag,
    exit_sender: Sender<WorkerExit>,
    exit_receiver: Receiver<WorkerExit>,
    handles: Vec<(String, JoinHandle<()>)>,
    ended: EndedThreads,
}

impl Supervisor {
    /// A supervisor with no threads yet.
    pub fn new(shutdown: ShutdownFlag) -> Self {
        let (exit_sender, exit_receiver) = crossbeam_channel::unbounded();
        Self {
            shutdown,
            exit_sender,
            exit_receiver,
            handles: Vec::new(),
            ended: EndedThreads::default(),
        }
    }

    /// Which thread ended first, as its threads record it.
    pub fn ended_threads(&self) -> EndedThreads {
        self.ended.clone()
    }

    /// The flag that stops every worker.
    pub fn shutdown_flag(&self) -> &ShutdownFlag {
        &self.shutdown
    }

    /// Starts `work` on a thread called `name`.
    ///
    /// # Errors
    /// The OS refused to start the thread.
    pub fn spawn<F>(&mut self, name: &str, work: F) -> anyhow::Result<()>
    where
        F: FnOnce() -> anyhow::Result<()> + Send + 'static,
    {
        let sender = self.exit_sender.clone();
        let thread_name = name.to_string();
        let ended = self.ended.clone();
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(work)).map_err(|payload| {
                    if let Some(s) = payload.downcast_ref::<&str>() {
                        (*s).to_string()
                    } else if let Some(s) = payload.downcast_ref::<String>() {
                        s.clone()
                    } else {
                        "unknown panic payload".to_string()
                    }
                });
                // Only the first name is kept: the threads that follow are usually the
                // others stopping because of it.
                let _ = ended.0.set(thread_name.clone());
                // The receiver lives as long as the supervisor; if it is gone, the
                // process is already on its way out.
                let _ = sender.send(WorkerExit {
                    name: thread_name,
                    outcome,
                });
            })
            .with_context(|| format!("spawn thread {name}"))?;
        self.handles.push((name.to_string(), handle));
        Ok(())
    }

    /// Blocks until some thread ends.
    ///
    /// # Errors
    /// A thread ended although no shutdown was asked for: the error names it and says
    /// whether it returned an error, returned, or panicked.
    pub fn wait(&self) -> anyhow::Result<()> {
        let Ok(exit) = self.exit_receiver.recv() else {
            anyhow::bail!("supervisor lost its threads");
        };
        if self.shutdown.is_set() {
            return Ok(());
        }
        match exit.outcome {
            Ok(Ok(())) => anyhow::bail!("thread {} stopped unexpectedly", exit.name),
            Ok(Err(err)) => Err(err.context(format!("thread {} failed", exit.name))),
            Err(panic) => anyhow::bail!("thread {} panicked: {panic}", exit.name),
        }
    }

    /// Sets the shutdown flag and joins the threads, waiting at most `timeout` in all.
    /// Returns the names of threads that had not finished by then.
    pub fn shutdown(&mut self, timeout: Duration) -> Vec<String> {
        self.shutdown.set();
        let deadline = Instant::now() + timeout;
        let mut stuck = Vec::new();
        for (name, handle) in std::mem::take(&mut self.handles) {
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                stuck.push(name);
            }
        }
        stuck
    }
}

/// Starts the signal thread: SIGUSR1 calls `on_reload`; SIGTERM and SIGINT set the
/// shutdown flag and end the thread, which the supervisor then reports as a clean stop.
///
/// # Errors
/// The signal handlers could not be installed.
pub fn spawn_signal_thread<F>(supervisor: &mut Supervisor, mut on_reload: F) -> anyhow::Result<()>
where
    F: FnMut() + Send + 'static,
{
    use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
    let mut signals = signal_hook::iterator::Signals::new([SIGUSR1, SIGTERM, SIGINT])
        .context("install signal handlers")?;
    let shutdown = supervisor.shutdown_flag().clone();
    supervisor.spawn("signals", move || {
        for signal in signals.forever() {
            if signal == SIGUSR1 {
                on_reload();
            } else {
                log::info!("received signal {signal}, shutting down");
                shutdown.set();
                return Ok(());
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_worker_is_reported_by_name() {
        let mut sup = Supervisor::new(ShutdownFlag::new());
        let flag = sup.shutdown_flag().clone();
        sup.spawn("idle-01", move || {
            while !flag.is_set() {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        })
        .unwrap();
        sup.spawn("socket-01", || anyhow::bail!("bind failed"))
            .unwrap();
        let err = sup.wait().unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("socket-01") && msg.contains("bind failed"),
            "{msg}"
        );
        assert!(sup.shutdown(Duration::from_secs(5)).is_empty());
    }

    #[test]
    fn the_first_thread_to_end_is_recorded_before_it_is_reported() {
        let mut sup = Supervisor::new(ShutdownFlag::new());
        let ended = sup.ended_threads();
        assert_eq!(ended.first(), None);
        sup.spawn("request-02", || Ok(())).unwrap();
        assert!(sup.wait().is_err());
        assert_eq!(ended.first(), Some("request-02"));
    }

    #[test]
    fn a_panicking_worker_is_reported() {
        let mut sup = Supervisor::new(ShutdownFlag::new());
        sup.spawn("request-01", || panic!("boom")).unwrap();
        let msg = format!("{:#}", sup.wait().unwrap_err());
        assert!(msg.contains("request-01 panicked: boom"), "{msg}");
    }

    #[test]
    fn a_returning_worker_is_an_error() {
        let mut sup = Supervisor::new(ShutdownFlag::new());
        sup.spawn("cleaning", || Ok(())).unwrap();
        let msg = format!("{:#}", sup.wait().unwrap_err());
        assert!(msg.contains("cleaning stopped unexpectedly"), "{msg}");
    }

    #[test]
    fn requested_shutdown_is_success() {
        let mut sup = Supervisor::new(ShutdownFlag::new());
        let flag = sup.shutdown_flag().clone();
        sup.spawn("worker", move || {
            while !flag.is_set() {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        })
        .unwrap();
        sup.shutdown_flag().set();
        assert!(sup.wait().is_ok());
        assert!(sup.shutdown(Duration::from_secs(5)).is_empty());
    }
}
