//! The class-scale commands: `grader batch DIR` (gradebook, feedback files, unchanged
//! submissions skipped, broken and hostile submissions reported without stopping the
//! batch), `--format gradescope` and `--format junit`, and `grader gradescope DIR` (the
//! bundle, and its `run_autograder` grading a submission into a valid results.json).

mod support;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{Submission, course_root, grader, stdout_of};

/// The scratch area these tests share (warm after the first build), apart from the
/// default one.
fn scratch() -> PathBuf {
    course_root().join("target").join("grader-tests-batch")
}

/// A temporary directory under the scratch area, for a course copy: a course under
/// `/tmp` would be hidden from the build by its sandbox's private `/tmp`.
fn course_workdir() -> tempfile::TempDir {
    fs::create_dir_all(scratch()).unwrap();
    tempfile::tempdir_in(scratch()).unwrap()
}

/// Makes the exit-zero mistake of the faulty corpus: 2 of 15 points on `procesos`.
fn failing_submission() -> Submission {
    let submission = Submission::from_solutions();
    submission.patch(
        "procesos",
        "lib.rs",
        "        let pid = self.started_pid()?;\n        while self.exitcode.is_none() {",
        "        let pid = self.started_pid()?;\n        std::process::exit(0);\n        #[allow(unreachable_code)]\n        while self.exitcode.is_none() {",
    );
    submission
}

/// Zips the files under `dir` into `zip`, under `prefix` in the archive.
fn zip_dir(dir: &Path, zip: &Path) {
    let mut writer = zip::ZipWriter::new(fs::File::create(zip).unwrap());
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let name = entry.path().strip_prefix(dir).unwrap();
            writer
                .start_file(
                    name.to_string_lossy(),
                    zip::write::SimpleFileOptions::default(),
                )
                .unwrap();
            writer.write_all(&fs::read(entry.path()).unwrap()).unwrap();
        }
    }
    writer.finish().unwrap();
}

/// A `.tar.gz` of `dir`, inside one top-level folder `folder`.
fn tar_gz_dir(dir: &Path, folder: &str, archive: &Path) {
    let gz = flate2::write::GzEncoder::new(
        fs::File::create(archive).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all(folder, dir).unwrap();
    tar.into_inner().unwrap().finish().unwrap();
}

/// A `.tar.gz` whose `lib.rs` is a link to a file outside the archive.
fn tar_gz_with_escaping_link(archive: &Path) {
    let gz = flate2::write::GzEncoder::new(
        fs::File::create(archive).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    tar.append_link(&mut header, "exercises/procesos/src/lib.rs", "/etc/passwd")
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap();
}

/// Runs `grader --exercise procesos ... batch DIR --out OUT` and returns its summary.
fn batch(dir: &Path, out: &Path, extra: &[&str]) -> String {
    stdout_of(
        grader()
            .args(["--exercise", "procesos", "--scratch"])
            .arg(scratch())
            .arg("batch")
            .arg(dir)
            .arg("--out")
            .arg(out)
            .args(["--jobs", "2"])
            .args(extra),
    )
}

/// The gradebook's rows as `student -> (procesos, total, status)`.
fn gradebook(out: &Path) -> std::collections::BTreeMap<String, (String, String, String)> {
    let mut reader = csv::Reader::from_path(out.join("grades.csv")).unwrap();
    assert_eq!(
        reader.headers().unwrap(),
        vec!["student", "procesos", "total", "status"]
    );
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (
                r[0].to_owned(),
                (r[1].to_owned(), r[2].to_owned(), r[3].to_owned()),
            )
        })
        .collect()
}

fn status_of(out: &Path, student: &str) -> String {
    gradebook(out)[student].2.clone()
}

#[test]
fn a_batch_grades_checkouts_and_archives_and_reports_broken_ones() {
    let work = tempfile::tempdir().unwrap();
    let subs = work.path().join("subs");
    let out = work.path().join("grades");
    fs::create_dir_all(&subs).unwrap();
    let solved = Submission::from_solutions();
    solved.copy_to(&subs.join("alice"));
    zip_dir(failing_submission().path(), &subs.join("bob.zip"));
    tar_gz_dir(solved.path(), "forklab-main", &subs.join("carol.tar.gz"));
    // Hostile or broken: a zip entry out of the tree, a link out of the tree, not a
    // checkout, a corrupt archive; and a file that is no submission at all.
    let mut zip = zip::ZipWriter::new(fs::File::create(subs.join("mallory.zip")).unwrap());
    zip.start_file("../escaped.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(b"out of the tree").unwrap();
    zip.finish().unwrap();
    tar_gz_with_escaping_link(&subs.join("trudy.tar.gz"));
    fs::create_dir_all(subs.join("empty")).unwrap();
    fs::write(subs.join("corrupt.zip"), b"not a zip").unwrap();
    fs::write(subs.join("notes.txt"), b"not a submission").unwrap();

    let summary = batch(&subs, &out, &[]);
    assert!(
        summary.contains("7 submissions"),
        "the summary counts the submissions:\n{summary}"
    );
    let book = gradebook(&out);
    let students: Vec<&str> = book.keys().map(String::as_str).collect();
    assert_eq!(
        students,
        [
            "alice", "bob", "carol", "corrupt", "empty", "mallory", "trudy"
        ]
    );
    assert_eq!(book["alice"], ("15".into(), "15".into(), "graded".into()));
    assert_eq!(book["bob"], ("2".into(), "2".into(), "graded".into()));
    assert_eq!(book["carol"], ("15".into(), "15".into(), "graded".into()));
    assert!(
        book["mallory"].2.contains("points out of the archive"),
        "{book:?}"
    );
    assert!(
        book["trudy"].2.contains("points out of the archive"),
        "{book:?}"
    );
    assert!(
        book["empty"].2.contains("not a course checkout"),
        "{book:?}"
    );
    assert!(book["corrupt"].2.starts_with("error: "), "{book:?}");
    assert_eq!(book["mallory"].1, "", "an error row has no total");
    assert!(!work.path().join("escaped.txt").exists());

    let alice: Value = serde_json::from_slice(&fs::read(out.join("alice.json")).unwrap()).unwrap();
    assert_eq!(alice["score"], 15.0);
    let bob = fs::read_to_string(out.join("bob.md")).unwrap();
    assert!(bob.contains("**Score: 2 / 15**"), "{bob}");
    assert!(bob.contains("join_reaps_the_child"), "{bob}");
    let mallory = fs::read_to_string(out.join("mallory.md")).unwrap();
    assert!(mallory.contains("could not be graded"), "{mallory}");

    // A re-run grades only what changed; --force grades everything again.
    batch(&subs, &out, &[]);
    for student in ["alice", "bob", "carol"] {
        assert_eq!(status_of(&out, student), "unchanged");
    }
    assert!(status_of(&out, "mallory").contains("points out of the archive"));
    let lib = subs.join("alice/exercises/procesos/src/lib.rs");
    let text = fs::read_to_string(&lib).unwrap();
    fs::write(&lib, text + "\n// a late change\n").unwrap();
    batch(&subs, &out, &[]);
    assert_eq!(status_of(&out, "alice"), "graded");
    assert_eq!(status_of(&out, "bob"), "unchanged");
    batch(&subs, &out, &["--force"]);
    for student in ["alice", "bob", "carol"] {
        assert_eq!(status_of(&out, student), "graded");
    }
}

#[test]
fn an_oversized_archive_is_refused_after_the_cap_not_unpacked_whole() {
    let work = tempfile::tempdir().unwrap();
    let subs = work.path().join("subs");
    let out = work.path().join("grades");
    fs::create_dir_all(&subs).unwrap();
    // 80 MiB of zeros compress to a small zip; the cap is 64 MiB.
    let mut zip = zip::ZipWriter::new(fs::File::create(subs.join("bomb.zip")).unwrap());
    zip.start_file(
        "exercises/procesos/src/lib.rs",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..80 {
        zip.write_all(&zeros).unwrap();
    }
    zip.finish().unwrap();
    batch(&subs, &out, &[]);
    let status = status_of(&out, "bomb");
    assert!(status.contains("more than 64 MiB"), "{status}");
    assert!(
        !scratch().join("batch").join("bomb").exists(),
        "the partly unpacked archive is removed"
    );
}

/// Grades `submission`'s `procesos` with `--format FORMAT`; returns stdout.
fn grade_as(submission: &Submission, format: &str, course: Option<&Path>) -> String {
    let mut command = grader();
    if let Some(course) = course {
        command.arg("--course").arg(course);
    }
    command
        .args(["--exercise", "procesos", "--scratch"])
        .arg(scratch())
        .arg("--submission")
        .arg(submission.path())
        .args(["--format", format]);
    stdout_of(&mut command)
}

/// Checks `results` against Gradescope's fields; returns the tests by name.
fn check_gradescope_results(results: &Value) -> std::collections::BTreeMap<String, Value> {
    assert!(results["execution_time"].as_f64().unwrap() >= 0.0);
    assert!(results["output"].is_string());
    assert!(results["score"].is_number());
    let mut by_name = std::collections::BTreeMap::new();
    for test in results["tests"].as_array().unwrap() {
        for field in ["name", "number", "output"] {
            assert!(test[field].is_string(), "{field} of {test}");
        }
        for field in ["score", "max_score"] {
            assert!(test[field].is_number(), "{field} of {test}");
        }
        assert!(
            ["passed", "failed"].contains(&test["status"].as_str().unwrap()),
            "{test}"
        );
        assert_eq!(test["output_format"], "md");
        assert!(
            ["hidden", "after_due_date", "after_published", "visible"]
                .contains(&test["visibility"].as_str().unwrap()),
            "{test}"
        );
        by_name.insert(test["name"].as_str().unwrap().to_owned(), test.clone());
    }
    by_name
}

#[test]
fn gradescope_results_carry_every_field_and_the_rubric_visibility() {
    let submission = failing_submission();
    let results: Value = serde_json::from_str(&grade_as(&submission, "gradescope", None)).unwrap();
    let tests = check_gradescope_results(&results);
    assert_eq!(results["score"], 2.0);
    let (visible, hidden): (Vec<&Value>, Vec<&Value>) = tests.values().partition(|t| {
        t["name"]
            .as_str()
            .unwrap()
            .starts_with("procesos::visible::")
    });
    assert_eq!(hidden.len(), 10, "one entry per hidden test of procesos");
    assert_eq!(visible.len(), 13, "one entry per visible test of procesos");
    let failed = &tests["procesos::join_reaps_the_child"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["score"], 0.0);
    assert!(
        failed["output"].as_str().unwrap().contains("called exit()"),
        "{failed}"
    );
    assert!(hidden.iter().all(|t| t["visibility"] == "after_published"));
    assert!(visible.iter().all(|t| t["visibility"] == "visible"));
    assert!(visible.iter().all(|t| t["max_score"] == 0.0));
    // exit(0) in join passes under libtest (the whole binary exits 0); not here.
    let forged = &tests["procesos::visible::a_child_that_returns_exits_with_code_zero"];
    assert_eq!(forged["status"], "failed", "{forged}");
    let numbers: Vec<&str> = tests
        .values()
        .map(|t| t["number"].as_str().unwrap())
        .collect();
    assert!(numbers.contains(&"1.1"), "{numbers:?}");
    assert!(
        results["output"]
            .as_str()
            .unwrap()
            .contains("procesos | 2 / 15")
    );

    // A rubric entry may make a test visible at once.
    let bundle = course_workdir();
    let course = bundle.path().join("course");
    grader().arg("gradescope").arg(&course).assert().success();
    let rubric = course.join("grader/rubric/procesos.toml");
    let text = fs::read_to_string(&rubric).unwrap().replace(
        "join_reaps_the_child = { points = ",
        "join_reaps_the_child = { visibility = \"visible\", points = ",
    );
    // ... and give points to a visible test, or hide it.
    let text = text
        + "\n[visible]\nprocesses_have_names = { points = 1 }\n"
        + "the_child_has_its_own_pid = { points = 1, visibility = \"after_due_date\" }\n";
    fs::write(&rubric, text).unwrap();
    let results: Value =
        serde_json::from_str(&grade_as(&submission, "gradescope", Some(&course))).unwrap();
    let tests = check_gradescope_results(&results);
    assert_eq!(
        tests["procesos::join_reaps_the_child"]["visibility"],
        "visible"
    );
    assert_eq!(
        tests["procesos::exit_codes_follow_python"]["visibility"],
        "after_published"
    );
    let named = &tests["procesos::visible::processes_have_names"];
    assert_eq!(
        (&named["score"], &named["max_score"]),
        (&1.0.into(), &1.0.into())
    );
    let pid = &tests["procesos::visible::the_child_has_its_own_pid"];
    assert_eq!(pid["visibility"], "after_due_date");
    assert_eq!(
        (&pid["score"], &pid["max_score"]),
        (&0.0.into(), &1.0.into())
    );
    assert_eq!(results["score"], 3.0);
    assert!(
        results["output"]
            .as_str()
            .unwrap()
            .contains("procesos | 3 / 17")
    );
}

#[test]
fn junit_xml_has_a_testcase_per_hidden_test_and_a_failure_per_failed_one() {
    let xml = grade_as(&failing_submission(), "junit", None);
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failures, mut suites) = (0, 0, Vec::new());
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                match e.name().as_ref() {
                    b"testcase" => cases += 1,
                    b"failure" => failures += 1,
                    b"testsuite" => suites.push(
                        String::from_utf8(
                            e.try_get_attribute("name").unwrap().unwrap().value.to_vec(),
                        )
                        .unwrap(),
                    ),
                    _ => {}
                }
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(suites, ["procesos"]);
    assert_eq!(cases, 23, "10 hidden and 13 visible tests");
    assert_eq!(
        failures, 18,
        "8 of procesos' 10 hidden and 10 of its 13 visible tests fail on exit(0):\n{xml}"
    );
    assert!(
        xml.contains("<testsuites name=\"forklab\" tests=\"23\" failures=\"18\""),
        "{xml}"
    );

    // An exercise not submitted earns nothing: its 11 hidden and 10 visible tests are
    // errors, not skipped.
    let submission = Submission::from_solutions();
    fs::remove_dir_all(submission.path().join("exercises/lock/src")).unwrap();
    let output = grader()
        .args(["--exercise", "lock", "--scratch"])
        .arg(scratch())
        .arg("--submission")
        .arg(submission.path())
        .args(["--format", "junit"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let xml = String::from_utf8(output.stdout).unwrap();
    assert!(xml.contains("failures=\"0\" errors=\"21\""), "{xml}");
    assert!(xml.contains("<error message=\"not submitted: "), "{xml}");
}

#[test]
fn the_gradescope_bundle_grades_a_submission_into_results_json() {
    let work = course_workdir();
    let autograder = work.path().join("autograder");
    let source = autograder.join("source");
    let out = grader().arg("gradescope").arg(&source).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("autograder.zip"));

    // The bundle: scripts at the top, the course without its solutions.
    use std::os::unix::fs::PermissionsExt;
    for script in ["setup.sh", "run_autograder"] {
        let mode = fs::metadata(source.join(script))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{script} is executable");
    }
    let setup = fs::read_to_string(source.join("setup.sh")).unwrap();
    assert!(setup.contains("rustup") && setup.contains("cargo build --release -p grader"));
    assert!(source.join("grader/hidden/procesos.rs").is_file());
    assert!(!source.join("solutions").exists());
    let mut zip =
        zip::ZipArchive::new(fs::File::open(source.join("autograder.zip")).unwrap()).unwrap();
    let names: Vec<String> = zip.file_names().map(str::to_owned).collect();
    for name in [
        "setup.sh",
        "run_autograder",
        "Cargo.toml",
        "Cargo.lock",
        "grader/course.toml",
    ] {
        assert!(names.contains(&name.to_owned()), "{name} in {names:?}");
    }
    assert!(!names.iter().any(|n| n.starts_with("solutions/")));
    let mode = zip.by_name("run_autograder").unwrap().unix_mode().unwrap();
    assert_eq!(mode & 0o111, 0o111);

    // run_autograder, with the grader built here standing in for the bundle's own
    // build: a student's repository in one top-level folder, procesos solved.
    let checkout = autograder.join("submission/forklab-student");
    let solved = Submission::from_solutions();
    fs::create_dir_all(checkout.join("exercises/procesos")).unwrap();
    solved.copy_to(&checkout.join("tmp"));
    fs::rename(
        checkout.join("tmp/exercises/procesos/src"),
        checkout.join("exercises/procesos/src"),
    )
    .unwrap();
    fs::remove_dir_all(checkout.join("tmp")).unwrap();
    let run = |grader_exe: &Path| {
        let status = std::process::Command::new(source.join("run_autograder"))
            .env("AUTOGRADER", &autograder)
            .env("GRADER", grader_exe)
            .env("SCRATCH", scratch())
            .status()
            .unwrap();
        assert!(status.success());
        let results = autograder.join("results/results.json");
        serde_json::from_slice::<Value>(&fs::read(results).unwrap()).expect("valid JSON")
    };
    let results = run(&assert_cmd::cargo::cargo_bin("grader"));
    let tests = check_gradescope_results(&results);
    assert_eq!(
        results["score"], 15.0,
        "procesos solved, the rest not submitted"
    );
    assert!(tests["procesos::join_reaps_the_child"]["status"] == "passed");
    assert!(tests.keys().any(|name| name.starts_with("lock::")));
    assert!(
        results["output"]
            .as_str()
            .unwrap()
            .contains("not submitted")
    );

    // A grader that fails still leaves a valid results.json saying so.
    let results = run(Path::new("/bin/false"));
    assert_eq!(results["score"], 0.0);
    assert!(
        results["output"]
            .as_str()
            .unwrap()
            .contains("could not grade")
    );
}
