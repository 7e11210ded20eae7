//! `--format table` (the default): one row per hidden test, totals per exercise, and
//! failure messages under the table. Coloured on a terminal only.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Color, ContentArrangement, Table};

use super::{Report, Status, points};

/// Renders `report`; `colour` adds ANSI colours to statuses.
pub fn render(report: &Report, colour: bool) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(["exercise", "test", "status", "points", "evidence"]);
    if !colour {
        table.force_no_tty();
    } else {
        table.enforce_styling();
    }
    let mut notes = Vec::new();
    for exercise in &report.exercises {
        if !exercise.compiled {
            notes.push(format!("{}: {}", exercise.name, exercise.message));
        }
        for test in &exercise.tests {
            let status = Cell::new(test.status.as_str()).fg(match test.status {
                Status::Passed => Color::Green,
                Status::Failed | Status::TimedOut => Color::Red,
                Status::NotRun => Color::Yellow,
            });
            table.add_row(vec![
                Cell::new(&exercise.name),
                Cell::new(&test.name),
                status,
                Cell::new(format!("{}/{}", points(test.score), points(test.max_score)))
                    .set_alignment(CellAlignment::Right),
                Cell::new(
                    test.evidence
                        .as_ref()
                        .map(|e| e.summary())
                        .unwrap_or_default(),
                ),
            ]);
            if !test.message.is_empty() && exercise.compiled {
                notes.push(format!(
                    "{}::{}: {}",
                    exercise.name, test.name, test.message
                ));
            }
        }
        table.add_row(vec![
            Cell::new(&exercise.name),
            Cell::new("total"),
            Cell::new(if exercise.compiled {
                ""
            } else {
                "not compiled"
            }),
            Cell::new(format!(
                "{}/{}",
                points(exercise.score),
                points(exercise.max_score)
            ))
            .set_alignment(CellAlignment::Right),
        ]);
    }
    let mut text = format!("forklab grade of {}\n{table}\n", report.source);
    text += &format!(
        "score: {}/{}\n",
        points(report.score),
        points(report.max_score)
    );
    let s = &report.supervision;
    text += &format!(
        "supervision: {}; process cap: {}; filesystem: {}\n",
        s.tracing, s.process_cap, s.filesystem
    );
    for note in notes {
        text += &format!("\n{note}\n");
    }
    text
}
