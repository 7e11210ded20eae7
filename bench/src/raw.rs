//! The raw baselines: the same operations written straight on `libc` — `fork`,
//! `waitpid`, `pipe`, `read`/`write`, a futex word and `MAP_SHARED` memory — with no
//! abstraction, no serialisation and no error types. They are the floor that forklab's
//! solutions are compared with.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crate::ops::{BIG, SMALL, Sizes, cpu_task, tiny};
use crate::sys::{self, fork_gated, micros_per, rate, time_gated};

/// `fork` + `_exit(0)` + `waitpid`, in µs per process.
pub fn spawn(sizes: &Sizes) -> Result<f64, String> {
    let start = Instant::now();
    for _ in 0..sizes.spawns {
        // SAFETY: the child calls only `_exit`.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => return Err("fork failed".into()),
            // SAFETY: ends the child at once.
            0 => unsafe { libc::_exit(0) },
            _ => wait(pid)?,
        }
    }
    Ok(micros_per(sizes.spawns, start.elapsed()))
}

fn wait(pid: libc::pid_t) -> Result<(), String> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    if r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(format!("child {pid} failed (status {status:#x})"))
    }
}

/// A pipe as two raw fds `[read, write]`.
fn raw_pipe() -> [libc::c_int; 2] {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(r, 0, "pipe failed");
    fds
}

fn close(fd: libc::c_int) {
    // SAFETY: closing a raw fd we own; nothing else uses it afterwards.
    unsafe { libc::close(fd) };
}

/// Reads exactly `buf.len()` bytes; false at end of file.
fn read_full(fd: libc::c_int, buf: &mut [u8]) -> bool {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writes at most `buf.len() - done` bytes inside `buf`.
        let n = unsafe { libc::read(fd, buf[done..].as_mut_ptr().cast(), buf.len() - done) };
        match n {
            0 => return false,
            n if n < 0 => {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return false;
            }
            n => done += n as usize,
        }
    }
    true
}

/// Writes all of `buf`; panics if the pipe is broken.
fn write_full(fd: libc::c_int, buf: &[u8]) {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: reads at most `buf.len() - done` bytes inside `buf`.
        let n = unsafe { libc::write(fd, buf[done..].as_ptr().cast(), buf.len() - done) };
        assert!(n > 0, "write to a pipe failed");
        done += n as usize;
    }
}

/// Parent (CPU 0) ↔ child (CPU 1) over two pipes, 16-byte messages; µs per round trip.
pub fn pipe_round_trip(sizes: &Sizes) -> Result<f64, String> {
    let [to_child_r, to_child_w] = raw_pipe();
    let [to_parent_r, to_parent_w] = raw_pipe();
    let children = fork_gated(&[1], |_| {
        close(to_child_w);
        close(to_parent_r);
        let mut msg = [0u8; SMALL];
        while read_full(to_child_r, &mut msg) {
            write_full(to_parent_w, &msg);
        }
    });
    close(to_child_r);
    close(to_parent_w);
    sys::pin(0);
    let mut children = children;
    children.release();
    let mut msg = [7u8; SMALL];
    // One round trip to warm up: the child is running once it answers.
    write_full(to_child_w, &msg);
    read_full(to_parent_r, &mut msg);
    let start = Instant::now();
    for _ in 0..sizes.round_trips {
        write_full(to_child_w, &msg);
        if !read_full(to_parent_r, &mut msg) {
            break;
        }
    }
    let elapsed = start.elapsed();
    close(to_child_w);
    close(to_parent_r);
    sys::unpin();
    children.join()?;
    Ok(micros_per(sizes.round_trips, elapsed))
}

/// Child (CPU 1) writes 64 KiB messages, parent (CPU 0) reads them; MiB/s, timed from
/// the end of the first message.
pub fn pipe_throughput(sizes: &Sizes) -> Result<f64, String> {
    let [r, w] = raw_pipe();
    let n = sizes.big_messages;
    let mut children = fork_gated(&[1], |_| {
        close(r);
        let msg = vec![0x5au8; BIG];
        for _ in 0..n {
            write_full(w, &msg);
        }
    });
    close(w);
    sys::pin(0);
    children.release();
    let mut msg = vec![0u8; BIG];
    let mut got = read_full(r, &mut msg) as usize;
    let start = Instant::now();
    while read_full(r, &mut msg) {
        got += 1;
    }
    let elapsed = start.elapsed();
    close(r);
    sys::unpin();
    children.join()?;
    if got != n || msg[BIG - 1] != 0x5a {
        return Err(format!("received {got} of {n} messages"));
    }
    Ok(rate((n - 1) * BIG, elapsed) / (1024.0 * 1024.0))
}

/// A `MAP_SHARED | MAP_ANONYMOUS` mapping of `bytes` bytes (zero-filled).
fn map_shared(bytes: usize) -> *mut u8 {
    // SAFETY: a fresh anonymous mapping; it aliases nothing.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap failed");
    p.cast()
}

fn unmap(p: *mut u8, bytes: usize) {
    // SAFETY: `p` comes from `map_shared(bytes)` and is not used afterwards.
    unsafe { libc::munmap(p.cast(), bytes) };
}

/// `producers` processes each write `n` 16-byte records (≤ `PIPE_BUF`, so each write is
/// atomic) into one pipe; `consumers` processes read 16 bytes at a time until a stop
/// record. msg/s; every record is counted and checked.
pub fn queue(sizes: &Sizes, producers: usize, consumers: usize) -> Result<f64, String> {
    let n = sizes.queue_messages;
    let [r, w] = raw_pipe();
    let page = map_shared(4096);
    // SAFETY: the page is zero-filled and only used through atomics.
    let (received, sum) = unsafe {
        (
            &*(page.cast::<AtomicU64>()),
            &*(page.cast::<AtomicU64>().add(1)),
        )
    };
    // Producer i and consumer i share CPU i.
    let cpus: Vec<usize> = (0..producers).chain(0..consumers).collect();
    let start;
    {
        let mut children = fork_gated(&cpus, |i| {
            if i < producers {
                close(r);
                for seq in 0..n as u64 {
                    let mut rec = [0u8; SMALL];
                    rec[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    rec[8..].copy_from_slice(&seq.to_le_bytes());
                    write_full(w, &rec);
                }
            } else {
                close(w);
                let (mut count, mut total) = (0u64, 0u64);
                let mut rec = [0u8; SMALL];
                while read_full(r, &mut rec) {
                    let producer = u64::from_le_bytes(rec[..8].try_into().unwrap());
                    if producer == u64::MAX {
                        break;
                    }
                    count += 1;
                    total += u64::from_le_bytes(rec[8..].try_into().unwrap());
                }
                received.fetch_add(count, Ordering::Relaxed);
                sum.fetch_add(total, Ordering::Relaxed);
            }
        });
        start = Instant::now();
        children.release();
        // The stop records go after every producer's records: wait for the producers
        // first. Children are reaped in order, producers first.
        let pids = children.take_first(producers);
        for pid in pids {
            wait(pid.as_raw())?;
        }
        for _ in 0..consumers {
            write_full(w, &[0xff; SMALL]);
        }
        children.join()?;
    }
    let elapsed = start.elapsed();
    close(r);
    close(w);
    let total = (producers * n) as u64;
    let (got, got_sum) = (
        received.load(Ordering::Relaxed),
        sum.load(Ordering::Relaxed),
    );
    unmap(page, 4096);
    let want_sum = producers as u64 * (n as u64 * (n as u64 - 1) / 2);
    if got != total || got_sum != want_sum {
        return Err(format!("received {got} of {total} records"));
    }
    Ok(rate(producers * n, elapsed))
}

/// The futex mutex of "Futexes Are Tricky" on a raw word: 0 free, 1 held, 2 contended.
fn futex_lock(word: &AtomicU32) {
    if word
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        return;
    }
    while word.swap(2, Ordering::Acquire) != 0 {
        // SAFETY: `word` is a valid aligned u32; FUTEX_WAIT only reads it.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                2,
                std::ptr::null::<libc::timespec>(),
            )
        };
    }
}

fn futex_unlock(word: &AtomicU32) {
    if word.swap(0, Ordering::Release) == 2 {
        // SAFETY: `word` is a valid aligned u32; FUTEX_WAKE does not touch memory.
        unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1) };
    }
}

/// Two processes (CPU 0 and 1) each increment a shared counter `increments` times under a
/// shared futex; op/s, count checked exact.
pub fn lock(sizes: &Sizes) -> Result<f64, String> {
    let page = map_shared(4096);
    // SAFETY: zero-filled page, reached only through atomics; word at 0, counter at 8.
    let (word, counter) = unsafe {
        (
            &*(page.cast::<AtomicU32>()),
            &*(page.add(8).cast::<AtomicU64>()),
        )
    };
    let k = sizes.increments;
    let elapsed = time_gated(&[0, 1], |_| {
        for _ in 0..k {
            futex_lock(word);
            counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            futex_unlock(word);
        }
    })?;
    let got = counter.load(Ordering::Relaxed);
    unmap(page, 4096);
    if got != 2 * k as u64 {
        return Err(format!("count {got}, expected {}", 2 * k));
    }
    Ok(rate(2 * k, elapsed))
}

/// Two processes (CPU 0 and 1) each fill half of a `MAP_SHARED` array of `f64`; elem/s,
/// every element checked.
pub fn array_fill(sizes: &Sizes) -> Result<f64, String> {
    let len = sizes.array_len;
    let bytes = len * size_of::<f64>();
    let base = map_shared(bytes).cast::<f64>();
    let elapsed = time_gated(&[0, 1], |i| {
        let (lo, hi) = (i * len / 2, (i + 1) * len / 2);
        for k in lo..hi {
            // SAFETY: `k < len`, inside the mapping; this process alone writes its half.
            unsafe { base.add(k).write(k as f64) };
        }
    })?;
    // SAFETY: the children are reaped: nobody else writes; `len` f64 are mapped.
    let all = unsafe { std::slice::from_raw_parts(base, len) };
    let ok = all.iter().enumerate().all(|(k, &x)| x == k as f64);
    unmap(base.cast(), bytes);
    if !ok {
        return Err("wrong array contents".into());
    }
    Ok(rate(len, elapsed))
}

/// A pool on bare pipes: pre-forked workers running one fixed `fn(u64) -> u64`; a chunk
/// is a `u64` count and the native-endian items, the reply the results.
pub struct RawPool {
    workers: Vec<(libc::pid_t, libc::c_int, libc::c_int)>,
}

impl RawPool {
    pub fn new(workers: usize, f: fn(u64) -> u64) -> RawPool {
        let mut pool = RawPool {
            workers: Vec::new(),
        };
        for _ in 0..workers {
            let [orders_r, orders_w] = raw_pipe();
            let [replies_r, replies_w] = raw_pipe();
            // SAFETY: single-threaded; the child serves and `_exit`s.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                close(orders_w);
                close(replies_r);
                for &(_, o, r) in &pool.workers {
                    close(o);
                    close(r);
                }
                serve(orders_r, replies_w, f);
                // SAFETY: ends the worker at once.
                unsafe { libc::_exit(0) }
            }
            close(orders_r);
            close(replies_w);
            pool.workers.push((pid, orders_w, replies_r));
        }
        pool
    }

    /// `f` over `items`, in chunks of `ceil(len / (4 * workers))` as Python's `map`. A
    /// worker holds one chunk at a time, so a blocked write never deadlocks.
    pub fn map(&self, items: &[u64]) -> Vec<u64> {
        let chunk = items.len().div_ceil(4 * self.workers.len()).max(1);
        let mut out = vec![0u64; items.len()];
        let chunks: Vec<(usize, &[u64])> = items
            .chunks(chunk)
            .enumerate()
            .map(|(i, c)| (i * chunk, c))
            .collect();
        for round in chunks.chunks(self.workers.len()) {
            for (&(_, o, _), &(_, c)) in self.workers.iter().zip(round) {
                write_full(o, &(c.len() as u64).to_ne_bytes());
                write_full(o, as_bytes(c));
            }
            for (&(_, _, r), &(at, c)) in self.workers.iter().zip(round) {
                let dst = &mut out[at..at + c.len()];
                // SAFETY: `u64` has no invalid bit pattern; the slice is exclusively ours.
                let bytes = unsafe {
                    std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<u8>(), dst.len() * 8)
                };
                assert!(read_full(r, bytes), "a raw worker died");
            }
        }
        out
    }
}

impl Drop for RawPool {
    fn drop(&mut self) {
        for &(pid, o, r) in &self.workers {
            close(o); // EOF: the worker exits
            let _ = wait(pid);
            close(r);
        }
    }
}

fn as_bytes(items: &[u64]) -> &[u8] {
    // SAFETY: a `u64` slice is readable as bytes, same lifetime.
    unsafe { std::slice::from_raw_parts(items.as_ptr().cast(), items.len() * 8) }
}

fn serve(orders: libc::c_int, replies: libc::c_int, f: fn(u64) -> u64) {
    let mut header = [0u8; 8];
    let mut items: Vec<u64> = Vec::new();
    while read_full(orders, &mut header) {
        let n = u64::from_ne_bytes(header) as usize;
        items.resize(n, 0);
        // SAFETY: as in `map`: bytes of our own `u64` buffer.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(items.as_mut_ptr().cast::<u8>(), n * 8) };
        if !read_full(orders, bytes) {
            return;
        }
        for x in items.iter_mut() {
            *x = f(*x);
        }
        write_full(replies, as_bytes(&items));
    }
}

/// `map(tiny, 0..n)` on a 2-worker [`RawPool`]; tasks/s, results checked.
pub fn pool_tiny(sizes: &Sizes) -> Result<f64, String> {
    let pool = RawPool::new(2, tiny);
    // Like `pool.map(f, range(n))`: the items are made inside the timed section.
    let start = Instant::now();
    let items: Vec<u64> = (0..sizes.tiny_tasks as u64).collect();
    let out = pool.map(&items);
    let elapsed = start.elapsed();
    drop(pool);
    if out.iter().zip(&items).any(|(&o, &i)| o != tiny(i)) {
        return Err("wrong results".into());
    }
    Ok(rate(items.len(), elapsed))
}

/// Serial time / 2-worker [`RawPool`] time for `map(cpu_task, ...)`.
pub fn pool_cpu(sizes: &Sizes) -> Result<f64, String> {
    let pool = RawPool::new(2, cpu_task);
    let start = Instant::now();
    let items: Vec<u64> = (0..sizes.cpu_tasks as u64).collect();
    let out = pool.map(&items);
    let parallel = start.elapsed();
    drop(pool);
    let start = Instant::now();
    let serial: Vec<u64> = items
        .iter()
        .map(|&x| cpu_task(std::hint::black_box(x)))
        .collect();
    let serial_time = start.elapsed();
    if out != serial {
        return Err("wrong results".into());
    }
    Ok(serial_time.as_secs_f64() / parallel.as_secs_f64())
}
