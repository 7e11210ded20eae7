//! Lints: every stub and solution package is `cargo fmt --check`-clean and
//! `cargo clippy --all-targets -- -D warnings`-clean (a stub's
//! `#![allow(unused_variables, dead_code)]` line silences what its `todo!()`s leave
//! unused).

use std::path::Path;

use anyhow::{Context, Result};

use super::packages::Package;
use super::{Aspect, Outcome, cargo, head};
use crate::course::Course;

/// Runs rustfmt and clippy on each package; returns their two outcomes.
pub fn check(course: &Course, packages: &[Package], target_dir: &Path) -> Result<Vec<Outcome>> {
    let mut rustfmt = Outcome::new(
        Aspect::Rustfmt,
        format!("cargo fmt --check on {} packages", packages.len()),
    );
    let mut clippy = Outcome::new(
        Aspect::Clippy,
        format!(
            "cargo clippy --all-targets -- -D warnings on {} packages",
            packages.len()
        ),
    );
    // Paths in messages are shown from the course root.
    let root = std::fs::canonicalize(&course.root)?;
    let shown = |text: &str| text.replace(&format!("{}/", root.display()), "");
    for package in packages {
        let fmt = cargo(&course.root, target_dir)
            .args(["fmt", "--check", "-p", &package.name])
            .output()
            .context("running cargo fmt")?;
        if !fmt.status.success() {
            let diff = String::from_utf8_lossy(&fmt.stdout);
            let diffs: Vec<&str> = diff.lines().filter(|l| l.starts_with("Diff in ")).collect();
            // A solution's visible tests are the exercise's file: reported once, there.
            let own = format!(
                "Diff in {}/",
                std::fs::canonicalize(&package.dir)?.display()
            );
            let own_diffs: Vec<&str> = diffs
                .iter()
                .copied()
                .filter(|l| l.starts_with(&own))
                .collect();
            let detail = if diffs.is_empty() {
                Some(head(&String::from_utf8_lossy(&fmt.stderr), 6))
            } else if own_diffs.is_empty() {
                None
            } else {
                Some(head(&own_diffs.join("\n"), 6))
            };
            if let Some(detail) = detail {
                rustfmt.problem(
                    &package.exercise,
                    format!("{} is not rustfmt-clean:\n{}", package.name, shown(&detail)),
                );
            }
        }
        let lints = cargo(&course.root, target_dir)
            .args([
                "clippy",
                "--quiet",
                "--all-targets",
                "--message-format",
                "short",
            ])
            .args(["-p", &package.name, "--", "-D", "warnings"])
            .output()
            .context("running cargo clippy")?;
        if !lints.status.success() {
            let stderr = String::from_utf8_lossy(&lints.stderr);
            let found: Vec<&str> = stderr
                .lines()
                .filter(|l| l.contains("error") || l.contains("warning"))
                .collect();
            clippy.problem(
                &package.exercise,
                format!(
                    "{} is not clippy-clean:\n{}",
                    package.name,
                    shown(&head(&found.join("\n"), 8))
                ),
            );
        }
    }
    Ok(vec![rustfmt, clippy])
}
