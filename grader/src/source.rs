//! Where the code being graded comes from: the course's own `exercises/` (pristine
//! stubs, or a student's edits in place), its `solutions/`, or another checkout.

use std::path::{Path, PathBuf};

/// The tree whose `src/` directories are graded. Only `src/` is ever read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `<course>/exercises/<name>/src`.
    Exercises,
    /// `<course>/solutions/<name>/src`.
    Solutions,
    /// `<checkout>/exercises/<name>/src` of another checkout (a student's).
    Submission(PathBuf),
}

impl Source {
    /// The `src/` directory of exercise `name`.
    pub fn src_dir(&self, course_root: &Path, name: &str) -> PathBuf {
        match self {
            Source::Exercises => course_root.join("exercises").join(name).join("src"),
            Source::Solutions => course_root.join("solutions").join(name).join("src"),
            Source::Submission(checkout) => checkout.join("exercises").join(name).join("src"),
        }
    }

    /// A short label for reports and scratch directory names.
    pub fn label(&self) -> String {
        match self {
            Source::Exercises => "exercises".to_owned(),
            Source::Solutions => "solutions".to_owned(),
            Source::Submission(path) => path.display().to_string(),
        }
    }
}
