//! `grader export DIR`: writes the student repository. It holds the course's
//! `exercises/` (stubs, statements, visible tests, the shared test support), a workspace
//! manifest with the course's shared settings and its `Cargo.lock`, a student README, a
//! `.gitignore` and a GitHub Classroom workflow that runs each exercise's visible tests.
//! No solutions, hidden tests, rubrics or grader. The texts come from
//! `grader/templates/`.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use toml::{Table, Value};

use crate::course::Course;
use crate::manifest;

/// Points of one exercise on GitHub Classroom, earned when all its visible tests pass.
pub const POINTS_PER_EXERCISE: u32 = 10;

const README_TEMPLATE: &str = include_str!("../templates/student-README.md");
const WORKFLOW_TEMPLATE: &str = include_str!("../templates/classroom.yml");
const WORKFLOW_STEP_TEMPLATE: &str = include_str!("../templates/classroom-step.yml");
const GITIGNORE: &str = "/target\n";

/// What was written.
#[derive(Debug, Clone)]
pub struct Exported {
    pub dir: PathBuf,
    /// The exercises' package names, in the course's order.
    pub exercises: Vec<String>,
    /// Other packages copied from `exercises/` (the shared test support).
    pub support: Vec<String>,
    pub files: usize,
    /// Whether `Cargo.lock` was pruned to the exported packages (needs the crates in
    /// cargo's local cache); otherwise it is the course's, which cargo prunes on first use.
    pub lock_pruned: bool,
}

impl Exported {
    /// A short account of the export.
    pub fn render(&self) -> String {
        let mut text = format!("grader export: wrote {}\n", self.dir.display());
        let _ = writeln!(
            text,
            "  exercises/  {} ({} files in all), with the shared support: {}",
            self.exercises.join(", "),
            self.files,
            self.support.join(", ")
        );
        let _ = writeln!(
            text,
            "  Cargo.toml  workspace of exercises/*, the course's package settings, dependencies and lints"
        );
        let _ = writeln!(
            text,
            "  Cargo.lock  {}",
            if self.lock_pruned {
                "the course's versions, pruned to the exported packages"
            } else {
                "the course's, not pruned (`cargo update --workspace --offline` failed): cargo prunes it on first use"
            }
        );
        let _ = writeln!(text, "  README.md   for students; .gitignore");
        let _ = writeln!(
            text,
            "  .github/workflows/classroom.yml  {} steps (`cargo test -p NAME`), {POINTS_PER_EXERCISE} points each, {} in all",
            self.exercises.len(),
            self.exercises.len() as u32 * POINTS_PER_EXERCISE
        );
        text += "  left out: solutions/, grader/ (hidden tests, rubrics, course.toml)\n";
        text
    }
}

/// Creates `dir` for a command's output, or takes it as it is if it exists and is
/// empty; a directory with anything in it is refused with `advice`.
pub fn create_empty_dir(dir: &Path, advice: &str) -> Result<()> {
    if dir.exists() && fs::read_dir(dir)?.next().is_some() {
        bail!("{} is not empty: {advice}", dir.display());
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Writes the student repository of `course` into `dir` (absent or empty).
pub fn export(course: &Course, dir: &Path) -> Result<Exported> {
    create_empty_dir(dir, "export into a new directory")?;
    let dir = fs::canonicalize(dir)?;
    let manifest: Table = fs::read_to_string(course.root.join("Cargo.toml"))?.parse()?;

    let mut files = 0;
    let mut exercises = Vec::new();
    for exercise in &course.exercises {
        let from = course.root.join("exercises").join(&exercise.name);
        files += copy_package(&from, &dir.join("exercises").join(&exercise.name))?;
        exercises.push(package_name(&from)?);
    }
    let mut support = Vec::new();
    for relative in path_dependencies(&manifest) {
        let from = course.root.join(&relative);
        if !relative.starts_with("exercises") {
            bail!(
                "the workspace dependency at {relative} is outside exercises/: a student checkout would not have it"
            );
        }
        files += copy_package(&from, &dir.join(&relative))?;
        support.push(package_name(&from)?);
    }

    fs::write(dir.join("Cargo.toml"), workspace_manifest(&course.root)?)?;
    fs::copy(course.root.join("Cargo.lock"), dir.join("Cargo.lock"))
        .context("copying the course's Cargo.lock")?;
    let lock_pruned = prune_lockfile(&dir);
    fs::write(dir.join("README.md"), readme(course, &exercises)?)?;
    fs::write(dir.join(".gitignore"), GITIGNORE)?;
    let workflows = dir.join(".github").join("workflows");
    fs::create_dir_all(&workflows)?;
    fs::write(workflows.join("classroom.yml"), workflow(&exercises))?;
    Ok(Exported {
        dir,
        exercises,
        support,
        files,
        lock_pruned,
    })
}

/// Copies a package's files, leaving out any `target/`; returns how many.
fn copy_package(from: &Path, to: &Path) -> Result<usize> {
    if !from.join("Cargo.toml").is_file() {
        bail!("{} is not a cargo package", from.display());
    }
    let mut copied = 0;
    let walk = walkdir::WalkDir::new(from)
        .into_iter()
        .filter_entry(|e| e.file_name() != "target");
    for entry in walk {
        let entry = entry?;
        let target = to.join(entry.path().strip_prefix(from)?);
        if entry.file_type().is_dir() {
            fs::create_dir_all(&target)?;
        } else if entry.file_type().is_file() {
            fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
            copied += 1;
        }
    }
    Ok(copied)
}

fn package_name(package_dir: &Path) -> Result<String> {
    let manifest: Table = fs::read_to_string(package_dir.join("Cargo.toml"))?.parse()?;
    manifest
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("{} has no package name", package_dir.display()))
}

/// The `path`s of the course's `[workspace.dependencies]` (the shared test support).
fn path_dependencies(manifest: &Table) -> Vec<String> {
    let Some(Value::Table(deps)) = manifest
        .get("workspace")
        .and_then(|w| w.get("dependencies"))
    else {
        return Vec::new();
    };
    deps.values()
        .filter_map(|dep| dep.get("path").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

/// The student workspace: members `exercises/*`, and the course's package defaults,
/// dependencies, lints and profiles.
fn workspace_manifest(root: &Path) -> Result<String> {
    let manifest = manifest::derived(root, &["exercises/*".to_owned()], &[])?;
    Ok(format!(
        "# The forklab exercises: run one's visible tests with `cargo test -p NAME`.\n\n{manifest}"
    ))
}

/// Lets cargo drop the lock entries of packages the export does not have (the
/// grader's dependencies), offline, keeping every other version as the course locked it
/// (`cargo update --workspace` re-resolves only the workspace's own packages).
fn prune_lockfile(dir: &Path) -> bool {
    std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["update", "--workspace", "--offline", "--quiet"])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|output| output.status.success())
}

fn readme(course: &Course, packages: &[String]) -> Result<String> {
    let mut rows = String::new();
    for (number, (exercise, package)) in course.exercises.iter().zip(packages).enumerate() {
        let statement = course
            .root
            .join("exercises")
            .join(&exercise.name)
            .join("README.md");
        let title = fs::read_to_string(&statement)
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("# "))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| format!("`{}`", exercise.name));
        // The table numbers the exercises: drop a statement's own `N · `.
        let title = match title.split_once(" · ") {
            Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) => rest.to_owned(),
            _ => title,
        };
        let _ = writeln!(
            rows,
            "| {} | [{title}](exercises/{}/README.md) | `cargo test -p {package}` |",
            number + 1,
            exercise.name
        );
    }
    Ok(fill(
        README_TEMPLATE,
        &[
            ("points", &POINTS_PER_EXERCISE.to_string()),
            ("exercises", rows.trim_end()),
        ],
    ))
}

/// The Classroom workflow: one command-grader step per exercise, then the reporter.
fn workflow(packages: &[String]) -> String {
    let points = POINTS_PER_EXERCISE.to_string();
    let steps: Vec<String> = packages
        .iter()
        .map(|name| {
            fill(
                WORKFLOW_STEP_TEMPLATE,
                &[("name", name), ("points", &points)],
            )
        })
        .collect();
    let results: Vec<String> = packages
        .iter()
        .map(|name| {
            format!(
                "          {}_RESULTS: \"${{{{steps.{name}.outputs.result}}}}\"",
                name.to_uppercase()
            )
        })
        .collect();
    fill(
        WORKFLOW_TEMPLATE,
        &[
            ("points", &points),
            ("steps", steps.concat().trim_end()),
            ("results", &results.join("\n")),
            ("runners", &packages.join(",")),
        ],
    )
}

/// Replaces each `{{key}}` of `template` by its value.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    values
        .iter()
        .fold(template.to_owned(), |text, (key, value)| {
            text.replace(&format!("{{{{{key}}}}}", key = key), value)
        })
}
