//! Graded tests: grades the reference solutions (every hidden and visible test must
//! pass) and the pristine stubs (every one must fail) with [`grade::grade`], and compares
//! each exercise's rubric with the tests its test binary lists, both ways.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use super::{Aspect, Outcome, head, list};
use crate::course::{Course, Exercise, TestKind};
use crate::grade::{self, Options};
use crate::report::{Report, Status};
use crate::source::Source;
use crate::stage;

/// The hidden tests each exercise's binary lists; `None` where it did not build.
type Listings = BTreeMap<String, Option<Vec<String>>>;

/// Grades solutions and stubs; returns the rubric, solutions and stubs outcomes.
pub fn check(course: &Course, options: &Options) -> Result<Vec<Outcome>> {
    let keep = Options {
        keep: true,
        ..options.clone()
    };
    let solutions = grade::grade(course, &Source::Solutions, &keep)?;
    // The solutions' stage is kept just long enough to ask its binaries for their tests.
    let stage_root = options
        .scratch
        .join("stage")
        .join(stage::stage_key(&Source::Solutions));
    let listings = list_hidden_tests(course, &stage_root.join("bin"));
    let _ = std::fs::remove_dir_all(&stage_root);
    let stubs = grade::grade(course, &Source::Exercises, options)?;
    Ok(vec![
        rubric(&course.exercises, &listings),
        judge(Aspect::HiddenSolutions, &solutions, &listings),
        judge(Aspect::HiddenStubs, &stubs, &listings),
    ])
}

fn list_hidden_tests(course: &Course, binaries: &Path) -> Listings {
    course
        .exercises
        .iter()
        .map(|exercise| {
            let binary = binaries.join(format!("{}-hidden", exercise.name));
            let names = binary
                .is_file()
                .then(|| grade::list_tests(&binary).ok())
                .flatten()
                .map(|tests| tests.into_iter().map(|t| t.name).collect());
            (exercise.name.clone(), names)
        })
        .collect()
}

/// Every hidden test has a rubric entry and every rubric entry a hidden test.
fn rubric(exercises: &[Exercise], listings: &Listings) -> Outcome {
    let entries: usize = exercises.iter().map(|e| e.rubric.len()).sum();
    let mut outcome = Outcome::new(
        Aspect::Rubric,
        format!("{entries} entries, compared with the tests the test binaries list"),
    );
    for exercise in exercises {
        let Some(Some(tests)) = listings.get(&exercise.name) else {
            outcome.problem(
                &exercise.name,
                "cannot list the hidden tests: they do not build with the solution",
            );
            continue;
        };
        let without_test: Vec<String> = exercise
            .rubric
            .keys()
            .filter(|name| !tests.contains(name))
            .cloned()
            .collect();
        if !without_test.is_empty() {
            outcome.problem(
                &exercise.name,
                format!(
                    "rubric entries without a hidden test: {}",
                    list(&without_test)
                ),
            );
        }
        let without_entry: Vec<String> = tests
            .iter()
            .filter(|name| !exercise.rubric.contains_key(*name))
            .cloned()
            .collect();
        if !without_entry.is_empty() {
            outcome.problem(
                &exercise.name,
                format!(
                    "hidden tests without a rubric entry: {}",
                    list(&without_entry)
                ),
            );
        }
    }
    outcome
}

/// Solutions must pass every graded test (hidden and visible); stubs must compile and
/// fail every one. Rubric
/// entries without a test are left to [`rubric`].
fn judge(aspect: Aspect, report: &Report, listings: &Listings) -> Outcome {
    let solutions = aspect == Aspect::HiddenSolutions;
    let mut outcome = Outcome::new(aspect, String::new());
    let (mut expected, mut total, mut visible) = (0, 0, 0);
    for exercise in &report.exercises {
        let name = &exercise.name;
        if !exercise.compiled {
            outcome.problem(
                name,
                format!(
                    "{} not graded: {}",
                    if solutions { "solution" } else { "stub" },
                    head(&exercise.message, 6)
                ),
            );
        }
        // The grader reports warnings of the staged build (solution and hidden tests
        // together) in the exercise's message; a course ships none.
        if solutions && exercise.compiled && !exercise.message.is_empty() {
            outcome.problem(
                name,
                format!("the solution with its hidden tests {}", exercise.message),
            );
        }
        let listed = listings.get(name).cloned().flatten();
        for test in &exercise.tests {
            if listed.as_ref().is_some_and(|l| !l.contains(&test.name)) {
                continue;
            }
            total += 1;
            if test.kind == TestKind::Visible {
                visible += 1;
            }
            let passed = test.status == Status::Passed;
            if passed == solutions {
                expected += 1;
            } else if exercise.compiled {
                outcome.problem(
                    name,
                    if solutions {
                        format!(
                            "the solution fails `{}` ({}): {}",
                            test.name,
                            test.status.as_str(),
                            head(&test.message, 4)
                        )
                    } else {
                        format!("the stub passes `{}`", test.name)
                    },
                );
            }
        }
    }
    let kinds = format!("{} hidden + {visible} visible", total - visible);
    outcome.summary = if solutions {
        format!(
            "{expected}/{total} passed ({kinds}), {}/{} points",
            crate::report::points(report.score),
            crate::report::points(report.max_score)
        )
    } else {
        format!(
            "{expected}/{total} failed ({kinds}), {} points",
            crate::report::points(report.score)
        )
    };
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::course::RubricEntry;

    #[test]
    fn the_rubric_and_the_hidden_tests_are_compared_both_ways() {
        let entry: RubricEntry = toml::from_str("points = 1").unwrap();
        let exercise = Exercise {
            name: "lock".to_owned(),
            hidden_tests: "/course/grader/hidden/lock.rs".into(),
            visible_tests: "/course/exercises/lock/tests/visible.rs".into(),
            rubric: ["shared", "only_in_rubric"]
                .into_iter()
                .map(|name| (name.to_owned(), entry.clone()))
                .collect(),
        };
        let listings: Listings = [(
            "lock".to_owned(),
            Some(vec!["shared".to_owned(), "only_hidden".to_owned()]),
        )]
        .into_iter()
        .collect();
        let details: Vec<String> = rubric(&[exercise], &listings)
            .problems
            .into_iter()
            .map(|p| p.detail)
            .collect();
        assert_eq!(
            details,
            [
                "rubric entries without a hidden test: only_in_rubric",
                "hidden tests without a rubric entry: only_hidden",
            ]
        );
    }
}
