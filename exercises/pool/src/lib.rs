//! # Exercise 4 — `pool`: a pool of worker processes
//!
//! Build the Rust counterpart of Python's `multiprocessing.Pool`: a fixed set of worker
//! processes, forked once and reused for every task. Read `README.md` first (Spanish
//! and English), then replace every `todo!()`.
//!
//! ```python
//! def square(x): return x * x
//! with Pool(processes=4) as pool:
//!     print(pool.map(square, range(10)))      # [0, 1, 4, ..., 81], in order
//!     r = pool.apply_async(square, (7,))
//!     print(r.get(timeout=1))                 # 49
//! ```
//!
//! ```no_run
//! use pool::Pool;
//! fn square(x: u64) -> u64 { x * x }
//!
//! let pool = Pool::new(4).unwrap();
//! assert_eq!(pool.map(square, 0..10).unwrap(), vec![0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
//! let r = pool.apply_async(square, 7).unwrap();
//! assert_eq!(r.get().unwrap(), 49);
//! pool.close();
//! pool.join().unwrap();
//! ```
//!
//! Tasks are plain functions `fn(T) -> R` whose argument and result go through serde
//! (Python needs picklable top-level functions: this is the Rust analogue). How does
//! a worker know which function to run? It is a *fork* of the caller: the same program
//! at the same addresses. So a task can carry the function's address as a number
//! (`f as usize`) and the worker can call it. `README.md` (hints) shows how.
//!
//! Run the visible tests with `cargo test -p pool`.

// Delete this line once you have written the bodies: it only silences the warnings
// about the arguments and fields that the `todo!()` stubs do not use yet.
#![allow(unused_variables, dead_code)]

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use nix::unistd::Pid;

/// Why a pool operation or a task failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolError {
    /// The task panicked in its worker; the panic message.
    Panicked(String),
    /// The worker process running the task died before answering (killed, ...).
    /// `exitcode` follows Python: `n` after `exit(n)`, `-N` after signal `N`; `None`
    /// if unknown.
    WorkerDied { pid: Pid, exitcode: Option<i32> },
    /// `get_timeout`: the result was not ready in time (it may be asked for again).
    Timeout,
    /// The pool was closed or terminated: it takes no new tasks.
    Closed,
    /// `join` before `close` or `terminate`.
    StillRunning,
    /// The pool was terminated before the task finished.
    Terminated,
    /// An argument or a result could not be (de)serialised.
    Serde(String),
    /// The operating system refused a call (`fork`, `pipe`, `poll`, ...).
    Os(nix::errno::Errno),
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Panicked(message) => write!(f, "the task panicked: {message}"),
            PoolError::WorkerDied { pid, exitcode } => {
                write!(f, "worker process {pid} died before finishing the task")?;
                match exitcode {
                    Some(code) => write!(f, " (exit code {code})"),
                    None => Ok(()),
                }
            }
            PoolError::Timeout => write!(f, "the result was not ready in time"),
            PoolError::Closed => write!(f, "the pool is closed: it takes no new tasks"),
            PoolError::StillRunning => write!(f, "join needs close or terminate first"),
            PoolError::Terminated => write!(f, "the pool was terminated before the task ended"),
            PoolError::Serde(message) => write!(f, "serialisation failed: {message}"),
            PoolError::Os(errno) => write!(f, "system call failed: {errno}"),
        }
    }
}

impl std::error::Error for PoolError {}

impl From<nix::errno::Errno> for PoolError {
    fn from(errno: nix::errno::Errno) -> Self {
        PoolError::Os(errno)
    }
}

/// A pool of worker processes, like Python's `multiprocessing.Pool(processes=n)`.
///
/// Exactly `n` workers, forked by `new` and reused for every task; a worker that dies
/// is replaced by a new one. No helper thread: the pool moves tasks and results
/// whenever the caller calls into it (`map`, `apply`, `get`, `ready`, `wait`, `join`).
pub struct Pool {
    // Replace with what you need: the workers (pid, pipe ends), the tasks not sent
    // yet, the results received... in a `RefCell`, since an `AsyncResult` only
    // borrows the pool (`&Pool`) and yet `get` must move data.
    processes: usize,
}

/// The result of [`Pool::apply_async`] or [`Pool::map_async`], like Python's
/// `AsyncResult`. It borrows its pool. Dropping it forgets the result (the task still
/// runs).
#[must_use = "the task runs anyway, but its result is lost if the handle is dropped"]
pub struct AsyncResult<'p, R> {
    // Replace or extend as you need.
    pool: &'p Pool,
    job: u64,
    result: PhantomData<fn() -> R>,
}

impl Pool {
    /// Forks `processes` worker processes now, children of the caller. They live until
    /// `join`, `terminate` or drop.
    ///
    /// # Panics
    /// If `processes` is 0 (Python raises `ValueError`).
    pub fn new(processes: usize) -> Result<Pool, PoolError> {
        todo!("fork the workers, each with its own pipes")
    }

    /// The pool's size, `processes` of [`Pool::new`].
    pub fn processes(&self) -> usize {
        todo!("return the size")
    }

    /// The pids of the current workers (always [`processes`](Self::processes) of them
    /// while the pool runs).
    pub fn worker_pids(&self) -> Vec<Pid> {
        todo!("list the workers' pids")
    }

    /// Runs `f(arg)` in a worker and waits for its result (Python's `apply`).
    ///
    /// Errors: [`PoolError::Panicked`] if `f` panicked, [`PoolError::WorkerDied`] if
    /// the worker died meanwhile, [`PoolError::Closed`] after `close`/`terminate`.
    pub fn apply<T, R>(&self, f: fn(T) -> R, arg: T) -> Result<R, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        todo!("apply_async, then get")
    }

    /// Sends `f(arg)` to a worker and returns at once (Python's `apply_async`).
    ///
    /// Errors: [`PoolError::Closed`] after `close`/`terminate`.
    pub fn apply_async<T, R>(&self, f: fn(T) -> R, arg: T) -> Result<AsyncResult<'_, R>, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        todo!("queue one task, hand it to an idle worker, return a handle")
    }

    /// `f` applied to every item in the workers; the results in input order (Python's
    /// `map`). Items travel in chunks, as with Python's default `chunksize`
    /// (`ceil(len / (4 * processes))` items per task), so that many tiny tasks do not
    /// cost one pipe round trip each.
    ///
    /// Errors: the first failing item's error (in input order), as Python raises the
    /// first exception; [`PoolError::Closed`] after `close`/`terminate`.
    pub fn map<T, R>(
        &self,
        f: fn(T) -> R,
        items: impl IntoIterator<Item = T>,
    ) -> Result<Vec<R>, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        todo!("map_async, then get")
    }

    /// Like [`map`](Self::map) with tasks of `chunksize` items (Python's
    /// `map(f, items, chunksize)`); a `chunksize` of 0 counts as 1.
    pub fn map_chunked<T, R>(
        &self,
        f: fn(T) -> R,
        items: impl IntoIterator<Item = T>,
        chunksize: usize,
    ) -> Result<Vec<R>, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        todo!("cut the items into chunks, send them, collect in order")
    }

    /// Like [`map`](Self::map) but returns at once (Python's `map_async`).
    pub fn map_async<T, R>(
        &self,
        f: fn(T) -> R,
        items: impl IntoIterator<Item = T>,
    ) -> Result<AsyncResult<'_, Vec<R>>, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        todo!("queue the chunks, return a handle")
    }

    /// Takes no more tasks (Python's `close`): `apply`/`map` then give
    /// [`PoolError::Closed`]. The workers finish what is queued, then exit (in `join`).
    pub fn close(&self) {
        todo!("stop accepting tasks")
    }

    /// Waits until every queued task is done and every worker has exited, and reaps
    /// them: no worker and no zombie is left (Python's `join`). Results stay available
    /// to their `AsyncResult`s.
    ///
    /// Errors: [`PoolError::StillRunning`] unless `close` or `terminate` came first.
    pub fn join(&self) -> Result<(), PoolError> {
        todo!("finish the work, tell the workers to stop, reap them")
    }

    /// Stops the workers now (`SIGKILL`) and reaps them (Python's `terminate`);
    /// unfinished tasks fail with [`PoolError::Terminated`].
    pub fn terminate(&self) {
        todo!("kill and reap every worker")
    }
}

impl Drop for Pool {
    /// Dropping a pool terminates it: its workers are stopped and reaped, as when
    /// Python leaves a `with Pool() as pool:` block.
    fn drop(&mut self) {
        // Your `terminate` goes here. (Left empty in the stub so that dropping a stub
        // pool does not panic twice.)
    }
}

impl<R> AsyncResult<'_, R>
where
    R: DeserializeOwned,
{
    /// Waits for the result (Python's `get()`): the value, or the task's error. May be
    /// called again and gives the same answer.
    pub fn get(&self) -> Result<R, PoolError> {
        todo!("wait until done, then decode the result")
    }

    /// Like [`get`](Self::get) but waits at most `timeout` (Python's `get(timeout)`):
    /// [`PoolError::Timeout`] if the result is not ready by then; it can still be
    /// asked for later.
    pub fn get_timeout(&self, timeout: Duration) -> Result<R, PoolError> {
        todo!("wait with a deadline")
    }

    /// True once the result (or the error) is there (Python's `ready()`). Never blocks.
    pub fn ready(&self) -> bool {
        todo!("collect what has arrived, without blocking")
    }

    /// Blocks until the result is ready (Python's `wait()`).
    pub fn wait(&self) {
        todo!("wait until done")
    }

    /// Blocks at most `timeout` (Python's `wait(timeout)`); true if the result is
    /// ready.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        todo!("wait with a deadline")
    }
}
