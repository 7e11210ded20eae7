//! The corpus of faulty submissions: each file of `tests/faulty/` describes a small
//! variant of the reference solutions (text patches, extra files) and the verdict the
//! grader must give it. One trial per file, run one at a time (tests that judge
//! parallelism need the machine's cores). Each trial also checks that no process (nor
//! test cgroup) of the run is left and that the submission was not written to; the
//! whole run checks that no file of the course outside `target/` changed.

mod support;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use libtest_mimic::{Arguments, Failed, Trial};
use serde::Deserialize;
use serde_json::Value;
use support::{
    Submission, course_root, exercise, grade_json, stray_test_processes, tree_fingerprint,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    /// The exercise the patches apply to.
    exercise: String,
    /// The exercises to grade (default: just `exercise`).
    grade: Option<Vec<String>>,
    /// Per-test timeout in seconds for this run.
    timeout: Option<f64>,
    /// Limits of grader/course.toml overridden for this run.
    #[serde(default)]
    limits: IndexMap<String, toml::Value>,
    /// Extra grader flags for this run (e.g. `--no-ptrace`).
    #[serde(default)]
    flags: Vec<String>,
    /// A defence the case needs from the machine (`build-sandbox`: mount namespaces);
    /// where the report says it was not active, the case only checks that grading ran.
    requires: Option<String>,
    #[serde(default)]
    patch: Vec<Patch>,
    #[serde(default)]
    write: Vec<WriteFile>,
    /// Keyed by `exercise` or `exercise::test`.
    expect: IndexMap<String, Expectation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    #[serde(default = "lib_rs")]
    file: String,
    find: String,
    replace: String,
}

fn lib_rs() -> String {
    "lib.rs".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteFile {
    /// Relative to the submission's root.
    path: String,
    text: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    compiled: Option<bool>,
    status: Option<String>,
    score: Option<f64>,
    full_marks: Option<bool>,
    /// A piece of text the message must contain.
    message: Option<String>,
    /// A piece of text the message must contain when the run had the cgroup
    /// `pids.max` backstop (the report's supervision line says which caps were active).
    message_with_cgroup: Option<String>,
    /// A piece of text the captured output must contain.
    output: Option<String>,
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faulty");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let trials = files
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            Trial::test(name, move || check(&path))
        })
        .collect();
    let course_before = tree_fingerprint(&course_root());
    let conclusion = libtest_mimic::run(&args, trials);
    let changed = changed_files(&course_before, &tree_fingerprint(&course_root()));
    if !changed.is_empty() && !args.list {
        eprintln!(
            "grading the corpus changed files of the course:\n{}",
            changed.join("\n")
        );
        std::process::exit(101);
    }
    conclusion.exit();
}

fn changed_files(
    before: &std::collections::BTreeMap<PathBuf, (u64, std::time::SystemTime)>,
    after: &std::collections::BTreeMap<PathBuf, (u64, std::time::SystemTime)>,
) -> Vec<String> {
    let mut changed: Vec<String> = before
        .iter()
        .filter(|(path, meta)| after.get(*path) != Some(meta))
        .map(|(path, _)| format!("changed or removed: {}", path.display()))
        .collect();
    changed.extend(
        after
            .keys()
            .filter(|path| !before.contains_key(*path))
            .map(|path| format!("created: {}", path.display())),
    );
    changed
}

fn check(path: &Path) -> Result<(), Failed> {
    let fixture: Fixture = toml::from_str(&std::fs::read_to_string(path)?)?;
    let submission = Submission::from_solutions();
    for patch in &fixture.patch {
        submission.patch(&fixture.exercise, &patch.file, &patch.find, &patch.replace);
    }
    for file in &fixture.write {
        submission.write(&file.path, &file.text);
    }
    let mut args = vec![
        "--submission".to_owned(),
        submission.path().display().to_string(),
    ];
    for name in fixture
        .grade
        .clone()
        .unwrap_or_else(|| vec![fixture.exercise.clone()])
    {
        args.extend(["--exercise".to_owned(), name]);
    }
    if let Some(timeout) = fixture.timeout {
        args.extend(["--timeout".to_owned(), timeout.to_string()]);
    }
    for (key, value) in &fixture.limits {
        args.extend(["--limit".to_owned(), format!("{key}={value}")]);
    }
    args.extend(fixture.flags.iter().cloned());
    let submitted = tree_fingerprint(submission.path());
    let report = grade_json(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut problems = Vec::new();
    if tree_fingerprint(submission.path()) != submitted {
        problems.push("grading wrote into the submission's checkout".to_owned());
    }
    let strays = stray_test_processes();
    if !strays.is_empty() {
        problems.push(format!(
            "processes of the run were left behind:\n{}",
            strays.join("\n")
        ));
    }
    let cgroups = grader::supervise::cgroup::leftovers();
    if !cgroups.is_empty() {
        problems.push(format!("cgroups of the run were left behind: {cgroups:?}"));
    }
    // A faulty submission must fail for its own reason, not because a patch broke the
    // build: every graded exercise compiles unless the fixture says otherwise.
    for ex in report["exercises"].as_array().unwrap() {
        let name = ex["name"].as_str().unwrap();
        let may_fail = fixture
            .expect
            .get(name)
            .is_some_and(|e| e.compiled == Some(false));
        if ex["compiled"] != true && !may_fail {
            problems.push(format!("{name} did not compile: {}", ex["message"]));
        }
    }
    let filesystem = report["supervision"]["filesystem"].as_str().unwrap_or("");
    if fixture.requires.as_deref() == Some("build-sandbox")
        && !filesystem.contains("the build sees neither")
    {
        eprintln!(
            "{}: no build sandbox on this machine ({filesystem}): verdicts not checked",
            path.display()
        );
        return if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n").into())
        };
    }
    let cgroup = report["supervision"]["process_cap"]
        .as_str()
        .is_some_and(|cap| cap.contains("cgroup pids.max ="));
    for (key, expected) in &fixture.expect {
        let found = find(&report, key);
        compare(key, found, expected, cgroup, &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\nreport:\n{report:#}", problems.join("\n")).into())
    }
}

fn find<'r>(report: &'r Value, key: &str) -> &'r Value {
    match key.split_once("::") {
        None => exercise(report, key),
        Some((ex, test)) => exercise(report, ex)["tests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == test)
            .unwrap_or_else(|| panic!("no test {key} in the report")),
    }
}

fn compare(
    key: &str,
    found: &Value,
    expected: &Expectation,
    cgroup: bool,
    problems: &mut Vec<String>,
) {
    let mut check = |field: &str, ok: bool, wanted: String| {
        if !ok {
            problems.push(format!(
                "{key}: {field} should be {wanted}, found {}",
                found[field]
            ));
        }
    };
    if let Some(compiled) = expected.compiled {
        check(
            "compiled",
            found["compiled"] == compiled,
            compiled.to_string(),
        );
    }
    if let Some(status) = &expected.status {
        check("status", found["status"] == status.as_str(), status.clone());
    }
    if let Some(score) = expected.score {
        check(
            "score",
            found["score"].as_f64() == Some(score),
            score.to_string(),
        );
    }
    if expected.full_marks == Some(true) {
        check(
            "score",
            found["score"] == found["max_score"],
            "the maximum".to_owned(),
        );
    }
    if let Some(text) = &expected.message {
        let message = found["message"].as_str().unwrap_or_default();
        check(
            "message",
            message.contains(text.as_str()),
            format!("containing {text:?}"),
        );
    }
    if let Some(text) = expected.message_with_cgroup.as_ref().filter(|_| cgroup) {
        let message = found["message"].as_str().unwrap_or_default();
        check(
            "message",
            message.contains(text.as_str()),
            format!("containing {text:?} (the cgroup backstop was active)"),
        );
    }
    if let Some(text) = &expected.output {
        let output = found["output"].as_str().unwrap_or_default();
        check(
            "output",
            output.contains(text.as_str()),
            format!("containing {text:?}"),
        );
    }
}
