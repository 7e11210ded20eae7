//! Shared support of the grader's own tests: running the grader binary, making
//! submissions from the solutions with small patches, reading its JSON reports.

#![allow(dead_code)] // each test file uses its own part of this module

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tempfile::TempDir;

/// The course workspace (the repository root).
pub fn course_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The grader binary, ready for arguments.
pub fn grader() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("grader").expect("the grader binary is built")
}

/// Runs `command`, which must succeed (a failure shows its output and errors);
/// returns what it printed.
pub fn stdout_of(command: &mut assert_cmd::Command) -> String {
    let output = command.output().unwrap();
    let stdout = String::from_utf8(output.stdout).expect("the grader prints UTF-8");
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs the grader with `args` plus `--format json`; returns the parsed report.
pub fn grade_json(args: &[&str]) -> Value {
    let stdout = stdout_of(grader().args(args).args(["--format", "json"]));
    serde_json::from_str(&stdout).expect("the grader prints a JSON report")
}

/// The exercise named `name` in a report.
pub fn exercise<'r>(report: &'r Value, name: &str) -> &'r Value {
    report["exercises"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no exercise {name} in the report"))
}

/// Processes still running a test binary built by the grader under this course's
/// default scratch area: after a grading run there must be none.
pub fn stray_test_processes() -> Vec<String> {
    let scratch = course_root().join("target").join("forklab-grader");
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(exe) = fs::read_link(entry.path().join("exe")) else {
            continue;
        };
        if exe.starts_with(&scratch) {
            found.push(format!(
                "pid {} running {}",
                entry.file_name().to_string_lossy(),
                exe.display()
            ));
        }
    }
    found
}

/// Size and modification time of every file under `root` except `target/` and `.git/`:
/// compared before and after grading, it shows any file written outside the scratch area.
pub fn tree_fingerprint(
    root: &Path,
) -> std::collections::BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut files = std::collections::BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if dir != root || (name != "target" && name != ".git") {
                    pending.push(path);
                }
            } else {
                files.insert(path, (meta.len(), meta.modified().unwrap()));
            }
        }
    }
    files
}

/// A student checkout in a temporary directory, made from the reference solutions.
pub struct Submission {
    dir: TempDir,
}

impl Submission {
    /// Every exercise's `src/` taken from `solutions/`.
    pub fn from_solutions() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("forklab-submission-")
            .tempdir()
            .unwrap();
        for entry in fs::read_dir(course_root().join("solutions")).unwrap() {
            let entry = entry.unwrap();
            let to = dir
                .path()
                .join("exercises")
                .join(entry.file_name())
                .join("src");
            copy_dir(&entry.path().join("src"), &to);
        }
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The path of `file` in the submitted `src/` of `exercise`.
    pub fn src_file(&self, exercise: &str, file: &str) -> PathBuf {
        self.dir
            .path()
            .join("exercises")
            .join(exercise)
            .join("src")
            .join(file)
    }

    /// Replaces the one occurrence of `find` by `replace` in `exercise`'s `src/file`.
    pub fn patch(&self, exercise: &str, file: &str, find: &str, replace: &str) {
        let path = self.src_file(exercise, file);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.matches(find).count(),
            1,
            "the patch text must occur exactly once in {exercise}/src/{file}: {find:?}"
        );
        fs::write(&path, text.replacen(find, replace, 1)).unwrap();
    }

    /// Copies the whole checkout to `to` (e.g. into a batch directory).
    pub fn copy_to(&self, to: &Path) {
        copy_dir(self.dir.path(), to);
    }

    /// Writes a file anywhere in the checkout (e.g. a `build.rs`).
    pub fn write(&self, relative: &str, text: &str) {
        let path = self.dir.path().join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
}

/// Copies the directory `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
