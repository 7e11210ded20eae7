//! Building the staged workspace with cargo, read through its JSON messages: per
//! exercise, the hidden test binary or the compiler's first errors.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use cargo_metadata::Message;
use cargo_metadata::diagnostic::DiagnosticLevel;

use crate::drain;
use crate::progress::Progress;
use crate::stage::{HIDDEN_TARGET, Stage};
use crate::supervise::Sandbox;

/// How many compiler errors a report quotes per exercise.
const ERRORS_QUOTED: usize = 3;

/// The result of building one exercise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Build {
    /// The hidden test binary, and how many warnings the build gave.
    Built {
        test_binary: PathBuf,
        warnings: usize,
    },
    /// Why it did not build: the compiler's first errors, or cargo's own message.
    Failed { errors: String },
}

/// Builds every staged exercise that could be staged (in one cargo run, going on past
/// failures) and says, per exercise name, how it went.
/// The build runs in `sandbox` when given (see [`crate::supervise::sandbox`]).
pub fn build(
    stage: &Stage,
    progress: &Progress,
    sandbox: Option<&Sandbox>,
) -> Result<BTreeMap<String, Build>> {
    let members: Vec<&str> = stage
        .exercises
        .iter()
        .filter(|e| e.problem.is_none())
        .map(|e| e.name.as_str())
        .collect();
    if members.is_empty() {
        return Ok(BTreeMap::new());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    if let Some(sandbox) = sandbox {
        let prepared = sandbox.prepare();
        // SAFETY: `enter` makes only plain syscalls on strings prepared before the fork.
        unsafe {
            command.pre_exec(move || prepared.enter());
        }
    }
    let mut child = command
        .arg("build")
        .arg("--manifest-path")
        .arg(stage.root.join("Cargo.toml"))
        .args(["--workspace", "--test", HIDDEN_TARGET, "--keep-going"])
        .args(["--message-format", "json"])
        .arg("--target-dir")
        .arg(&stage.target_dir)
        .env_remove("CARGO_TARGET_DIR")
        // Staged crates are built once: incremental state would only fill the disk.
        .env("CARGO_INCREMENTAL", "0")
        // Nor is debug info of use: panic locations do not need it, and without it a
        // submission builds with about 30% less CPU (measured: 4.8 → 3.3 CPU-seconds).
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo")?;
    let stderr_reader = drain::text(child.stderr.take().expect("piped stderr"));

    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut warnings: BTreeMap<String, usize> = BTreeMap::new();
    let mut binaries: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut staged_artifacts: Vec<PathBuf> = Vec::new();
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    for message in Message::parse_stream(stdout).flatten() {
        match message {
            Message::CompilerArtifact(artifact) => {
                progress.compiled(&artifact.target.name);
                let exercise = exercise_of(&stage.crates, artifact.target.src_path.as_std_path());
                if exercise.is_some() {
                    staged_artifacts.extend(
                        artifact
                            .filenames
                            .iter()
                            .map(|f| f.clone().into_std_path_buf()),
                    );
                }
                if let (Some(exercise), Some(exe), true) = (
                    exercise,
                    artifact.executable,
                    artifact.target.name == HIDDEN_TARGET,
                ) {
                    binaries.insert(exercise, exe.into_std_path_buf());
                }
            }
            Message::CompilerMessage(message) => {
                let Some(exercise) =
                    exercise_of(&stage.crates, message.target.src_path.as_std_path())
                else {
                    continue;
                };
                let diagnostic = message.message;
                match diagnostic.level {
                    DiagnosticLevel::Error | DiagnosticLevel::Ice => errors
                        .entry(exercise)
                        .or_default()
                        .push(diagnostic.rendered.unwrap_or(diagnostic.message)),
                    DiagnosticLevel::Warning => *warnings.entry(exercise).or_default() += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let _ = child.wait();
    let cargo_stderr = stderr_reader.join().unwrap_or_default();

    let own_binaries = stage.root.join("bin");
    std::fs::create_dir_all(&own_binaries)?;
    let builds = members
        .into_iter()
        .map(|name| {
            let build = match (binaries.remove(name), errors.remove(name)) {
                (Some(built), None) => {
                    let test_binary = own_binaries.join(format!("{name}-hidden"));
                    std::fs::copy(&built, &test_binary)
                        .with_context(|| format!("copying {}", built.display()))?;
                    Build::Built {
                        test_binary,
                        warnings: warnings.get(name).copied().unwrap_or(0),
                    }
                }
                (_, Some(found)) => Build::Failed {
                    errors: quote_errors(&found),
                },
                (None, None) => Build::Failed {
                    errors: cargo_failure(&cargo_stderr),
                },
            };
            Ok((name.to_owned(), build))
        })
        .collect();
    // The test binaries are copied out: the staged crates' own artifacts (named after
    // this submission's stage) would only pile up in the shared target directory.
    for artifact in staged_artifacts {
        let _ = std::fs::remove_file(artifact);
    }
    builds
}

/// The staged exercise a source file belongs to: the first path component under the
/// stage root.
fn exercise_of(stage_root: &Path, src_path: &Path) -> Option<String> {
    let relative = src_path.strip_prefix(stage_root).ok()?;
    Some(
        relative
            .components()
            .next()?
            .as_os_str()
            .to_str()?
            .to_owned(),
    )
}

fn quote_errors(found: &[String]) -> String {
    let mut text: String = found
        .iter()
        .take(ERRORS_QUOTED)
        .map(|e| e.trim_end())
        .collect::<Vec<_>>()
        .join("\n\n");
    if found.len() > ERRORS_QUOTED {
        text += &format!("\n\n... and {} more errors", found.len() - ERRORS_QUOTED);
    }
    text
}

/// Cargo's own error lines (a failed dependency, a bad manifest), when no compiler
/// message names the exercise.
fn cargo_failure(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            !l.trim_start().starts_with("Compiling") && !l.trim_start().starts_with("Blocking")
        })
        .collect();
    let tail = &lines[lines.len().saturating_sub(12)..];
    format!(
        "cargo could not build the hidden tests:\n{}",
        tail.join("\n")
    )
}
