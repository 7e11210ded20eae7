//! forklab's `lock` row: two processes increment a `SharedCounter` under one `Lock`.

use lock::{Lock, SharedCounter};

use crate::ops::Sizes;
use crate::sys::{rate, time_gated};

/// Each of two processes (CPU 0 and 1) runs `increments` times
/// `{ let _held = lock.lock(); counter.write(counter.read() + 1) }` — the body of
/// `count_with_lock`; op/s, count checked exact.
pub fn lock(sizes: &Sizes) -> Result<f64, String> {
    let lock = Lock::new();
    let counter = SharedCounter::new();
    let k = sizes.increments;
    let elapsed = time_gated(&[0, 1], |_| {
        for _ in 0..k {
            let _held = lock.lock();
            counter.write(counter.read() + 1);
        }
    })?;
    let got = counter.read();
    if got != 2 * k as u64 {
        return Err(format!("count {got}, expected {}", 2 * k));
    }
    Ok(rate(2 * k, elapsed))
}
