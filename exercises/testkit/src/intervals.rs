//! Busy intervals recorded by worker processes, to judge parallelism by overlap in
//! time rather than by wall-clock speed-up (noisy machines make speed-ups unreliable).

use nix::time::{ClockId, clock_gettime};

use crate::SharedSlots;

/// Nanoseconds on the monotonic clock, which all processes of the machine share.
pub fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("clock_gettime");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// A log of `(pid, start, end)` intervals written by any process forked after it.
pub struct BusyLog {
    slots: SharedSlots,
}

/// One recorded interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub pid: u32,
    pub start_ns: u64,
    pub end_ns: u64,
}

impl BusyLog {
    /// Room for `capacity` intervals.
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: SharedSlots::new(capacity * 3),
        }
    }

    /// Runs `work` and records the interval it took, with the current process id.
    pub fn record<R>(&self, work: impl FnOnce() -> R) -> R {
        let start = now_ns();
        let result = work();
        let end = now_ns();
        self.slots
            .push_all(&[u64::from(std::process::id()), start, end]);
        result
    }

    /// Every recorded interval.
    pub fn intervals(&self) -> Vec<Interval> {
        self.slots
            .pushed()
            .chunks_exact(3)
            .map(|c| Interval {
                pid: c[0] as u32,
                start_ns: c[1],
                end_ns: c[2],
            })
            .collect()
    }
}

/// The time during which at least two of `intervals` run at once, in nanoseconds.
/// Each process records its intervals one after the other, so any overlap is between
/// different processes. Zero means the work never ran in parallel.
pub fn parallel_overlap_ns(intervals: &[Interval]) -> u64 {
    let mut edges: Vec<(u64, i32)> = intervals
        .iter()
        .flat_map(|i| [(i.start_ns, 1), (i.end_ns, -1)])
        .collect();
    // Ends sort before starts at the same instant: touching intervals do not overlap.
    edges.sort_unstable();
    let (mut active, mut since, mut total) = (0, 0, 0);
    for (at, step) in edges {
        if active >= 2 {
            total += at - since;
        }
        active += step;
        since = at;
    }
    total
}

/// The number of distinct processes that recorded intervals.
pub fn distinct_pids(intervals: &[Interval]) -> usize {
    let mut pids: Vec<u32> = intervals.iter().map(|i| i.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    pids.len()
}

/// `ns` nanoseconds in milliseconds, for messages.
pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}
