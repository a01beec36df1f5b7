//! What every protocol's load test shares around its workers: the check that the target
//! is a loopback address, and running the prepared workers from one instant to the end
//! of the run while the calling thread collects their per-second reports.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::Receiver;

use crate::report::{self, Counters, RunConfig, TickReport};

/// A load worker, set up (sockets made) and ready to run.
pub(crate) trait LoadWorker: Send + 'static {
    /// Sends load from `start` to `end`, sending a [`TickReport`] each second.
    fn run(self, start: Instant, end: Instant) -> anyhow::Result<()>;
}

/// Refuses a target that is not on loopback, or has port 0: a load test floods what it
/// points at.
///
/// # Errors
/// A message naming the `server_address` key.
pub(crate) fn check_server_address(address: SocketAddr) -> anyhow::Result<()> {
    if !address.ip().is_loopback() {
        anyhow::bail!("server_address: {address} is not a loopback address (127.0.0.0/8 or ::1)");
    }
    if address.port() == 0 {
        anyhow::bail!("server_address: the port must not be 0");
    }
    Ok(())
}

/// Starts `workers` on threads `load-01`.., all at one instant, collects their reports
/// (printing a line per second) until they have all hung up, joins them, and returns
/// the measured window's counts and the tracker's CPU seconds over it.
///
/// `receiver` must be the receiving end of the channel the workers report on, with no
/// other sender left, so that it disconnects when the last worker ends.
///
/// # Errors
/// A thread could not be started, or a worker failed or panicked.
pub(crate) fn run_workers<W: LoadWorker>(
    workers: Vec<W>,
    receiver: &Receiver<TickReport>,
    run: &RunConfig,
) -> anyhow::Result<(Counters, Option<f64>)> {
    let count = workers.len();
    let start = Instant::now();
    let end = start + Duration::from_secs(u64::from(run.total_secs()));
    let mut handles = Vec::with_capacity(count);
    for (index, worker) in workers.into_iter().enumerate() {
        handles.push(
            std::thread::Builder::new()
                .name(format!("load-{:02}", index + 1))
                .spawn(move || worker.run(start, end))
                .context("start load worker")?,
        );
    }
    let (measured, cpu) = report::collect(receiver, count, run, start);
    for handle in handles {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(err.context("load worker failed")),
            Err(_) => anyhow::bail!("a load worker panicked"),
        }
    }
    Ok((measured, cpu))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        for ok in ["127.0.0.1:6969", "127.3.4.5:1", "[::1]:80"] {
            check_server_address(ok.parse().unwrap()).unwrap();
        }
        for bad in [
            "10.0.0.1:6969",
            "[2001:db8::1]:80",
            "0.0.0.0:6969",
            "127.0.0.1:0",
        ] {
            let err = check_server_address(bad.parse().unwrap()).unwrap_err();
            assert!(err.to_string().starts_with("server_address"), "{err}");
        }
    }
}
