//! forklab's `pool` rows: `Pool::new(2)` then `pool.map(f, 0..n)`.

use std::time::Instant;

use pool::Pool;

use crate::ops::{Sizes, cpu_task, tiny};
use crate::sys::rate;

/// `pool.map(tiny, 0..n)` with 2 workers (started before the clock); tasks/s.
pub fn pool_tiny(sizes: &Sizes) -> Result<f64, String> {
    let pool = Pool::new(2).map_err(|e| e.to_string())?;
    let n = sizes.tiny_tasks as u64;
    let start = Instant::now();
    let out = pool.map(tiny, 0..n).map_err(|e| e.to_string())?;
    let elapsed = start.elapsed();
    finish(pool)?;
    if out.len() as u64 != n || out.iter().zip(0..n).any(|(&o, i)| o != tiny(i)) {
        return Err("wrong results".into());
    }
    Ok(rate(out.len(), elapsed))
}

/// Serial time / `pool.map(cpu_task, 0..n)` time with 2 workers.
pub fn pool_cpu(sizes: &Sizes) -> Result<f64, String> {
    let n = sizes.cpu_tasks as u64;
    let pool = Pool::new(2).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let out = pool.map(cpu_task, 0..n).map_err(|e| e.to_string())?;
    let parallel = start.elapsed();
    finish(pool)?;
    let start = Instant::now();
    let serial: Vec<u64> = (0..n).map(|x| cpu_task(std::hint::black_box(x))).collect();
    let serial_time = start.elapsed();
    if out != serial {
        return Err("wrong results".into());
    }
    Ok(serial_time.as_secs_f64() / parallel.as_secs_f64())
}

/// `close` + `join`: the workers exit and are reaped.
fn finish(pool: Pool) -> Result<(), String> {
    pool.close();
    pool.join().map_err(|e| e.to_string())
}
