//! forklab's benchmark: each reference solution against Python's `multiprocessing`
//! (fork start method) and against raw system calls, in one run.
//!
//! `cargo run --release -p forklab-bench [-- --runs 7 --quick --only lock,pool_cpu]`
//!
//! Each run measures every row once per implementation, rotating which implementation
//! goes first, so that the machine's drifts (other builds, frequency) hit all three
//! alike; the table shows medians of the runs and the ratios of those medians.

mod locking;
mod ops;
mod pipes;
mod pooling;
mod python;
mod raw;
mod shared;
mod spawn;
mod sys;
mod table;

use std::process::ExitCode;

use clap::Parser;

use ops::{Op, Sizes};
use python::Python;
use table::{Imp, Row};

/// Benchmark forklab's solutions against Python multiprocessing and raw syscalls.
#[derive(Parser, Debug)]
#[command(name = "forklab-bench")]
struct Args {
    /// Runs per row and implementation (the table shows medians). Default 7, 3 with --quick.
    #[arg(long)]
    runs: Option<usize>,
    /// Smaller sizes, for a check in a few seconds.
    #[arg(long)]
    quick: bool,
    /// Only these rows (comma-separated keys: spawn, pipe_rtt, pipe_64k, pipe_64k_vec,
    /// queue_1_1, queue_2_2, lock, array_fill, pool_tiny, pool_cpu).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The Python interpreter.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Skip the Python column.
    #[arg(long)]
    no_python: bool,
    /// Measure only this implementation (forklab, python or raw), e.g. under a profiler.
    #[arg(long)]
    imp: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    sys::init();
    let runs = args.runs.unwrap_or(if args.quick { 3 } else { 7 }).max(1);
    let sizes = Sizes::new(args.quick);
    let mut ops = Vec::new();
    for key in &args.only {
        match Op::from_key(key) {
            Some(op) => ops.push(op),
            None => {
                eprintln!("unknown row {key:?}");
                return ExitCode::from(2);
            }
        }
    }
    if ops.is_empty() {
        ops = Op::ALL.to_vec();
    }
    if let Some(imp) = &args.imp {
        if !Imp::ALL.iter().any(|i| i.name().eq_ignore_ascii_case(imp)) {
            eprintln!("unknown implementation {imp:?} (forklab, python or raw)");
            return ExitCode::from(2);
        }
    }

    let python_wanted = args
        .imp
        .as_ref()
        .is_none_or(|i| i.eq_ignore_ascii_case("python"));
    let mut python = if args.no_python || !python_wanted {
        None
    } else {
        match Python::start(&args.python, args.quick) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("Python column skipped: {e}");
                None
            }
        }
    };

    let mut rows: Vec<Row> = ops.iter().map(|&op| Row::new(op)).collect();
    for run in 0..runs {
        eprintln!("run {}/{runs}", run + 1);
        for (i, row) in rows.iter_mut().enumerate() {
            for k in 0..3 {
                let imp = Imp::ALL[(run + i + k) % 3];
                if args
                    .imp
                    .as_ref()
                    .is_some_and(|only| !imp.name().eq_ignore_ascii_case(only))
                {
                    continue;
                }
                sys::trim_heap();
                let result = match imp {
                    Imp::Forklab => forklab(row.op, &sizes),
                    Imp::Raw => Some(baseline(row.op, &sizes)),
                    Imp::Python => python.as_mut().map(|p| p.measure(row.op)),
                };
                let key = row.op.key();
                let cell = row.cell(imp);
                match result {
                    None => {
                        cell.skipped = Some(match imp {
                            Imp::Forklab => "pending".to_owned(),
                            _ => "skipped".to_owned(),
                        })
                    }
                    Some(Ok(value)) => cell.samples.push((run, value)),
                    Some(Err(e)) => {
                        eprintln!("  {key} / {imp:?}: {e}");
                        cell.error = Some(e);
                    }
                }
            }
        }
    }

    println!("{}", header(runs, &sizes, python.as_ref()));
    println!();
    print!("{}", table::render(&rows));
    println!();
    println!(
        "Values are medians of {runs} runs; ratios are relative speeds (above 1: forklab \
         is faster), the median of the per-run ratios (the implementations alternate \
         within each run, each run's order rotated). \"(pinned)\": the two processes \
         of the row are pinned one per CPU with sched_setaffinity, in all three \
         implementations alike; the other rows are not pinned."
    );
    drop(python);
    let failed = rows
        .iter()
        .any(|r| r.cells.iter().any(|c| c.error.is_some()));
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// forklab's measurement of `op`; `None` if it has no forklab implementation yet.
fn forklab(op: Op, sizes: &Sizes) -> Option<Result<f64, String>> {
    Some(match op {
        Op::Spawn => spawn::spawn(sizes),
        Op::PipeRoundTrip
        | Op::PipeThroughput
        | Op::PipeThroughputVec
        | Op::Queue1To1
        | Op::Queue2To2 => return pipes::measure(op, sizes),
        Op::Lock => locking::lock(sizes),
        Op::ArrayFill => shared::array_fill(sizes),
        Op::PoolTiny => pooling::pool_tiny(sizes),
        Op::PoolCpu => pooling::pool_cpu(sizes),
    })
}

/// The raw-syscall measurement of `op`.
fn baseline(op: Op, sizes: &Sizes) -> Result<f64, String> {
    match op {
        Op::Spawn => raw::spawn(sizes),
        Op::PipeRoundTrip => raw::pipe_round_trip(sizes),
        Op::PipeThroughput | Op::PipeThroughputVec => raw::pipe_throughput(sizes),
        Op::Queue1To1 => raw::queue(sizes, 1, 1),
        Op::Queue2To2 => raw::queue(sizes, 2, 2),
        Op::Lock => raw::lock(sizes),
        Op::ArrayFill => raw::array_fill(sizes),
        Op::PoolTiny => raw::pool_tiny(sizes),
        Op::PoolCpu => raw::pool_cpu(sizes),
    }
}

/// When, where and how big: the lines above the table.
fn header(runs: usize, sizes: &Sizes, python: Option<&Python>) -> String {
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let python = python.map_or("not run".to_owned(), |p| p.version.clone());
    format!(
        "forklab-bench, {date}: {} CPUs ({cpu}), Linux {kernel}, Python {python}, {runs} runs\n\
         sizes: {}",
        sys::cpus(),
        serde_json::to_string(sizes).unwrap_or_default()
    )
}
