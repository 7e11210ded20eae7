//! Reading processes from `/proc`: identity, state and what a sleeping process waits on.

use std::fs;

/// A process as seen in `/proc`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessInfo {
    pub pid: i32,
    pub command: String,
    /// State letter (R running, S sleeping, D disk, Z zombie, T/t stopped).
    pub state: char,
    /// The kernel function it sleeps in (`/proc/PID/wchan`), if any.
    pub wchan: String,
}

/// The fields of `/proc/PID/stat` the supervisor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
}

fn stat_text(pid: i32) -> Option<(String, String)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    Some((
        stat[open + 1..close].to_owned(),
        stat.get(close + 2..)?.to_owned(),
    ))
}

/// `state`, `ppid` and `pgrp` of `pid`, if it exists.
pub fn stat(pid: i32) -> Option<Stat> {
    let (_, rest) = stat_text(pid)?;
    let mut fields = rest.split(' ');
    Some(Stat {
        state: fields.next()?.chars().next()?,
        ppid: fields.next()?.parse().ok()?,
        pgrp: fields.next()?.parse().ok()?,
    })
}

/// What `/proc` says of `pid` now, if it exists.
pub fn info(pid: i32) -> Option<ProcessInfo> {
    let (command, rest) = stat_text(pid)?;
    let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    Some(ProcessInfo {
        pid,
        command,
        state: rest.chars().next()?,
        wchan: wchan.trim_matches(char::from(0)).trim().to_owned(),
    })
}

/// Every pid in `/proc`.
pub fn all_pids() -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The thread ids of process `pid` (its own id included).
pub fn threads_of(pid: i32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The process (thread group) that task `tid` belongs to: `tid` itself for a process.
pub fn tgid(tid: i32) -> Option<i32> {
    let status = fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}
