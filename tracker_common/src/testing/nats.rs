//! A throwaway NATS server for a test: Debian's `nats-server`, on a free loopback port,
//! stopped on drop; it can be stopped and started again on the same port, to test a
//! cluster that loses its bus.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Where Debian's package puts the server.
const BINARY: &str = "/usr/sbin/nats-server";

/// How long a cluster test waits for what it expects; reached only when a test fails.
/// A resync whose first attempt is not answered waits out the bus's 15 s step timeout and
/// is tried again 5 s later (`cluster::RESYNC_INTERVAL`): two whole attempts, with room
/// for a machine busy with the other tests, fit in a minute, where 20 s did not.
pub const CLUSTER_DEADLINE: Duration = Duration::from_secs(60);

/// A `nats-server` of its own for one test, on 127.0.0.1.
pub struct TestNats {
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl TestNats {
    /// Starts a server on a free port and waits until it answers.
    ///
    /// # Errors
    /// `nats-server` is not installed (the message says how to install it), or it did
    /// not start.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(&[])
    }

    /// [`Self::start`] with `args` added to the server's command line (`--user`,
    /// `--pass`, ...).
    ///
    /// # Errors
    /// As [`Self::start`].
    pub fn start_with(args: &[&str]) -> anyhow::Result<Self> {
        anyhow::ensure!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: install Debian's nats-server package \
             (scripts/install-test-deps.sh does)"
        );
        let port = crate::testing::server_port()?;
        let mut server = Self {
            port,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            child: None,
        };
        server.start_again()?;
        Ok(server)
    }

    /// The server's URL, for `cluster.nats_url`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the server (again) on its port and waits until it answers (10 s at most).
    ///
    /// # Errors
    /// It could not be started or did not answer.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "the NATS server is running already");
        let child = Command::new(BINARY)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {BINARY}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                stream.set_read_timeout(Some(Duration::from_secs(2)))?;
                let mut line = String::new();
                if BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("INFO") {
                    return Ok(());
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                anyhow::bail!("nats-server exited at start: {status}");
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "nats-server did not answer on port {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (SIGKILL: the nodes see the connection drop, as when a server's
    /// machine fails) and waits for it to end.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        self.stop();
    }
}
