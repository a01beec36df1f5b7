//! Dropping root once start-up no longer needs it: the `[privileges]` section and the
//! drop itself.
//!
//! A tracker started as root (to bind a port below 1024, or to raise its open-files
//! limit) calls [`drop_privileges`] once every socket is bound and the access list and
//! the TLS certificates have been read. It then, in this order: chroots to
//! `chroot_dir` (if set) and changes to its `/`; keeps `group` as its only
//! supplementary group; sets its group ids to `group` and its user ids to `user` (real,
//! effective and saved, so nothing is left to switch back to); and checks that root can
//! no longer be regained. Any step that fails is an error naming the key, and the
//! tracker does not start: running on as root after asking not to would be worse than
//! not running.
//!
//! The system calls go through `nix`, whose wrappers hold the crate's `unsafe`; this
//! module has none. The sequence is written against the [`Os`] trait, so that its order
//! and its errors are tested without root; the integration tests of each tracker drop
//! to `nobody` for real when they run as root.

use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::errno::Errno;
use nix::unistd::{Gid, Group, Uid, User};

use crate::config_section;

config_section! {
    /// Giving up root after start-up.
    pub struct PrivilegeConfig {
        /// Drop root once every socket is bound and the access list and the TLS
        /// certificates (if any) have been read: chroot to chroot_dir (if set), then
        /// switch to group and user for good, and check that root cannot be regained.
        /// The tracker must start as root for this; any failure stops the start.
        /// SIGUSR1 then re-reads those files as user: keep them readable by it.
        pub drop_privileges: bool,
        /// The user to run as, by name (not root). Needed when drop_privileges is on.
        pub user: String,
        /// The group to run as, by name (not root); it is also the only supplementary
        /// group kept. "" = the user's primary group.
        pub group: String,
        /// The directory to chroot to before switching user (an absolute path); "" =
        /// none. The start reads the access list and the TLS certificates from outside
        /// it, but SIGUSR1 re-reads them at their configured paths inside it: with
        /// chroot_dir = "/srv/shoal", access_list.path = "/etc/shoal/allow.txt" is
        /// reloaded from /srv/shoal/etc/shoal/allow.txt, so keep the files (or copies)
        /// there too. Relative paths are then taken from the chroot's "/".
        pub chroot_dir: PathBuf,
    }
}

impl Default for PrivilegeConfig {
    fn default() -> Self {
        Self {
            drop_privileges: false,
            user: String::new(),
            group: String::new(),
            chroot_dir: PathBuf::new(),
        }
    }
}

impl PrivilegeConfig {
    /// Checks values that cannot work (the names are looked up only when dropping).
    ///
    /// # Errors
    /// A message naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.drop_privileges {
            return Ok(());
        }
        if self.user.is_empty() {
            anyhow::bail!("privileges.user: must be set when privileges.drop_privileges is on");
        }
        if !self.chroot_dir.as_os_str().is_empty() && !self.chroot_dir.is_absolute() {
            anyhow::bail!(
                "privileges.chroot_dir: must be an absolute path (got {})",
                self.chroot_dir.display()
            );
        }
        Ok(())
    }
}

/// Who the tracker becomes: the names looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The user's name.
    pub user: String,
    /// Its id.
    pub uid: Uid,
    /// The group's name (the user's primary group's, when `group` is "").
    pub group: String,
    /// Its id.
    pub gid: Gid,
    /// The directory to chroot to, if any.
    pub chroot_dir: Option<PathBuf>,
}

impl Target {
    /// Looks up `user` and `group` in the system's databases. Done before any chroot,
    /// which would hide them.
    ///
    /// # Errors
    /// A name that does not exist or could not be looked up, naming the key; root as
    /// the user or the group.
    pub fn look_up(config: &PrivilegeConfig) -> anyhow::Result<Self> {
        let user = User::from_name(&config.user)
            .with_context(|| format!("privileges.user: look up user {:?}", config.user))?
            .with_context(|| {
                format!("privileges.user: no user {:?} on this system", config.user)
            })?;
        if user.uid.is_root() {
            anyhow::bail!(
                "privileges.user: {:?} is root (uid 0): dropping to it would keep every \
                 privilege",
                config.user
            );
        }
        let (group, gid) = if config.group.is_empty() {
            let name = Group::from_gid(user.gid)
                .with_context(|| format!("privileges.group: look up group {}", user.gid))?
                .map_or_else(|| user.gid.to_string(), |g| g.name);
            (name, user.gid)
        } else {
            let group = Group::from_name(&config.group)
                .with_context(|| format!("privileges.group: look up group {:?}", config.group))?
                .with_context(|| {
                    format!(
                        "privileges.group: no group {:?} on this system",
                        config.group
                    )
                })?;
            (group.name, group.gid)
        };
        // Group root opens root's files, and a process whose group ids are 0 could not
        // be told from one that can set them back to 0.
        if gid.as_raw() == 0 {
            anyhow::bail!(
                "privileges.group: {group:?} is the root group (gid 0): name another group{}",
                if config.group.is_empty() {
                    " (it is the primary group of the user)"
                } else {
                    ""
                }
            );
        }
        Ok(Self {
            user: user.name,
            uid: user.uid,
            group,
            gid,
            chroot_dir: (!config.chroot_dir.as_os_str().is_empty())
                .then(|| config.chroot_dir.clone()),
        })
    }
}

/// The process's user and group ids: (real, effective, saved) each, and the
/// supplementary groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ids {
    /// Real, effective and saved user ids.
    pub uids: [Uid; 3],
    /// Real, effective and saved group ids.
    pub gids: [Gid; 3],
    /// Supplementary groups.
    pub groups: Vec<Gid>,
}

/// The system calls of a privilege drop: [`System`] makes them, tests record them.
pub trait Os {
    /// chroot(2).
    ///
    /// # Errors
    /// The call's errno.
    fn chroot(&mut self, dir: &Path) -> nix::Result<()>;
    /// chdir(2).
    ///
    /// # Errors
    /// The call's errno.
    fn chdir(&mut self, dir: &Path) -> nix::Result<()>;
    /// setgroups(2).
    ///
    /// # Errors
    /// The call's errno.
    fn setgroups(&mut self, groups: &[Gid]) -> nix::Result<()>;
    /// setgid(2).
    ///
    /// # Errors
    /// The call's errno.
    fn setgid(&mut self, gid: Gid) -> nix::Result<()>;
    /// setuid(2).
    ///
    /// # Errors
    /// The call's errno.
    fn setuid(&mut self, uid: Uid) -> nix::Result<()>;
    /// getresuid(2), getresgid(2) and getgroups(2).
    ///
    /// # Errors
    /// A call's errno.
    fn ids(&mut self) -> nix::Result<Ids>;
}

/// The real system calls, for the whole process.
///
/// glibc's setuid, setgid and setgroups change the ids of every thread of the process
/// (the "setxid" broadcast: the kernel changes one thread's credentials, and glibc has
/// each other thread make the same call), not just the caller's. That is what we want:
/// threads that exist when privileges are dropped (the test harness's, a caller's of
/// `start`) lose them too. The raw system calls through `syscall(2)` would not do this.
#[derive(Clone, Copy, Debug, Default)]
pub struct System;

impl Os for System {
    fn chroot(&mut self, dir: &Path) -> nix::Result<()> {
        nix::unistd::chroot(dir)
    }

    fn chdir(&mut self, dir: &Path) -> nix::Result<()> {
        nix::unistd::chdir(dir)
    }

    fn setgroups(&mut self, groups: &[Gid]) -> nix::Result<()> {
        nix::unistd::setgroups(groups)
    }

    fn setgid(&mut self, gid: Gid) -> nix::Result<()> {
        nix::unistd::setgid(gid)
    }

    fn setuid(&mut self, uid: Uid) -> nix::Result<()> {
        nix::unistd::setuid(uid)
    }

    fn ids(&mut self) -> nix::Result<Ids> {
        let uids = nix::unistd::getresuid()?;
        let gids = nix::unistd::getresgid()?;
        Ok(Ids {
            uids: [uids.real, uids.effective, uids.saved],
            gids: [gids.real, gids.effective, gids.saved],
            groups: nix::unistd::getgroups()?,
        })
    }
}

/// What an EPERM from the first privileged call most likely means.
fn hint(errno: Errno) -> &'static str {
    if errno == Errno::EPERM {
        " (dropping privileges needs the tracker to start as root)"
    } else {
        ""
    }
}

/// Drops to `target` with `os`'s calls, in the order of the module doc, and checks the
/// result.
///
/// # Errors
/// The first step that failed, naming the key and the reason.
pub fn drop_to(os: &mut impl Os, target: &Target) -> anyhow::Result<()> {
    if let Some(dir) = &target.chroot_dir {
        os.chroot(dir).map_err(|errno| {
            anyhow::anyhow!(
                "privileges.chroot_dir: chroot to {}: {errno}{}",
                dir.display(),
                hint(errno)
            )
        })?;
        os.chdir(Path::new("/")).map_err(|errno| {
            anyhow::anyhow!(
                "privileges.chroot_dir: change to / inside {}: {errno}",
                dir.display()
            )
        })?;
    }
    let group = format!("{} (gid {})", target.group, target.gid);
    os.setgroups(&[target.gid]).map_err(|errno| {
        anyhow::anyhow!(
            "privileges.group: set supplementary groups to {group}: {errno}{}",
            hint(errno)
        )
    })?;
    os.setgid(target.gid).map_err(|errno| {
        anyhow::anyhow!(
            "privileges.group: set group id to {group}: {errno}{}",
            hint(errno)
        )
    })?;
    let user = format!("{} (uid {})", target.user, target.uid);
    os.setuid(target.uid).map_err(|errno| {
        anyhow::anyhow!(
            "privileges.user: set user id to {user}: {errno}{}",
            hint(errno)
        )
    })?;

    // The check: every id is the target's, and asking for root back is refused.
    let ids = os.ids().map_err(|errno| {
        anyhow::anyhow!("privileges.user: read the ids after dropping: {errno}")
    })?;
    if ids.uids != [target.uid; 3] || ids.gids != [target.gid; 3] || ids.groups != [target.gid] {
        anyhow::bail!(
            "privileges.user: after dropping to {user}, group {group}, the process has user \
             ids {:?}, group ids {:?} and groups {:?}",
            ids.uids,
            ids.gids,
            ids.groups
        );
    }
    if os.setuid(Uid::from_raw(0)).is_ok() || os.setgid(Gid::from_raw(0)).is_ok() {
        anyhow::bail!("privileges.user: after dropping to {user}, root could be regained");
    }
    Ok(())
}

/// Drops privileges as `config` asks (nothing when `drop_privileges` is off), for the
/// whole process, and logs what it became. Call it once every socket is bound and every
/// file the start needs has been read.
///
/// # Errors
/// A name that cannot be looked up, or a step that failed, naming the key.
pub fn drop_privileges(config: &PrivilegeConfig) -> anyhow::Result<()> {
    if !config.drop_privileges {
        return Ok(());
    }
    config.validate()?;
    let target = Target::look_up(config)?;
    drop_to(&mut System, &target)?;
    log::info!(
        "dropped privileges: running as user {} (uid {}), group {} (gid {}){}",
        target.user,
        target.uid,
        target.group,
        target.gid,
        target
            .chroot_dir
            .as_ref()
            .map_or(String::new(), |dir| format!(
                ", chrooted to {}",
                dir.display()
            ))
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the calls; fails the one named in `fail` with EPERM; `ids` returns
    /// what the calls so far would have made (or `fake_ids`, when set).
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        fail: Option<&'static str>,
        fake_ids: Option<Ids>,
        root_regainable: bool,
        uid: u32,
        gid: u32,
        groups: Vec<Gid>,
    }

    impl Recorder {
        fn call(&mut self, name: &'static str, arg: String) -> nix::Result<()> {
            self.calls.push(format!("{name}({arg})"));
            if self.fail == Some(name) {
                Err(Errno::EPERM)
            } else {
                Ok(())
            }
        }
    }

    impl Os for Recorder {
        fn chroot(&mut self, dir: &Path) -> nix::Result<()> {
            self.call("chroot", dir.display().to_string())
        }
        fn chdir(&mut self, dir: &Path) -> nix::Result<()> {
            self.call("chdir", dir.display().to_string())
        }
        fn setgroups(&mut self, groups: &[Gid]) -> nix::Result<()> {
            let raw: Vec<u32> = groups.iter().map(|g| g.as_raw()).collect();
            self.call("setgroups", format!("{raw:?}"))?;
            self.groups = groups.to_vec();
            Ok(())
        }
        fn setgid(&mut self, gid: Gid) -> nix::Result<()> {
            // Like the kernel: once the user is not root, changing the group is refused.
            if self.uid != 0 && !self.root_regainable {
                self.calls.push(format!("setgid({gid}) refused"));
                return Err(Errno::EPERM);
            }
            self.call("setgid", gid.to_string())?;
            self.gid = gid.as_raw();
            Ok(())
        }
        fn setuid(&mut self, uid: Uid) -> nix::Result<()> {
            if self.uid != 0 && !self.root_regainable {
                self.calls.push(format!("setuid({uid}) refused"));
                return Err(Errno::EPERM);
            }
            self.call("setuid", uid.to_string())?;
            self.uid = uid.as_raw();
            Ok(())
        }
        fn ids(&mut self) -> nix::Result<Ids> {
            self.calls.push("ids".to_string());
            Ok(self.fake_ids.clone().unwrap_or_else(|| Ids {
                uids: [Uid::from_raw(self.uid); 3],
                gids: [Gid::from_raw(self.gid); 3],
                groups: self.groups.clone(),
            }))
        }
    }

    fn target(chroot: Option<&str>) -> Target {
        Target {
            user: "nobody".to_string(),
            uid: Uid::from_raw(65534),
            group: "nogroup".to_string(),
            gid: Gid::from_raw(65533),
            chroot_dir: chroot.map(PathBuf::from),
        }
    }

    #[test]
    fn steps_run_in_order_and_root_is_checked_last() {
        let mut os = Recorder::default();
        drop_to(&mut os, &target(Some("/srv/shoal"))).unwrap();
        assert_eq!(
            os.calls,
            [
                "chroot(/srv/shoal)",
                "chdir(/)",
                "setgroups([65533])",
                "setgid(65533)",
                "setuid(65534)",
                "ids",
                "setuid(0) refused",
                "setgid(0) refused",
            ]
        );
        // No chroot: the same without its two steps.
        let mut os = Recorder::default();
        drop_to(&mut os, &target(None)).unwrap();
        assert_eq!(
            os.calls.first().map(String::as_str),
            Some("setgroups([65533])")
        );
    }

    #[test]
    fn a_failing_step_stops_the_drop_and_names_the_key() {
        for (step, key, done) in [
            (
                "chroot",
                "privileges.chroot_dir: chroot to /srv/shoal: EPERM",
                1,
            ),
            (
                "chdir",
                "privileges.chroot_dir: change to / inside /srv/shoal",
                2,
            ),
            (
                "setgroups",
                "privileges.group: set supplementary groups to nogroup",
                3,
            ),
            (
                "setgid",
                "privileges.group: set group id to nogroup (gid 65533)",
                4,
            ),
            (
                "setuid",
                "privileges.user: set user id to nobody (uid 65534)",
                5,
            ),
        ] {
            let mut os = Recorder {
                fail: Some(step),
                ..Recorder::default()
            };
            let msg = drop_to(&mut os, &target(Some("/srv/shoal")))
                .unwrap_err()
                .to_string();
            assert!(msg.starts_with(key), "{step}: {msg}");
            assert_eq!(os.calls.len(), done, "{step}: {:?}", os.calls);
        }
        let mut os = Recorder {
            fail: Some("setgroups"),
            ..Recorder::default()
        };
        let msg = drop_to(&mut os, &target(None)).unwrap_err().to_string();
        assert!(
            msg.ends_with("needs the tracker to start as root)"),
            "{msg}"
        );
    }

    #[test]
    fn regaining_root_or_ids_left_behind_are_errors() {
        let mut os = Recorder {
            root_regainable: true,
            ..Recorder::default()
        };
        let msg = drop_to(&mut os, &target(None)).unwrap_err().to_string();
        assert!(msg.contains("root could be regained"), "{msg}");

        // A saved user id left at root (what seteuid alone would do).
        let t = target(None);
        let mut os = Recorder {
            fake_ids: Some(Ids {
                uids: [t.uid, t.uid, Uid::from_raw(0)],
                gids: [t.gid; 3],
                groups: vec![t.gid],
            }),
            ..Recorder::default()
        };
        let msg = drop_to(&mut os, &t).unwrap_err().to_string();
        assert!(msg.starts_with("privileges.user: after dropping"), "{msg}");
        // A supplementary group left over.
        let mut os = Recorder {
            fake_ids: Some(Ids {
                uids: [t.uid; 3],
                gids: [t.gid; 3],
                groups: vec![t.gid, Gid::from_raw(0)],
            }),
            ..Recorder::default()
        };
        assert!(drop_to(&mut os, &t).is_err());
    }

    #[test]
    fn validation_names_keys() {
        let mut c = PrivilegeConfig::default();
        c.validate().unwrap();
        c.drop_privileges = true;
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.starts_with("privileges.user"), "{msg}");
        c.user = "nobody".to_string();
        c.validate().unwrap();
        c.chroot_dir = PathBuf::from("relative/dir");
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.starts_with("privileges.chroot_dir"), "{msg}");
        c.chroot_dir = PathBuf::from("/var/empty");
        c.validate().unwrap();
        // Off: nothing is checked, nothing is done.
        let off = PrivilegeConfig {
            user: String::new(),
            chroot_dir: PathBuf::from("relative"),
            ..PrivilegeConfig::default()
        };
        off.validate().unwrap();
        drop_privileges(&off).unwrap();
    }

    #[test]
    fn names_are_looked_up_and_root_is_refused() {
        let config = |user: &str, group: &str| PrivilegeConfig {
            drop_privileges: true,
            user: user.to_string(),
            group: group.to_string(),
            chroot_dir: PathBuf::new(),
        };
        let msg = Target::look_up(&config("shoal-no-such-user", ""))
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("privileges.user: no user \"shoal-no-such-user\""),
            "{msg}"
        );
        let msg = Target::look_up(&config("root", ""))
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("privileges.user: \"root\" is root"),
            "{msg}"
        );
        // Some user other than root, whose primary group is known: uid 1 (daemon on
        // Debian, bin on Alpine and Red Hat) exists on every common Linux system.
        let Some(daemon) = User::from_uid(Uid::from_raw(1)).unwrap() else {
            panic!("no user with uid 1 on this system");
        };
        let t = Target::look_up(&config(&daemon.name, "")).unwrap();
        assert_eq!((t.uid, t.gid), (daemon.uid, daemon.gid), "primary group");
        assert_eq!(t.chroot_dir, None);
        let Some(group) = Group::from_gid(daemon.gid).unwrap() else {
            panic!("no group with gid {}", daemon.gid);
        };
        let t = Target::look_up(&config(&daemon.name, &group.name)).unwrap();
        assert_eq!((t.group, t.gid), (group.name, group.gid));
        let msg = Target::look_up(&config(&daemon.name, "root"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("privileges.group: \"root\" is the root group"),
            "{msg}"
        );
        let msg = Target::look_up(&config(&daemon.name, "shoal-no-such-group"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("privileges.group: no group \"shoal-no-such-group\""),
            "{msg}"
        );
    }
}
