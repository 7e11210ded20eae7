//! The submissions of a batch: each entry of the batch directory is one student's,
//! either a course checkout (a directory with `exercises/<name>/src`, possibly inside
//! one top-level folder) or an archive of one. Also: where a checkout's root is, and a
//! content hash that says whether a submission changed since it was last graded.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use walkdir::WalkDir;

use super::unpack::ArchiveKind;

/// One student's submission.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The file or directory name without its extension.
    pub student: String,
    pub path: PathBuf,
    /// `None` for a directory.
    pub archive: Option<ArchiveKind>,
}

/// The submissions directly under `dir`, by student name. Other files (notes, the
/// batch's own output directory) are skipped.
pub fn discover(dir: &Path, skip: &Path) -> Result<Vec<Submission>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || path == skip {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            found.push(Submission {
                student: name,
                path,
                archive: None,
            });
        } else if kind.is_file()
            && let Some((archive, student)) = ArchiveKind::of(&path)
        {
            found.push(Submission {
                student,
                path,
                archive: Some(archive),
            });
        }
    }
    found.sort_by(|a, b| a.student.cmp(&b.student).then(a.path.cmp(&b.path)));
    Ok(found)
}

/// The course checkout in `dir`: `dir` itself, or its one top-level folder.
pub fn checkout_root(dir: &Path) -> Result<PathBuf> {
    if dir.join("exercises").is_dir() {
        return Ok(dir.to_path_buf());
    }
    let folders: Vec<PathBuf> = fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    if let [only] = folders.as_slice()
        && only.join("exercises").is_dir()
    {
        return Ok(only.clone());
    }
    bail!("not a course checkout: no exercises/<name>/src in it or in one top-level folder")
}

/// A hash of what grading reads of a submission: the archive's bytes, or the files
/// under a checkout's `exercises/*/src` (names and contents; links are not followed).
pub fn content_hash(submission: &Submission, hasher: &mut Sha256) -> Result<()> {
    if submission.archive.is_some() {
        hash_file(&submission.path, hasher)?;
        return Ok(());
    }
    let Ok(root) = checkout_root(&submission.path) else {
        hasher.update(b"not a checkout");
        return Ok(());
    };
    let exercises = root.join("exercises");
    for entry in WalkDir::new(&exercises).sort_by_file_name() {
        let entry = entry?;
        let relative = entry.path().strip_prefix(&exercises)?;
        let in_src = relative
            .components()
            .nth(1)
            .is_some_and(|c| c.as_os_str() == "src");
        if in_src && entry.file_type().is_file() {
            hasher.update(relative.to_string_lossy().as_bytes());
            hasher.update([0]);
            hash_file(entry.path(), hasher)?;
        }
    }
    Ok(())
}

/// Adds the file at `path`, or the files under it, (names and contents) to `hasher`:
/// the course's grading material, so that a changed rubric or hidden test re-grades
/// everyone.
pub fn hash_tree(path: &Path, hasher: &mut Sha256) -> Result<()> {
    for entry in WalkDir::new(path).sort_by_file_name() {
        let entry = entry?;
        if entry.file_type().is_file() {
            hasher.update(entry.path().to_string_lossy().as_bytes());
            hash_file(entry.path(), hasher)?;
        }
    }
    Ok(())
}

fn hash_file(path: &Path, hasher: &mut Sha256) -> Result<()> {
    let mut file = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    std::io::copy(&mut file, hasher)?;
    Ok(())
}
