//! Turning what was observed of a test run into a status and a message a student can
//! act on, in process terms. Only the harness's nonce-bearing report can make a pass.

use forklab_testkit::harness::{ESCAPED_CHILD_EXIT, Reported};

use crate::report::Status;
use crate::supervise::{Ended, ProcessInfo, TestRun};

/// The status of a run and why.
pub fn judge(run: &TestRun, timeout_secs: f64) -> (Status, String) {
    if let Ended::TimedOut(alive) = &run.ended {
        return (
            Status::TimedOut,
            format!(
                "did not finish within {timeout_secs}s and was stopped (SIGTERM, then SIGKILL){}",
                describe_alive(alive)
            ),
        );
    }
    match &run.reported {
        Some(Reported::Passed(end)) => {
            if !end.zombies.is_empty() {
                return (
                    Status::Failed,
                    format!(
                        "the test's assertions passed, but {} child process(es) ended and were never \
                         reaped (zombies {:?}): wait for every child (join/waitpid)",
                        end.zombies.len(),
                        end.zombies
                    ),
                );
            }
            let orphans: Vec<&ProcessInfo> =
                run.leftovers.iter().filter(|p| p.state != 'Z').collect();
            if !orphans.is_empty() {
                return (
                    Status::Failed,
                    format!(
                        "the test's assertions passed, but {} process(es) it created were still running \
                         after it ended and had to be killed:{}",
                        orphans.len(),
                        list(&orphans)
                    ),
                );
            }
            (Status::Passed, String::new())
        }
        Some(Reported::Failed(_, message)) => (Status::Failed, message.trim().to_owned()),
        None => (Status::Failed, unreported(&run.ended)),
    }
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
        Ended::TimedOut(_) => unreachable!("handled before"),
    }
}

fn describe_alive(alive: &[ProcessInfo]) -> String {
    if alive.is_empty() {
        return String::new();
    }
    let blocked_on_pipe = alive.iter().filter(|p| p.wchan.contains("pipe")).count();
    let mut text = format!(
        "; besides the test process, {} process(es) were alive:",
        alive.len()
    );
    text += &list(&alive.iter().collect::<Vec<_>>());
    if blocked_on_pipe > 0 {
        text += &format!(
            "\n{blocked_on_pipe} blocked in a pipe operation: a write end was probably never closed, or nobody reads"
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
