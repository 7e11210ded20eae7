//! The command line of the instructor's class-scale commands: `grader batch DIR` and
//! `grader gradescope DIR`.

use anyhow::Result;

use crate::cli::{Cli, Commands};
use crate::course::Course;
use crate::{autograder, batch};

/// Runs `command` and returns what to print. A submission that cannot be graded is a
/// row of the gradebook, not an error.
pub fn run(cli: &Cli, command: &Commands) -> Result<String> {
    match command {
        Commands::Batch(args) => batch::run(cli, args),
        Commands::Gradescope { dir } => {
            let course = Course::load(&cli.course_root())?;
            Ok(autograder::write(&course, dir)?.render())
        }
        _ => unreachable!("cli::main dispatches only batch and gradescope here"),
    }
}
