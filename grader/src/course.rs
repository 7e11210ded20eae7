//! The course being graded: where it lives, its exercises in order, the limits of a
//! test run, and each exercise's rubric (points per hidden test, and per visible test
//! where the instructor gives some).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indexmap::IndexMap;
use serde::Deserialize;

use crate::visible;

/// The course's root directory: the workspace this grader was built from.
pub fn default_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the grader lives in the course workspace")
        .to_path_buf()
}

/// Limits applied to each hidden test.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub timeout_secs: f64,
    pub grace_ms: u64,
    pub output_bytes: usize,
    pub max_processes: u32,
    pub memory_mb: u64,
    pub cpu_secs: u64,
}

impl Limits {
    /// Overrides one limit from `KEY=VALUE` (as on the command line: `--limit cpu_secs=2`).
    pub fn set(&mut self, assignment: &str) -> Result<()> {
        let (key, value) = assignment
            .split_once('=')
            .with_context(|| format!("`{assignment}` is not KEY=VALUE"))?;
        let mut table = toml::Table::try_from(&*self)?;
        if !table.contains_key(key) {
            let known: Vec<&String> = table.keys().collect();
            bail!("unknown limit `{key}`; the limits are: {known:?}");
        }
        let value: toml::Value = format!("v = {value}").parse::<toml::Table>()?["v"].clone();
        table.insert(key.to_owned(), value);
        *self = table
            .try_into()
            .with_context(|| format!("bad value for `{key}`"))?;
        Ok(())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_secs)
    }

    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CourseFile {
    exercises: Vec<String>,
    limits: Limits,
}

/// One rubric entry: the points of a test, and optional overrides.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RubricEntry {
    pub points: f64,
    /// Whether the test is one of the grader's (hidden) or one of the students' own.
    #[serde(skip)]
    pub kind: TestKind,
    pub timeout_secs: Option<f64>,
    /// Shown to a student whose submission fails this test.
    pub hint: Option<String>,
    /// The test runs alone, no other test beside it (see [`crate::schedule`]): its
    /// verdict needs the machine's cores to itself.
    #[serde(default)]
    pub exclusive: bool,
    /// When students see this test's result on Gradescope (`--format gradescope`);
    /// hidden tests default to `after_published`, visible ones to `visible`.
    pub visibility: Option<Visibility>,
}

impl RubricEntry {
    /// The entry of a visible test the rubric does not name: no points.
    fn visible_default() -> Self {
        Self {
            points: 0.0,
            kind: TestKind::Visible,
            timeout_secs: None,
            hint: None,
            exclusive: false,
            visibility: None,
        }
    }
}

/// Where a test comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestKind {
    /// `grader/hidden/NAME.rs`: students never see it.
    #[default]
    Hidden,
    /// `exercises/NAME/tests/visible.rs`: the students' own tests.
    Visible,
}

/// Gradescope's visibility of a test result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Hidden,
    AfterDueDate,
    AfterPublished,
    Visible,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RubricFile {
    /// The hidden tests.
    tests: IndexMap<String, RubricEntry>,
    /// Visible tests given points or other settings; the others are worth nothing.
    #[serde(default)]
    visible: IndexMap<String, RubricEntry>,
}

/// An exercise: its name, its tests' sources, and its rubric.
#[derive(Debug, Clone)]
pub struct Exercise {
    pub name: String,
    pub hidden_tests: PathBuf,
    /// The course's visible tests (not the student's copy).
    pub visible_tests: PathBuf,
    /// Every graded test by its name in the test binary: the hidden tests in rubric
    /// order, then each visible test (named `visible::NAME`) in source order.
    pub rubric: IndexMap<String, RubricEntry>,
}

impl Exercise {
    /// The exercise's total points.
    pub fn max_score(&self) -> f64 {
        self.rubric
            .values()
            .map(|e| e.points)
            .fold(0.0, |a, b| a + b)
    }
}

/// The whole course, as read from `grader/course.toml` and `grader/rubric/*.toml`.
#[derive(Debug, Clone)]
pub struct Course {
    pub root: PathBuf,
    pub exercises: Vec<Exercise>,
    pub limits: Limits,
}

impl Course {
    /// Reads the course at `root`.
    pub fn load(root: &Path) -> Result<Self> {
        let grader = root.join("grader");
        let file: CourseFile = read_toml(&grader.join("course.toml"))?;
        let exercises = file
            .exercises
            .into_iter()
            .map(|name| {
                let rubric_path = grader.join("rubric").join(format!("{name}.toml"));
                let rubric: RubricFile = read_toml(&rubric_path)?;
                let visible_tests = root.join("exercises").join(&name).join("tests/visible.rs");
                Ok(Exercise {
                    hidden_tests: grader.join("hidden").join(format!("{name}.rs")),
                    rubric: full_rubric(rubric, &visible_tests)
                        .with_context(|| format!("in {}", rubric_path.display()))?,
                    visible_tests,
                    name,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            root: root.to_path_buf(),
            exercises,
            limits: file.limits,
        })
    }

    /// Keeps only the exercises named in `only` (all when empty); an unknown name is an
    /// error that lists the known ones.
    pub fn select(&mut self, only: &[String]) -> Result<()> {
        if only.is_empty() {
            return Ok(());
        }
        for name in only {
            if !self.exercises.iter().any(|e| &e.name == name) {
                let known: Vec<_> = self.exercises.iter().map(|e| e.name.as_str()).collect();
                bail!(
                    "unknown exercise `{name}`; the course has: {}",
                    known.join(", ")
                );
            }
        }
        self.exercises.retain(|e| only.contains(&e.name));
        Ok(())
    }
}

/// The hidden tests' entries, then one per visible test found in `visible_tests` (the
/// rubric's `[visible]` entry, or no points).
fn full_rubric(file: RubricFile, visible_tests: &Path) -> Result<IndexMap<String, RubricEntry>> {
    let names = visible::test_names(&visible::read_source(visible_tests)?)
        .with_context(|| format!("reading the tests of {}", visible_tests.display()))?;
    if let Some(unknown) = file.visible.keys().find(|k| !names.contains(k)) {
        bail!(
            "[visible] names `{unknown}`, which is not a test of {}",
            visible_tests.display()
        );
    }
    let mut rubric = file.tests;
    for name in names {
        let entry = match file.visible.get(&name) {
            Some(entry) => RubricEntry {
                kind: TestKind::Visible,
                ..entry.clone()
            },
            None => RubricEntry::visible_default(),
        };
        rubric.insert(format!("{}{name}", visible::PREFIX), entry);
    }
    Ok(rubric)
}

fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}
