//! The harness of the hidden tests (`harness = false` test targets under `grader/`).
//!
//! A hidden test binary's `main` calls [`run`] with its tests. It has three modes:
//! - `--forklab-list`: prints the tests and their process expectations as JSON, for the
//!   grader to plan the run.
//! - `--forklab-run NAME`: runs one test for the grader. The grader passes a nonce on
//!   fd [`NONCE_FD`] (read and closed before the test body runs) and a pipe on fd
//!   [`RESULT_FD`]. Only after the body has returned, in the process that started it,
//!   does the harness write the nonce back, with the outcome and the [`EndState`] it
//!   sees (a forked child that returns into the harness reports itself instead): printing "test ... ok" or calling
//!   `exit(0)` from student code can never produce a pass.
//! - anything else: a libtest-compatible run (via `libtest-mimic`), so `cargo test` on
//!   a staged crate works as usual for instructors.

use std::any::Any;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The fd on which the grader passes the nonce.
pub const NONCE_FD: i32 = 3;
/// The fd on which the harness reports the outcome.
pub const RESULT_FD: i32 = 4;
/// First word of the line that reports a test's outcome: `forklab-result NONCE JSON`.
pub const RESULT: &str = "forklab-result";
/// First word of the line written by a forked child that returned into the harness:
/// `forklab-escaped NONCE PID`.
pub const ESCAPED: &str = "forklab-escaped";
/// Exit code of a forked child that returned into the harness instead of `_exit`ing.
pub const ESCAPED_CHILD_EXIT: i32 = 86;

/// What the grader checks from outside the test, from its record of the test's
/// processes. Every test also expects no zombie and no orphan at its end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expect {
    /// At least this many processes created by the test (its own not counted).
    pub min_processes: Option<u32>,
    /// At most this many processes created by the test (its own not counted).
    pub max_processes: Option<u32>,
    /// At most this many threads created by the test, in any of its processes.
    pub max_threads: Option<u32>,
}

/// One hidden test: a name, a body that panics to fail, and expectations.
#[derive(Debug, Clone)]
pub struct Test {
    pub name: &'static str,
    pub body: fn(),
    pub expect: Expect,
}

/// What the harness sees of its own process once the test body has returned: children
/// left unreaped (zombies) or still running, and threads still running.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndState {
    pub zombies: Vec<i32>,
    pub live_children: Vec<i32>,
    pub threads: usize,
    /// Measurements the test recorded with [`record_metric`].
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// File descriptors opened while the test ran and still open at its end, e.g.
    /// `fd 7 → pipe:[4242]`: an end of a pipe or a shared-memory file never closed.
    #[serde(default)]
    pub open_fds: Vec<String>,
}

impl EndState {
    /// What is left at the end of a test, given the descriptors open before it.
    fn observe(fds_before: &BTreeMap<i32, String>) -> Self {
        let me = nix::unistd::Pid::this();
        let (zombies, live): (Vec<_>, Vec<_>) = crate::procfs::children(me)
            .into_iter()
            .partition(|&c| crate::procfs::is_zombie(c));
        Self {
            zombies: zombies.iter().map(|p| p.as_raw()).collect(),
            live_children: live.iter().map(|p| p.as_raw()).collect(),
            threads: crate::procfs::threads(me).unwrap_or(0),
            metrics: METRICS.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            open_fds: crate::procfs::open_fds()
                .into_iter()
                .filter(|(fd, target)| fds_before.get(fd) != Some(target))
                .map(|(fd, target)| format!("fd {fd} → {target}"))
                .collect(),
        }
    }
}

/// A test as `--forklab-list` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    pub name: String,
    pub expect: Expect,
}

impl Test {
    /// A test with no expectation beyond "no zombie, no orphan".
    pub fn new(name: &'static str, body: fn()) -> Self {
        Self {
            name,
            body,
            expect: Expect::default(),
        }
    }

    /// The test must create at least `n` processes.
    pub fn min_processes(mut self, n: u32) -> Self {
        self.expect.min_processes = Some(n);
        self
    }

    /// The test must create exactly `n` processes.
    pub fn exact_processes(mut self, n: u32) -> Self {
        self.expect.min_processes = Some(n);
        self.expect.max_processes = Some(n);
        self
    }

    /// The test must create at most `n` processes.
    pub fn max_processes(mut self, n: u32) -> Self {
        self.expect.max_processes = Some(n);
        self
    }

    /// The test must create no thread: the work is done by processes.
    pub fn no_threads(mut self) -> Self {
        self.expect.max_threads = Some(0);
        self
    }
}

/// Runs the hidden tests in the mode chosen by the command line; never returns.
pub fn run(tests: &[Test]) -> ! {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--forklab-list") => {
            let listed: Vec<Listed> = tests
                .iter()
                .map(|t| Listed {
                    name: t.name.to_owned(),
                    expect: t.expect.clone(),
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string(&listed).expect("serialise test list")
            );
            std::process::exit(0)
        }
        Some("--forklab-run") => {
            let name = args.get(1).expect("--forklab-run needs a test name");
            let test = tests
                .iter()
                .find(|t| t.name == name)
                .unwrap_or_else(|| panic!("no hidden test named {name}"));
            run_for_grader(test)
        }
        _ => run_with_libtest(tests),
    }
}

static PANIC_MESSAGE: Mutex<Option<String>> = Mutex::new(None);
static METRICS: Mutex<BTreeMap<String, f64>> = Mutex::new(BTreeMap::new());

/// Records a measurement (e.g. `overlap_ms`) that the grader shows with the test's
/// process evidence.
pub fn record_metric(name: &str, value: f64) {
    METRICS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_owned(), value);
}

fn run_for_grader(test: &Test) -> ! {
    // SAFETY: the grader opened fds 3 and 4 for us; each is owned by exactly one File.
    let (mut nonce_pipe, mut result_pipe) =
        unsafe { (File::from_raw_fd(NONCE_FD), File::from_raw_fd(RESULT_FD)) };
    let mut nonce = String::new();
    nonce_pipe
        .read_to_string(&mut nonce)
        .expect("read the grader's nonce");
    drop(nonce_pipe);

    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        *PANIC_MESSAGE.lock().unwrap_or_else(|e| e.into_inner()) = Some(info.to_string());
        default_hook(info);
    }));

    let nonce = nonce.trim().to_owned();
    let escape_nonce = nonce.clone();
    let fds_before = crate::procfs::open_fds();
    let outcome = run_guarded(test.body, move |pid| {
        let line = format!("{ESCAPED} {escape_nonce} {pid}\n");
        // SAFETY: writes a buffer we own to the result fd inherited from the harness.
        unsafe { libc::write(RESULT_FD, line.as_ptr().cast(), line.len()) };
    });
    let record = Record {
        passed: outcome.is_ok(),
        end: EndState::observe(&fds_before),
        message: outcome.err().unwrap_or_default(),
    };
    let json = serde_json::to_string(&record).expect("serialise the result");
    let line = format!("{RESULT} {nonce} {json}\n");
    // Best effort: if student code closed or stole the fd, the grader reports that.
    let _ = result_pipe.write_all(line.as_bytes());
    drop(result_pipe);
    std::process::exit(0)
}

/// Runs `body`, then makes sure the process that returns is the one that started it:
/// a forked child that returned from student code (instead of `_exit`ing) would
/// otherwise go on to run the rest of the test a second time. Such a child is told
/// to `escaped` (with its pid) and ends at once.
fn run_guarded(body: fn(), escaped: impl Fn(u32)) -> Result<(), String> {
    let started_in = std::process::id();
    let outcome = catch_unwind(AssertUnwindSafe(body));
    if std::process::id() != started_in {
        escaped(std::process::id());
        eprintln!(
            "forklab: process {} was forked during the test and returned into the test \
             harness instead of ending with _exit: a child must never return to its caller",
            std::process::id()
        );
        // SAFETY: ends this stray child at once, without running any more harness code.
        unsafe { libc::_exit(ESCAPED_CHILD_EXIT) }
    }
    outcome.map_err(|payload| {
        PANIC_MESSAGE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| payload_text(payload.as_ref()))
    })
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "the test panicked".to_owned()
    }
}

fn run_with_libtest(tests: &[Test]) -> ! {
    let mut args = libtest_mimic::Arguments::from_args();
    // On the main thread, one at a time, as under the grader: forking is safer then.
    args.test_threads = Some(1);
    let trials = tests
        .iter()
        .map(|t| {
            let body = t.body;
            libtest_mimic::Trial::test(t.name, move || {
                run_guarded(body, |_| {}).map_err(Into::into)
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

/// The JSON part of a result line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    passed: bool,
    end: EndState,
    message: String,
}

/// A test's outcome as the harness reported it to the grader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reported {
    Passed(EndState),
    Failed(EndState, String),
}

/// What the grader read on [`RESULT_FD`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// The outcome, if a result line carrying the nonce arrived (anything else was not
    /// written by the harness).
    pub reported: Option<Reported>,
    /// Pids of forked children that returned into the harness.
    pub escaped: Vec<i32>,
}

/// Reads the lines the harness wrote on [`RESULT_FD`], keeping those with `nonce`.
pub fn parse_results(text: &str, nonce: &str) -> Results {
    let mut results = Results::default();
    for line in text.lines() {
        let mut words = line.splitn(3, ' ');
        let (Some(kind), Some(got), Some(rest)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        if got != nonce {
            continue;
        }
        match kind {
            RESULT => {
                if let Ok(record) = serde_json::from_str::<Record>(rest) {
                    results.reported = Some(if record.passed {
                        Reported::Passed(record.end)
                    } else {
                        Reported::Failed(record.end, record.message)
                    });
                }
            }
            ESCAPED => results.escaped.extend(rest.trim().parse::<i32>().ok()),
            _ => {}
        }
    }
    results
}
