//! `--format json`: the report as a stable contract for other tools (top-level `score`,
//! `max_score`, `exercises[]` with `name`, `score`, `max_score`, `compiled`, `tests[]`
//! with `name`, `status`, `score`, `max_score`, `message`).

use super::Report;

pub fn render(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report always serialises") + "\n"
}
