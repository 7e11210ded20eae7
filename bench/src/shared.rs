//! forklab's `value_array` row: two processes fill the halves of one shared array.

use value_array::RawArray;

use crate::ops::Sizes;
use crate::sys::{rate, time_gated};

/// Each of two processes (CPU 0 and 1) writes its half of a `RawArray<f64>` element by
/// element (`arr.set(k, v)`, Python's `arr[k] = v`); elem/s, every element checked.
pub fn array_fill(sizes: &Sizes) -> Result<f64, String> {
    let len = sizes.array_len;
    let array = RawArray::<f64>::new(len).map_err(|e| e.to_string())?;
    let elapsed = time_gated(&[0, 1], |i| {
        for k in i * len / 2..(i + 1) * len / 2 {
            array.set(k, k as f64).expect("index in range");
        }
    })?;
    let all = array.to_vec();
    if all.iter().enumerate().any(|(k, &x)| x != k as f64) {
        return Err("wrong array contents".into());
    }
    Ok(rate(len, elapsed))
}
