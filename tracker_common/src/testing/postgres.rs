//! A throwaway PostgreSQL server for a test: Debian's binaries, a fresh cluster in a
//! temporary directory, listening on a free loopback port, stopped and removed on drop.
//!
//! `initdb` refuses to run as root; when the test does (CI does), every server command
//! runs as Debian's `postgres` user through `runuser`, in a directory given to that user.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;

/// Where Debian's `postgresql-NN` packages put their binaries: `/usr/lib/postgresql/NN/bin`.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// A PostgreSQL server of its own for one test, with a database `shoal` that the user
/// `shoal` owns (no password: `trust` authentication, on 127.0.0.1 only).
pub struct TestPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
    running: bool,
}

impl TestPostgres {
    /// How long the server may take to start or stop.
    const WAIT_SECS: u32 = 30;

    /// Makes a cluster in a new temporary directory, starts it on a free port and
    /// creates the database `shoal`.
    ///
    /// # Errors
    /// PostgreSQL is not installed (the message says how to install it), or the cluster
    /// could not be made or started.
    pub fn start() -> anyhow::Result<Self> {
        static INSTANCES: AtomicUsize = AtomicUsize::new(0);
        let bin = binaries()?;
        let instance = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let dir = crate::testing::temp_dir(&format!("postgres{instance}"));
        let as_postgres = nix::unistd::geteuid().is_root();
        if as_postgres {
            let user = nix::unistd::User::from_name("postgres")
                .context("look up the user postgres")?
                .context("no user postgres (Debian's postgresql package creates it)")?;
            nix::unistd::chown(&dir, Some(user.uid), Some(user.gid))
                .with_context(|| format!("chown {} to postgres", dir.display()))?;
        }
        let port = crate::testing::server_port()?;
        let mut server = Self {
            bin,
            dir,
            port,
            as_postgres,
            running: false,
        };
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-A".as_ref(),
                "trust".as_ref(),
                "-U".as_ref(),
                "shoal".as_ref(),
                "--no-sync".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
            ],
        )?;
        server.start_again()?;
        let admin = format!("postgresql://shoal@127.0.0.1:{}/postgres", server.port);
        let mut client = ::postgres::Client::connect(&admin, ::postgres::NoTls)
            .with_context(|| format!("connect to {admin}"))?;
        client
            .batch_execute("CREATE DATABASE shoal")
            .context("create database shoal")?;
        Ok(server)
    }

    /// The URL of the database `shoal`.
    pub fn url(&self) -> String {
        format!("postgresql://shoal@127.0.0.1:{}/shoal", self.port)
    }

    /// Stops the server (`pg_ctl stop -m fast`: open connections are closed) and waits
    /// until it has.
    ///
    /// # Errors
    /// pg_ctl failed.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.pg_ctl("fast")
    }

    /// Starts the stopped server again, on the same port and data, and waits until it
    /// accepts connections.
    ///
    /// # Errors
    /// pg_ctl failed or the server did not start in time.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.display()
        );
        let data = self.data_dir();
        let log = self.dir.join("server.log");
        let wait = Self::WAIT_SECS.to_string();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                wait.as_ref(),
                "start".as_ref(),
            ],
        )
        .with_context(|| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("start postgresql; its log:\n{log}")
        })?;
        self.running = true;
        Ok(())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn pg_ctl(&mut self, mode: &str) -> anyhow::Result<()> {
        let data = self.data_dir();
        let wait = Self::WAIT_SECS.to_string();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                mode.as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                wait.as_ref(),
                "stop".as_ref(),
            ],
        )?;
        self.running = false;
        Ok(())
    }

    /// Runs the server binary `name` with `args` to its end (as `postgres` when we are
    /// root).
    fn run(&self, name: &str, args: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
        let binary = self.bin.join(name);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&binary);
            command
        } else {
            Command::new(&binary)
        };
        // The server's own working directory must be one the postgres user can enter.
        let output = command
            .args(args)
            .current_dir(&self.dir)
            .output()
            .with_context(|| format!("run {}", binary.display()))?;
        if !output.status.success() {
            anyhow::bail!(
                "{name} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg_ctl("immediate");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `bin` directory of the newest PostgreSQL under [`DEBIAN_ROOT`] that has `initdb`,
/// `pg_ctl` and `postgres`.
fn binaries() -> anyhow::Result<PathBuf> {
    let not_installed = || {
        anyhow::anyhow!(
            "PostgreSQL is not installed: run scripts/install-test-deps.sh (no {DEBIAN_ROOT}/*/bin/initdb)"
        )
    };
    let entries = std::fs::read_dir(DEBIAN_ROOT).map_err(|_| not_installed())?;
    let complete = |bin: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|name| bin.join(name).is_file())
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            complete(&bin).then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
        .ok_or_else(not_installed)
}
