//! # Exercise 1 — `procesos`: processes with `fork`, `waitpid` and signals
//!
//! Build the Rust counterpart of Python's `multiprocessing.Process` on top of `nix`.
//! Read `README.md` first (Spanish and English), then replace every `todo!()`.
//!
//! ```python
//! p = Process(target=work, name="worker")
//! p.start(); p.join(); print(p.exitcode)
//! ```
//!
//! ```no_run
//! use procesos::Process;
//! let mut p = Process::with_name("worker", || println!("hello from a child"));
//! p.start().unwrap();
//! p.join().unwrap();
//! assert_eq!(p.exitcode(), Some(0));
//! ```
//!
//! Run the visible tests with `cargo test -p procesos`.

// Delete this line once you have written the bodies: it only silences the warnings
// about the arguments and fields that the `todo!()` stubs do not use yet.
#![allow(unused_variables, dead_code)]

use std::fmt;
use std::time::Duration;

pub use nix::unistd::Pid;

/// Why a [`Process`] operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessError {
    /// `start` was called on a process that was already started.
    AlreadyStarted,
    /// `join`, `terminate` or `kill` was called before `start`.
    NotStarted,
    /// The operating system refused a call (`fork`, `waitpid`, `kill`, ...).
    Os(nix::errno::Errno),
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessError::AlreadyStarted => write!(f, "process already started"),
            ProcessError::NotStarted => write!(f, "process not started yet"),
            ProcessError::Os(errno) => write!(f, "system call failed: {errno}"),
        }
    }
}

impl std::error::Error for ProcessError {}

impl From<nix::errno::Errno> for ProcessError {
    fn from(errno: nix::errno::Errno) -> Self {
        ProcessError::Os(errno)
    }
}

/// A function run by a child process: Python's `target=`.
pub type Target = Box<dyn FnOnce() + Send + 'static>;

/// A child process running `target`, like Python's `multiprocessing.Process`.
///
/// The lifecycle is the seed's: created (`new`), started (`start`), running, ended
/// (waited for with `join`).
pub struct Process {
    name: String,
    target: Option<Target>,
    pid: Option<Pid>,
    exitcode: Option<i32>,
}

impl Process {
    /// A process that will run `target` once started, named `Process-N` where `N` counts
    /// the processes created so far by this program (1, 2, ...), as in Python.
    pub fn new(target: impl FnOnce() + Send + 'static) -> Self {
        todo!("create a process named Process-N")
    }

    /// A process with an explicit name (Python's `name=`).
    pub fn with_name(name: impl Into<String>, target: impl FnOnce() + Send + 'static) -> Self {
        todo!("create a named process")
    }

    /// The process's name.
    pub fn name(&self) -> &str {
        todo!("return the name")
    }

    /// Forks the child, which runs `target` and then ends with `_exit`:
    /// - code 0 if `target` returned;
    /// - code 1 if `target` panicked (the panic must never unwind into the caller's code
    ///   in the child: catch it, then `_exit(1)`);
    /// - the code given by `target` if it called `std::process::exit(code)`.
    ///
    /// Errors: [`ProcessError::AlreadyStarted`] on a second call.
    pub fn start(&mut self) -> Result<(), ProcessError> {
        todo!("fork; in the child run the target and _exit; in the parent remember the pid")
    }

    /// Blocks until the child has ended and reaps it (no zombie is left), then records
    /// its exit code. Joining an already joined process returns at once.
    ///
    /// Errors: [`ProcessError::NotStarted`] before `start`.
    pub fn join(&mut self) -> Result<(), ProcessError> {
        todo!("waitpid for the child")
    }

    /// Like [`join`](Self::join) but waits at most `timeout`. Returns `Ok(true)` if the
    /// child has ended (and is reaped), `Ok(false)` if it is still running.
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<bool, ProcessError> {
        todo!("wait for the child without blocking past the timeout")
    }

    /// True from `start` until the child has ended. A child that has ended is reaped
    /// here, as Python does; a process not started yet is not alive.
    pub fn is_alive(&mut self) -> bool {
        todo!("ask waitpid without blocking")
    }

    /// The child's pid once started, `None` before.
    pub fn pid(&self) -> Option<Pid> {
        todo!("return the pid")
    }

    /// Python's `exitcode`: `None` while running or not started; after the child ended
    /// and was reaped: its exit code (0 normal, 1 after a panic, `n` after `exit(n)`),
    /// or `-N` if a signal `N` killed it.
    pub fn exitcode(&self) -> Option<i32> {
        todo!("return the exit code")
    }

    /// Sends `SIGTERM` to the child (Python's `terminate`). Does not wait: `join` after.
    pub fn terminate(&mut self) -> Result<(), ProcessError> {
        todo!("send SIGTERM")
    }

    /// Sends `SIGKILL` to the child (Python's `kill`). Does not wait: `join` after.
    pub fn kill(&mut self) -> Result<(), ProcessError> {
        todo!("send SIGKILL")
    }
}
