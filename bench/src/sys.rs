//! The harness shared by the forklab and raw rows: CPU pinning, and children that are
//! forked pinned to a CPU and held at a start gate, so that the timed section covers
//! the operation and not the `fork`s that set it up.
//!
//! Every forked child runs its work and ends with `libc::_exit` (code 1 if the work
//! panicked): it never returns into the benchmark.

use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, pipe, read};

/// The CPUs this process could run on when the benchmark started (before any pinning).
fn start_cpus() -> &'static [usize] {
    static CPUS: OnceLock<Vec<usize>> = OnceLock::new();
    CPUS.get_or_init(|| {
        let set = sched_getaffinity(Pid::from_raw(0)).unwrap_or_else(|_| CpuSet::new());
        let cpus: Vec<usize> = (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect();
        if cpus.is_empty() { vec![0] } else { cpus }
    })
}

/// Records the starting CPU set; call before any [`pin`].
pub fn init() {
    start_cpus();
}

/// The number of CPUs the benchmark may use.
pub fn cpus() -> usize {
    start_cpus().len()
}

/// Pins the calling process to the `cpu`-th usable CPU (modulo their number).
pub fn pin(cpu: usize) {
    let cpus = start_cpus();
    let mut set = CpuSet::new();
    // Ignored on failure: an unpinned run is still a run.
    if set.set(cpus[cpu % cpus.len()]).is_ok() {
        let _ = sched_setaffinity(Pid::from_raw(0), &set);
    }
}

/// Lets the calling process run on every CPU it started with again.
pub fn unpin() {
    let mut set = CpuSet::new();
    for &cpu in start_cpus() {
        let _ = set.set(cpu);
    }
    let _ = sched_setaffinity(Pid::from_raw(0), &set);
}

/// Children forked by [`fork_gated`], waiting at the gate until [`Children::release`].
pub struct Children {
    pids: Vec<Pid>,
    gate: Option<OwnedFd>,
}

/// Forks one child per entry of `cpus`: child `i` pins itself to `cpus[i]`, waits until
/// the parent opens the gate, runs `work(i)` and `_exit`s (1 if `work` panicked).
pub fn fork_gated(cpus: &[usize], mut work: impl FnMut(usize)) -> Children {
    let (gate_r, gate_w) = pipe().expect("pipe");
    let mut pids = Vec::with_capacity(cpus.len());
    for (i, &cpu) in cpus.iter().enumerate() {
        // SAFETY: the benchmark is single-threaded; the child runs `work` and `_exit`s,
        // never returning into the caller.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                drop(std::mem::take(&mut pids));
                pin(cpu);
                let code = match catch_unwind(AssertUnwindSafe(|| {
                    // The gate: blocks until the parent closes the write end (EOF).
                    let _ = nix::unistd::close(gate_w.as_raw_fd());
                    let mut byte = [0u8; 1];
                    let _ = read(&gate_r, &mut byte);
                    work(i);
                })) {
                    Ok(()) => 0,
                    Err(_) => 1,
                };
                // SAFETY: ends the child at once; it must not return into the caller.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => pids.push(child),
        }
    }
    drop(gate_r);
    Children {
        pids,
        gate: Some(gate_w),
    }
}

impl Children {
    /// Opens the gate: every child starts its work now.
    pub fn release(&mut self) {
        self.gate = None;
    }

    /// Hands the first `n` children over to the caller, who must reap them.
    pub fn take_first(&mut self, n: usize) -> Vec<Pid> {
        self.pids.drain(..n).collect()
    }

    /// Reaps every child; an error if one did not exit with 0.
    pub fn join(mut self) -> Result<(), String> {
        self.release();
        let mut failed = 0;
        for pid in std::mem::take(&mut self.pids) {
            if !matches!(waitpid(pid, None), Ok(WaitStatus::Exited(_, 0))) {
                failed += 1;
            }
        }
        if failed == 0 {
            Ok(())
        } else {
            Err(format!("{failed} child process(es) failed"))
        }
    }
}

impl Drop for Children {
    /// Never leaves a child behind, even when a measurement bails out early.
    fn drop(&mut self) {
        self.gate = None;
        for pid in self.pids.drain(..) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

/// Forks children on `cpus`, opens the gate and times until all of them are reaped.
pub fn time_gated(cpus: &[usize], work: impl Fn(usize)) -> Result<Duration, String> {
    let mut children = fork_gated(cpus, work);
    let start = Instant::now();
    children.release();
    children.join()?;
    Ok(start.elapsed())
}

/// Gives the heap's free memory back to the kernel (`malloc_trim`), so that every
/// measurement starts from the same heap whatever the rows before it left there. Freed
/// heap pages that were kept would be shared copy-on-write with the children a row
/// forks, and the parent's first write to each would cost a page copy.
pub fn trim_heap() {
    // SAFETY: `malloc_trim` only releases free memory of glibc's allocator, which Rust's
    // global allocator uses; it is safe to call at any time in a single thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Operations per second.
pub fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Microseconds per operation.
pub fn micros_per(count: usize, elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1e6 / count as f64
}
