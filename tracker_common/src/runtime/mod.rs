//! The running tracker: start-up and thread wiring, the request workers and the channels
//! between workers, supervision, dropping root, and the command line.
//!
//! Threads are started here and nowhere else in the crate: the modules of
//! [`crate::net`], [`crate::observe`], [`crate::swarm`] and [`crate::private`] start
//! none, and their long-running loops (the metrics endpoint, the accounting writer, the
//! statistics line) run on threads that [`server`] spawns under the [`supervisor`].
//!
//! What a request means is not decided here: the request worker is generic over the
//! tracker's handler, and the rules are [`crate::swarm`]'s. Nor does anything here read
//! or write a client's bytes.
//!
//! - [`server`]: start-up and thread wiring in a few named steps, and the handle of a
//!   running tracker.
//! - [`supervisor`]: named threads; any worker that ends takes the process down; the signal
//!   thread.
//! - [`reload`]: what SIGUSR1 and the admin API's reload do, part by part.
//! - [`request_worker`]: the loop of the threads that own the shards, generic over what a
//!   protocol's requests mean.
//! - [`channel`]: channels between workers, bounded by the requests they hold.
//! - [`privileges`]: the `[privileges]` section; chroot and switching to an unprivileged
//!   user once the sockets are bound.
//! - [`cli`]: `-c` / `-p` / `-h` / `-V`, the config file and the environment, logging.

pub mod channel;
pub mod cli;
pub mod privileges;
pub mod reload;
pub mod request_worker;
pub mod server;
pub mod supervisor;
