//! `--format junit`: JUnit XML for CI systems. One `<testsuite>` per exercise, one
//! `<testcase>` per hidden test (`classname` = exercise); a failed or timed-out test
//! has a `<failure>`, a test that did not run (its exercise not submitted or not
//! compiling) an `<error>`: it earns no points either. Points go in `<properties>`.

use quick_xml::Writer;
use quick_xml::events::BytesText;

use super::{ExerciseReport, Report, Status, points};

pub fn render(report: &Report) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    let count = |status: Status| {
        report
            .exercises
            .iter()
            .flat_map(|e| &e.tests)
            .filter(|t| t.status == status)
            .count()
    };
    let tests: usize = report.exercises.iter().map(|e| e.tests.len()).sum();
    let failures = count(Status::Failed) + count(Status::TimedOut);
    writer
        .create_element("testsuites")
        .with_attributes([
            ("name", "forklab"),
            ("tests", &tests.to_string()),
            ("failures", &failures.to_string()),
            ("errors", &count(Status::NotRun).to_string()),
            ("time", &seconds(total_ms(report.exercises.iter()))),
        ])
        .write_inner_content(|w| {
            for exercise in &report.exercises {
                write_suite(w, exercise)?;
            }
            Ok(())
        })
        .expect("writing to memory");
    let xml = String::from_utf8(writer.into_inner()).expect("XML of UTF-8 strings");
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{xml}\n")
}

fn write_suite(w: &mut Writer<Vec<u8>>, exercise: &ExerciseReport) -> std::io::Result<()> {
    let count = |f: fn(Status) -> bool| exercise.tests.iter().filter(|t| f(t.status)).count();
    w.create_element("testsuite")
        .with_attributes([
            ("name", exercise.name.as_str()),
            ("tests", &exercise.tests.len().to_string()),
            (
                "failures",
                &count(|s| matches!(s, Status::Failed | Status::TimedOut)).to_string(),
            ),
            ("errors", &count(|s| s == Status::NotRun).to_string()),
            ("time", &seconds(total_ms(std::iter::once(exercise)))),
        ])
        .write_inner_content(|w| {
            w.create_element("properties").write_inner_content(|w| {
                for (name, value) in [
                    ("score", points(exercise.score)),
                    ("max_score", points(exercise.max_score)),
                ] {
                    w.create_element("property")
                        .with_attributes([("name", name), ("value", value.as_str())])
                        .write_empty()?;
                }
                Ok(())
            })?;
            for test in &exercise.tests {
                let case = w.create_element("testcase").with_attributes([
                    ("name", test.name.as_str()),
                    ("classname", exercise.name.as_str()),
                    ("time", &seconds(test.duration_ms)),
                ]);
                let first_line = |text: &str| text.lines().next().unwrap_or_default().to_owned();
                match test.status {
                    Status::Passed => {
                        case.write_empty()?;
                    }
                    Status::NotRun => {
                        let why = if test.message.is_empty() {
                            &exercise.message
                        } else {
                            &test.message
                        };
                        case.write_inner_content(|w| {
                            w.create_element("error")
                                .with_attributes([
                                    ("message", first_line(why).as_str()),
                                    ("type", "not_run"),
                                ])
                                .write_text_content(BytesText::new(why.trim()))?;
                            Ok(())
                        })?;
                    }
                    Status::Failed | Status::TimedOut => {
                        let body = format!("{}\n\n{}", test.message.trim(), test.output.trim());
                        case.write_inner_content(|w| {
                            w.create_element("failure")
                                .with_attributes([
                                    ("message", first_line(&test.message).as_str()),
                                    ("type", test.status.as_str()),
                                ])
                                .write_text_content(BytesText::new(body.trim()))?;
                            Ok(())
                        })?;
                    }
                }
            }
            Ok(())
        })?;
    Ok(())
}

fn total_ms<'a>(exercises: impl Iterator<Item = &'a ExerciseReport>) -> u64 {
    exercises
        .flat_map(|e| &e.tests)
        .map(|t| t.duration_ms)
        .sum()
}

fn seconds(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}
