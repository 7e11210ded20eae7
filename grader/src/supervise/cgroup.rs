//! A cgroup `pids.max` backstop under the supervisor's own process cap.
//!
//! The supervisor counts a test's processes itself (ptrace or `/proc` sampling) and
//! kills the tree past the cap, which holds for root, unlike `RLIMIT_NPROC`. Where the
//! machine lets the grader create a cgroup with the `pids` controller (cgroup v1
//! `pids` hierarchy, or v2 with `pids` delegated), each test also runs in a cgroup of
//! its own whose `pids.max` the kernel enforces: `fork` fails with `EAGAIN` past it,
//! however fast the tree forks and whatever the tracer misses. The cgroup is made
//! under the supervisor's own, so an outer limit (a container's) still applies.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A cgroup holding one test's processes, removed (after killing what is left in it)
/// when dropped.
#[derive(Debug)]
pub struct PidsCgroup {
    dir: PathBuf,
    /// `cgroup.procs`, opened before the fork so the child joins with one `write`.
    procs: OwnedFd,
}

impl PidsCgroup {
    /// Creates a cgroup limited to `max` tasks (processes and threads) under the
    /// calling process's own `pids` cgroup. Fails where cgroups are not writable.
    pub fn create(max: u32) -> Result<Self> {
        static SEQUENCE: AtomicU32 = AtomicU32::new(0);
        let parent = own_pids_cgroup().context("no writable pids cgroup")?;
        let dir = parent.join(format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let cgroup = Self {
            procs: open_write(&dir.join("cgroup.procs"))?,
            dir,
        };
        fs::write(cgroup.dir.join("pids.max"), max.to_string())
            .context("setting pids.max (is the pids controller enabled?)")?;
        Ok(cgroup)
    }

    /// Whether this machine lets the grader create such cgroups.
    pub fn available() -> bool {
        Self::create(1).is_ok()
    }

    /// The fd a forked child writes `0` to, between fork and exec, to join the cgroup.
    pub fn join_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// How many times a fork or clone was refused because `pids.max` was reached.
    pub fn refusals(&self) -> u64 {
        fs::read_to_string(self.dir.join("pids.events"))
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|line| line.strip_prefix("max ")?.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Processes in the cgroup now.
    pub fn members(&self) -> Vec<Pid> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .map(Pid::from_raw)
            .collect()
    }

    /// Sends SIGKILL to every process in the cgroup.
    pub fn kill_all(&self) {
        for pid in self.members() {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
}

/// The prefix of every test cgroup's name: `forklab-<supervisor pid>-<sequence>`.
const PREFIX: &str = "forklab-";

/// Test cgroups still present beside the calling process's own cgroup: made by a
/// supervisor that died before removing its own (the test killed it).
pub fn leftovers() -> Vec<PathBuf> {
    let Some(parent) = own_pids_cgroup() else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(&parent) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| is_test_cgroup_name(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect()
}

/// Whether `name` has the exact shape of a test cgroup's name, so that a cgroup
/// someone else made beside ours (e.g. `forklab-safety`) is never taken for one.
fn is_test_cgroup_name(name: &str) -> bool {
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    name.strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(pid, sequence)| number(pid) && number(sequence))
}

/// Removes the test cgroups a dead supervisor (`pid`) left, after killing anything
/// still in them. Called by the grading process once a worker has ended.
pub fn remove_left_by(pid: u32) {
    let mine = format!("{PREFIX}{pid}-");
    for dir in leftovers() {
        if dir
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with(&mine))
        {
            remove(&dir);
        }
    }
}

/// Kills what `dir` (a cgroup) holds and removes it, trying for at most 5 s.
fn remove(dir: &Path) {
    let until = Instant::now() + Duration::from_secs(5);
    while fs::remove_dir(dir).is_err() && Instant::now() < until {
        let members = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in members.lines().filter_map(|line| line.trim().parse().ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Joins the cgroup whose `cgroup.procs` is open as `fd`. Async-signal-safe: for use
/// between fork and exec.
pub fn join(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: write(2) of a static buffer to an fd the parent opened for us.
    if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } == 1 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // A cgroup can only be removed once empty; its members are the test's leftovers
        // that the watch has already killed, or is about to reap.
        remove(&self.dir);
    }
}

/// The directory of the calling process's `pids` cgroup: the v1 `pids` hierarchy if
/// mounted, else the v2 unified one when it offers the `pids` controller.
fn own_pids_cgroup() -> Option<PathBuf> {
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    let v1 = own.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        controllers
            .split(',')
            .any(|c| c == "pids")
            .then(|| Path::new("/sys/fs/cgroup/pids").join(path.trim_start_matches('/')))
    });
    if let Some(dir) = v1.filter(|dir| dir.is_dir()) {
        return Some(dir);
    }
    let v2 = own.lines().find_map(|line| line.strip_prefix("0::"))?;
    let dir = Path::new("/sys/fs/cgroup").join(v2.trim_start_matches('/'));
    let offered = fs::read_to_string(dir.join("cgroup.subtree_control")).ok()?;
    offered
        .split_whitespace()
        .any(|c| c == "pids")
        .then_some(dir)
}

fn open_write(path: &Path) -> Result<OwnedFd> {
    match fs::OpenOptions::new().write(true).open(path) {
        Ok(file) => Ok(file.into()),
        Err(error) => bail!("opening {}: {error}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::is_test_cgroup_name;

    #[test]
    fn only_names_the_grader_makes_are_test_cgroups() {
        assert!(is_test_cgroup_name("forklab-1234-0"));
        assert!(is_test_cgroup_name("forklab-7-12"));
        for other in [
            "forklab-safety",
            "forklab-",
            "forklab-12",
            "forklab-12-",
            "forklab--3",
            "forklab-12-3-x",
            "forklab-12-x",
            "other-12-3",
        ] {
            assert!(!is_test_cgroup_name(other), "{other}");
        }
    }
}
