//! The cargo packages of each exercise: the stub (`exercises/<name>`) and the reference
//! solution (`solutions/<name>`), found by their manifest's directory, whatever their
//! package names.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::course::Course;

/// Which of an exercise's two packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stub,
    Solution,
}

impl Kind {
    /// The directory of the course holding packages of this kind.
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Stub => "exercises",
            Kind::Solution => "solutions",
        }
    }
}

/// One package of an exercise, as cargo knows it.
#[derive(Debug, Clone)]
pub struct Package {
    pub exercise: String,
    pub kind: Kind,
    /// The cargo package name (`lock`, `lock-solution`).
    pub name: String,
    /// Cargo's package id, as in its JSON messages.
    pub id: String,
    pub dir: PathBuf,
    /// The source of its test target named `visible`, if it has one.
    pub visible_tests: Option<PathBuf>,
}

/// The stub and solution packages of every exercise of `course` that exist in its
/// workspace (a missing one is reported by the checks that need it).
pub fn find(course: &Course) -> Result<Vec<Package>> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(course.root.join("Cargo.toml"))
        .no_deps()
        .exec()
        .context("reading the course workspace with `cargo metadata`")?;
    let mut found = Vec::new();
    for exercise in &course.exercises {
        for kind in [Kind::Stub, Kind::Solution] {
            let dir = course.root.join(kind.dir()).join(&exercise.name);
            let manifest = dir.join("Cargo.toml");
            let Some(package) = metadata
                .workspace_packages()
                .into_iter()
                .find(|p| p.manifest_path.as_std_path() == manifest)
            else {
                continue;
            };
            found.push(Package {
                exercise: exercise.name.clone(),
                kind,
                name: package.name.to_string(),
                id: package.id.repr.clone(),
                dir,
                visible_tests: package
                    .targets
                    .iter()
                    .find(|t| t.name == "visible" && t.is_test())
                    .map(|t| t.src_path.clone().into_std_path_buf()),
            });
        }
    }
    Ok(found)
}

/// The package of `kind` of `exercise`, if the workspace has it.
pub fn of<'p>(packages: &'p [Package], exercise: &str, kind: Kind) -> Option<&'p Package> {
    packages
        .iter()
        .find(|p| p.exercise == exercise && p.kind == kind)
}
