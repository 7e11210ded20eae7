//! Turning what was observed of a test run into a status, evidence and a message a
//! student can act on, in process terms. Only the harness's nonce-bearing report can
//! make a pass, and a pass still fails when the process evidence contradicts the
//! exercise (threads instead of processes, children never reaped, leftovers).

use forklab_testkit::harness::{ESCAPED_CHILD_EXIT, EndState, Expect, Reported};

use crate::report::{Evidence, Status};
use crate::supervise::{Ended, Mechanism, ProcessInfo, TestRun};

/// The status of a run, why, and the evidence behind it.
pub fn judge(run: &TestRun, expect: &Expect, timeout_secs: f64) -> (Status, String, Evidence) {
    let end = match &run.results.reported {
        Some(Reported::Passed(end) | Reported::Failed(end, _)) => end.clone(),
        None => EndState::default(),
    };
    let orphans: Vec<&ProcessInfo> = run.leftovers.iter().filter(|p| p.state != 'Z').collect();
    let evidence = Evidence {
        processes: run.counts.processes,
        threads: run.counts.threads,
        peak_processes: run.counts.peak_processes,
        zombies: end.zombies.len() as u32,
        orphans: orphans.len() as u32,
        sampled: run.mechanism == Mechanism::Sampling,
        fds_left_open: end.open_fds.len() as u32,
        metrics: end.metrics.clone(),
    };
    let (status, message) = status_of(run, expect, &evidence, &end, &orphans, timeout_secs);
    (status, message, evidence)
}

fn status_of(
    run: &TestRun,
    expect: &Expect,
    evidence: &Evidence,
    end: &EndState,
    orphans: &[&ProcessInfo],
    timeout_secs: f64,
) -> (Status, String) {
    match &run.ended {
        Ended::TimedOut(alive) => {
            return (
                Status::TimedOut,
                format!(
                    "did not finish within {timeout_secs}s and was stopped (SIGTERM, then SIGKILL){}",
                    describe_alive(alive)
                ),
            );
        }
        Ended::SupervisorDied(how) => {
            return (
                Status::Failed,
                format!(
                    "the grader's supervising process died ({}) while the test ran: code under test \
                     must never signal its parent or the grader",
                    if *how > 0 {
                        format!("killed by {}", signal_name(*how))
                    } else {
                        format!("exit code {}", -how)
                    }
                ),
            );
        }
        Ended::TooManyProcesses { peak, stopped_by } => {
            return (
                Status::Failed,
                format!(
                    "{peak} processes were alive at once, more than the grader allows: a fork bomb? \
                     The whole tree was killed (cap enforced by {stopped_by})"
                ),
            );
        }
        _ => {}
    }
    if !run.results.escaped.is_empty() {
        return (
            Status::Failed,
            format!(
                "forked child process(es) {:?} returned from the code under test into the test \
                 harness instead of ending with _exit: they would have run the rest of the test \
                 a second time",
                run.results.escaped
            ),
        );
    }
    match &run.results.reported {
        None => (Status::Failed, unreported(&run.ended)),
        Some(Reported::Failed(_, message)) => (Status::Failed, message.trim().to_owned()),
        Some(Reported::Passed(_)) => match contradiction(expect, evidence, end, orphans) {
            Some(why) => (
                Status::Failed,
                format!("the test's assertions passed, but {why}"),
            ),
            None => (Status::Passed, String::new()),
        },
    }
}

/// What in the process evidence contradicts the exercise, if anything.
fn contradiction(
    expect: &Expect,
    evidence: &Evidence,
    end: &EndState,
    orphans: &[&ProcessInfo],
) -> Option<String> {
    if !end.zombies.is_empty() {
        return Some(format!(
            "{} child process(es) ended and were never reaped (zombies {:?}): wait for every child \
             (join / waitpid)",
            end.zombies.len(),
            end.zombies
        ));
    }
    if !orphans.is_empty() {
        return Some(format!(
            "{} process(es) it created were still running after it ended and had to be killed:{}",
            orphans.len(),
            list(orphans)
        ));
    }
    if !end.open_fds.is_empty() {
        const SHOWN: usize = 3;
        let mut fds = end.open_fds[..end.open_fds.len().min(SHOWN)].join(", ");
        if end.open_fds.len() > SHOWN {
            fds += &format!(" and {} more", end.open_fds.len() - SHOWN);
        }
        return Some(format!(
            "it left {} file descriptor(s) open that were opened during the test: {fds}. Close \
             (drop) every pipe end and shared-memory file once no longer used, in every process",
            end.open_fds.len(),
        ));
    }
    if let Some(max) = expect.max_threads
        && evidence.threads > max
    {
        return Some(format!(
            "it created {} thread(s) (at most {max} expected): this exercise asks for processes, \
             and threads did the work",
            evidence.threads
        ));
    }
    if let Some(min) = expect.min_processes
        && evidence.processes < min
        && !evidence.sampled
    {
        return Some(format!(
            "it created {} process(es) where at least {min} were expected: the work did not run in \
             separate processes",
            evidence.processes
        ));
    }
    if let Some(max) = expect.max_processes
        && evidence.processes > max
    {
        return Some(format!(
            "it created {} process(es) where at most {max} were expected: processes must be reused \
             (or not created at all)",
            evidence.processes
        ));
    }
    None
}

/// Why a test that never reported is a failure.
fn unreported(ended: &Ended) -> String {
    match ended {
        Ended::Exited(0) => {
            "the test process exited with status 0 before the test finished: code under \
                             test called exit() (only the test harness can report a pass)"
                .to_owned()
        }
        Ended::Exited(ESCAPED_CHILD_EXIT) => {
            "a forked child returned into the test harness instead of \
                                              ending with _exit"
                .to_owned()
        }
        Ended::Exited(code) => {
            format!("the test process exited with code {code} before the test finished")
        }
        Ended::Signaled(signal) => format!(
            "the test process was killed by signal {} before the test finished",
            signal_name(*signal)
        ),
        Ended::TimedOut(_) | Ended::TooManyProcesses { .. } | Ended::SupervisorDied(_) => {
            unreachable!("judged before")
        }
    }
}

fn describe_alive(alive: &[ProcessInfo]) -> String {
    if alive.is_empty() {
        return String::new();
    }
    let blocked_on_pipe = alive.iter().filter(|p| p.wchan.contains("pipe")).count();
    let mut text = format!("; alive then:{}", list(&alive.iter().collect::<Vec<_>>()));
    if blocked_on_pipe > 0 {
        text += &format!(
            "\n{blocked_on_pipe} blocked in a pipe operation: a write end was probably never closed, \
             or nobody reads"
        );
    }
    text
}

fn list(processes: &[&ProcessInfo]) -> String {
    processes
        .iter()
        .map(|p| {
            let state = match p.state {
                'R' => "running".to_owned(),
                'S' | 'D' if !p.wchan.is_empty() && p.wchan != "0" => {
                    format!("sleeping in {}", p.wchan)
                }
                'S' | 'D' => "sleeping".to_owned(),
                'Z' => "zombie".to_owned(),
                'T' | 't' => "stopped".to_owned(),
                other => format!("state {other}"),
            };
            format!("\n  pid {} ({}) {state}", p.pid, p.command)
        })
        .collect()
}

/// `SIGSEGV (11)`.
pub fn signal_name(signal: i32) -> String {
    match nix::sys::signal::Signal::try_from(signal) {
        Ok(s) => format!("{} ({signal})", s.as_str()),
        Err(_) => format!("{signal}"),
    }
}
