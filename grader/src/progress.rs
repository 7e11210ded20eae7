//! The progress bar shown on a terminal while building and running (hidden when stderr
//! is not a terminal, so logs and snapshots stay clean).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A spinner while cargo builds, then a bar over the hidden tests.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A progress display on stderr, or a silent one when `visible` is false.
    pub fn new(visible: bool) -> Self {
        let bar = if visible {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(ProgressStyle::with_template("{spinner} building {msg}").expect("template"));
        bar.enable_steady_tick(Duration::from_millis(120));
        Self { bar }
    }

    /// Cargo finished compiling a crate.
    pub fn compiled(&self, crate_name: &str) {
        self.bar.set_message(crate_name.to_owned());
    }

    /// Switches to a bar over `tests` hidden tests.
    pub fn start_tests(&self, tests: u64) {
        self.bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} tests  {msg}").expect("template"),
        );
        self.bar.set_length(tests);
        self.bar.set_position(0);
    }

    /// A test is about to run.
    pub fn running(&self, exercise: &str, test: &str) {
        self.bar.set_message(format!("{exercise}::{test}"));
    }

    /// A test has finished.
    pub fn finished_test(&self) {
        self.bar.inc(1);
    }

    /// Removes the display.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
