//! Running each test's supervisor in a process of its own, so that nothing a test does
//! to its parent (SIGKILL, SIGSTOP, exhausting its fds) reaches the grading process.
//!
//! The grading process starts `grader __supervise` per test; that worker becomes the
//! test's subreaper and tracer ([`crate::supervise`]) and prints the [`TestRun`] as
//! JSON. If the worker dies instead, the test is judged from that, and whatever is left
//! of its tree (re-parented to the grading process, itself a subreaper) is killed.
//! Several workers may run at once (see [`crate::schedule`]): the live ones are known,
//! so that only true orphans are swept.

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::capture::Capture;
use crate::supervise::{self, Counts, Ended, Mechanism, RunLimits, Sandbox, TestRun};

/// What the grading process tells a supervising worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub binary: std::path::PathBuf,
    pub test: String,
    pub limits: RunLimits,
    pub mechanism: Mechanism,
    pub sandbox: Option<Sandbox>,
}

/// The hidden subcommand that runs one job in a worker.
pub const WORKER_COMMAND: &str = "__supervise";

/// The pids of the workers running now: children of the grading process that are not
/// orphans. Locked while a worker is spawned, so that a sweep never sees it unlisted.
static LIVE_WORKERS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Runs `job` in a fresh supervising worker and returns what it observed.
pub fn run_in_worker(job: &Job) -> Result<TestRun> {
    let mut live = LIVE_WORKERS.lock().expect("never poisoned");
    // The running executable itself, even if its file was replaced or deleted since it
    // started (a rebuild during a long grading run): /proc/self/exe names the inode.
    let mut worker = Command::new("/proc/self/exe")
        .arg(WORKER_COMMAND)
        .arg(serde_json::to_string(job)?)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a supervising worker")?;
    let pid = worker.id() as i32;
    live.insert(pid);
    drop(live);
    let mut json = Vec::new();
    let read = worker.stdout.take().expect("piped").read_to_end(&mut json);
    let status = worker.wait();
    {
        let mut live = LIVE_WORKERS.lock().expect("never poisoned");
        live.remove(&pid);
        sweep_orphans(&live);
    }
    read?;
    let status = status?;
    // A worker killed by its test could not remove the test's cgroup: do it here.
    crate::supervise::cgroup::remove_left_by(worker.id());
    if status.success()
        && let Ok(run) = serde_json::from_slice::<TestRun>(&json)
    {
        return Ok(run);
    }
    use std::os::unix::process::ExitStatusExt;
    let why = status.signal().unwrap_or(-status.code().unwrap_or(1));
    Ok(TestRun {
        ended: Ended::SupervisorDied(why),
        results: Default::default(),
        output: Capture::new(0),
        duration: Duration::ZERO,
        leftovers: Vec::new(),
        counts: Counts::default(),
        mechanism: job.mechanism,
    })
}

/// The worker's side: runs the job given on the command line and prints the result.
pub fn worker_main(job_json: &str) -> Result<()> {
    let job: Job = serde_json::from_str(job_json).context("reading the job")?;
    supervise::prepare()?;
    let run = supervise::run_test(
        &job.binary,
        &job.test,
        &job.limits,
        job.mechanism,
        job.sandbox.as_ref(),
    )?;
    println!("{}", serde_json::to_string(&run)?);
    Ok(())
}

/// Kills and reaps every child of this process but the `live` workers: any other child
/// is an orphan of a test whose worker died, re-parented here.
fn sweep_orphans(live: &BTreeSet<i32>) {
    for _ in 0..20 {
        let orphans: Vec<Pid> = forklab_testkit::procfs::children(Pid::this())
            .into_iter()
            .filter(|child| !live.contains(&child.as_raw()))
            .collect();
        if orphans.is_empty() {
            return;
        }
        for child in orphans {
            let _ = kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None);
        }
    }
}

/// Makes the grading process a subreaper, so orphans of a dead worker's tests come back
/// to it rather than to init.
pub fn prepare_grading_process() -> Result<()> {
    nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")
}
