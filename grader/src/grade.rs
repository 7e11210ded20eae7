//! The grading pipeline: stage → build → run each test (hidden, then visible) → judge →
//! report.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use forklab_testkit::harness::{Expect, Listed};

use crate::compile::{self, Build};
use crate::course::{Course, Exercise, Limits, RubricEntry};
use crate::isolate::{self, Job};
use crate::progress::Progress;
use crate::report::{ExerciseReport, Report, Status, SupervisionReport, TestReport};
use crate::schedule::{self, Gate};
use crate::source::Source;
use crate::stage::Stage;
use crate::supervise::cgroup::PidsCgroup;
use crate::supervise::{self, Mechanism, RunLimits, Sandbox};
use crate::verdict;

/// Options of one grading run.
#[derive(Debug, Clone)]
pub struct Options {
    pub scratch: std::path::PathBuf,
    pub keep: bool,
    pub progress: bool,
    /// Replaces the course's per-test timeout when set.
    pub timeout_secs: Option<f64>,
    /// Watch tests by sampling `/proc` even where ptrace is allowed.
    pub no_ptrace: bool,
    /// Do without the cgroup `pids.max` backstop even where cgroups are writable.
    pub no_cgroup: bool,
    /// Tests run at once (see [`crate::schedule`]).
    pub test_jobs: usize,
}

/// How tests are watched and confined on this machine, decided once per run.
struct Supervision {
    mechanism: Mechanism,
    sandbox: Option<Sandbox>,
    /// Whether each test gets a cgroup with `pids.max` under the process cap.
    pids_cgroup: bool,
    /// The filesystem the build of the submission sees, where mount namespaces work.
    build_sandbox: Option<Sandbox>,
}

impl Supervision {
    fn detect(course: &Course, source: &Source, options: &Options) -> Self {
        let mechanism = if !options.no_ptrace && supervise::ptrace_available() {
            Mechanism::Ptrace
        } else {
            Mechanism::Sampling
        };
        let mut read_only = vec![course.root.clone()];
        if let Source::Submission(checkout) = source {
            read_only.push(checkout.clone());
        }
        // A private /tmp would hide the course, the submission or the test binaries
        // if any of them lives there (a grader run on a copy in a temporary directory).
        let under_tmp = read_only
            .iter()
            .chain([&options.scratch])
            .any(|path| path.starts_with("/tmp"));
        let sandbox = Sandbox {
            read_only,
            // A private /dev/shm too: shared-memory objects a test forgets to unlink
            // vanish with its namespace instead of piling up on the machine.
            hidden: vec![course.root.join("grader"), "/dev/shm".into()],
            private_tmp: !under_tmp,
        };
        let namespaces = supervise::sandbox_available(&sandbox);
        Self {
            mechanism,
            pids_cgroup: !options.no_cgroup && PidsCgroup::available(),
            build_sandbox: namespaces.then(|| Sandbox {
                read_only: Vec::new(),
                // Only what exists can be hidden (a course copy may have no solutions/).
                hidden: [course.root.join("solutions"), course.root.join("grader")]
                    .into_iter()
                    .filter(|p| p.exists())
                    .collect(),
                private_tmp: false,
            }),
            sandbox: namespaces.then_some(sandbox),
        }
    }

    /// The kernel's backstop under the supervisor's cap: room for the test's own
    /// process and for threads (which `pids.max` counts too), so that the supervisor's
    /// count, which names the cause better, normally acts first.
    fn pids_max(&self, limits: &Limits) -> Option<u32> {
        self.pids_cgroup.then_some(2 * limits.max_processes + 16)
    }

    fn describe(&self, limits: &Limits) -> SupervisionReport {
        SupervisionReport {
            tracing: match self.mechanism {
                Mechanism::Ptrace => {
                    "ptrace: every fork, clone and exec seen as it happens".to_owned()
                }
                Mechanism::Sampling => {
                    "proc sampling (ptrace refused): counts are lower bounds".to_owned()
                }
            },
            process_cap: match self.pids_max(limits) {
                Some(max) => format!(
                    "{} processes alive at once, counted by {}; kernel backstop: cgroup pids.max = {max}",
                    limits.max_processes,
                    self.mechanism.as_str()
                ),
                None => format!(
                    "{} processes alive at once, counted by {} (no cgroup backstop: turned off, or cgroups not writable here)",
                    limits.max_processes,
                    self.mechanism.as_str()
                ),
            },
            filesystem: match &self.sandbox {
                Some(sandbox) => format!(
                    "mount namespace: course and submission read-only, grader/ hidden, private {}; \
                     the build sees neither solutions/ nor grader/",
                    if sandbox.private_tmp {
                        "/tmp and /dev/shm"
                    } else {
                        "/dev/shm (/tmp shared: the course or scratch lives there)"
                    }
                ),
                None => "none: mount namespaces refused; tests see the real filesystem".to_owned(),
            },
        }
    }
}

/// Grades `source` against `course`.
pub fn grade(course: &Course, source: &Source, options: &Options) -> Result<Report> {
    isolate::prepare_grading_process()?;
    let supervision = Supervision::detect(course, source, options);
    let progress = Progress::new(options.progress);
    let stage = Stage::create(course, source, &options.scratch, options.keep)?;
    let builds = compile::build(&stage, &progress, supervision.build_sandbox.as_ref())?;
    stage.remove_hidden_sources();

    // Each exercise is either not graded (with why) or built, with its tests planned.
    let mut exercises = Vec::new();
    let mut planned = Vec::new();
    for (index, (exercise, staged)) in course.exercises.iter().zip(&stage.exercises).enumerate() {
        let built = match (&staged.problem, builds.get(&exercise.name)) {
            (Some(problem), _) => Err(problem.clone()),
            (None, Some(Build::Failed { errors })) => Err(format!("does not compile:\n{errors}")),
            (None, None) => Err("was not built".to_owned()),
            (
                None,
                Some(Build::Built {
                    test_binary,
                    warnings,
                }),
            ) => Ok((test_binary, *warnings)),
        };
        match built {
            Err(why) => exercises.push(not_graded_report(exercise, why)),
            Ok((binary, warnings)) => {
                planned.extend(plan_tests(index, exercise, binary)?);
                exercises.push(ExerciseReport {
                    name: exercise.name.clone(),
                    score: 0.0,
                    max_score: 0.0,
                    compiled: true,
                    message: if warnings > 0 {
                        format!("built with {warnings} warning(s)")
                    } else {
                        String::new()
                    },
                    tests: Vec::new(),
                });
            }
        }
    }

    progress.start_tests(planned.len() as u64);
    let gate = Gate::new(&options.scratch)?;
    let reports = schedule::run_all(
        &planned,
        options.test_jobs,
        &gate,
        |test| test.entry.exclusive,
        |test| {
            progress.running(&course.exercises[test.exercise].name, test.name);
            let report = run_test(course, test, options, &supervision);
            progress.finished_test();
            report
        },
    )?;
    for (test, report) in planned.iter().zip(reports) {
        exercises[test.exercise].tests.push(report);
    }
    progress.finish();
    let exercises = exercises
        .into_iter()
        .map(|e| e.totalled().with_paths_shown_from(&stage.crates))
        .collect();
    Ok(Report::new(
        source.label(),
        supervision.describe(&course.limits),
        exercises,
    ))
}

/// A test of a built exercise, to be run.
struct PlannedTest<'a> {
    /// Index of its exercise in the course.
    exercise: usize,
    name: &'a str,
    entry: &'a RubricEntry,
    binary: &'a Path,
    /// What the test binary declares; `None` when it does not have the test.
    expect: Option<Expect>,
}

/// The tests of `exercise` (the course's `index`-th), built into `binary`, in rubric
/// order, with what the binary declares of each.
fn plan_tests<'a>(
    index: usize,
    exercise: &'a Exercise,
    binary: &'a Path,
) -> Result<Vec<PlannedTest<'a>>> {
    let listed = list_tests(binary)?;
    Ok(exercise
        .rubric
        .iter()
        .map(|(name, entry)| PlannedTest {
            exercise: index,
            name,
            entry,
            binary,
            expect: listed
                .iter()
                .find(|t| &t.name == name)
                .map(|t| t.expect.clone()),
        })
        .collect())
}

/// The report of an exercise that could not be graded: every test not run.
fn not_graded_report(exercise: &Exercise, why: String) -> ExerciseReport {
    let tests = exercise
        .rubric
        .iter()
        .map(|(name, entry)| TestReport::not_run(name, entry, String::new()))
        .collect();
    ExerciseReport {
        name: exercise.name.clone(),
        score: 0.0,
        max_score: 0.0,
        compiled: false,
        message: why,
        tests,
    }
}

/// Runs one test in a supervising worker and judges it.
fn run_test(
    course: &Course,
    test: &PlannedTest,
    options: &Options,
    supervision: &Supervision,
) -> Result<TestReport> {
    let (name, entry) = (test.name, test.entry);
    let Some(expect) = &test.expect else {
        return Ok(TestReport::not_run(
            name,
            entry,
            "the rubric names a test that the test binary does not have".to_owned(),
        ));
    };
    let timeout_secs = options
        .timeout_secs
        .or(entry.timeout_secs)
        .unwrap_or(course.limits.timeout_secs);
    let limits = RunLimits {
        timeout: std::time::Duration::from_secs_f64(timeout_secs),
        grace: course.limits.grace(),
        output_bytes: course.limits.output_bytes,
        max_processes: course.limits.max_processes,
        memory_bytes: course.limits.memory_mb << 20,
        cpu_secs: course.limits.cpu_secs,
        pids_max: supervision.pids_max(&course.limits),
    };
    let run = isolate::run_in_worker(&Job {
        binary: test.binary.to_path_buf(),
        test: name.to_owned(),
        limits,
        mechanism: supervision.mechanism,
        sandbox: supervision.sandbox.clone(),
    })?;
    let (status, message, evidence) = verdict::judge(&run, expect, timeout_secs);
    let passed = status == Status::Passed;
    Ok(TestReport {
        name: name.to_owned(),
        kind: entry.kind,
        status,
        score: if passed { entry.points } else { 0.0 },
        max_score: entry.points,
        message,
        output: if passed {
            String::new()
        } else {
            run.output.text()
        },
        duration_ms: run.duration.as_millis() as u64,
        evidence: Some(evidence),
        hint: if passed { None } else { entry.hint.clone() },
    })
}

/// Asks a hidden test binary for its tests. Runs no student code: listing happens
/// before any test body.
pub fn list_tests(binary: &Path) -> Result<Vec<Listed>> {
    let output = Command::new(binary)
        .arg("--forklab-list")
        .output()
        .with_context(|| format!("listing the tests of {}", binary.display()))?;
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("reading the test list of {}", binary.display()))
}
