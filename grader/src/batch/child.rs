//! Grading one submission in a child `grader --submission PATH --format json` process:
//! whatever the submission does, only that child can fail. The child gets its own
//! process group (killed whole past the wall-time cap), and its peak resident memory is
//! sampled from `/proc` while it runs.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::drain;
use crate::report::Report;

/// How often the child is polled (exit, memory).
const POLL: Duration = Duration::from_millis(100);

/// A child grader's report and its own peak RSS in KiB (its children not counted).
pub struct Graded {
    pub report: Report,
    pub peak_rss_kib: u64,
}

/// Runs `grader <grader_args> --submission <checkout> --format json`.
pub fn grade(checkout: &Path, grader_args: &[String], wall_limit: Duration) -> Result<Graded> {
    let exe = std::env::current_exe().context("locating the grader executable")?;
    let mut child = Command::new(exe)
        .args(grader_args)
        .arg("--submission")
        .arg(checkout)
        .args(["--format", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .context("starting a grader for the submission")?;
    let pid = Pid::from_raw(child.id() as i32);
    let out_reader = drain::bytes(child.stdout.take().expect("piped"));
    let err_reader = drain::text(child.stderr.take().expect("piped"));

    let started = Instant::now();
    let mut peak_rss_kib = 0;
    let status = loop {
        peak_rss_kib = peak_rss_kib.max(high_water_mark_kib(pid).unwrap_or(0));
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > wall_limit {
            let _ = killpg(pid, Signal::SIGKILL);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(POLL);
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let Some(status) = status else {
        bail!(
            "grading took longer than {} s and was stopped",
            wall_limit.as_secs()
        );
    };
    if !status.success() {
        let why = stderr.lines().last().unwrap_or("no message");
        bail!("the grader failed ({status}): {why}");
    }
    let report =
        serde_json::from_slice(&stdout).context("reading the grader's report of the submission")?;
    Ok(Graded {
        report,
        peak_rss_kib,
    })
}

/// `VmHWM` of `/proc/<pid>/status`: the process's own peak resident set.
fn high_water_mark_kib(pid: Pid) -> Option<u64> {
    read_high_water_mark(&format!("/proc/{pid}/status"))
}

/// This process's own peak resident set in KiB. Read from `/proc/self/status` rather
/// than `getrusage(RUSAGE_SELF)`, whose `ru_maxrss` keeps the peak of the image before
/// `exec` (the parent's, after a `vfork`: 50 MiB under `cargo run`).
pub fn own_peak_rss_kib() -> u64 {
    read_high_water_mark("/proc/self/status").unwrap_or(0)
}

fn read_high_water_mark(status_file: &str) -> Option<u64> {
    let status = std::fs::read_to_string(status_file).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
