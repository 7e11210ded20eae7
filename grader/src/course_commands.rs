//! The command line of the instructor's course commands: `grader check` (exit status 1
//! when something is wrong) and `grader export DIR`.

use std::process::ExitCode;

use anyhow::Result;

use crate::check;
use crate::cli::{Cli, Commands};
use crate::export;

/// Runs `command`; exit status 0 on success, 1 when `check` finds problems, 2 on a
/// usage or setup error.
pub fn main(cli: &Cli, command: &Commands) -> ExitCode {
    match run(cli, command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("grader: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: &Cli, command: &Commands) -> Result<bool> {
    let course = cli.load_course()?;
    match command {
        Commands::Check => {
            let options = cli.grade_options(&course.root)?;
            let findings = check::check(&course, &options, &|step| {
                eprintln!("grader check: {step}");
            })?;
            print!("{}", findings.render());
            Ok(findings.passed())
        }
        Commands::Export { dir } => {
            let written = export::export(&course, dir)?;
            print!("{}", written.render());
            Ok(true)
        }
        _ => unreachable!("cli::main dispatches only check and export here"),
    }
}
