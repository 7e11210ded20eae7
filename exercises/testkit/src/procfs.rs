//! Facts about processes read from `/proc`: parent, state, threads, children, open
//! file descriptors.
//!
//! Tests use these to check from outside what student code did (a child really is
//! another process, it was reaped, no thread did the work).

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

/// One field of `/proc/PID/stat` after the command name (index 0 is the state letter).
fn stat_field(pid: Pid, index: usize) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces or ')'.
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(index).map(str::to_owned)
}

/// The process state letter (`R`, `S`, `D`, `Z`, `T`, ...), or `None` if `pid` is gone
/// (exited and reaped).
pub fn state(pid: Pid) -> Option<char> {
    stat_field(pid, 0)?.chars().next()
}

/// True while `pid` exists, zombies included.
pub fn exists(pid: Pid) -> bool {
    state(pid).is_some()
}

/// True if `pid` has exited but its parent has not reaped it yet.
pub fn is_zombie(pid: Pid) -> bool {
    state(pid) == Some('Z')
}

/// The parent of `pid`, if `pid` exists.
pub fn parent(pid: Pid) -> Option<Pid> {
    stat_field(pid, 1)?.parse().ok().map(Pid::from_raw)
}

/// Number of threads of process `pid` (1 for a single-threaded process).
pub fn threads(pid: Pid) -> Option<usize> {
    Some(fs::read_dir(format!("/proc/{pid}/task")).ok()?.count())
}

/// The pids of the children of `pid` (from every thread's `children` list).
pub fn children(pid: Pid) -> Vec<Pid> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut found: Vec<Pid> = tasks
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<_>>()
        })
        .map(Pid::from_raw)
        .collect();
    found.sort_unstable_by_key(|p| p.as_raw());
    found.dedup();
    found
}

/// The children of this process that are zombies (exited, never reaped).
pub fn zombie_children() -> Vec<Pid> {
    children(nix::unistd::getpid())
        .into_iter()
        .filter(|&c| is_zombie(c))
        .collect()
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
pub fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits up to 5 s for `condition` (a fact about another process); panics with `what`
/// if it never holds.
pub fn until(what: &str, condition: impl FnMut() -> bool) {
    assert!(eventually(Duration::from_secs(5), condition), "{what}");
}

/// The calling process's open file descriptors, each with what it refers to as
/// `/proc/self/fd` shows it (`pipe:[4242]`, `/memfd:name (deleted)`, a path). The
/// descriptor used to list the directory is left out.
pub fn open_fds() -> BTreeMap<i32, String> {
    let Ok(entries) = fs::read_dir("/proc/self/fd") else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let fd = entry.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(entry.path()).ok()?;
            let target = target.to_string_lossy().into_owned();
            (!target.starts_with("/proc/")).then_some((fd, target))
        })
        .collect()
}
