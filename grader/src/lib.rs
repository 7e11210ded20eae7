//! forklab's grader: stages each exercise with the instructor's manifest and the hidden
//! tests, builds them with cargo, runs every hidden test as its own supervised process,
//! and reports points per test.
//!
//! The pipeline, one module per step: [`course`] (what to grade, the rubric) →
//! [`stage`] (scratch crates) → [`compile`] (cargo, JSON messages) → [`supervise`]
//! (one process tree per test, each in its own worker: [`isolate`]) → [`verdict`]
//! (pass, fail, timeout) → [`report`] (table, JSON, Markdown, Gradescope, JUnit).
//! [`grade`] runs the pipeline; [`cli`] is the command line. Instructor commands:
//! [`check`] (the course's self-test), [`export`] (the students' repository),
//! [`batch`] (a whole class), [`autograder`] (a Gradescope bundle).

pub mod autograder;
pub mod batch;
pub mod capture;
pub mod check;
pub mod class_commands;
pub mod cli;
pub mod compile;
pub mod course;
pub mod course_commands;
pub mod drain;
pub mod export;
pub mod grade;
pub mod isolate;
pub mod manifest;
pub mod progress;
pub mod report;
pub mod schedule;
pub mod source;
pub mod stage;
pub mod supervise;
pub mod verdict;
pub mod visible;
