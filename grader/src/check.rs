//! `grader check`: the course's self-test. Each exercise has a statement (Spanish,
//! English, hints) and a rubric that names its hidden tests one to one; the reference
//! solutions pass every visible and hidden test; the pristine stubs fail every one; and
//! stubs and solutions are rustfmt- and clippy-clean. One module per aspect.

mod hidden;
mod lint;
mod packages;
mod statement;
mod visible;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::course::Course;
use crate::grade::Options;

pub use packages::{Kind, Package};

/// The aspects checked, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Aspect {
    Statement,
    Rubric,
    HiddenSolutions,
    HiddenStubs,
    VisibleSolutions,
    VisibleStubs,
    Rustfmt,
    Clippy,
}

impl Aspect {
    /// How the report names the aspect.
    pub fn label(self) -> &'static str {
        match self {
            Aspect::Statement => "statement",
            Aspect::Rubric => "rubric",
            Aspect::HiddenSolutions => "graded tests, solutions",
            Aspect::HiddenStubs => "graded tests, stubs",
            Aspect::VisibleSolutions => "cargo test, solutions",
            Aspect::VisibleStubs => "cargo test, stubs",
            Aspect::Rustfmt => "rustfmt",
            Aspect::Clippy => "clippy",
        }
    }
}

/// One thing wrong with an exercise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub exercise: String,
    pub aspect: Aspect,
    pub detail: String,
}

/// What one aspect's check found: a line on what it looked at, and its problems.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub aspect: Aspect,
    pub summary: String,
    pub problems: Vec<Problem>,
}

impl Outcome {
    fn new(aspect: Aspect, summary: String) -> Self {
        Self {
            aspect,
            summary,
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, exercise: &str, detail: impl Into<String>) {
        self.problems.push(Problem {
            exercise: exercise.to_owned(),
            aspect: self.aspect,
            detail: detail.into(),
        });
    }
}

/// Everything `grader check` found.
#[derive(Debug, Clone)]
pub struct Findings {
    pub exercises: Vec<String>,
    pub outcomes: Vec<Outcome>,
}

impl Findings {
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.outcomes.iter().flat_map(|o| &o.problems)
    }

    pub fn passed(&self) -> bool {
        self.problems().next().is_none()
    }

    /// The report: one line per aspect, then every problem, exercise by exercise.
    pub fn render(&self) -> String {
        let mut text = format!(
            "grader check: {} exercise{} ({})\n\n",
            self.exercises.len(),
            if self.exercises.len() == 1 { "" } else { "s" },
            self.exercises.join(", ")
        );
        for outcome in &self.outcomes {
            let mark = if outcome.problems.is_empty() {
                "ok  "
            } else {
                "FAIL"
            };
            let _ = writeln!(
                text,
                "{mark} {:<26} {}",
                outcome.aspect.label(),
                outcome.summary
            );
        }
        let problems: Vec<&Problem> = self.problems().collect();
        if problems.is_empty() {
            text += "\nno problems\n";
            return text;
        }
        let _ = writeln!(text, "\n{} problem(s):", problems.len());
        for exercise in &self.exercises {
            for problem in problems.iter().filter(|p| &p.exercise == exercise) {
                let mut lines = problem.detail.lines();
                let _ = writeln!(
                    text,
                    "- {exercise} [{}]: {}",
                    problem.aspect.label(),
                    lines.next().unwrap_or_default()
                );
                for line in lines {
                    let _ = writeln!(text, "      {line}");
                }
            }
        }
        text
    }
}

/// Runs every check on `course`. `options.scratch` holds the grader's stages and the
/// target directory of the visible tests and lints; `say` hears of each step.
pub fn check(course: &Course, options: &Options, say: &dyn Fn(&str)) -> Result<Findings> {
    let target_dir = options.scratch.join("target");
    let packages = packages::find(course)?;
    let mut outcomes = Vec::new();
    say("statements");
    outcomes.push(statement::check(course));
    say("graded tests: grading the solutions and the stubs (hidden and visible tests, supervised)");
    outcomes.extend(hidden::check(course, options)?);
    say("cargo test: running the visible tests on solutions and stubs, as students do");
    outcomes.extend(visible::check(course, &packages, &target_dir)?);
    say("rustfmt and clippy");
    outcomes.extend(lint::check(course, &packages, &target_dir)?);
    outcomes.sort_by_key(|o| o.aspect);
    Ok(Findings {
        exercises: course.exercises.iter().map(|e| e.name.clone()).collect(),
        outcomes,
    })
}

/// `cargo` run in the course's workspace with its artifacts under `target_dir`.
fn cargo(course_root: &Path, target_dir: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(course_root)
        .env("CARGO_TARGET_DIR", target_dir)
        .env("CARGO_INCREMENTAL", "0")
        .stdin(std::process::Stdio::null());
    command
}

/// The first `n` lines of `text`, and how many more there were.
fn head(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut shown = lines[..lines.len().min(n)].join("\n");
    if lines.len() > n {
        let _ = write!(shown, "\n... ({} more lines)", lines.len() - n);
    }
    shown
}

/// `a, b, c`, for lists of test names in problems.
fn list(names: &[String]) -> String {
    names.join(", ")
}
