//! The Python side: runs `python/bench_mp.py --serve` once, asks it for one row at a
//! time (so that Python's runs alternate with the Rust ones) and parses its JSON answers.
//!
//! Protocol: the benchmark writes a row key and a newline on the script's stdin; the
//! script answers one JSON object on one line of stdout:
//! `{"op": "lock", "value": 512345.6}` or `{"op": "lock", "error": "count 99 != 100"}`.
//! Closing stdin ends the script.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde::Deserialize;

use crate::ops::Op;

/// The script, next to this crate's manifest.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/bench_mp.py");

/// One answer of the script.
#[derive(Debug, Deserialize, PartialEq)]
pub struct Answer {
    pub op: String,
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default)]
    pub error: Option<String>,
}

/// Parses one line of the script's output into the row's value.
pub fn parse_answer(op: Op, line: &str) -> Result<f64, String> {
    let answer: Answer =
        serde_json::from_str(line.trim()).map_err(|e| format!("bad JSON from Python: {e}"))?;
    if answer.op != op.python_key() {
        return Err(format!(
            "Python answered {:?} for {:?}",
            answer.op,
            op.python_key()
        ));
    }
    match (answer.value, answer.error) {
        (_, Some(error)) => Err(error),
        (Some(value), None) if value.is_finite() && value > 0.0 => Ok(value),
        (value, None) => Err(format!("Python gave no usable value ({value:?})")),
    }
}

/// The running script.
pub struct Python {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// `sys.version` of the interpreter, from the script's first line.
    pub version: String,
}

impl Python {
    /// Starts `python -u SCRIPT --serve [--quick]` and reads its greeting.
    pub fn start(python: &str, quick: bool) -> Result<Python, String> {
        let mut cmd = Command::new(python);
        cmd.arg("-u").arg(SCRIPT).arg("--serve");
        if quick {
            cmd.arg("--quick");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {python}: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut python = Python {
            child,
            stdin,
            stdout,
            version: String::new(),
        };
        let hello = python.line()?;
        let hello: serde_json::Value =
            serde_json::from_str(&hello).map_err(|e| format!("bad greeting from Python: {e}"))?;
        python.version = hello["python"].as_str().unwrap_or("?").to_owned();
        Ok(python)
    }

    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) => Err("the Python script ended".into()),
            Ok(_) => Ok(line),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Runs one measurement of `op` in Python.
    pub fn measure(&mut self, op: Op) -> Result<f64, String> {
        let stdin = self.stdin.as_mut().ok_or("the Python script is closed")?;
        writeln!(stdin, "{}", op.python_key()).map_err(|e| e.to_string())?;
        stdin.flush().map_err(|e| e.to_string())?;
        let line = self.line()?;
        parse_answer(op, &line)
    }
}

impl Drop for Python {
    /// Closes its stdin (the script then exits) and reaps it.
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_parsed() {
        let line = r#"{"op": "lock", "value": 512345.5}"#;
        assert_eq!(parse_answer(Op::Lock, line), Ok(512345.5));
    }

    #[test]
    fn an_error_is_reported() {
        let line = r#"{"op": "lock", "error": "count 3 != 4"}"#;
        assert_eq!(parse_answer(Op::Lock, line), Err("count 3 != 4".into()));
    }

    #[test]
    fn an_answer_for_another_row_is_refused() {
        let line = r#"{"op": "spawn", "value": 1.0}"#;
        assert!(parse_answer(Op::Lock, line).is_err());
        assert!(parse_answer(Op::Lock, "not json").is_err());
    }
}
