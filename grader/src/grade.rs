//! The grading pipeline: stage → build → run each test (hidden, then visible) → judge →
//! report.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use forklab_testkit::harness::Listed;

use crate::compile::{self, Build};
use crate::course::{Course, Exercise, Limits};
use crate::isolate::{self, Job};
use crate::progress::Progress;
use crate::report::{ExerciseReport, Report, Status, SupervisionReport, TestReport};
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

    let total_tests = course.exercises.iter().map(|e| e.rubric.len() as u64).sum();
    progress.start_tests(total_tests);
    let mut exercises = Vec::new();
    for (exercise, staged) in course.exercises.iter().zip(&stage.exercises) {
        let report = match (&staged.problem, builds.get(&exercise.name)) {
            (Some(problem), _) => not_graded(exercise, problem.clone(), &progress),
            (
                None,
                Some(Build::Built {
                    test_binary,
                    warnings,
                }),
            ) => {
                let mut report = run_exercise(
                    course,
                    exercise,
                    test_binary,
                    options,
                    &supervision,
                    &progress,
                )?;
                if *warnings > 0 {
                    report.message = format!("built with {warnings} warning(s)");
                }
                report
            }
            (None, Some(Build::Failed { errors })) => {
                not_graded(exercise, format!("does not compile:\n{errors}"), &progress)
            }
            (None, None) => not_graded(exercise, "was not built".to_owned(), &progress),
        };
        exercises.push(report.with_paths_shown_from(&stage.crates));
    }
    progress.finish();
    Ok(Report::new(
        source.label(),
        supervision.describe(&course.limits),
        exercises,
    ))
}

fn not_graded(exercise: &Exercise, why: String, progress: &Progress) -> ExerciseReport {
    let tests = exercise
        .rubric
        .iter()
        .map(|(name, entry)| {
            progress.finished_test();
            TestReport::not_run(name, entry, String::new())
        })
        .collect();
    ExerciseReport {
        name: exercise.name.clone(),
        score: 0.0,
        max_score: 0.0,
        compiled: false,
        message: why,
        tests,
    }
    .totalled()
}

fn run_exercise(
    course: &Course,
    exercise: &Exercise,
    binary: &Path,
    options: &Options,
    supervision: &Supervision,
    progress: &Progress,
) -> Result<ExerciseReport> {
    let listed = list_tests(binary)?;
    let mut tests = Vec::new();
    for (name, entry) in &exercise.rubric {
        progress.running(&exercise.name, name);
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
        let report = if let Some(test) = listed.iter().find(|t| &t.name == name) {
            let run = isolate::run_in_worker(&Job {
                binary: binary.to_path_buf(),
                test: name.clone(),
                limits,
                mechanism: supervision.mechanism,
                sandbox: supervision.sandbox.clone(),
            })?;
            let (status, message, evidence) = verdict::judge(&run, &test.expect, timeout_secs);
            let passed = status == Status::Passed;
            TestReport {
                name: name.clone(),
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
            }
        } else {
            TestReport::not_run(
                name,
                entry,
                "the rubric names a test that the test binary does not have".to_owned(),
            )
        };
        progress.finished_test();
        tests.push(report);
    }
    Ok(ExerciseReport {
        name: exercise.name.clone(),
        score: 0.0,
        max_score: 0.0,
        compiled: true,
        message: String::new(),
        tests,
    }
    .totalled())
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
