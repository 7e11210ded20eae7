//! Workspace manifests derived from the course's own `Cargo.toml`: the staged crates,
//! the students' export and the Gradescope bundle each need the course's shared
//! settings (`[workspace.package]`, `[workspace.dependencies]`, lints, profiles) with
//! their own members.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use toml::{Table, Value};

/// The course's manifest (at `root`) with `members` as the workspace members and
/// `default_members` as its default members (none when empty); everything else kept.
pub fn derived(root: &Path, members: &[String], default_members: &[String]) -> Result<Table> {
    let text = fs::read_to_string(root.join("Cargo.toml"))
        .with_context(|| format!("reading {}/Cargo.toml", root.display()))?;
    let mut manifest: Table = text.parse()?;
    let workspace = manifest
        .get_mut("workspace")
        .and_then(Value::as_table_mut)
        .context("the course's Cargo.toml has no [workspace]")?;
    let list =
        |names: &[String]| Value::Array(names.iter().map(|n| Value::from(n.as_str())).collect());
    workspace.insert("members".into(), list(members));
    if default_members.is_empty() {
        workspace.remove("default-members");
    } else {
        workspace.insert("default-members".into(), list(default_members));
    }
    Ok(manifest)
}

/// Makes the `path` of every `[workspace.dependencies]` entry absolute (relative to
/// `root`), for a workspace that lives elsewhere.
pub fn absolute_dependency_paths(manifest: &mut Table, root: &Path) {
    let deps = manifest
        .get_mut("workspace")
        .and_then(|w| w.get_mut("dependencies"))
        .and_then(Value::as_table_mut);
    for (_, dep) in deps.into_iter().flat_map(|deps| deps.iter_mut()) {
        if let Some(Value::String(path)) = dep.as_table_mut().and_then(|t| t.get_mut("path")) {
            *path = root.join(path.as_str()).display().to_string();
        }
    }
}
