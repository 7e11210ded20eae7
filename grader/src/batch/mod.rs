//! `grader batch DIR`: grades every student's submission under DIR, each in its own
//! child grader ([`child`]), `--jobs` at a time, all sharing the scratch area's one
//! target directory (dependencies build once; cargo's lock takes builds in turn).
//! Writes `grades.csv`, `<student>.json` and `<student>.md` into the output directory,
//! and skips submissions whose content hash is unchanged since the last run
//! ([`gradebook`]) unless `--force`. A submission that cannot be graded gets an error
//! row; it never stops the batch.

pub mod child;
pub mod gradebook;
pub mod submission;
pub mod unpack;

use std::collections::{BTreeSet, VecDeque};
use std::fmt::Write;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::cli::Cli;
use crate::course::Course;
use crate::report::{self, Report, points};
use gradebook::{Outcome, Row};
use submission::Submission;

/// `grader batch DIR`'s own options (the grading options before `batch` apply to
/// every submission: `--exercise`, `--timeout`, `--limit`, `--scratch`, ...).
#[derive(Debug, clap::Args)]
pub struct BatchArgs {
    /// A directory with one course checkout, `.zip` or `.tar.gz` per student; the
    /// student's name is the entry's name without its extension.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Submissions graded at once (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Where the gradebook and feedback go (default: `DIR-grades` beside DIR).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Re-grade every submission, changed or not.
    #[arg(long)]
    pub force: bool,
    /// Wall time allowed to grade one submission, build included.
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    pub submission_timeout: u64,
}

/// The gradebook's file name in the output directory.
pub const GRADEBOOK: &str = "grades.csv";
const STATE: &str = ".batch-state.json";

/// Runs a batch and returns its summary.
pub fn run(cli: &Cli, args: &BatchArgs) -> Result<String> {
    let started = Instant::now();
    let course = cli.load_course()?;
    let root = course.root.clone();
    // Created and canonical: cargo reports canonical source paths, which the stage's
    // paths (made from the scratch path) must match.
    let scratch = cli.grade_options(&root)?.scratch;
    let dir = std::path::absolute(&args.dir)?;
    let out = match &args.out {
        Some(out) => std::path::absolute(out)?,
        None => dir.with_file_name(format!(
            "{}-grades",
            dir.file_name().unwrap_or_default().to_string_lossy()
        )),
    };
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let jobs = args.jobs.unwrap_or_else(crate::cli::cores).max(1);
    // Tests run at once across the batch: about twice the cores, as in one grading run.
    let test_jobs = cli
        .test_jobs
        .map_or_else(|| (2 * crate::cli::cores()).div_ceil(jobs), usize::from);
    let plan = Plan {
        common_args: child_args(cli, &root, &scratch),
        test_jobs,
        unpack_dir: scratch.join("batch"),
        out: out.clone(),
        wall_limit: Duration::from_secs(args.submission_timeout),
    };

    let submissions = submission::discover(&dir, &out)?;
    let grading_material = grading_fingerprint(&course, &plan.common_args)?;
    let mut state = gradebook::read_state(&out.join(STATE));
    let mut rows: Vec<Option<Row>> = Vec::new();
    let mut queue = VecDeque::new();
    let mut seen = BTreeSet::new();
    for submission in submissions {
        let index = rows.len();
        if !seen.insert(submission.student.clone()) {
            rows.push(Some(error_row(
                &submission.student,
                "another submission has the same student name".to_owned(),
            )));
            continue;
        }
        let mut hasher = grading_material.clone();
        submission::content_hash(&submission, &mut hasher)?;
        let hash = format!("{:x}", hasher.finalize());
        let earlier = (!args.force && state.get(&submission.student) == Some(&hash))
            .then(|| read_report(&out.join(format!("{}.json", submission.student))))
            .flatten();
        match earlier {
            Some(report) => rows.push(Some(Row {
                student: submission.student.clone(),
                report: Some(report),
                outcome: Outcome::Unchanged,
            })),
            None => {
                rows.push(None);
                queue.push_back((index, submission, hash));
            }
        }
    }

    let bar = progress_bar(queue.len() as u64);
    let queue = Mutex::new(queue);
    let results = Mutex::new(Vec::new());
    let peak_child_kib = Mutex::new(0u64);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                while let Some((index, submission, hash)) = next(&queue) {
                    bar.set_message(submission.student.clone());
                    let (row, peak) = plan.grade(&submission);
                    let mut peak_child = peak_child_kib.lock().expect("not poisoned");
                    *peak_child = (*peak_child).max(peak);
                    drop(peak_child);
                    results
                        .lock()
                        .expect("not poisoned")
                        .push((index, row, hash));
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    for (index, row, hash) in results.into_inner().expect("not poisoned") {
        match row.outcome {
            Outcome::Graded => state.insert(row.student.clone(), hash),
            _ => state.remove(&row.student),
        };
        rows[index] = Some(row);
    }
    let rows: Vec<Row> = rows.into_iter().flatten().collect();

    let exercises: Vec<String> = course.exercises.iter().map(|e| e.name.clone()).collect();
    gradebook::write_csv(&out.join(GRADEBOOK), &exercises, &rows)?;
    gradebook::write_state(&out.join(STATE), &state)?;
    Ok(summary(
        &rows,
        &out,
        jobs,
        started.elapsed(),
        peak_child_kib.into_inner().expect("not poisoned"),
    ))
}

/// What every submission's grading shares.
struct Plan {
    /// The grading options: they decide the grades (and are part of the fingerprint).
    common_args: Vec<String>,
    /// Tests each child grader runs at once: speed only.
    test_jobs: usize,
    unpack_dir: PathBuf,
    out: PathBuf,
    wall_limit: Duration,
}

impl Plan {
    /// Grades one submission and writes its feedback; returns its gradebook row and its
    /// grader's peak RSS in KiB.
    fn grade(&self, submission: &Submission) -> (Row, u64) {
        let unpacked = self.unpack_dir.join(&submission.student);
        let graded = self.unpack_and_grade(submission, &unpacked);
        let _ = fs::remove_dir_all(&unpacked);
        let json = self.out.join(format!("{}.json", submission.student));
        let md = self.out.join(format!("{}.md", submission.student));
        let written = graded.and_then(|mut graded| {
            graded.report.source = submission.path.display().to_string();
            fs::write(&json, report::json::render(&graded.report))?;
            fs::write(&md, report::markdown::render(&graded.report))?;
            Ok(graded)
        });
        match written {
            Ok(graded) => (
                Row {
                    student: submission.student.clone(),
                    report: Some(graded.report),
                    outcome: Outcome::Graded,
                },
                graded.peak_rss_kib,
            ),
            Err(error) => {
                let why = format!("{error:#}").replace('\n', " ");
                let _ = fs::write(
                    &json,
                    serde_json::json!({ "source": submission.path, "error": why }).to_string()
                        + "\n",
                );
                let _ = fs::write(
                    &md,
                    format!("# forklab feedback\n\nYour submission could not be graded: {why}\n"),
                );
                (error_row(&submission.student, why), 0)
            }
        }
    }

    fn unpack_and_grade(&self, submission: &Submission, unpacked: &Path) -> Result<child::Graded> {
        let checkout = match submission.archive {
            Some(kind) => {
                let _ = fs::remove_dir_all(unpacked);
                unpack::unpack(&submission.path, kind, unpacked)?;
                submission::checkout_root(unpacked)?
            }
            None => submission::checkout_root(&submission.path)?,
        };
        let mut args = self.common_args.clone();
        args.extend(["--test-jobs".to_owned(), self.test_jobs.to_string()]);
        child::grade(&checkout, &args, self.wall_limit)
    }
}

fn next<T>(queue: &Mutex<VecDeque<T>>) -> Option<T> {
    queue.lock().expect("not poisoned").pop_front()
}

fn error_row(student: &str, why: String) -> Row {
    Row {
        student: student.to_owned(),
        report: None,
        outcome: Outcome::Error(why),
    }
}

fn read_report(path: &Path) -> Option<Report> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// The options each child grader gets: this run's grading options, with the course and
/// the scratch area made explicit so that all children share one target directory.
fn child_args(cli: &Cli, root: &Path, scratch: &Path) -> Vec<String> {
    let mut args = vec![
        "--course".to_owned(),
        root.display().to_string(),
        "--scratch".to_owned(),
        scratch.display().to_string(),
    ];
    for exercise in &cli.exercises {
        args.extend(["--exercise".to_owned(), exercise.clone()]);
    }
    if let Some(timeout) = cli.timeout {
        args.extend(["--timeout".to_owned(), timeout.to_string()]);
    }
    for limit in &cli.limits {
        args.extend(["--limit".to_owned(), limit.clone()]);
    }
    if cli.no_ptrace {
        args.push("--no-ptrace".to_owned());
    }
    if cli.no_cgroup {
        args.push("--no-cgroup".to_owned());
    }
    args
}

/// A hash of what decides a grade besides the submission: the graded exercises'
/// hidden and visible tests, rubrics and manifests, the course's limits, and the grading options.
/// Changing any of them re-grades everyone.
fn grading_fingerprint(course: &Course, common_args: &[String]) -> Result<Sha256> {
    let mut hasher = Sha256::new();
    let grader = course.root.join("grader");
    submission::hash_tree(&grader.join("course.toml"), &mut hasher)?;
    for exercise in &course.exercises {
        submission::hash_tree(&exercise.hidden_tests, &mut hasher)?;
        if exercise.visible_tests.exists() {
            submission::hash_tree(&exercise.visible_tests, &mut hasher)?;
        }
        let rubric = grader
            .join("rubric")
            .join(format!("{}.toml", exercise.name));
        submission::hash_tree(&rubric, &mut hasher)?;
        let manifest = course
            .root
            .join("exercises")
            .join(&exercise.name)
            .join("Cargo.toml");
        submission::hash_tree(&manifest, &mut hasher)?;
    }
    for arg in common_args {
        hasher.update(arg.as_bytes());
        hasher.update([0]);
    }
    Ok(hasher)
}

/// A bar over the submissions with an ETA, on a terminal only.
fn progress_bar(len: u64) -> ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} submissions  {elapsed} elapsed, ETA {eta}  {msg}",
        )
        .expect("template"),
    );
    bar.enable_steady_tick(Duration::from_millis(500));
    bar
}

fn summary(
    rows: &[Row],
    out: &Path,
    jobs: usize,
    elapsed: Duration,
    peak_child_kib: u64,
) -> String {
    let count = |f: fn(&Outcome) -> bool| rows.iter().filter(|r| f(&r.outcome)).count();
    let mut text = format!(
        "{} submissions in {:.1} s with {jobs} jobs: {} graded, {} unchanged, {} errors\n",
        rows.len(),
        elapsed.as_secs_f64(),
        count(|o| *o == Outcome::Graded),
        count(|o| *o == Outcome::Unchanged),
        count(|o| matches!(o, Outcome::Error(_))),
    );
    let width = rows.iter().map(|r| r.student.len()).max().unwrap_or(0);
    for row in rows {
        let score = row
            .report
            .as_ref()
            .map(|r| format!("{} / {}", points(r.score), points(r.max_score)))
            .unwrap_or_else(|| "-".to_owned());
        let _ = writeln!(
            text,
            "  {:width$}  {score:>9}  {}",
            row.student,
            row.outcome.label()
        );
    }
    let _ = writeln!(text, "gradebook: {}", out.join(GRADEBOOK).display());
    let children = if peak_child_kib == 0 {
        "no submission graded".to_owned()
    } else {
        format!(
            "one submission's grader at most {:.1} MiB",
            peak_child_kib as f64 / 1024.0
        )
    };
    let _ = writeln!(
        text,
        "peak RSS: batch process {:.1} MiB; {children} (test processes and cargo not counted)",
        child::own_peak_rss_kib() as f64 / 1024.0,
    );
    text
}
