//! Visible tests: builds the `visible` test target of every stub and solution in one
//! `cargo test --no-run`, runs each binary (libtest) and reads its `test NAME ... ok`
//! lines. A solution must pass every listed test; a stub must fail every one.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cargo_metadata::Message;
use cargo_metadata::diagnostic::DiagnosticLevel;

use super::packages::{Kind, Package, of};
use super::{Aspect, Outcome, cargo, head, list};
use crate::course::Course;
use crate::drain;

/// Longest a visible test binary may run before it is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// What one run of a libtest binary said.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Run {
    /// The tests `--list` names.
    pub listed: Vec<String>,
    pub passed: Vec<String>,
    pub failed: Vec<String>,
    /// Set when the binary was killed after [`RUN_TIMEOUT`].
    pub timed_out: bool,
}

/// Builds and runs the visible tests of every stub and solution.
pub fn check(course: &Course, packages: &[Package], target_dir: &Path) -> Result<Vec<Outcome>> {
    let with_tests: Vec<&Package> = packages
        .iter()
        .filter(|p| p.visible_tests.as_ref().is_some_and(|path| path.is_file()))
        .collect();
    let (binaries, errors, cargo_stderr) = build(&course.root, &with_tests, target_dir)?;
    let mut outcomes = Vec::new();
    for kind in [Kind::Solution, Kind::Stub] {
        let aspect = match kind {
            Kind::Solution => Aspect::VisibleSolutions,
            Kind::Stub => Aspect::VisibleStubs,
        };
        let mut outcome = Outcome::new(aspect, String::new());
        let (mut as_expected, mut total) = (0, 0);
        for exercise in &course.exercises {
            let name = &exercise.name;
            let Some(package) = of(packages, name, kind) else {
                outcome.problem(name, format!("no package at {}/{name}", kind.dir()));
                continue;
            };
            match &package.visible_tests {
                None => {
                    outcome.problem(
                        name,
                        format!("{} has no `visible` test target", package.name),
                    );
                    continue;
                }
                Some(path) if !path.is_file() => {
                    outcome.problem(
                        name,
                        format!(
                            "the `visible` test target of {} is missing: {}",
                            package.name,
                            path.display()
                        ),
                    );
                    continue;
                }
                Some(_) => {}
            }
            let Some(binary) = binaries.get(&package.id) else {
                let why = errors.get(&package.id).unwrap_or(&cargo_stderr);
                outcome.problem(
                    name,
                    format!(
                        "the visible tests of {} do not build\n{}",
                        package.name,
                        head(why, 12)
                    ),
                );
                continue;
            };
            let run = run(binary, &package.dir)?;
            total += run.listed.len();
            let (good, bad) = match kind {
                Kind::Solution => (&run.passed, &run.failed),
                Kind::Stub => (&run.failed, &run.passed),
            };
            as_expected += good.len();
            if run.timed_out {
                outcome.problem(
                    name,
                    format!("{} was killed after {RUN_TIMEOUT:?}", package.name),
                );
            }
            if !bad.is_empty() {
                let verb = if kind == Kind::Solution {
                    "fails"
                } else {
                    "passes"
                };
                outcome.problem(name, format!("{} {verb}: {}", package.name, list(bad)));
            }
            let unreported: Vec<String> = run
                .listed
                .iter()
                .filter(|t| !run.passed.contains(t) && !run.failed.contains(t))
                .cloned()
                .collect();
            if !unreported.is_empty() && !run.timed_out {
                outcome.problem(
                    name,
                    format!("{}: no result for {}", package.name, list(&unreported)),
                );
            }
            if run.listed.is_empty() {
                outcome.problem(name, format!("{} lists no visible test", package.name));
            }
        }
        outcome.summary = match kind {
            Kind::Solution => format!("{as_expected}/{total} passed"),
            Kind::Stub => format!("{as_expected}/{total} failed"),
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// What building the visible tests gave: binaries and first compiler errors by package
/// id, and cargo's own error lines.
type Built = (BTreeMap<String, PathBuf>, BTreeMap<String, String>, String);

/// Builds the `visible` targets of `packages` in one cargo run.
fn build(root: &Path, packages: &[&Package], target_dir: &Path) -> Result<Built> {
    let mut binaries = BTreeMap::new();
    let mut errors: BTreeMap<String, String> = BTreeMap::new();
    if packages.is_empty() {
        return Ok((binaries, errors, String::new()));
    }
    let mut command = cargo(root, target_dir);
    command.args([
        "test",
        "--no-run",
        "--no-fail-fast",
        "--message-format",
        "json",
    ]);
    for package in packages {
        command.args(["-p", &package.name]);
    }
    let mut child = command
        .args(["--test", "visible"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo test --no-run")?;
    let stderr_reader = drain::text(child.stderr.take().expect("piped stderr"));
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    for message in Message::parse_stream(stdout).flatten() {
        match message {
            Message::CompilerArtifact(artifact) if artifact.target.name == "visible" => {
                if let Some(exe) = artifact.executable {
                    binaries.insert(artifact.package_id.repr, exe.into_std_path_buf());
                }
            }
            Message::CompilerMessage(message)
                if message.message.level == DiagnosticLevel::Error =>
            {
                let text = errors.entry(message.package_id.repr).or_default();
                if text.lines().count() < 40 {
                    text.push_str(
                        message
                            .message
                            .rendered
                            .as_deref()
                            .unwrap_or(&message.message.message),
                    );
                }
            }
            _ => {}
        }
    }
    child.wait()?;
    let cargo_errors: Vec<String> = stderr_reader
        .join()
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("error"))
        .map(str::to_owned)
        .collect();
    Ok((binaries, errors, cargo_errors.join("\n")))
}

/// Lists and runs the tests of a libtest binary, from the package's directory as
/// `cargo test` does.
pub fn run(binary: &Path, package_dir: &Path) -> Result<Run> {
    let listing = Command::new(binary)
        .arg("--list")
        .current_dir(package_dir)
        .output()
        .with_context(|| format!("listing the tests of {}", binary.display()))?;
    let listed = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .map(str::to_owned)
        .collect();
    let (output, timed_out) = run_with_timeout(
        Command::new(binary)
            .current_dir(package_dir)
            .env("RUST_BACKTRACE", "0"),
    )?;
    let mut run = Run {
        listed,
        timed_out,
        ..Run::default()
    };
    for line in output.lines() {
        let Some(rest) = line.strip_prefix("test ") else {
            continue;
        };
        if let Some(name) = rest.strip_suffix(" ... ok") {
            run.passed.push(name.to_owned());
        } else if let Some(name) = rest.strip_suffix(" ... FAILED") {
            run.failed.push(name.to_owned());
        }
    }
    Ok(run)
}

/// Runs `command` in its own process group with stdout captured; past
/// [`RUN_TIMEOUT`] the whole group is killed. Returns stdout and whether it timed out.
fn run_with_timeout(command: &mut Command) -> Result<(String, bool)> {
    let mut child = command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("running a visible test binary")?;
    let reader = drain::text(child.stdout.take().expect("piped stdout"));
    let start = Instant::now();
    let mut timed_out = false;
    while child.try_wait()?.is_none() {
        if start.elapsed() > RUN_TIMEOUT {
            timed_out = true;
            let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            child.wait()?;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Children the tests left running share the pipe: kill the group so the read ends.
    let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
    let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
    Ok((reader.join().unwrap_or_default(), timed_out))
}
