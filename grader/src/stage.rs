//! Staging: a scratch cargo workspace holding, for each exercise, the instructor's
//! manifest, the graded `src/` (copied, never touched in place) and one test binary's
//! sources: the hidden tests and the course's visible tests (see [`crate::visible`]).
//!
//! Nothing else of the submission is used: its `Cargo.toml`, `build.rs`, `tests/` and
//! any other file are ignored. All stages share one target directory, so dependencies
//! compile once.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg};
use toml::{Table, Value};

use crate::course::{Course, Exercise};
use crate::manifest;
use crate::source::Source;
use crate::visible;

/// Most bytes and files copied from one submitted `src/`.
const MAX_SRC_BYTES: u64 = 4 << 20;
const MAX_SRC_FILES: usize = 500;

/// The name of the test target in each staged crate (hidden and visible tests).
pub const HIDDEN_TARGET: &str = "hidden";

/// A staged exercise, or why it could not be staged.
#[derive(Debug, Clone)]
pub struct StagedExercise {
    pub name: String,
    pub dir: PathBuf,
    /// Set when the exercise was not staged (no `src/`, too large, ...).
    pub problem: Option<String>,
}

/// A scratch workspace; removed on drop unless kept.
pub struct Stage {
    pub root: PathBuf,
    /// Where the staged crates are: `root/<key>/<exercise>`. Cargo names artifacts
    /// after a crate's path relative to the workspace root, so the key in that path
    /// keeps the artifacts of different submissions apart in the shared target dir.
    pub crates: PathBuf,
    pub target_dir: PathBuf,
    pub exercises: Vec<StagedExercise>,
    keep: bool,
    _lock: Flock<fs::File>,
}

/// The grader's scratch area: `<course>/target/forklab-grader` unless told otherwise.
pub fn default_scratch(course_root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| course_root.join("target"))
        .join("forklab-grader")
}

impl Stage {
    /// Stages every exercise of `course` from `source` under `scratch`.
    pub fn create(course: &Course, source: &Source, scratch: &Path, keep: bool) -> Result<Self> {
        let stages = scratch.join("stage");
        fs::create_dir_all(&stages).with_context(|| format!("creating {}", stages.display()))?;
        // One stage directory per source; graders staging the same source take turns.
        let key = stage_key(source);
        let lock_file = fs::File::create(stages.join(format!("{key}.lock")))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .context("locking the stage directory")?;
        let root = stages.join(&key);
        if root.exists() {
            fs::remove_dir_all(&root).with_context(|| format!("clearing {}", root.display()))?;
        }
        fs::create_dir_all(&root)?;

        let exercises = course
            .exercises
            .iter()
            .map(|exercise| {
                let dir = root.join(&key).join(&exercise.name);
                let problem = stage_exercise(course, source, exercise, &dir)
                    .err()
                    .map(|e| format!("{e:#}"));
                StagedExercise {
                    name: exercise.name.clone(),
                    dir,
                    problem,
                }
            })
            .collect::<Vec<_>>();
        let members: Vec<String> = exercises
            .iter()
            .filter(|e| e.problem.is_none())
            .map(|e| format!("{key}/{}", e.name))
            .collect();
        write_workspace_manifest(&course.root, &root, &members)?;
        let lockfile = course.root.join("Cargo.lock");
        if lockfile.exists() {
            fs::copy(&lockfile, root.join("Cargo.lock"))?;
        }
        Ok(Self {
            crates: root.join(&key),
            root,
            target_dir: scratch.join("target"),
            exercises,
            keep,
            _lock: lock,
        })
    }

    /// Removes the hidden tests' sources once they are compiled, so that code under test
    /// cannot read them from the stage at run time.
    pub fn remove_hidden_sources(&self) {
        for exercise in &self.exercises {
            let _ = fs::remove_file(exercise.dir.join("hidden.rs"));
        }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

/// The name of `source`'s stage directory under `<scratch>/stage/`.
pub fn stage_key(source: &Source) -> String {
    let mut hasher = DefaultHasher::new();
    source.label().hash(&mut hasher);
    let kind = match source {
        Source::Exercises => "exercises",
        Source::Solutions => "solutions",
        Source::Submission(_) => "submission",
    };
    format!("{kind}-{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

fn stage_exercise(course: &Course, source: &Source, exercise: &Exercise, dir: &Path) -> Result<()> {
    let name = &exercise.name;
    let src = source.src_dir(&course.root, name);
    if !src.join("lib.rs").is_file() {
        bail!("not submitted: {} has no lib.rs", src.display());
    }
    let mut budget = (MAX_SRC_BYTES, MAX_SRC_FILES);
    copy_tree(&src, &dir.join("src"), &mut budget)?;
    let manifest = course.root.join("exercises").join(name).join("Cargo.toml");
    fs::write(dir.join("Cargo.toml"), member_manifest(&manifest)?)?;
    let hidden = &exercise.hidden_tests;
    fs::copy(hidden, dir.join("hidden.rs"))
        .with_context(|| format!("copying {}", hidden.display()))?;
    let visible_tests = &exercise.visible_tests;
    let visible_source = visible::read_source(visible_tests)?;
    fs::write(dir.join("visible.rs"), visible::as_module(&visible_source)?)
        .with_context(|| format!("staging {}", visible_tests.display()))?;
    fs::write(dir.join("main.rs"), visible::TEST_BINARY_ROOT)?;
    Ok(())
}

/// Copies regular files and directories only (symlinks and devices are skipped), within
/// a budget of bytes and files.
fn copy_tree(from: &Path, to: &Path, budget: &mut (u64, usize)) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target, budget)?;
        } else if kind.is_file() {
            let size = entry.metadata()?.len();
            if size > budget.0 || budget.1 == 0 {
                bail!(
                    "src/ is larger than the grader accepts ({} MiB, {MAX_SRC_FILES} files)",
                    MAX_SRC_BYTES >> 20
                );
            }
            budget.0 -= size;
            budget.1 -= 1;
            fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The instructor's manifest of the exercise, with target discovery turned off and the
/// test target added.
fn member_manifest(instructor_manifest: &Path) -> Result<String> {
    let text = fs::read_to_string(instructor_manifest)
        .with_context(|| format!("reading {}", instructor_manifest.display()))?;
    let mut manifest: Table = text.parse()?;
    let package = manifest
        .get_mut("package")
        .and_then(Value::as_table_mut)
        .context("the exercise manifest has no [package]")?;
    for auto in ["autobins", "autoexamples", "autotests", "autobenches"] {
        package.insert(auto.into(), Value::Boolean(false));
    }
    let mut hidden = Table::new();
    hidden.insert("name".into(), HIDDEN_TARGET.into());
    hidden.insert("path".into(), "main.rs".into());
    hidden.insert("harness".into(), false.into());
    manifest.insert("test".into(), Value::Array(vec![Value::Table(hidden)]));
    Ok(manifest.to_string())
}

/// A workspace manifest with the course's shared settings (dependencies with absolute
/// paths) and the staged members.
fn write_workspace_manifest(
    course_root: &Path,
    stage_root: &Path,
    members: &[String],
) -> Result<()> {
    let mut manifest = manifest::derived(course_root, members, &[])?;
    manifest::absolute_dependency_paths(&mut manifest, course_root);
    fs::write(stage_root.join("Cargo.toml"), manifest.to_string())?;
    Ok(())
}
