//! End-to-end tests of the grader's command line on the course itself: the solutions
//! get full marks, the pristine stubs get zero, and the report renders as expected.

mod support;

use support::{exercise, grade_json, grader, stdout_of};

#[test]
fn the_solutions_get_full_marks_and_pass_every_hidden_and_visible_test() {
    let report = grade_json(&["--solutions"]);
    assert!(report["max_score"].as_f64().unwrap() > 0.0);
    for ex in report["exercises"].as_array().unwrap() {
        assert_eq!(
            ex["compiled"], true,
            "{} did not compile: {}",
            ex["name"], ex["message"]
        );
        for test in ex["tests"].as_array().unwrap() {
            assert_eq!(
                test["status"], "passed",
                "{}::{} failed: {}\n{}",
                ex["name"], test["name"], test["message"], test["output"]
            );
        }
        assert_eq!(ex["score"], ex["max_score"]);
        assert_both_kinds_of_tests(ex);
    }
    assert_eq!(report["score"], report["max_score"]);
}

#[test]
fn the_pristine_stubs_get_zero_and_fail_every_hidden_and_visible_test() {
    let report = grade_json(&[]);
    assert_eq!(report["score"], 0.0);
    for ex in report["exercises"].as_array().unwrap() {
        assert_eq!(
            ex["compiled"], true,
            "the stub of {} must compile",
            ex["name"]
        );
        for test in ex["tests"].as_array().unwrap() {
            assert_eq!(test["status"], "failed", "{}::{}", ex["name"], test["name"]);
        }
        assert_both_kinds_of_tests(ex);
    }
}

/// The exercise's report has its hidden tests, then its visible ones, each named as such.
fn assert_both_kinds_of_tests(exercise: &serde_json::Value) {
    let kinds: Vec<(&str, bool)> = exercise["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let visible_name = t["name"].as_str().unwrap().starts_with("visible::");
            (t["kind"].as_str().unwrap(), visible_name)
        })
        .collect();
    let hidden = kinds
        .iter()
        .take_while(|k| **k == ("hidden", false))
        .count();
    let visible = kinds[hidden..]
        .iter()
        .take_while(|k| **k == ("visible", true))
        .count();
    assert!(
        hidden > 0 && visible > 0 && hidden + visible == kinds.len(),
        "{}: {kinds:?}",
        exercise["name"]
    );
}

#[test]
fn an_unknown_exercise_is_a_usage_error_naming_the_known_ones() {
    grader()
        .args(["--exercise", "threads"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("unknown exercise `threads`"))
        .stderr(predicates::str::contains(
            "procesos, pipe_queue, lock, pool, value_array",
        ));
}

#[test]
fn the_table_shows_points_per_test_and_totals() {
    let stdout = stdout_of(grader().args(["--solutions", "--exercise", "procesos"]));
    // How many children overlap in time depends on scheduling, and which supervision
    // mechanisms are available depends on the machine: both are redacted.
    let filters = vec![
        (r"peak \d+", "peak [n]"),
        (r"(?m)^supervision: .*$", "supervision: [machine-dependent]"),
    ];
    insta::with_settings!({ filters => filters }, {
        insta::assert_snapshot!(stdout);
    });
}

#[test]
fn the_json_report_keeps_its_contract() {
    let mut report = grade_json(&["--solutions", "--exercise", "procesos"]);
    assert_eq!(exercise(&report, "procesos")["compiled"], true);
    insta::assert_json_snapshot!(report.take(), {
        ".exercises[].tests[].duration_ms" => "[duration]",
        ".exercises[].tests[].evidence.peak_processes" => "[peak]",
        ".supervision.*" => "[machine-dependent]",
    });
}

#[test]
fn the_markdown_feedback_explains_each_failure() {
    let stdout = stdout_of(grader().args(["--exercise", "procesos", "--format", "markdown"]));
    let filters = vec![
        (r"\(\d+\) panicked", "([tid]) panicked"),
        (r"peak \d+", "peak [n]"),
    ];
    insta::with_settings!({ filters => filters }, {
        insta::assert_snapshot!(stdout);
    });
}
