//! `--format markdown`: feedback for one student, to paste into an LMS: the score, a
//! table per exercise with the process evidence, and for each failure what went wrong
//! in process terms, the end of the test's output, and a hint.

use std::fmt::Write;

use super::{ExerciseReport, Report, Status, TestReport, points};

/// Lines of a failing test's output quoted in the feedback.
const OUTPUT_LINES: usize = 15;

pub fn render(report: &Report) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# forklab feedback\n");
    let _ = writeln!(
        md,
        "**Score: {} / {}** (graded: `{}`)\n",
        points(report.score),
        points(report.max_score),
        report.source
    );
    for exercise in &report.exercises {
        render_exercise(&mut md, exercise);
    }
    md
}

fn render_exercise(md: &mut String, exercise: &ExerciseReport) {
    let _ = writeln!(
        md,
        "## {} — {} / {}\n",
        exercise.name,
        points(exercise.score),
        points(exercise.max_score)
    );
    if !exercise.compiled {
        let _ = writeln!(md, "Not graded: {}\n", first_line(&exercise.message));
        if exercise.message.lines().count() > 1 {
            let _ = writeln!(md, "```text\n{}\n```\n", rest_lines(&exercise.message));
        }
        return;
    }
    let _ = writeln!(
        md,
        "| test | result | points | processes |\n|---|---|---|---|"
    );
    for test in &exercise.tests {
        let _ = writeln!(
            md,
            "| `{}` | {} | {} / {} | {} |",
            test.name,
            badge(test.status),
            points(test.score),
            points(test.max_score),
            test.evidence
                .as_ref()
                .map(|e| e.summary())
                .unwrap_or_default()
        );
    }
    let _ = writeln!(md);
    for test in exercise.tests.iter().filter(|t| t.status != Status::Passed) {
        render_failure(md, test);
    }
}

/// One failed test's section (heading, message, end of output, hint), on its own.
pub fn failure(test: &TestReport) -> String {
    let mut md = String::new();
    render_failure(&mut md, test);
    md
}

fn render_failure(md: &mut String, test: &TestReport) {
    let _ = writeln!(md, "### `{}` — {}\n", test.name, badge(test.status));
    if !test.message.is_empty() {
        let _ = writeln!(md, "```text\n{}\n```\n", test.message.trim());
    }
    let tail: Vec<&str> = test.output.lines().rev().take(OUTPUT_LINES).collect();
    if !tail.is_empty() {
        let lines: Vec<&str> = tail.into_iter().rev().collect();
        let _ = writeln!(
            md,
            "<details><summary>End of the test's output</summary>\n\n```text\n{}\n```\n</details>\n",
            lines.join("\n")
        );
    }
    let _ = writeln!(md, "> **Hint:** {}\n", hint(test));
}

fn badge(status: Status) -> &'static str {
    match status {
        Status::Passed => "✅ passed",
        Status::Failed => "❌ failed",
        Status::TimedOut => "⏱️ timed out",
        Status::NotRun => "⚪ not run",
    }
}

/// The rubric's hint for the test if it has one, else one chosen by what went wrong.
fn hint(test: &TestReport) -> String {
    if let Some(hint) = &test.hint {
        return hint.clone();
    }
    let m = &test.message;
    let text = if test.status == Status::TimedOut {
        "something blocked forever: a `join`/`waitpid` on a child that never ends, a `recv` on \
         a pipe whose write end is still open somewhere (close the ends you do not use, in \
         every process), or a lock that is never released."
    } else if m.contains("never reaped") {
        "every child must be waited for (`join`, `waitpid`): an ended child stays a zombie until \
         its parent reaps it."
    } else if m.contains("still running after it ended") {
        "every process you start must end before the test does: join your children, and make \
         sure no grandchild outlives them."
    } else if m.contains("thread") {
        "this exercise is about processes: use `fork` (or the crate's own process type), not \
         `std::thread`."
    } else if m.contains("returned into the test harness") || m.contains("returned from start") {
        "a forked child must end with `libc::_exit`, never `return` into its caller: catch panics \
         with `catch_unwind` and `_exit` with a code."
    } else if m.contains("exit()") || m.contains("exited with status 0") {
        "do not call `std::process::exit` in the parent: only children end with an exit code."
    } else if m.contains("not yet implemented") {
        "this part of the exercise is still a `todo!()`."
    } else {
        "read the assertion message above: it names the value the test expected; run the visible \
         tests with `cargo test -p EXERCISE` to reproduce a similar case."
    };
    text.to_owned()
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

fn rest_lines(text: &str) -> String {
    text.lines().skip(1).collect::<Vec<_>>().join("\n")
}
