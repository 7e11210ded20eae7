//! Reference solution of exercise 1, `procesos`: Python's `multiprocessing.Process`
//! on `fork`, `waitpid` and signals.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};

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
pub struct Process {
    name: String,
    target: Option<Target>,
    pid: Option<Pid>,
    exitcode: Option<i32>,
}

/// How many processes this program has created, for default names.
static CREATED: AtomicUsize = AtomicUsize::new(0);

impl Process {
    /// A process named `Process-N`, `N` counting the processes created so far.
    pub fn new(target: impl FnOnce() + Send + 'static) -> Self {
        let n = CREATED.fetch_add(1, Ordering::Relaxed) + 1;
        Self::with_name(format!("Process-{n}"), target)
    }

    /// A process with an explicit name.
    pub fn with_name(name: impl Into<String>, target: impl FnOnce() + Send + 'static) -> Self {
        Self {
            name: name.into(),
            target: Some(Box::new(target)),
            pid: None,
            exitcode: None,
        }
    }

    /// The process's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Forks the child, which runs the target and always ends with `_exit`.
    pub fn start(&mut self) -> Result<(), ProcessError> {
        let target = self.target.take().ok_or(ProcessError::AlreadyStarted)?;
        // SAFETY: the child runs only the target and then `_exit`s; it never returns
        // into the caller, so no state of the parent's other threads is relied upon
        // beyond what the target itself touches.
        match unsafe { fork() }? {
            ForkResult::Parent { child } => {
                self.pid = Some(child);
                Ok(())
            }
            ForkResult::Child => {
                // A panic is caught here so it cannot unwind into the caller's code.
                let code = match catch_unwind(AssertUnwindSafe(target)) {
                    Ok(()) => 0,
                    Err(_) => 1,
                };
                // SAFETY: `_exit` ends the child at once, skipping the parent's atexit
                // handlers and buffered output that `exit` would run a second time.
                unsafe { libc::_exit(code) }
            }
        }
    }

    fn started_pid(&self) -> Result<Pid, ProcessError> {
        self.pid.ok_or(ProcessError::NotStarted)
    }

    /// Records the exit code from a wait status; returns whether the child ended.
    fn record(&mut self, status: WaitStatus) -> bool {
        self.exitcode = match status {
            WaitStatus::Exited(_, code) => Some(code),
            WaitStatus::Signaled(_, signal, _) => Some(-(signal as i32)),
            _ => return false,
        };
        true
    }

    /// Waits for the child to end and reaps it.
    pub fn join(&mut self) -> Result<(), ProcessError> {
        let pid = self.started_pid()?;
        while self.exitcode.is_none() {
            let status = waitpid(pid, None)?;
            self.record(status);
        }
        Ok(())
    }

    /// Waits at most `timeout`; `Ok(true)` once the child has ended and is reaped.
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<bool, ProcessError> {
        self.started_pid()?;
        let deadline = Instant::now() + timeout;
        // There is no waitpid with a timeout: poll without blocking, sleeping a little
        // longer each round (up to 10 ms) so a short wait stays short.
        let mut pause = Duration::from_micros(100);
        loop {
            if self.poll()? {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    /// One non-blocking `waitpid`; true if the child has ended (and is now reaped).
    fn poll(&mut self) -> Result<bool, ProcessError> {
        let pid = self.started_pid()?;
        if self.exitcode.is_some() {
            return Ok(true);
        }
        let status = waitpid(pid, Some(WaitPidFlag::WNOHANG))?;
        Ok(self.record(status))
    }

    /// True from `start` until the child has ended.
    pub fn is_alive(&mut self) -> bool {
        self.pid.is_some() && !self.poll().unwrap_or(true)
    }

    /// The child's pid once started.
    pub fn pid(&self) -> Option<Pid> {
        self.pid
    }

    /// Python's `exitcode`.
    pub fn exitcode(&self) -> Option<i32> {
        self.exitcode
    }

    fn signal(&mut self, signal: Signal) -> Result<(), ProcessError> {
        let pid = self.started_pid()?;
        // Once reaped, the pid may already belong to another process: never signal it.
        if self.exitcode.is_none() {
            kill(pid, signal)?;
        }
        Ok(())
    }

    /// Sends `SIGTERM` to the child.
    pub fn terminate(&mut self) -> Result<(), ProcessError> {
        self.signal(Signal::SIGTERM)
    }

    /// Sends `SIGKILL` to the child.
    pub fn kill(&mut self) -> Result<(), ProcessError> {
        self.signal(Signal::SIGKILL)
    }
}
