//! Medians of the runs and the Markdown table: operation × {forklab, Python, raw}, with
//! the ratios forklab/Python and forklab/raw as *relative speed* (above 1: forklab is
//! faster), checked against each row's target.
//!
//! A ratio is the median of the per-run ratios: forklab's value in run `i` against the
//! other implementation's value in the same run `i`, measured right next to it. On a
//! noisy machine this cancels the slow drifts (someone else's build) that the ratio of
//! the two columns' medians would keep.

use std::fmt::Write;

use crate::ops::{Better, Op};

/// The three implementations, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imp {
    Forklab,
    Python,
    Raw,
}

impl Imp {
    pub const ALL: [Imp; 3] = [Imp::Forklab, Imp::Python, Imp::Raw];

    pub fn name(self) -> &'static str {
        match self {
            Imp::Forklab => "forklab",
            Imp::Python => "python",
            Imp::Raw => "raw",
        }
    }
}

/// What one implementation gave on one row over all the runs.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    /// `(run, value)` for every run that succeeded.
    pub samples: Vec<(usize, f64)>,
    /// The last error, if a run failed.
    pub error: Option<String>,
    /// Not measured, with the reason shown in the table (e.g. "pending").
    pub skipped: Option<String>,
}

impl Cell {
    pub fn median(&self) -> Option<f64> {
        median(&self.samples.iter().map(|&(_, v)| v).collect::<Vec<_>>())
    }
}

/// One row: the op and its three cells (forklab, Python, raw).
#[derive(Debug, Clone)]
pub struct Row {
    pub op: Op,
    pub cells: [Cell; 3],
}

impl Row {
    pub fn new(op: Op) -> Row {
        Row {
            op,
            cells: Default::default(),
        }
    }

    pub fn cell(&mut self, imp: Imp) -> &mut Cell {
        &mut self.cells[imp as usize]
    }

    /// forklab's speed relative to `other` (above 1: forklab is faster): the median of
    /// the ratios of the runs where both succeeded.
    pub fn ratio(&self, other: Imp) -> Option<f64> {
        let theirs = &self.cells[other as usize].samples;
        let ratios: Vec<f64> = self.cells[Imp::Forklab as usize]
            .samples
            .iter()
            .filter_map(|&(run, ours)| {
                let &(_, them) = theirs.iter().find(|&&(r, _)| r == run)?;
                Some(relative_speed(self.op.better(), ours, them))
            })
            .collect();
        median(&ratios)
    }
}

/// The median (mean of the two middle values for an even count); `None` if empty.
pub fn median(samples: &[f64]) -> Option<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// How many times faster `ours` is than `theirs`.
pub fn relative_speed(better: Better, ours: f64, theirs: f64) -> f64 {
    match better {
        Better::Higher => ours / theirs,
        Better::Lower => theirs / ours,
    }
}

/// A number with three significant digits and a k/M/G suffix.
pub fn human(x: f64) -> String {
    let (scaled, suffix) = match x.abs() {
        a if a >= 1e9 => (x / 1e9, " G"),
        a if a >= 1e6 => (x / 1e6, " M"),
        a if a >= 1e4 => (x / 1e3, " k"),
        _ => (x, ""),
    };
    let digits = match scaled.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        _ => 2,
    };
    format!("{scaled:.digits$}{suffix}")
}

fn show(cell: &Cell) -> String {
    if let Some(reason) = &cell.skipped {
        return reason.clone();
    }
    match (cell.median(), &cell.error) {
        (Some(m), None) => human(m),
        (Some(m), Some(_)) => format!("{} (some runs failed)", human(m)),
        (None, Some(_)) => "failed".to_owned(),
        (None, None) => "-".to_owned(),
    }
}

/// The Markdown table.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| operation | unit | forklab | Python | raw | forklab/Python | forklab/raw | target |\n",
    );
    out.push_str("|---|---|---:|---:|---:|---:|---:|---|\n");
    for row in rows {
        let ratio = |imp| row.ratio(imp).map_or("-".to_owned(), |r| format!("{r:.2}"));
        let verdict = match row.ratio(Imp::Raw) {
            Some(r) if r >= row.op.target() => format!("≥ {} ok", row.op.target()),
            Some(_) => format!("≥ {} **missed**", row.op.target()),
            None => format!("≥ {}", row.op.target()),
        };
        let label = if row.op.pinned() {
            format!("{} (pinned)", row.op.label())
        } else {
            row.op.label().to_owned()
        };
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} | {} | {verdict} |",
            row.op.unit(),
            show(&row.cells[0]),
            show(&row.cells[1]),
            show(&row.cells[2]),
            ratio(Imp::Python),
            ratio(Imp::Raw),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_sample() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn ratios_are_relative_speeds() {
        // A time: 10 µs against 20 µs is twice as fast.
        assert_eq!(relative_speed(Better::Lower, 10.0, 20.0), 2.0);
        // A rate: 1 M/s against 4 M/s is a quarter of the speed.
        assert_eq!(relative_speed(Better::Higher, 1e6, 4e6), 0.25);
    }

    #[test]
    fn numbers_get_three_digits_and_a_suffix() {
        assert_eq!(human(2558.0), "2558");
        assert_eq!(human(41.63), "41.6");
        assert_eq!(human(105_000.0), "105 k");
        assert_eq!(human(2_050_000.0), "2.05 M");
        assert_eq!(human(1.96), "1.96");
    }

    #[test]
    fn the_table_shows_medians_ratios_and_verdicts() {
        let mut row = Row::new(Op::Lock);
        row.cell(Imp::Forklab).samples = vec![(0, 30e6), (1, 40e6), (2, 50e6)];
        row.cell(Imp::Python).samples = vec![(1, 0.5e6)];
        // Run 1 failed for raw: ratios pair runs 0 and 2 only (0.5 and 1.0).
        row.cell(Imp::Raw).samples = vec![(0, 60e6), (2, 50e6)];
        let mut pending = Row::new(Op::Queue1To1);
        pending.cell(Imp::Forklab).skipped = Some("pending".into());
        pending.cell(Imp::Raw).samples = vec![(0, 2e6)];
        let table = render(&[row, pending]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[2].starts_with("| lock, 2 processes contending (pinned) | op/s | 40.0 M | 500 k | 55.0 M | 80.00 | 0.75 | ≥ 0.5 ok |"), "{}", lines[2]);
        assert!(lines[3].contains("| pending |"), "{}", lines[3]);
    }
}
