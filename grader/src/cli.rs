//! The command line: `grader [--solutions | --submission PATH] [--exercise NAME]...
//! [--format table|json|markdown]`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
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
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Markdown,
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
    match run(&cli) {
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
    let root = cli.course.clone().unwrap_or_else(course::default_root);
    let mut course = Course::load(&root)?;
    course.select(&cli.exercises)?;
    for assignment in &cli.limits {
        course.limits.set(assignment)?;
    }
    let source = match (&cli.submission, cli.solutions) {
        (Some(path), _) => Source::Submission(std::fs::canonicalize(path)?),
        (None, true) => Source::Solutions,
        (None, false) => Source::Exercises,
    };
    let options = Options {
        // Absolute: the scratch path is written into staged manifests and used by
        // processes with other working directories.
        scratch: match &cli.scratch {
            Some(dir) => std::path::absolute(dir)?,
            None => stage::default_scratch(&root),
        },
        keep: cli.keep,
        progress: std::io::stderr().is_terminal(),
        timeout_secs: cli.timeout,
        no_ptrace: cli.no_ptrace,
        no_cgroup: cli.no_cgroup,
    };
    let report = grade::grade(&course, &source, &options)?;
    Ok(match cli.format {
        Format::Table => report::table::render(&report, std::io::stdout().is_terminal()),
        Format::Json => report::json::render(&report),
        Format::Markdown => report::markdown::render(&report),
    })
}
