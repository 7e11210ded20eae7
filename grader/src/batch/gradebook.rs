//! The batch's outputs: `grades.csv` (one row per student: a score per exercise, the
//! total, the status), and `.batch-state.json`, the content hash each student's files
//! were last graded from (what lets a re-run skip unchanged submissions).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

use crate::report::{Report, points};

/// What happened to one submission in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Graded,
    /// Unchanged since the last run: its earlier report was kept.
    Unchanged,
    /// Could not be graded (not a checkout, a refused archive, a grader failure).
    Error(String),
}

impl Outcome {
    pub fn label(&self) -> String {
        match self {
            Outcome::Graded => "graded".to_owned(),
            Outcome::Unchanged => "unchanged".to_owned(),
            Outcome::Error(why) => format!("error: {why}"),
        }
    }
}

/// One row of the gradebook.
pub struct Row {
    pub student: String,
    pub report: Option<Report>,
    pub outcome: Outcome,
}

/// Writes `grades.csv` with a column per exercise of `exercises`.
pub fn write_csv(path: &Path, exercises: &[String], rows: &[Row]) -> Result<()> {
    let mut csv =
        csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    let mut header = vec!["student".to_owned()];
    header.extend(exercises.iter().cloned());
    header.extend(["total".to_owned(), "status".to_owned()]);
    csv.write_record(&header)?;
    for row in rows {
        let mut record = vec![row.student.clone()];
        for name in exercises {
            let score = row
                .report
                .as_ref()
                .and_then(|r| r.exercises.iter().find(|e| &e.name == name))
                .map(|e| points(e.score));
            record.push(score.unwrap_or_default());
        }
        record.push(
            row.report
                .as_ref()
                .map(|r| points(r.score))
                .unwrap_or_default(),
        );
        record.push(row.outcome.label());
        csv.write_record(&record)?;
    }
    csv.flush()?;
    Ok(())
}

/// Student → content hash of what was graded.
pub type State = BTreeMap<String, String>;

pub fn read_state(path: &Path) -> State {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

pub fn write_state(path: &Path, state: &State) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(state)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}
