//! `grader check` on a small fixture course broken in known ways (each problem must be
//! listed), and `grader export` into a temporary directory: the student repository must
//! build on its own, its visible tests must fail on the stubs, and nothing of the
//! grader (solutions, hidden tests, rubrics) may leak into it.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use support::{copy_dir, course_root, grader, stdout_of};

/// Taken by each test for its whole run: the course's own check grades timing-sensitive
/// hidden tests, which must not share the machine's two cores with the other tests'
/// cargo builds.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// This file's scratch area under the course's `target/`: its cargo builds share one
/// target directory there, apart from the default grader scratch.
fn scratch() -> PathBuf {
    course_root().join("target").join("fg-check-export")
}

/// A one-exercise course (`procesos`) copied from this one into a temporary directory.
fn fixture_course() -> tempfile::TempDir {
    let root = course_root();
    let dir = tempfile::Builder::new()
        .prefix("forklab-course-")
        .tempdir()
        .unwrap();
    let to = dir.path();
    let mut manifest: toml::Table = fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let workspace = manifest["workspace"].as_table_mut().unwrap();
    workspace.insert("members".into(), vec!["exercises/*", "solutions/*"].into());
    workspace.remove("default-members");
    fs::write(to.join("Cargo.toml"), manifest.to_string()).unwrap();
    fs::copy(root.join("Cargo.lock"), to.join("Cargo.lock")).unwrap();
    for dir in [
        "exercises/procesos",
        "exercises/testkit",
        "solutions/procesos",
    ] {
        copy_dir(&root.join(dir), &to.join(dir));
    }
    let mut course: toml::Table = fs::read_to_string(root.join("grader/course.toml"))
        .unwrap()
        .parse()
        .unwrap();
    course.insert("exercises".into(), vec!["procesos"].into());
    fs::create_dir_all(to.join("grader/rubric")).unwrap();
    fs::create_dir_all(to.join("grader/hidden")).unwrap();
    fs::write(to.join("grader/course.toml"), course.to_string()).unwrap();
    for file in ["rubric/procesos.toml", "hidden/procesos.rs"] {
        fs::copy(root.join("grader").join(file), to.join("grader").join(file)).unwrap();
    }
    dir
}

/// Replaces the one occurrence of `find` in `path`.
fn patch(path: &Path, find: &str, replace: &str) {
    let text = fs::read_to_string(path).unwrap();
    assert_eq!(
        text.matches(find).count(),
        1,
        "{find:?} in {}",
        path.display()
    );
    fs::write(path, text.replacen(find, replace, 1)).unwrap();
}

#[test]
fn the_course_passes_its_own_check() {
    let _alone = one_at_a_time();
    let stdout = stdout_of(
        grader()
            .arg("--scratch")
            .arg(scratch().join("course"))
            .arg("check"),
    );
    assert!(stdout.ends_with("no problems\n"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn check_lists_every_problem_of_a_broken_course() {
    let _alone = one_at_a_time();
    let course = fixture_course();
    let root = course.path();
    // A statement without its English section.
    patch(
        &root.join("exercises/procesos/README.md"),
        "\n## English\n",
        "\n",
    );
    // A rubric entry without a hidden test.
    let rubric = root.join("grader/rubric/procesos.toml");
    let mut text = fs::read_to_string(&rubric).unwrap();
    text += "a_rubric_entry_without_a_test = { points = 1 }\n";
    fs::write(&rubric, text).unwrap();
    // A "stub" that passes its tests: the solution's code in exercises/.
    fs::remove_dir_all(root.join("exercises/procesos/src")).unwrap();
    copy_dir(
        &root.join("solutions/procesos/src"),
        &root.join("exercises/procesos/src"),
    );

    let output = grader()
        .arg("--course")
        .arg(root)
        .arg("--scratch")
        .arg(scratch().join("fixture"))
        .arg("check")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "FAIL statement",
        "- procesos [statement]: README.md has no English section",
        "FAIL rubric",
        "- procesos [rubric]: rubric entries without a hidden test: a_rubric_entry_without_a_test",
        "FAIL cargo test, stubs",
        "- procesos [cargo test, stubs]: procesos passes: ",
        "FAIL graded tests, stubs",
        "- procesos [graded tests, stubs]: the stub passes `",
        // What is not broken is not reported. (Not "graded tests, solutions": under
        // load, procesos' `is_alive_tracks_the_child` can fail the reference solution.)
        "ok   cargo test, solutions",
        "ok   rustfmt",
        "ok   clippy",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // Tests run in parallel: the passing ones are listed in any order.
    let passing = stdout
        .lines()
        .find(|l| l.contains("procesos passes: "))
        .unwrap();
    assert!(
        passing.contains("a_child_that_returns_exits_with_code_zero"),
        "{passing}"
    );
}

#[test]
fn export_writes_a_student_repository_that_builds_and_fails_on_the_stubs() {
    let _alone = one_at_a_time();
    let root = course_root();
    let temp = tempfile::Builder::new()
        .prefix("forklab-export-")
        .tempdir()
        .unwrap();
    let repo = temp.path().join("student");
    grader()
        .arg("export")
        .arg(&repo)
        .assert()
        .success()
        .stdout(predicates::str::contains("grader export: wrote"));

    let course = grader::course::Course::load(&root).unwrap();
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "README.md",
        ".gitignore",
        ".github/workflows/classroom.yml",
        "exercises/testkit/Cargo.toml",
    ] {
        assert!(repo.join(file).is_file(), "{file} was not written");
    }
    for exercise in &course.exercises {
        assert!(
            repo.join("exercises")
                .join(&exercise.name)
                .join("src/lib.rs")
                .is_file()
        );
    }
    for absent in ["solutions", "grader"] {
        assert!(
            !repo.join(absent).exists(),
            "{absent}/ leaked into the export"
        );
    }

    // No hidden test name leaks (those the visible tests do not share by chance).
    let visible_text = all_text(&root.join("exercises"));
    let hidden_only: Vec<&String> = course
        .exercises
        .iter()
        .flat_map(|e| e.rubric.keys())
        .filter(|name| !visible_text.contains(name.as_str()))
        .collect();
    assert!(
        !hidden_only.is_empty(),
        "no hidden-only test name to look for"
    );
    let exported_text = all_text(&repo);
    for name in hidden_only {
        assert!(
            !exported_text.contains(name.as_str()),
            "hidden test {name} leaked"
        );
    }

    // The Classroom workflow: one step per exercise, then the reporter over all of them.
    let workflow = fs::read_to_string(repo.join(".github/workflows/classroom.yml")).unwrap();
    let names: Vec<&str> = course.exercises.iter().map(|e| e.name.as_str()).collect();
    for name in &names {
        assert!(workflow.contains(&format!("command: cargo test -p {name}\n")));
        assert!(workflow.contains(&format!("steps.{name}.outputs.result")));
    }
    assert_eq!(workflow.matches("max-score: 10\n").count(), names.len());
    assert!(workflow.contains(&format!("runners: {}\n", names.join(","))));

    // The export builds on its own, offline, against the course's locked versions, and
    // every visible test fails on the stubs.
    let with_visible_tests: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| {
            repo.join("exercises")
                .join(name)
                .join("tests/visible.rs")
                .is_file()
        })
        .collect();
    let mut test = Command::new(env!("CARGO"));
    test.current_dir(&repo)
        .env("CARGO_TARGET_DIR", scratch().join("export-target"))
        .args(["test", "--offline", "--locked", "--no-fail-fast"]);
    for name in &with_visible_tests {
        test.args(["-p", name]);
    }
    let output = test.args(["--test", "visible"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the stubs' visible tests passed:\n{stdout}"
    );
    assert!(
        !stderr.contains("error[E"),
        "the export does not compile:\n{stderr}"
    );
    let summaries: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("test result:"))
        .collect();
    assert_eq!(
        summaries.len(),
        with_visible_tests.len(),
        "{stdout}\n{stderr}"
    );
    for summary in summaries {
        assert!(
            summary.starts_with("test result: FAILED. 0 passed;"),
            "{summary}"
        );
    }
}

/// The text of every file under `dir`, concatenated.
fn all_text(dir: &Path) -> String {
    let mut text = String::new();
    for entry in walkdir::WalkDir::new(dir).into_iter().flatten() {
        if entry.file_type().is_file() {
            text += &String::from_utf8_lossy(&fs::read(entry.path()).unwrap());
        }
    }
    text
}
