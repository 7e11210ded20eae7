//! Running one hidden test as its own supervised process tree.
//!
//! The grader is a child subreaper, so every descendant of a test that loses its
//! parent (double fork, `setsid`) is re-parented to the grader rather than to init and
//! stays in reach. Each test runs in a new process group with a nonce on fd 3 and a
//! result pipe on fd 4 (see `forklab_testkit::harness`), its stdout and stderr captured
//! together with a bound. On timeout: SIGTERM to the tree, a grace period, SIGKILL.
//! After the test, every process of its tree still alive is recorded and killed.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use forklab_testkit::harness::{NONCE_FD, RESULT_FD, Reported, parse_report};
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::waitpid;
use nix::unistd::{Pid, pipe2};

use crate::capture::Capture;

/// Makes this process a child subreaper: orphans of its descendants come back to it.
pub fn become_subreaper() -> Result<()> {
    nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")
}

/// Limits of one run.
#[derive(Debug, Clone)]
pub struct RunLimits {
    pub timeout: Duration,
    pub grace: Duration,
    pub output_bytes: usize,
}

/// How the test's main process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signaled(i32),
    /// Still running at the deadline; the tree was stopped. Lists what was alive then.
    TimedOut(Vec<ProcessInfo>),
}

/// A process seen in a test's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: i32,
    pub command: String,
    /// State letter from /proc (R running, S sleeping, D disk, Z zombie, T stopped).
    pub state: char,
    /// The kernel function it sleeps in (`/proc/PID/wchan`), if any.
    pub wchan: String,
}

/// Everything observed about one test run.
#[derive(Debug, Clone)]
pub struct TestRun {
    pub ended: Ended,
    /// The harness's report, if one carrying the nonce arrived.
    pub reported: Option<Reported>,
    pub output: Capture,
    pub duration: Duration,
    /// Processes of the test still alive after its main process ended (then killed).
    pub leftovers: Vec<ProcessInfo>,
}

/// Runs hidden test `name` of `binary` under `limits`.
pub fn run_test(binary: &Path, name: &str, limits: &RunLimits) -> Result<TestRun> {
    let nonce = new_nonce()?;
    let (nonce_read, nonce_write) = pipe2(OFlag::O_CLOEXEC)?;
    File::from(nonce_write).write_all(nonce.as_bytes())?;
    let (result_read, result_write) = pipe2(OFlag::O_CLOEXEC)?;
    let (output_read, output_write) = pipe2(OFlag::O_CLOEXEC)?;

    let mut command = Command::new(binary);
    command
        .args(["--forklab-run", name])
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::from(output_write.try_clone()?))
        .stderr(Stdio::from(output_write))
        .process_group(0);
    let (nonce_fd, result_fd) = (nonce_read.as_raw_fd(), result_write.as_raw_fd());
    // SAFETY: only async-signal-safe calls (fcntl, dup2, close) between fork and exec.
    unsafe {
        command.pre_exec(move || place_fds(&[(nonce_fd, NONCE_FD), (result_fd, RESULT_FD)]));
    }
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    drop((nonce_read, result_write, command));
    let main = Pid::from_raw(child.id() as i32);

    let mut output = Capture::new(limits.output_bytes);
    let mut result = Vec::new();
    let deadline = started + limits.timeout;
    let ended = loop {
        pump(
            &output_read,
            &mut output,
            &result_read,
            &mut result,
            Duration::from_millis(5),
        );
        if let Some(status) = child.try_wait()? {
            break exit_of(status);
        }
        if Instant::now() >= deadline {
            let alive = tree_of(main);
            stop_tree(main, &mut child, limits.grace, |wait| {
                pump(&output_read, &mut output, &result_read, &mut result, wait)
            });
            break Ended::TimedOut(alive);
        }
    };
    let duration = started.elapsed();

    // Whatever is left of the tree: record it, kill it, reap what comes back to us.
    let leftovers = tree_of(main);
    kill_all(main, &leftovers);
    let drain_until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < drain_until {
        if !pump(
            &output_read,
            &mut output,
            &result_read,
            &mut result,
            Duration::from_millis(5),
        ) {
            break;
        }
    }
    let reported = parse_report(&String::from_utf8_lossy(&result), &nonce);
    Ok(TestRun {
        ended,
        reported,
        output,
        duration,
        leftovers,
    })
}

/// Moves the given fds onto fixed numbers in the child (clearing close-on-exec).
fn place_fds(moves: &[(i32, i32)]) -> std::io::Result<()> {
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

/// Waits up to `wait` for output or a result, and reads what is there. Returns false
/// once the output pipe is closed by every writer.
fn pump(
    output_fd: &OwnedFd,
    output: &mut Capture,
    result_fd: &OwnedFd,
    result: &mut Vec<u8>,
    wait: Duration,
) -> bool {
    let mut fds = [
        PollFd::new(output_fd.as_fd(), PollFlags::POLLIN),
        PollFd::new(result_fd.as_fd(), PollFlags::POLLIN),
    ];
    let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
    if poll(&mut fds, timeout).unwrap_or(0) <= 0 {
        return true;
    }
    let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
    let (output_ready, result_ready) = (ready(&fds[0]), ready(&fds[1]));
    let mut open = true;
    let mut buffer = [0u8; 64 * 1024];
    if output_ready {
        match nix::unistd::read(output_fd, &mut buffer) {
            Ok(0) => open = false,
            Ok(n) => output.push(&buffer[..n]),
            Err(_) => {}
        }
    }
    if result_ready && result.len() < 64 * 1024 {
        if let Ok(n) = nix::unistd::read(result_fd, &mut buffer) {
            result.extend_from_slice(&buffer[..n]);
        }
    }
    open
}

fn exit_of(status: std::process::ExitStatus) -> Ended {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Ended::Exited(code),
        (None, Some(signal)) => Ended::Signaled(signal),
        (None, None) => Ended::Exited(-1),
    }
}

/// SIGTERM to the test's process group, `grace` to end, then SIGKILL; reaps the main
/// process. `wait_a_little` keeps reading output meanwhile.
fn stop_tree(
    main: Pid,
    child: &mut std::process::Child,
    grace: Duration,
    mut wait_a_little: impl FnMut(Duration) -> bool,
) {
    let _ = killpg(main, Signal::SIGTERM);
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        wait_a_little(Duration::from_millis(5));
    }
    let _ = killpg(main, Signal::SIGKILL);
    let _ = child.wait();
}

/// Every live process of the test's tree other than its main process: those in its
/// process group, and those re-parented to the grader (orphans that escaped the
/// group with `setsid`).
fn tree_of(main: Pid) -> Vec<ProcessInfo> {
    let me = Pid::this().as_raw();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != main.as_raw())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let close = stat.rfind(')')?;
            let command = stat[stat.find('(')? + 1..close].to_owned();
            let mut fields = stat[close + 2..].split(' ');
            let state = fields.next()?.chars().next()?;
            let ppid: i32 = fields.next()?.parse().ok()?;
            let pgrp: i32 = fields.next()?.parse().ok()?;
            let belongs = pgrp == main.as_raw() || (ppid == me && is_not_a_cargo_helper(&command));
            belongs.then(|| ProcessInfo {
                pid,
                command,
                state,
                wchan: std::fs::read_to_string(format!("/proc/{pid}/wchan"))
                    .unwrap_or_default()
                    .trim_matches(char::from(0))
                    .to_owned(),
            })
        })
        .collect()
}

/// The grader runs no other children while a test runs; this only guards against a
/// stray cargo or rustc that outlived the build.
fn is_not_a_cargo_helper(command: &str) -> bool {
    !matches!(command, "cargo" | "rustc")
}

/// Kills every listed process and the whole process group, then reaps those that are
/// (or became) the grader's children, repeating while new orphans keep arriving.
fn kill_all(main: Pid, processes: &[ProcessInfo]) {
    let _ = killpg(main, Signal::SIGKILL);
    let mut pending: Vec<ProcessInfo> = processes.to_vec();
    for _ in 0..50 {
        for p in &pending {
            let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(2));
        reap_orphans();
        pending = tree_of(main);
        if pending.is_empty() {
            break;
        }
    }
}

/// Reaps the grader's children that are zombies (orphans of tests re-parented here).
fn reap_orphans() {
    let me = Pid::this();
    for pid in forklab_testkit::procfs::children(me) {
        if forklab_testkit::procfs::is_zombie(pid) {
            let _ = waitpid(pid, None);
        }
    }
}
