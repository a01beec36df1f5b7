//! A throwaway MariaDB server for a test: Debian's binaries, a fresh data directory in a
//! temporary directory, listening on a free loopback port, killed and removed on drop.
//!
//! `mariadbd` refuses to run as root unless told to: when the test runs as root (CI
//! does), the server runs with `--user=root` in a directory of its own, rather than as
//! Debian's `mysql` user through `runuser`, so that the child process is the server
//! itself (signals reach it, and nothing is left behind when it is killed).
//!
//! The server reads no option file (`--no-defaults`, so the machine's `/etc/mysql` plays
//! no part), keeps its buffers small so that several run at once on a small machine, and
//! keeps InnoDB's durability settings (`innodb_flush_log_at_trx_commit=1`): what a
//! commit acknowledged survives a stop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Debian's server binary (package `mariadb-server`).
const MARIADBD: &str = "/usr/sbin/mariadbd";

/// Debian's data directory initialiser (package `mariadb-server`).
const INSTALL_DB: &str = "/usr/bin/mariadb-install-db";

/// Run at every start, with every privilege, before the server accepts connections: the
/// database `shoal` and its passwordless user, who may connect from 127.0.0.1 only.
const INIT_SQL: &str = "CREATE DATABASE IF NOT EXISTS shoal;
CREATE USER IF NOT EXISTS 'shoal'@'127.0.0.1';
GRANT ALL PRIVILEGES ON shoal.* TO 'shoal'@'127.0.0.1';
";

/// Options given to both `mariadb-install-db` and `mariadbd`: the log file size must be
/// the same for both, and the small buffers keep the bootstrap small too.
const SIZES: &[&str] = &[
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=8M",
    "--innodb-log-buffer-size=2M",
    "--key-buffer-size=1M",
    "--aria-pagecache-buffer-size=1M",
];

/// A MariaDB server of its own for one test, with a database `shoal` on which the user
/// `shoal` (no password, from 127.0.0.1 only) has every privilege.
pub struct TestMariaDb {
    dir: PathBuf,
    port: u16,
    as_root: bool,
    /// The running server; `None` when stopped.
    server: Option<Child>,
}

impl TestMariaDb {
    /// How long the server may take to start or stop.
    const WAIT: Duration = Duration::from_secs(30);

    /// Starts tried again on another port when the one picked was taken meanwhile.
    const PORT_TRIES: u32 = 3;

    /// Initialises a data directory in a new temporary directory, starts the server on a
    /// free port and waits until the user `shoal` can connect to the database `shoal`.
    ///
    /// # Errors
    /// MariaDB is not installed (the message says how to install it), or the data
    /// directory could not be made or the server started.
    pub fn start() -> anyhow::Result<Self> {
        static INSTANCES: AtomicUsize = AtomicUsize::new(0);
        for binary in [MARIADBD, INSTALL_DB] {
            if !Path::new(binary).is_file() {
                anyhow::bail!(
                    "MariaDB is not installed: run scripts/install-test-deps.sh \
                     (or apt-get install mariadb-server) (no {binary})"
                );
            }
        }
        let instance = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let dir = crate::testing::temp_dir(&format!("mariadb{instance}"));
        let mut server = Self {
            dir,
            port: 0,
            as_root: nix::unistd::geteuid().is_root(),
            server: None,
        };
        std::fs::write(server.init_file(), INIT_SQL).context("write the init file")?;
        server.install_db()?;
        // The port was free when picked, but is not held until the server binds it:
        // another process may take it meanwhile (an outgoing connection's local port,
        // say). That, and only that, is tried again on another port.
        let mut tries = 0;
        loop {
            server.port = crate::testing::server_port()?;
            match server.start_again() {
                Ok(()) => return Ok(server),
                Err(err)
                    if tries < Self::PORT_TRIES
                        && format!("{err:#}").contains("Address already in use") =>
                {
                    tries += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// The URL of the database `shoal`.
    pub fn url(&self) -> String {
        format!("mysql://shoal@127.0.0.1:{}/shoal", self.port)
    }

    /// Stops the server (SIGTERM: open connections are closed, InnoDB shuts down
    /// cleanly) and waits until it has exited.
    ///
    /// # Errors
    /// The server could not be signalled or did not exit in time (it is then killed).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.server.take() else {
            return Ok(());
        };
        let signalled = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .context("run kill");
        let deadline = Instant::now() + Self::WAIT;
        let exited = signalled.and_then(|status| {
            anyhow::ensure!(status.success(), "kill -TERM failed ({status})");
            loop {
                if child.try_wait().context("wait for mariadbd")?.is_some() {
                    return Ok(());
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "mariadbd did not stop within {:?}",
                    Self::WAIT
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        if exited.is_err() {
            let _ = child.kill();
            let _ = child.wait();
        }
        exited
    }

    /// Starts the stopped server again, on the same port and data, and waits until the
    /// user `shoal` can connect.
    ///
    /// # Errors
    /// The server is running already, or it could not be started or did not accept
    /// connections in time (the message holds its log).
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.server.is_none(), "mariadbd is running already");
        let mut command = Command::new(MARIADBD);
        // --no-defaults must come first.
        command.arg("--no-defaults");
        if self.as_root {
            command.arg("--user=root");
        }
        let child = command
            .arg(self.path_arg("--datadir", &self.data_dir()))
            .arg(self.path_arg("--socket", &self.dir.join("mysqld.sock")))
            .arg(self.path_arg("--pid-file", &self.dir.join("mysqld.pid")))
            .arg(self.path_arg("--log-error", &self.log_file()))
            .arg(self.path_arg("--tmpdir", &self.dir))
            .arg(self.path_arg("--init-file", &self.init_file()))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--port={}", self.port))
            .arg("--skip-name-resolve")
            .arg("--innodb-flush-log-at-trx-commit=1")
            // Threads rather than io_uring or libaio: several servers at once must not
            // depend on the kernel's limits for those.
            .arg("--innodb-use-native-aio=0")
            .arg("--max-connections=64")
            .args(SIZES)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {MARIADBD}"))?;
        self.server = Some(child);
        self.wait_ready().with_context(|| {
            format!(
                "start mariadbd; its log:\n{}",
                std::fs::read_to_string(self.log_file()).unwrap_or_default()
            )
        })
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn init_file(&self) -> PathBuf {
        self.dir.join("init.sql")
    }

    /// `--name=PATH`.
    fn path_arg(&self, name: &str, path: &Path) -> std::ffi::OsString {
        let mut arg = std::ffi::OsString::from(format!("{name}="));
        arg.push(path);
        arg
    }

    /// Makes the data directory's system tables (no network, no server left running).
    fn install_db(&self) -> anyhow::Result<()> {
        let mut command = Command::new(INSTALL_DB);
        command.arg("--no-defaults");
        if self.as_root {
            command.arg("--user=root");
        }
        let output = command
            .arg(self.path_arg("--datadir", &self.data_dir()))
            // Its own: a server starting removes every temporary table file in its
            // tmpdir, another server's too (a shared /tmp fails concurrent bootstraps).
            .arg(self.path_arg("--tmpdir", &self.dir))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .arg("--skip-name-resolve")
            .args(SIZES)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {INSTALL_DB}"))?;
        if !output.status.success() {
            anyhow::bail!(
                "mariadb-install-db failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Connects as `shoal` until that works, the server exits, or [`Self::WAIT`] passes.
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        // Short timeouts: a probe that times out is simply made again, until WAIT.
        let opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(self.port)
            .user(Some("shoal"))
            .db_name(Some("shoal"))
            .prefer_socket(false)
            .tcp_connect_timeout(Some(Duration::from_secs(1)))
            .read_timeout(Some(Duration::from_secs(2)))
            .write_timeout(Some(Duration::from_secs(2)));
        let deadline = Instant::now() + Self::WAIT;
        loop {
            // Before connecting: whatever answers on a port the server could not bind
            // is not the server.
            if let Some(child) = self.server.as_mut()
                && let Some(status) = child.try_wait().context("wait for mariadbd")?
            {
                self.server = None;
                anyhow::bail!("mariadbd exited ({status})");
            }
            let last = match mysql::Conn::new(opts.clone()) {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "mariadbd did not accept connections within {:?}: {last}",
                    Self::WAIT
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestMariaDb {
    fn drop(&mut self) {
        // Killed, not stopped: the data is thrown away, so there is nothing to flush.
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
