//! The command line: `grader [--solutions | --submission PATH] [--exercise NAME]...
//! [--format table|json|markdown]`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use crate::course::{self, Course};
use crate::grade::{self, Options};
use crate::report;
use crate::source::Source;
use crate::stage;

/// Grades forklab exercises with the hidden tests, one supervised process per test.
#[derive(Debug, Parser)]
#[command(name = "grader", version)]
pub struct Cli {
    /// Grade the reference solutions instead of `exercises/`.
    #[arg(long, conflicts_with = "submission")]
    pub solutions: bool,
    /// Grade another checkout of the course (a student's): only its `exercises/*/src`
    /// is read.
    #[arg(long, value_name = "PATH")]
    pub submission: Option<PathBuf>,
    /// Grade only this exercise (repeatable).
    #[arg(long = "exercise", value_name = "NAME")]
    pub exercises: Vec<String>,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Per-test timeout in seconds, replacing the course's and the rubric's.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Tests run at once (default: twice the number of cores, since most tests wait
    /// more than they compute). Tests marked `exclusive` in the rubric always run alone.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub test_jobs: Option<u16>,
    /// Overrides a limit of grader/course.toml (repeatable), e.g. `--limit cpu_secs=2`,
    /// `--limit max_processes=16`, `--limit memory_mb=512`, `--limit output_bytes=4096`.
    #[arg(long = "limit", value_name = "KEY=VALUE")]
    pub limits: Vec<String>,
    /// The course to grade against (default: the workspace the grader was built in).
    #[arg(long, value_name = "DIR")]
    pub course: Option<PathBuf>,
    /// Scratch directory (default: `<course>/target/forklab-grader`).
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
    /// Keep the staged crates after grading (to inspect them).
    #[arg(long)]
    pub keep: bool,
    /// Watch tests by sampling /proc instead of tracing them with ptrace (the fallback
    /// used automatically where ptrace is refused).
    #[arg(long)]
    pub no_ptrace: bool,
    /// Do without the cgroup `pids.max` backstop under the process cap (used
    /// automatically where cgroups are not writable).
    #[arg(long)]
    pub no_cgroup: bool,
    #[command(subcommand)]
    pub command: Option<Commands>,
}

/// Subcommands; without one, the grader grades.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Internal: supervise one test in a worker process (see `isolate`).
    #[command(name = "__supervise", hide = true)]
    Supervise { job: String },
    /// The course's self-test: statements, rubrics, solutions pass and stubs fail every
    /// visible and hidden test, rustfmt and clippy. Exit status 1 with the problems.
    Check,
    /// Writes the student repository into DIR: exercises, visible tests, a README and a
    /// GitHub Classroom workflow; no solutions, hidden tests or rubrics.
    Export { dir: PathBuf },
    /// Grades every student's submission under DIR (checkouts, .zip, .tar.gz) into a
    /// gradebook (grades.csv) and per-student JSON and Markdown feedback.
    Batch(crate::batch::BatchArgs),
    /// Writes a Gradescope autograder bundle into DIR (setup.sh, run_autograder, the
    /// course without its solutions, autograder.zip).
    Gradescope { dir: PathBuf },
}

impl Cli {
    /// The course root, absolute: `--course`, or the workspace the grader was built in.
    pub fn course_root(&self) -> std::path::PathBuf {
        let root = self.course.clone().unwrap_or_else(course::default_root);
        std::path::absolute(&root).unwrap_or(root)
    }

    /// The course these flags name: `--course` (or this workspace), narrowed to the
    /// `--exercise`s, with the `--limit` overrides applied.
    pub fn load_course(&self) -> Result<Course> {
        let mut course = Course::load(&self.course_root())?;
        course.select(&self.exercises)?;
        for assignment in &self.limits {
            course.limits.set(assignment)?;
        }
        Ok(course)
    }

    /// The grading options these flags ask for. The scratch directory is created and
    /// resolved (no `..`, no symlink): its path is written into staged manifests,
    /// compared with the paths cargo reports, and used from other working directories.
    pub fn grade_options(&self, root: &std::path::Path) -> Result<Options> {
        let scratch = match &self.scratch {
            Some(dir) => dir.clone(),
            None => stage::default_scratch(root),
        };
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("creating the scratch directory {}", scratch.display()))?;
        Ok(Options {
            scratch: std::fs::canonicalize(&scratch)?,
            keep: self.keep,
            progress: std::io::stderr().is_terminal(),
            timeout_secs: self.timeout,
            test_jobs: self.test_jobs.map_or_else(|| 2 * cores(), usize::from),
            no_ptrace: self.no_ptrace,
            no_cgroup: self.no_cgroup,
        })
    }
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Markdown,
    /// Gradescope's results.json.
    Gradescope,
    /// JUnit XML, for CI systems.
    Junit,
}

/// Runs the command line; exit status 0 once a report is written, 2 on a usage or
/// setup error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Commands::Supervise { job }) = &cli.command {
        return match crate::isolate::worker_main(job) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("grader worker: {error:#}");
                ExitCode::from(3)
            }
        };
    }
    if let Some(command @ (Commands::Check | Commands::Export { .. })) = &cli.command {
        return crate::course_commands::main(&cli, command);
    }
    if let Some(command @ (Commands::Batch(_) | Commands::Gradescope { .. })) = &cli.command {
        return print_outcome(crate::class_commands::run(&cli, command));
    }
    print_outcome(run(&cli))
}

/// Prints what a command produced (exit status 0), or its error (exit status 2).
fn print_outcome(outcome: Result<String>) -> ExitCode {
    match outcome {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("grader: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: &Cli) -> Result<String> {
    let course = cli.load_course()?;
    let source = match (&cli.submission, cli.solutions) {
        (Some(path), _) => Source::Submission(std::fs::canonicalize(path)?),
        (None, true) => Source::Solutions,
        (None, false) => Source::Exercises,
    };
    let options = cli.grade_options(&course.root)?;
    let started = std::time::Instant::now();
    let report = grade::grade(&course, &source, &options)?;
    Ok(match cli.format {
        Format::Table => report::table::render(&report, std::io::stdout().is_terminal()),
        Format::Json => report::json::render(&report),
        Format::Markdown => report::markdown::render(&report),
        Format::Gradescope => {
            report::gradescope::render(&report, &course, started.elapsed().as_secs_f64())
        }
        Format::Junit => report::junit::render(&report),
    })
}

/// The number of cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
