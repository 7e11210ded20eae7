//! `--format gradescope`: Gradescope's `results.json`. One entry per test
//! (`name`, `number`, `score`, `max_score`, `status`, `output` in Markdown,
//! `visibility` from the rubric; by default `after_published` for a hidden test and
//! `visible` for a visible one), and top-level `score`, `execution_time` and `output`
//! (the per-exercise summary).

use std::fmt::Write;

use serde::Serialize;

use super::{Report, Status, markdown, points};
use crate::course::{Course, TestKind, Visibility};

/// Visibility of a test whose rubric entry does not say.
fn default_visibility(kind: TestKind) -> Visibility {
    match kind {
        TestKind::Hidden => Visibility::AfterPublished,
        TestKind::Visible => Visibility::Visible,
    }
}

#[derive(Serialize)]
struct Results {
    score: f64,
    execution_time: f64,
    output: String,
    output_format: &'static str,
    tests: Vec<Test>,
}

#[derive(Serialize)]
struct Test {
    name: String,
    number: String,
    score: f64,
    max_score: f64,
    status: &'static str,
    output: String,
    output_format: &'static str,
    visibility: Visibility,
}

/// Renders `report`, graded against `course` in `execution_secs` seconds.
pub fn render(report: &Report, course: &Course, execution_secs: f64) -> String {
    let mut tests = Vec::new();
    for (e, exercise) in report.exercises.iter().enumerate() {
        let rubric = course
            .exercises
            .iter()
            .find(|c| c.name == exercise.name)
            .map(|c| &c.rubric);
        for (t, test) in exercise.tests.iter().enumerate() {
            let output = if test.status == Status::Passed {
                test.evidence
                    .as_ref()
                    .map(|e| e.summary())
                    .unwrap_or_default()
            } else if !exercise.compiled {
                format!(
                    "Not graded: `{}` {} (see the top of the results).",
                    exercise.name,
                    first_line(&exercise.message).trim_end_matches(':')
                )
            } else {
                markdown::failure(test)
            };
            tests.push(Test {
                name: format!("{}::{}", exercise.name, test.name),
                number: format!("{}.{}", e + 1, t + 1),
                score: test.score,
                max_score: test.max_score,
                status: if test.status == Status::Passed {
                    "passed"
                } else {
                    "failed"
                },
                output,
                output_format: "md",
                visibility: rubric
                    .and_then(|r| r.get(&test.name))
                    .and_then(|entry| entry.visibility)
                    .unwrap_or(default_visibility(test.kind)),
            });
        }
    }
    let results = Results {
        score: report.score,
        execution_time: (execution_secs * 100.0).round() / 100.0,
        output: summary(report),
        output_format: "md",
        tests,
    };
    serde_json::to_string_pretty(&results).expect("results always serialise") + "\n"
}

/// The top-level output: the score per exercise, and why an exercise was not graded.
fn summary(report: &Report) -> String {
    let mut md = format!(
        "**forklab: {} / {}**\n\n| exercise | points |\n|---|---|\n",
        points(report.score),
        points(report.max_score)
    );
    for exercise in &report.exercises {
        let _ = writeln!(
            md,
            "| {} | {} / {} |",
            exercise.name,
            points(exercise.score),
            points(exercise.max_score)
        );
    }
    for exercise in report.exercises.iter().filter(|e| !e.compiled) {
        let _ = write!(
            md,
            "\n**{}** was not graded: {}\n",
            exercise.name,
            first_line(&exercise.message)
        );
        let details: Vec<&str> = exercise.message.lines().skip(1).collect();
        if !details.is_empty() {
            let _ = write!(md, "\n```text\n{}\n```\n", details.join("\n").trim());
        }
    }
    md
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}
