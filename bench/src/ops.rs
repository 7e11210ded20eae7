//! The benchmark's rows: what each one measures, in which unit, and how big it is.
//!
//! Every implementation (forklab, raw system calls, Python) runs the same operation with
//! the sizes below. Python gets smaller counts on its slowest rows so that one run stays
//! short; every row is a *rate* or a *time per operation*, so the counts do not enter
//! the ratios.

use serde::Serialize;

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Start a child that does nothing and join it.
    Spawn,
    /// Parent sends a small message to a child, which sends it back.
    PipeRoundTrip,
    /// A child sends 64 KiB messages to the parent (forklab: as one byte string).
    PipeThroughput,
    /// The same, forklab sending a plain `Vec<u8>` (serde sees a sequence of `u8`).
    PipeThroughputVec,
    /// One producer process, one consumer process, small messages.
    Queue1To1,
    /// Two producer processes, two consumer processes.
    Queue2To2,
    /// Two processes each increment a shared counter under one lock.
    Lock,
    /// Two processes each fill half of a shared array of `f64`.
    ArrayFill,
    /// `pool.map` of a trivial function over 100 000 integers, 2 workers.
    PoolTiny,
    /// `pool.map` of a CPU-bound function, 2 workers: speed-up over a serial loop.
    PoolCpu,
}

/// Whether a bigger number is better (a rate) or worse (a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

impl Op {
    /// Every row, in table order.
    pub const ALL: [Op; 10] = [
        Op::Spawn,
        Op::PipeRoundTrip,
        Op::PipeThroughput,
        Op::PipeThroughputVec,
        Op::Queue1To1,
        Op::Queue2To2,
        Op::Lock,
        Op::ArrayFill,
        Op::PoolTiny,
        Op::PoolCpu,
    ];

    /// The name shared with `python/bench_mp.py` (and the `--only` option).
    pub fn key(self) -> &'static str {
        match self {
            Op::Spawn => "spawn",
            Op::PipeRoundTrip => "pipe_rtt",
            Op::PipeThroughput => "pipe_64k",
            Op::PipeThroughputVec => "pipe_64k_vec",
            Op::Queue1To1 => "queue_1_1",
            Op::Queue2To2 => "queue_2_2",
            Op::Lock => "lock",
            Op::ArrayFill => "array_fill",
            Op::PoolTiny => "pool_tiny",
            Op::PoolCpu => "pool_cpu",
        }
    }

    /// The row's label in the table.
    pub fn label(self) -> &'static str {
        match self {
            Op::Spawn => "process spawn + join",
            Op::PipeRoundTrip => "pipe round trip, small message",
            Op::PipeThroughput => "pipe throughput, 64 KiB messages",
            Op::PipeThroughputVec => "same, forklab sending a Vec<u8>",
            Op::Queue1To1 => "queue 1 -> 1",
            Op::Queue2To2 => "queue 2 -> 2",
            Op::Lock => "lock, 2 processes contending",
            Op::ArrayFill => "shared array fill, 2 processes",
            Op::PoolTiny => "pool.map, 100k tiny tasks",
            Op::PoolCpu => "pool.map CPU-bound, speed-up",
        }
    }

    /// The unit of the numbers in the table.
    pub fn unit(self) -> &'static str {
        match self {
            Op::Spawn | Op::PipeRoundTrip => "us",
            Op::PipeThroughput | Op::PipeThroughputVec => "MiB/s",
            Op::Queue1To1 | Op::Queue2To2 => "msg/s",
            Op::Lock => "op/s",
            Op::ArrayFill => "elem/s",
            Op::PoolTiny => "task/s",
            Op::PoolCpu => "x",
        }
    }

    pub fn better(self) -> Better {
        match self {
            Op::Spawn | Op::PipeRoundTrip => Better::Lower,
            _ => Better::Higher,
        }
    }

    /// The least acceptable forklab/raw ratio (relative speed).
    pub fn target(self) -> f64 {
        match self {
            Op::PoolCpu => 0.9,
            _ => 0.5,
        }
    }

    /// Whether the row runs two processes pinned one per CPU.
    pub fn pinned(self) -> bool {
        matches!(
            self,
            Op::PipeRoundTrip
                | Op::PipeThroughput
                | Op::PipeThroughputVec
                | Op::Queue1To1
                | Op::Queue2To2
                | Op::Lock
                | Op::ArrayFill
        )
    }

    /// The row of `python/bench_mp.py` that measures the same thing.
    pub fn python_key(self) -> &'static str {
        match self {
            Op::PipeThroughputVec => Op::PipeThroughput.key(),
            _ => self.key(),
        }
    }

    pub fn from_key(key: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.key() == key)
    }
}

/// How many operations one measurement makes (forklab and raw use the same sizes).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sizes {
    pub spawns: usize,
    pub round_trips: usize,
    /// Number of 64 KiB messages.
    pub big_messages: usize,
    /// Messages per producer.
    pub queue_messages: usize,
    /// Increments per process.
    pub increments: usize,
    pub array_len: usize,
    pub tiny_tasks: usize,
    pub cpu_tasks: usize,
}

impl Sizes {
    pub fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                spawns: 50,
                round_trips: 1_000,
                big_messages: 500,
                queue_messages: 20_000,
                increments: 200_000,
                array_len: 2_000_000,
                tiny_tasks: 100_000,
                cpu_tasks: 16,
            }
        } else {
            Sizes {
                spawns: 200,
                round_trips: 5_000,
                big_messages: 2_000,
                queue_messages: 100_000,
                increments: 1_000_000,
                array_len: 10_000_000,
                tiny_tasks: 100_000,
                cpu_tasks: 48,
            }
        }
    }
}

/// A small message: what the round-trip and queue rows send.
pub const SMALL: usize = 16;
/// A big message: what the throughput row sends.
pub const BIG: usize = 64 * 1024;

/// The trivial task of [`Op::PoolTiny`].
pub fn tiny(x: u64) -> u64 {
    x.wrapping_mul(x)
}

/// Iterations of [`cpu_task`]: a few milliseconds each.
const CPU_ROUNDS: u32 = 3_000_000;

/// The CPU-bound task of [`Op::PoolCpu`]: a dependent chain of multiplications the
/// compiler cannot shorten.
pub fn cpu_task(seed: u64) -> u64 {
    let mut x = seed;
    for _ in 0..CPU_ROUNDS {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        x ^= x >> 29;
    }
    x
}
