//! The grading report: a stable data model (serialised as the `--format json`
//! contract) and its renderings.

pub mod gradescope;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod table;

use serde::{Deserialize, Serialize};

use crate::course::{RubricEntry, TestKind};

/// The outcome of one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    Failed,
    TimedOut,
    NotRun,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::TimedOut => "timed_out",
            Status::NotRun => "not_run",
        }
    }
}

/// What the supervisor saw of a test's process tree (the test's own process not
/// counted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Processes the test created (descendants included).
    pub processes: u32,
    /// Threads the test created, in any of its processes.
    pub threads: u32,
    /// Most of those processes alive at once.
    pub peak_processes: u32,
    /// Children that ended but were never reaped, when the test body returned.
    pub zombies: u32,
    /// Processes still running after the test ended (killed by the grader).
    pub orphans: u32,
    /// True when the tree was watched by sampling `/proc` (ptrace refused): counts are
    /// then lower bounds.
    pub sampled: bool,
    /// File descriptors the test's process opened and had not closed at its end (pipe
    /// ends, memfds): a leak.
    #[serde(default)]
    pub fds_left_open: u32,
    /// Measurements the test reported (e.g. `overlap_ms`, the time busy intervals of
    /// different processes overlapped).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metrics: std::collections::BTreeMap<String, f64>,
}

impl Evidence {
    /// `5 procs · 0 threads · peak 5 · reaped`.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{} procs · {} threads · peak {}",
            self.processes, self.threads, self.peak_processes
        );
        text += &match (self.zombies, self.orphans) {
            (0, 0) => " · reaped".to_owned(),
            (z, 0) => format!(" · {z} zombies"),
            (0, o) => format!(" · {o} orphans"),
            (z, o) => format!(" · {z} zombies · {o} orphans"),
        };
        if self.fds_left_open > 0 {
            text += &format!(" · {} fds left open", self.fds_left_open);
        }
        if let Some(overlap) = self.metrics.get("overlap_ms") {
            text += &format!(" · overlap {overlap:.0} ms");
        }
        if self.sampled {
            text += " (sampled)";
        }
        text
    }
}

/// One test's line in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestReport {
    /// The test's name; a visible test's starts with `visible::`.
    pub name: String,
    /// `hidden` (the grader's) or `visible` (the students' own tests).
    #[serde(default)]
    pub kind: TestKind,
    pub status: Status,
    pub score: f64,
    pub max_score: f64,
    /// Why it failed, in process terms; empty when it passed.
    pub message: String,
    /// The test's captured output (head and tail), for failures.
    pub output: String,
    pub duration_ms: u64,
    /// Absent for a test that did not run.
    pub evidence: Option<Evidence>,
    /// The rubric's hint for this test, shown with a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// One exercise's part of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExerciseReport {
    pub name: String,
    pub score: f64,
    pub max_score: f64,
    pub compiled: bool,
    /// Why it was not graded (not submitted, compile errors), or build warnings.
    pub message: String,
    pub tests: Vec<TestReport>,
}

/// How tests were watched and confined on the machine that graded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupervisionReport {
    /// ptrace, or /proc sampling where ptrace is refused.
    pub tracing: String,
    /// The cap on live processes per test, and what counted them.
    pub process_cap: String,
    /// The test's view of the filesystem.
    pub filesystem: String,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What was graded: `exercises`, `solutions` or a submission's path.
    pub source: String,
    pub supervision: SupervisionReport,
    pub score: f64,
    pub max_score: f64,
    pub exercises: Vec<ExerciseReport>,
}

impl TestReport {
    /// A test that was not run (its exercise did not build, or it does not exist).
    pub fn not_run(name: &str, entry: &RubricEntry, message: String) -> Self {
        Self {
            name: name.to_owned(),
            kind: entry.kind,
            status: Status::NotRun,
            score: 0.0,
            max_score: entry.points,
            message,
            output: String::new(),
            duration_ms: 0,
            evidence: None,
            hint: None,
        }
    }
}

impl ExerciseReport {
    /// Rewrites paths under `dir` (the stage, in compiler errors and panic locations)
    /// relative to it, as a student knows them: `procesos/src/lib.rs`.
    pub fn with_paths_shown_from(mut self, dir: &std::path::Path) -> Self {
        let absolute = format!("{}/", dir.display());
        let relative = format!("{}/", dir.file_name().unwrap_or_default().to_string_lossy());
        let clean = |text: &mut String| *text = text.replace(&absolute, "").replace(&relative, "");
        clean(&mut self.message);
        for test in &mut self.tests {
            clean(&mut test.message);
            clean(&mut test.output);
        }
        self
    }

    /// Fills `score` and `max_score` from the tests.
    pub fn totalled(mut self) -> Self {
        self.score = total(self.tests.iter().map(|t| t.score));
        self.max_score = total(self.tests.iter().map(|t| t.max_score));
        self
    }
}

impl Report {
    /// A report over `exercises`, with totals.
    pub fn new(
        source: String,
        supervision: SupervisionReport,
        exercises: Vec<ExerciseReport>,
    ) -> Self {
        Self {
            source,
            supervision,
            score: total(exercises.iter().map(|e| e.score)),
            max_score: total(exercises.iter().map(|e| e.max_score)),
            exercises,
        }
    }
}

/// A sum that is `0`, not `-0`, when empty (`Iterator::sum` of no `f64` gives `-0.0`).
fn total(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |a, b| a + b)
}

/// `7`, `7.5`: points without a useless `.0`.
pub fn points(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}
