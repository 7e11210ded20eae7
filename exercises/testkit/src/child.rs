//! Forking a helper process from a test, and waiting for it with a deadline.
//!
//! The child runs a closure and always leaves with `_exit`: it never returns into the
//! test (or the test harness), and a panic becomes exit code 101.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It called `exit`/`_exit` with this code.
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
}

/// This process's pid as a `u64`, the form tests record in [`crate::SharedSlots`].
pub fn my_pid() -> u64 {
    u64::from(std::process::id())
}

/// Forks a child that runs `body` and then `_exit`s: 0 if `body` returned, 101 if it
/// panicked. Returns the child's pid in the parent.
pub fn fork_child(body: impl FnOnce()) -> Pid {
    // SAFETY: the child only runs `body` and then `_exit`s, never returning to the
    // caller; tests keep `body` small (no locks held by other threads are taken).
    match unsafe { fork() }.expect("fork failed") {
        ForkResult::Parent { child } => child,
        ForkResult::Child => {
            let code = match catch_unwind(AssertUnwindSafe(body)) {
                Ok(()) => 0,
                Err(_) => 101,
            };
            // SAFETY: `_exit` ends the process at once; nothing else runs after it.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Waits for the child `pid` (which must be a child of this process) at most `timeout`.
/// Returns `None` if it is still running then; it is killed and reaped in that case so
/// that a failing test leaves no process behind.
pub fn wait_child(pid: Pid, timeout: Duration) -> Option<Exit> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(50);
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)).expect("waitpid failed") {
            WaitStatus::Exited(_, code) => return Some(Exit::Code(code)),
            WaitStatus::Signaled(_, signal, _) => return Some(Exit::Signal(signal as i32)),
            _ if Instant::now() >= deadline => {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
                return None;
            }
            _ => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
        }
    }
}

/// Waits for every child in `children` (each a child of this process) within one
/// overall deadline, `within` from now. Returns how each ended, in order; `None` for one
/// still running at the deadline, which is then killed and reaped.
pub fn wait_all(children: &[Pid], within: Duration) -> Vec<Option<Exit>> {
    let deadline = Instant::now() + within;
    children
        .iter()
        .map(|&child| wait_child(child, deadline.saturating_duration_since(Instant::now())))
        .collect()
}
