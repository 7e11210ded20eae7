//! Watching a test's process tree, by one of two mechanisms:
//! - **ptrace** (preferred): the test process is traced from `exec` on with fork, vfork,
//!   clone and exec events (event stops only, no syscall tracing). Every process and
//!   thread the test creates is seen at birth, stopped until the supervisor lets it run,
//!   and seen again at exit. New descendants are traced automatically, so `setsid` or a
//!   double fork cannot escape, and `PTRACE_O_EXITKILL` kills the tree if the grader dies.
//! - **sampling** (where ptrace is refused, e.g. some containers): `/proc` is scanned
//!   every few milliseconds for processes in the test's process group or whose parent is
//!   known. Short-lived processes can be missed: the evidence is then a lower bound and
//!   says so.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::ptrace::{self, Event, Options};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::procs;

/// How the tree is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mechanism {
    Ptrace,
    Sampling,
}

impl Mechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Ptrace => "ptrace",
            Mechanism::Sampling => "proc sampling",
        }
    }
}

/// What was counted of a test's tree (the test's own process not included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub processes: u32,
    pub threads: u32,
    pub peak_processes: u32,
}

/// The record of one test's tree.
pub struct Watch {
    mechanism: Mechanism,
    main: Pid,
    main_status: Option<WaitStatus>,
    /// Live processes of the tree (thread-group ids), main included while it runs.
    live: HashSet<i32>,
    /// Every process ever seen, and every thread (tid → its process).
    seen_processes: HashSet<i32>,
    seen_threads: HashMap<i32, i32>,
    /// Traced tasks whose first stop (the SIGSTOP of a new tracee) is still to come.
    started: HashSet<i32>,
    peak: u32,
    /// Most live processes allowed (the main one not counted); past it the whole tree is
    /// killed at once, from inside the event loop, before any new process runs.
    cap: u32,
    over_cap: bool,
}

impl Watch {
    /// Starts watching `main`. With ptrace, `main` must have called `PTRACE_TRACEME`
    /// before `exec`: this waits for its post-exec stop and sets the options.
    pub fn new(main: Pid, mechanism: Mechanism, cap: u32) -> nix::Result<Self> {
        if mechanism == Mechanism::Ptrace {
            loop {
                match waitpid(main, Some(WaitPidFlag::__WALL))? {
                    WaitStatus::Stopped(_, Signal::SIGTRAP) => break,
                    WaitStatus::Stopped(_, signal) => ptrace::cont(main, signal)?,
                    other => return Err(unexpected(other)),
                }
            }
            ptrace::setoptions(
                main,
                Options::PTRACE_O_TRACEFORK
                    | Options::PTRACE_O_TRACEVFORK
                    | Options::PTRACE_O_TRACECLONE
                    | Options::PTRACE_O_TRACEEXEC
                    | Options::PTRACE_O_EXITKILL,
            )?;
            ptrace::cont(main, None)?;
        }
        Ok(Self {
            mechanism,
            main,
            main_status: None,
            live: HashSet::from([main.as_raw()]),
            seen_processes: HashSet::new(),
            seen_threads: HashMap::new(),
            started: HashSet::from([main.as_raw()]),
            peak: 0,
            cap,
            over_cap: false,
        })
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The main process's status once it has ended.
    pub fn main_status(&self) -> Option<WaitStatus> {
        self.main_status
    }

    /// Handles what happened since the last call, waiting at most `wait` for something.
    pub fn step(&mut self, wait: Duration) {
        if !self.handle_events() {
            wait_for_sigchld(wait);
            self.handle_events();
        }
        if self.mechanism == Mechanism::Sampling {
            self.sample();
        }
    }

    /// Live processes of the tree other than the main one.
    pub fn live_descendants(&self) -> Vec<i32> {
        let mut live: Vec<i32> = self
            .live
            .iter()
            .copied()
            .filter(|&p| p != self.main.as_raw())
            .collect();
        live.sort_unstable();
        live
    }

    /// Every live process of the tree, main included.
    pub fn live(&self) -> Vec<i32> {
        let mut live: Vec<i32> = self.live.iter().copied().collect();
        live.sort_unstable();
        live
    }

    pub fn counts(&self) -> Counts {
        Counts {
            processes: self.seen_processes.len() as u32,
            threads: self.seen_threads.len() as u32,
            peak_processes: self.peak,
        }
    }

    /// Sends `signal` to every live process of the tree.
    pub fn signal_all(&self, signal: Signal) {
        let _ = nix::sys::signal::killpg(self.main, signal);
        for &pid in &self.live {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// True once more than `cap` processes were alive at once.
    pub fn over_cap(&self) -> bool {
        self.over_cap
    }

    /// Reaps and handles pending wait statuses (a bounded batch, so that a tree that
    /// keeps creating processes cannot keep the supervisor from checking its limits);
    /// returns whether there was any.
    fn handle_events(&mut self) -> bool {
        let mut any = false;
        for _ in 0..512 {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return any,
                Ok(status) => status,
            };
            any = true;
            match status {
                WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _) => {
                    self.ended(pid.as_raw());
                    if pid == self.main {
                        self.main_status = Some(status);
                    }
                }
                WaitStatus::PtraceEvent(pid, _, event) => self.on_event(pid, event),
                WaitStatus::Stopped(pid, signal) => self.on_stop(pid, signal),
                _ => {}
            }
        }
        any
    }

    fn on_event(&mut self, pid: Pid, event: i32) {
        let created = [
            Event::PTRACE_EVENT_FORK,
            Event::PTRACE_EVENT_VFORK,
            Event::PTRACE_EVENT_CLONE,
        ]
        .iter()
        .any(|&e| e as i32 == event);
        if created && let Ok(new) = ptrace::getevent(pid) {
            self.classify(new as i32);
        }
        if self.over_cap {
            let _ = kill(pid, Signal::SIGKILL);
            return;
        }
        let _ = ptrace::cont(pid, None);
    }

    fn on_stop(&mut self, pid: Pid, signal: Signal) {
        let raw = pid.as_raw();
        // A new tracee's first stop is the SIGSTOP that ptrace gave it: swallow it.
        if signal == Signal::SIGSTOP && self.started.insert(raw) {
            // It may stop before its parent's fork event arrives: classify it now.
            self.classify(raw);
            if self.over_cap {
                let _ = kill(pid, Signal::SIGKILL);
                return;
            }
            let _ = ptrace::cont(pid, None);
            return;
        }
        // Otherwise a signal is being delivered: pass it on.
        let _ = ptrace::cont(pid, signal);
    }

    /// Records a new task as a process or as a thread of its process.
    fn classify(&mut self, tid: i32) {
        match procs::tgid(tid) {
            Some(tgid) if tgid != tid => {
                self.seen_threads.insert(tid, tgid);
            }
            _ => self.born(tid),
        }
    }

    fn born(&mut self, pid: i32) {
        if pid == self.main.as_raw() {
            return;
        }
        self.seen_processes.insert(pid);
        self.live.insert(pid);
        let descendants = self.live.len() as u32 - u32::from(self.main_status.is_none());
        self.peak = self.peak.max(descendants);
        if descendants > self.cap && !self.over_cap {
            self.over_cap = true;
            self.signal_all(Signal::SIGKILL);
        }
    }

    fn ended(&mut self, tid: i32) {
        if self.seen_threads.contains_key(&tid) {
            return;
        }
        self.live.remove(&tid);
    }

    /// Sampling: adds the processes and threads of the tree that exist right now.
    fn sample(&mut self) {
        let me = Pid::this().as_raw();
        for pid in procs::all_pids() {
            let Some(stat) = procs::stat(pid) else {
                continue;
            };
            let in_tree = pid == self.main.as_raw()
                || stat.pgrp == self.main.as_raw()
                || self.seen_processes.contains(&stat.ppid)
                || stat.ppid == self.main.as_raw()
                || stat.ppid == me;
            if !in_tree || stat.state == 'Z' && !self.live.contains(&pid) {
                continue;
            }
            if pid != self.main.as_raw() && !self.seen_processes.contains(&pid) {
                self.born(pid);
            }
            for tid in procs::threads_of(pid) {
                if tid != pid {
                    self.seen_threads.insert(tid, pid);
                }
            }
        }
        self.live
            .retain(|&pid| procs::stat(pid).is_some_and(|s| s.state != 'Z'));
        if self.main_status.is_none() {
            self.live.insert(self.main.as_raw());
        }
    }
}

fn unexpected(status: WaitStatus) -> Errno {
    eprintln!("grader: unexpected status of a traced test before it ran: {status:?}");
    Errno::ECHILD
}

/// Blocks SIGCHLD in the calling thread (so it can be waited for with `sigtimedwait`).
/// Call before the grader starts other threads: they inherit the mask. Child processes
/// do not: `std::process::Command` resets the mask before `exec`.
pub fn block_sigchld() {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(Signal::SIGCHLD);
    let _ = set.thread_block();
}

fn wait_for_sigchld(wait: Duration) {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(Signal::SIGCHLD);
    let timeout = libc::timespec {
        tv_sec: wait.as_secs() as libc::time_t,
        tv_nsec: wait.subsec_nanos() as libc::c_long,
    };
    // SAFETY: valid pointers to a signal set and a timespec; no siginfo wanted.
    unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &timeout) };
}
