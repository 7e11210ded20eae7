//! Running one hidden test as its own supervised process tree (the nextest model:
//! timeout, SIGTERM, grace period, SIGKILL; leftovers recorded and killed).
//!
//! The grader is a child subreaper, so a descendant of a test that loses its parent is
//! re-parented to the grader, not to init. Each test runs in a new process group, with
//! a nonce on fd 3 and a result pipe on fd 4 (see `forklab_testkit::harness`), its
//! stdout and stderr captured together with a bound, and rlimits on memory and CPU.
//! [`watch`] records every process and thread the test creates.

pub mod cgroup;
mod output;
pub mod procs;
pub mod sandbox;
pub mod watch;

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use forklab_testkit::harness::{NONCE_FD, RESULT_FD, Results, parse_results};
use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::{Pid, pipe2};
use serde::{Deserialize, Serialize};

use crate::capture::Capture;
use cgroup::PidsCgroup;
use output::OutputPump;
pub use procs::ProcessInfo;
pub use sandbox::Sandbox;
use watch::Watch;
pub use watch::{Counts, Mechanism};

/// Prepares the calling process to supervise tests: it becomes a child subreaper, and
/// SIGCHLD is blocked so the supervisor can wait for it. Call before starting threads.
pub fn prepare() -> Result<()> {
    nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")?;
    watch::block_sigchld();
    Ok(())
}

/// Limits of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunLimits {
    pub timeout: Duration,
    pub grace: Duration,
    pub output_bytes: usize,
    /// Most processes of the tree alive at once (the test's own not counted).
    pub max_processes: u32,
    /// Address space of each process, in bytes (RLIMIT_AS).
    pub memory_bytes: u64,
    /// CPU seconds of each process (RLIMIT_CPU).
    pub cpu_secs: u64,
    /// Tasks (processes and threads) the kernel allows the test's cgroup, a backstop
    /// under `max_processes`; `None` where the grader cannot create cgroups.
    pub pids_max: Option<u32>,
}

/// How the test's main process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ended {
    Exited(i32),
    Signaled(i32),
    /// Still running at the deadline; the tree was stopped. Lists what was alive then.
    TimedOut(Vec<ProcessInfo>),
    /// More processes than allowed were alive at once; the tree was killed.
    TooManyProcesses {
        peak: u32,
        /// What enforced the cap: the watch's mechanism or `cgroup pids.max`.
        stopped_by: String,
    },
    /// The grader's supervising process died (killed by this signal, or a plain exit
    /// code when negative): code under test signalled its parent.
    SupervisorDied(i32),
}

/// Everything observed about one test run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestRun {
    pub ended: Ended,
    /// What the harness reported (only lines carrying the nonce count).
    pub results: Results,
    pub output: Capture,
    pub duration: Duration,
    /// Processes of the test still alive after its main process ended (then killed).
    pub leftovers: Vec<ProcessInfo>,
    pub counts: Counts,
    pub mechanism: Mechanism,
}

/// Runs hidden test `name` of `binary` under `limits`, traced with ptrace when the
/// system allows it (`mechanism`), else watched by sampling `/proc`.
pub fn run_test(
    binary: &Path,
    name: &str,
    limits: &RunLimits,
    mechanism: Mechanism,
    sandbox: Option<&Sandbox>,
) -> Result<TestRun> {
    let nonce = new_nonce()?;
    let (nonce_read, nonce_write) = pipe2(OFlag::O_CLOEXEC)?;
    File::from(nonce_write).write_all(nonce.as_bytes())?;
    let (result_read, result_write) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let (output_read, output_write) = pipe2(OFlag::O_CLOEXEC)?;

    let mut command = Command::new(binary);
    command
        .args(["--forklab-run", name])
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::from(output_write.try_clone()?))
        .stderr(Stdio::from(output_write))
        .process_group(0);
    let fds = [
        (nonce_read.as_raw_fd(), NONCE_FD),
        (result_write.as_raw_fd(), RESULT_FD),
    ];
    // (resource, soft, hard): past the CPU soft limit the kernel sends SIGXCPU, which
    // names the cause; the hard limit one second later is SIGKILL.
    let rlimits = [
        (libc::RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
        (libc::RLIMIT_CPU, limits.cpu_secs, limits.cpu_secs + 1),
        (libc::RLIMIT_CORE, 0, 0),
    ];
    let traced = mechanism == Mechanism::Ptrace;
    let sandbox = sandbox.map(Sandbox::prepare);
    // Where cgroups are refused the supervisor's own count is the only cap.
    let cgroup = limits.pids_max.and_then(|max| PidsCgroup::create(max).ok());
    let join_fd = cgroup.as_ref().map(PidsCgroup::join_fd);
    // SAFETY: only async-signal-safe calls (write, fcntl, dup2, setrlimit, ptrace)
    // between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if let Some(fd) = join_fd {
                cgroup::join(fd)?;
            }
            if let Some(sandbox) = &sandbox {
                sandbox.enter()?;
            }
            place_fds(&fds)?;
            for (resource, soft, hard) in rlimits {
                let limit = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                if libc::setrlimit(resource, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if traced {
                nix::sys::ptrace::traceme()?;
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    drop((nonce_read, result_write, command));
    let main = Pid::from_raw(child.id() as i32);
    // The watch reaps the main process itself; the `Child` handle is not waited on.
    drop(child);
    let pump = OutputPump::start(output_read, limits.output_bytes);
    let mut watch =
        Watch::new(main, mechanism, limits.max_processes).context("starting to trace the test")?;

    let deadline = started + limits.timeout;
    let ended = loop {
        watch.step(Duration::from_millis(20));
        let refused = cgroup.as_ref().is_some_and(|c| c.refusals() > 0);
        if refused
            || watch.over_cap()
            || watch.live_descendants().len() as u32 > limits.max_processes
        {
            watch.signal_all(Signal::SIGKILL);
            kill_cgroup(cgroup.as_ref());
            break Ended::TooManyProcesses {
                peak: watch.counts().peak_processes,
                stopped_by: if refused {
                    "cgroup pids.max".to_owned()
                } else {
                    watch.mechanism().as_str().to_owned()
                },
            };
        }
        if let Some(status) = watch.main_status() {
            break ended_of(status);
        }
        if Instant::now() >= deadline {
            let alive: Vec<ProcessInfo> =
                watch.live().into_iter().filter_map(procs::info).collect();
            stop_tree(&mut watch, limits.grace);
            break Ended::TimedOut(alive);
        }
    };
    let duration = started.elapsed();

    // Whatever is left of the tree: record it, kill it, wait until it is gone.
    let leftovers: Vec<ProcessInfo> = watch
        .live_descendants()
        .into_iter()
        .filter_map(procs::info)
        .collect();
    kill_until_gone(&mut watch);
    kill_cgroup(cgroup.as_ref());
    drop(cgroup);
    let output = pump.finish();
    let results = parse_results(&read_available(&result_read), &nonce);
    Ok(TestRun {
        ended,
        results,
        output,
        duration,
        leftovers,
        counts: watch.counts(),
        mechanism: watch.mechanism(),
    })
}

/// Whether this system lets the grader trace its tests (some containers forbid ptrace).
pub fn ptrace_available() -> bool {
    let mut probe = Command::new("/bin/true");
    // SAFETY: only the ptrace call between fork and exec.
    unsafe {
        probe.pre_exec(|| nix::sys::ptrace::traceme().map_err(Into::into));
    }
    match probe.spawn() {
        Ok(child) => {
            let pid = Pid::from_raw(child.id() as i32);
            // It stops after exec; kill it and reap it.
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::__WALL));
            true
        }
        Err(_) => false,
    }
}

/// Whether this system lets the grader give tests the `sandbox` (a mount namespace
/// needs `CAP_SYS_ADMIN`).
pub fn sandbox_available(sandbox: &Sandbox) -> bool {
    let prepared = sandbox.prepare();
    let mut probe = Command::new("/bin/true");
    // SAFETY: only the syscalls of `enter` between fork and exec.
    unsafe {
        probe.pre_exec(move || prepared.enter());
    }
    probe.status().is_ok_and(|s| s.success())
}

/// Moves the given fds onto fixed numbers in the child (clearing close-on-exec).
fn place_fds(moves: &[(i32, i32); 2]) -> std::io::Result<()> {
    // First lift every source above the targets, so no dup2 overwrites a later source.
    let mut lifted = [0; 2];
    for (slot, &(from, _)) in lifted.iter_mut().zip(moves) {
        // SAFETY: fcntl on an fd we own in the child.
        *slot = unsafe { libc::fcntl(from, libc::F_DUPFD_CLOEXEC, 10) };
        if *slot < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    for (&lifted, &(_, to)) in lifted.iter().zip(moves) {
        // SAFETY: dup2 onto a fixed number; dup2 leaves close-on-exec clear.
        if unsafe { libc::dup2(lifted, to) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn new_nonce() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("getrandom: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn read_available(fd: &OwnedFd) -> String {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    while bytes.len() < 64 * 1024 {
        match nix::unistd::read(fd, &mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn ended_of(status: WaitStatus) -> Ended {
    match status {
        WaitStatus::Exited(_, code) => Ended::Exited(code),
        WaitStatus::Signaled(_, signal, _) => Ended::Signaled(signal as i32),
        _ => Ended::Exited(-1),
    }
}

/// SIGKILL to whatever the cgroup still holds (processes the watch may have missed).
fn kill_cgroup(cgroup: Option<&PidsCgroup>) {
    if let Some(cgroup) = cgroup {
        cgroup.kill_all();
    }
}

/// SIGTERM to the whole tree, `grace` to end, then SIGKILL.
fn stop_tree(watch: &mut Watch, grace: Duration) {
    watch.signal_all(Signal::SIGTERM);
    let until = Instant::now() + grace;
    while Instant::now() < until && !watch.live().is_empty() {
        watch.step(Duration::from_millis(5));
    }
    kill_until_gone(watch);
}

/// SIGKILL to every live process of the tree until none is left (bounded: a process
/// stuck in the kernel can outlive it, and is then reported).
fn kill_until_gone(watch: &mut Watch) {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        watch.step(Duration::from_millis(2));
        if watch.live().is_empty() && watch.main_status().is_some() || Instant::now() >= until {
            return;
        }
        watch.signal_all(Signal::SIGKILL);
    }
}
