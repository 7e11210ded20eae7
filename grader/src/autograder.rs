//! `grader gradescope DIR`: writes a Gradescope autograder bundle. DIR gets the course
//! as Gradescope unpacks it into `/autograder/source` (workspace manifest, lock file,
//! `exercises/`, `grader/`; no `solutions/`, which code under test could read), with
//! `setup.sh` (installs the Rust toolchain, builds the grader, pre-builds the
//! dependencies) and `run_autograder` (grades `/autograder/submission` into
//! `/autograder/results/results.json`), and the same files zipped as
//! `autograder.zip`, the file to upload.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use walkdir::WalkDir;

use crate::course::Course;
use crate::{export, manifest};

const SETUP: &str = include_str!("../templates/gradescope-setup.sh");
const RUN_AUTOGRADER: &str = include_str!("../templates/gradescope-run_autograder.sh");
/// The zip to upload to Gradescope, inside DIR.
pub const ZIP: &str = "autograder.zip";
/// What of the course the bundle holds besides the workspace manifest.
const COPIED: [&str; 3] = ["Cargo.lock", "exercises", "grader"];

/// What was written.
pub struct Bundle {
    pub dir: PathBuf,
    pub files: usize,
    pub toolchain: String,
}

impl Bundle {
    pub fn render(&self) -> String {
        format!(
            "grader gradescope: wrote {dir}\n  \
             setup.sh        installs Rust {toolchain}, builds the grader, pre-builds the dependencies\n  \
             run_autograder  grades /autograder/submission into /autograder/results/results.json\n  \
             Cargo.toml, Cargo.lock, exercises/, grader/  the course ({files} files); left out: solutions/\n  \
             {ZIP}  all of the above: upload it as the assignment's autograder\n",
            dir = self.dir.display(),
            toolchain = self.toolchain,
            files = self.files,
        )
    }
}

/// Writes the bundle of `course` into `dir` (absent or empty).
pub fn write(course: &Course, dir: &Path) -> Result<Bundle> {
    export::create_empty_dir(dir, "write the bundle into a new directory")?;
    let toolchain = rust_version();
    let mut files = Vec::new();
    for name in COPIED {
        files.extend(copy_tree(&course.root, name, dir)?);
    }
    fs::write(dir.join("Cargo.toml"), workspace_manifest(&course.root)?)?;
    files.push(PathBuf::from("Cargo.toml"));
    let course_files = files.len();
    for (name, text) in [
        ("setup.sh", SETUP.replace("{toolchain}", &toolchain)),
        ("run_autograder", RUN_AUTOGRADER.to_owned()),
    ] {
        let path = dir.join(name);
        fs::write(&path, text)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        files.push(PathBuf::from(name));
    }
    write_zip(dir, &files)?;
    Ok(Bundle {
        dir: dir.to_path_buf(),
        files: course_files,
        toolchain,
    })
}

/// The version of the toolchain this course is built with here (`rustc --version`),
/// or `stable` if it cannot be told.
fn rust_version() -> String {
    Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8(out.stdout)
                .ok()?
                .split_whitespace()
                .nth(1)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "stable".to_owned())
}

/// The course's workspace manifest with only the members the bundle holds.
fn workspace_manifest(root: &Path) -> Result<String> {
    let members = ["exercises/*".to_owned(), "grader".to_owned()];
    Ok(manifest::derived(root, &members, &["grader".to_owned()])?.to_string())
}

/// Copies `root/name` (a file or a tree, without `target/` directories and links) into
/// `to`; returns the files copied, relative to `to`.
fn copy_tree(root: &Path, name: &str, to: &Path) -> Result<Vec<PathBuf>> {
    let mut copied = Vec::new();
    let walk = WalkDir::new(root.join(name))
        .into_iter()
        .filter_entry(|e| e.file_name() != "target");
    for entry in walk {
        let entry = entry?;
        let relative = entry.path().strip_prefix(root)?;
        if entry.file_type().is_dir() {
            fs::create_dir_all(to.join(relative))?;
        } else if entry.file_type().is_file() {
            fs::copy(entry.path(), to.join(relative))
                .with_context(|| format!("copying {}", entry.path().display()))?;
            copied.push(relative.to_path_buf());
        }
    }
    Ok(copied)
}

/// Zips `files` (relative to `dir`) into `dir/autograder.zip`, keeping their modes.
fn write_zip(dir: &Path, files: &[PathBuf]) -> Result<()> {
    let mut zip = zip::ZipWriter::new(fs::File::create(dir.join(ZIP))?);
    for file in files {
        let path = dir.join(file);
        let mode = fs::metadata(&path)?.permissions().mode();
        let options = zip::write::SimpleFileOptions::default().unix_permissions(mode & 0o777);
        zip.start_file(file.to_string_lossy(), options)?;
        zip.write_all(&fs::read(&path)?)?;
    }
    zip.finish()?;
    Ok(())
}
