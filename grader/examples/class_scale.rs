//! The class-scale benchmark (issue 7): prints, from one run,
//!
//! 1. a warm re-grade of one full submission (5 exercises, all hidden and visible tests)
//!    against `cargo test` of the same staged crates with the same tests (both rebuild
//!    the submission's crates; the dependencies are built), and their ratio: once with
//!    one test at a time on both sides (the cost of supervision), once with each side's
//!    default concurrency;
//! 2. a batch of N submissions (the solutions with a comment changed per student) from
//!    a cold scratch area, against fresh `git clone && cargo test` runs (a clone of the
//!    committed course, the student's `src/` copied in, `cargo test` of the 5 exercise
//!    packages with a fresh target directory) — M of them measured, scaled linearly to
//!    N when M < N, and said so;
//! 3. the grader's own peak RSS during the batch (test processes and cargo excluded).
//!
//! `cargo run --release -p grader --example class_scale -- [--submissions N] [--fresh-runs M]`
//! Performance is measured here, never asserted by a test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const EXERCISES: [&str; 5] = ["procesos", "pipe_queue", "lock", "pool", "value_array"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let option = |name: &str, default: usize| -> Result<usize> {
        match args.iter().position(|a| a == name) {
            Some(i) => Ok(args
                .get(i + 1)
                .context("a number after the option")?
                .parse()?),
            None => Ok(default),
        }
    };
    let submissions = option("--submissions", 20)?;
    let fresh_runs = option("--fresh-runs", 3)?.min(submissions).max(1);

    let course = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let work = course.join("target").join("class-scale");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let grader = build_grader(&course)?;
    let subs = work.join("submissions");
    for i in 1..=submissions {
        make_submission(&course, &subs.join(format!("student-{i:02}")), i)?;
    }

    say("1/3 warm re-grade of one submission against cargo test of the same staged crates");
    let warm = warm_regrade(&course, &grader, &work, &subs.join("student-01"))?;

    say(&format!(
        "2/3 batch of {submissions} submissions from a cold scratch area"
    ));
    let batch_scratch = work.join("batch-scratch");
    let started = Instant::now();
    let output = Command::new(&grader)
        .arg("--scratch")
        .arg(&batch_scratch)
        .arg("batch")
        .arg(&subs)
        .arg("--out")
        .arg(work.join("grades"))
        .output()?;
    let batch_time = started.elapsed();
    let summary = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "grader batch failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let peak_rss = summary
        .lines()
        .find(|l| l.starts_with("peak RSS"))
        .unwrap_or("peak RSS: not reported")
        .to_owned();
    let first_line = summary.lines().next().unwrap_or_default().to_owned();

    say(&format!(
        "3/3 {fresh_runs} fresh `git clone && cargo test` runs"
    ));
    let mut fresh_times = Vec::new();
    for i in 1..=fresh_runs {
        let time = fresh_clone_and_test(&course, &work, &subs.join(format!("student-{i:02}")), i)?;
        say(&format!("  fresh run {i}: {:.1} s", time.as_secs_f64()));
        fresh_times.push(time);
    }
    let fresh_mean = fresh_times.iter().sum::<Duration>().as_secs_f64() / fresh_runs as f64;
    let fresh_total = fresh_mean * submissions as f64;

    println!("\n## forklab class-scale benchmark\n");
    println!(
        "machine: {} cores; one run, so compare ratios only\n",
        cores()
    );
    println!("| measurement | time |\n|---|---|");
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "| warm re-grade of one submission, one test at a time: `grader --submission --test-jobs 1` (5 exercises, all hidden and visible tests) | {:.1} s |",
        warm.grader_serial.as_secs_f64()
    );
    println!(
        "| `cargo test` of the same staged crates and tests, `--test-threads 1` (crates rebuilt, dependencies built) | {:.1} s |",
        warm.cargo_test_serial.as_secs_f64()
    );
    println!(
        "| **ratio grader / cargo test, one test at a time** (the cost of supervision; target ≤ 1.5) | **{:.2}** |",
        ratio(warm.grader_serial, warm.cargo_test_serial)
    );
    println!(
        "| the same with each side's default: grader {} tests at once, cargo test {} threads | {:.1} s / {:.1} s |",
        2 * cores(),
        cores(),
        warm.grader.as_secs_f64(),
        warm.cargo_test.as_secs_f64()
    );
    println!(
        "| **ratio grader / cargo test, defaults** (target ≤ 1.5) | **{:.2}** |",
        ratio(warm.grader, warm.cargo_test)
    );
    println!(
        "| `grader batch` of {submissions} submissions, cold scratch (one dependency build) | {:.1} s |",
        batch_time.as_secs_f64()
    );
    let measured: Vec<String> = fresh_times
        .iter()
        .map(|t| format!("{:.1}", t.as_secs_f64()))
        .collect();
    let fresh_label = if fresh_runs < submissions {
        format!(
            "{submissions} fresh `git clone && cargo test` runs: {fresh_runs} measured ({} s), \
             mean × {submissions} (**extrapolated linearly**)",
            measured.join(" s, ")
        )
    } else {
        format!("{submissions} fresh `git clone && cargo test` runs, all measured")
    };
    println!("| {fresh_label} | {fresh_total:.1} s |");
    println!(
        "| **ratio fresh runs / batch** (target ≥ 10) | **{:.1}** |",
        fresh_total / batch_time.as_secs_f64()
    );
    println!("| grader's {peak_rss} | |");
    println!("\nbatch: {first_line}");
    Ok(())
}

fn say(text: &str) {
    eprintln!("class_scale: {text}");
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Builds the grader in release mode; returns its path.
fn build_grader(course: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "grader", "--manifest-path"])
        .arg(course.join("Cargo.toml"))
        .status()?;
    if !status.success() {
        bail!("building the grader failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| course.join("target"));
    Ok(target.join("release").join("grader"))
}

/// A checkout with every exercise's solution, one comment made this student's.
fn make_submission(course: &Path, to: &Path, student: usize) -> Result<()> {
    for exercise in EXERCISES {
        let from = course.join("solutions").join(exercise).join("src");
        let src = to.join("exercises").join(exercise).join("src");
        copy_dir(&from, &src)?;
        let lib = src.join("lib.rs");
        let text = fs::read_to_string(&lib)?;
        fs::write(&lib, format!("// student {student}\n{text}"))?;
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()))?;
        } else {
            fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

struct Warm {
    grader_serial: Duration,
    cargo_test_serial: Duration,
    grader: Duration,
    cargo_test: Duration,
}

/// Grades `submission` once to warm the scratch area (kept), runs `cargo test` on the
/// kept stage with the hidden tests put back (once to warm, once timed after touching
/// the sources so that both sides rebuild the submission's crates), then times a
/// second grade.
fn warm_regrade(course: &Path, grader: &Path, work: &Path, submission: &Path) -> Result<Warm> {
    let scratch = work.join("warm-scratch");
    let grade = |options: &[&str]| -> Result<Duration> {
        let started = Instant::now();
        let status = Command::new(grader)
            .arg("--scratch")
            .arg(&scratch)
            .arg("--submission")
            .arg(submission)
            .args(["--format", "json", "--keep"])
            .args(options)
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("grading {} failed", submission.display());
        }
        Ok(started.elapsed())
    };
    grade(&[])?;
    let stage = fs::read_dir(scratch.join("stage"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .context("the kept stage")?;
    let crates = fs::read_dir(&stage)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir() && p.file_name().is_some_and(|n| n != "bin"))
        .context("the staged crates")?;
    // The grader deletes the hidden sources after its build: put them back each time.
    let cargo_test = |harness_options: &[&str]| -> Result<Duration> {
        for exercise in EXERCISES {
            fs::copy(
                course
                    .join("grader")
                    .join("hidden")
                    .join(format!("{exercise}.rs")),
                crates.join(exercise).join("hidden.rs"),
            )?;
            let lib = crates.join(exercise).join("src").join("lib.rs");
            let text = fs::read(&lib)?;
            fs::write(&lib, text)?;
        }
        let started = Instant::now();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let _ = Command::new(cargo)
            .arg("test")
            .arg("--manifest-path")
            .arg(stage.join("Cargo.toml"))
            .args(["--workspace", "--test", "hidden", "--no-fail-fast"])
            .arg("--target-dir")
            .arg(scratch.join("target"))
            .arg("--")
            .args(harness_options)
            .env_remove("CARGO_TARGET_DIR")
            .env("CARGO_INCREMENTAL", "0")
            // The grader's build settings, so that both sides build the same way.
            .env("CARGO_PROFILE_DEV_DEBUG", "false")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        Ok(started.elapsed())
    };
    cargo_test(&[])?;
    Ok(Warm {
        cargo_test_serial: cargo_test(&["--test-threads", "1"])?,
        grader_serial: grade(&["--test-jobs", "1"])?,
        cargo_test: cargo_test(&[])?,
        grader: grade(&[])?,
    })
}

/// `git clone` of the committed course, the student's `src/` copied in, and `cargo
/// test` of the exercise packages with a fresh target directory.
fn fresh_clone_and_test(
    course: &Path,
    work: &Path,
    submission: &Path,
    run: usize,
) -> Result<Duration> {
    let clone = work.join(format!("fresh-{run}"));
    let started = Instant::now();
    let status = Command::new("git")
        .args(["clone", "--quiet"])
        .arg(course)
        .arg(&clone)
        .status()?;
    if !status.success() {
        bail!("git clone failed");
    }
    for exercise in EXERCISES {
        let src = clone.join("exercises").join(exercise).join("src");
        fs::remove_dir_all(&src)?;
        copy_dir(
            &submission.join("exercises").join(exercise).join("src"),
            &src,
        )?;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .arg("test")
        .arg("--no-fail-fast")
        .current_dir(&clone)
        .env("CARGO_TARGET_DIR", clone.join("target"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for exercise in EXERCISES {
        command.args(["-p", exercise]);
    }
    command.status()?;
    let elapsed = started.elapsed();
    let _ = fs::remove_dir_all(&clone);
    Ok(elapsed)
}
