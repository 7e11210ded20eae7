//! forklab's `procesos` row: `Process::new(..)`, `start`, `join`.

use std::time::Instant;

use procesos::Process;

use crate::ops::Sizes;
use crate::sys::micros_per;

/// Starts and joins `spawns` processes that do nothing; µs per process.
pub fn spawn(sizes: &Sizes) -> Result<f64, String> {
    let start = Instant::now();
    for _ in 0..sizes.spawns {
        let mut p = Process::new(|| {});
        p.start().map_err(|e| e.to_string())?;
        p.join().map_err(|e| e.to_string())?;
        if p.exitcode() != Some(0) {
            return Err(format!("exit code {:?}", p.exitcode()));
        }
    }
    Ok(micros_per(sizes.spawns, start.elapsed()))
}
