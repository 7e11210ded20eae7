//! Reference solution of exercise 4, `pool`: Python's `multiprocessing.Pool` as a fixed
//! set of forked worker processes, reused for every task.
//!
//! The design is single-threaded (the grader forbids helper threads):
//! - each worker has its own pair of pipes (see `worker`);
//! - the pool does its work *lazily*, whenever the caller calls into it (`map`, `get`,
//!   `ready`, `wait`, `join`): it hands pending tasks to idle workers, then `poll`s
//!   every worker's pipes at once and collects the replies;
//! - a task names its function by address (see `wire`: the analogue of pickling a
//!   top-level function, valid because workers are forked, never exec'd);
//! - `map` cuts its items into chunks, as Python's `chunksize` does, so 100 000 tiny
//!   tasks cost a few dozen pipe round trips and not 100 000.
//!
//! A worker that dies is noticed by the end of file on its replies pipe (or, as a
//! fallback, by `waitpid(WNOHANG)`): the tasks it held fail with
//! [`PoolError::WorkerDied`] and a new worker takes its place. (Python's `Pool` hangs.)

mod wire;
mod worker;

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use nix::unistd::Pid;

use wire::{Reply, Task};
use worker::{ChunkId, Worker};

/// Why a pool operation or a task failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolError {
    /// The task panicked in its worker; the panic message.
    Panicked(String),
    /// The worker process running the task died before answering (killed, ...).
    /// `exitcode` follows Python: `n` after `exit(n)`, `-N` after signal `N`.
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

impl From<postcard::Error> for PoolError {
    fn from(e: postcard::Error) -> Self {
        PoolError::Serde(e.to_string())
    }
}

/// How many tasks a worker holds at once: the one it runs and the next, so that it
/// rarely waits idle for the pool to answer. A trade-off: measured on 2 cores, 4
/// made streams of one-item tasks 2-4x faster (`map` with its default chunks did
/// not change), but lets a long task hold up more of the tasks queued behind it.
const MAX_IN_FLIGHT: usize = 2;

/// Longest single `poll`; after it, a `waitpid(WNOHANG)` round notices workers that
/// died without their pipe saying so.
const CHECK_PERIOD: Duration = Duration::from_millis(100);

/// A pool of worker processes, like Python's `multiprocessing.Pool(processes=n)`.
pub struct Pool {
    state: RefCell<Dispatcher>,
}

/// The result of `apply_async` or `map_async`, like Python's `AsyncResult`. It borrows
/// the pool: results are collected from the workers when asked for.
#[must_use = "the task runs anyway, but its result is lost if the handle is dropped"]
pub struct AsyncResult<'p, R> {
    pool: &'p Pool,
    job: u64,
    /// Turns the job's chunks (postcard `Vec<R>` each, in order) into the result.
    assemble: fn(&[&[u8]]) -> Result<R, PoolError>,
}

impl Pool {
    /// Forks `processes` workers now; they live until `join`, `terminate` or drop.
    ///
    /// # Panics
    /// If `processes` is 0 (Python raises `ValueError`).
    pub fn new(processes: usize) -> Result<Pool, PoolError> {
        assert!(processes > 0, "a pool needs at least one worker process");
        let mut dispatcher = Dispatcher::new(processes);
        dispatcher.top_up()?; // on failure, dropping it reaps those already forked
        Ok(Pool {
            state: RefCell::new(dispatcher),
        })
    }

    /// The pool's size, `processes` of [`Pool::new`].
    pub fn processes(&self) -> usize {
        self.state.borrow().size
    }

    /// The pids of the current workers.
    pub fn worker_pids(&self) -> Vec<Pid> {
        self.state.borrow().workers.iter().map(|w| w.pid).collect()
    }

    /// Runs `f(arg)` in a worker and waits for its result.
    pub fn apply<T, R>(&self, f: fn(T) -> R, arg: T) -> Result<R, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.apply_async(f, arg)?.get()
    }

    /// Sends `f(arg)` to a worker and returns at once.
    pub fn apply_async<T, R>(&self, f: fn(T) -> R, arg: T) -> Result<AsyncResult<'_, R>, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let job = self.submit(f, &[arg], 1)?;
        Ok(AsyncResult {
            pool: self,
            job,
            assemble: |chunks| {
                concat::<R>(chunks)?
                    .pop()
                    .ok_or_else(|| PoolError::Serde("a task gave no result".to_owned()))
            },
        })
    }

    /// `f` applied to every item, in the workers, results in input order. Items are
    /// sent in chunks (Python's default `chunksize`: about four chunks per worker).
    pub fn map<T, R>(
        &self,
        f: fn(T) -> R,
        items: impl IntoIterator<Item = T>,
    ) -> Result<Vec<R>, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.map_async(f, items)?.get()
    }

    /// Like [`map`](Self::map) with chunks of `chunksize` items (at least 1).
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
        let items: Vec<T> = items.into_iter().collect();
        self.map_handle(f, &items, chunksize)?.get()
    }

    /// Like [`map`](Self::map) but returns at once.
    pub fn map_async<T, R>(
        &self,
        f: fn(T) -> R,
        items: impl IntoIterator<Item = T>,
    ) -> Result<AsyncResult<'_, Vec<R>>, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let items: Vec<T> = items.into_iter().collect();
        // Python's rule: ceil(len / (4 * workers)).
        let chunksize = items.len().div_ceil(4 * self.processes());
        self.map_handle(f, &items, chunksize)
    }

    fn map_handle<T, R>(
        &self,
        f: fn(T) -> R,
        items: &[T],
        chunksize: usize,
    ) -> Result<AsyncResult<'_, Vec<R>>, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let job = self.submit(f, items, chunksize)?;
        Ok(AsyncResult {
            pool: self,
            job,
            assemble: concat::<R>,
        })
    }

    /// Queues `items` for `f` in chunks and starts sending them; returns the job id.
    fn submit<T, R>(&self, f: fn(T) -> R, items: &[T], chunksize: usize) -> Result<u64, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let mut d = self.state.borrow_mut();
        if d.phase != Phase::Open {
            return Err(PoolError::Closed);
        }
        let tasks = items
            .chunks(chunksize.max(1))
            .map(|chunk| Task::new(f, chunk))
            .collect::<Result<Vec<_>, _>>()?;
        let job = d.next_job;
        d.next_job += 1;
        d.jobs.insert(job, Job::new(tasks.len()));
        for (index, task) in tasks.into_iter().enumerate() {
            d.pending.push_back((ChunkId { job, index }, task));
        }
        d.kick()?;
        Ok(job)
    }

    /// Takes no more tasks (Python's `close`). Workers finish what is queued and exit
    /// during `join`.
    pub fn close(&self) {
        let mut d = self.state.borrow_mut();
        if d.phase == Phase::Open {
            d.phase = Phase::Closed;
        }
    }

    /// Waits until every queued task is done and every worker has exited, and reaps
    /// them. Needs `close` or `terminate` first ([`PoolError::StillRunning`]).
    pub fn join(&self) -> Result<(), PoolError> {
        let mut d = self.state.borrow_mut();
        if d.phase == Phase::Open {
            return Err(PoolError::StillRunning);
        }
        while !d.workers.is_empty() {
            d.pump(None)?;
        }
        Ok(())
    }

    /// Kills the workers now (SIGKILL) and reaps them; unfinished tasks fail with
    /// [`PoolError::Terminated`].
    pub fn terminate(&self) {
        self.state.borrow_mut().terminate();
    }

    /// Pumps until `job` is done or `deadline` passes; true if done.
    fn wait_job(&self, job: u64, deadline: Option<Instant>) -> Result<bool, PoolError> {
        let mut d = self.state.borrow_mut();
        loop {
            if d.is_done(job) {
                return Ok(true);
            }
            let wait = match deadline {
                None => None,
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(false),
                },
            };
            d.pump(wait)?;
        }
    }
}

impl<R> AsyncResult<'_, R> {
    /// Waits for the result (Python's `get()`): the value, or the task's error. May be
    /// called again: each call decodes the stored result anew.
    pub fn get(&self) -> Result<R, PoolError> {
        self.pool.wait_job(self.job, None)?;
        self.outcome()
    }

    /// Like [`get`](Self::get) but waits at most `timeout`: [`PoolError::Timeout`]
    /// if the result is not ready by then (Python's `get(timeout)`).
    pub fn get_timeout(&self, timeout: Duration) -> Result<R, PoolError> {
        if self
            .pool
            .wait_job(self.job, Some(Instant::now() + timeout))?
        {
            self.outcome()
        } else {
            Err(PoolError::Timeout)
        }
    }

    /// True once the result (or error) is there. Does not block.
    pub fn ready(&self) -> bool {
        let mut d = self.pool.state.borrow_mut();
        // An error here is reported by `get`; meanwhile the result is not ready.
        let _ = d.pump(Some(Duration::ZERO));
        d.is_done(self.job)
    }

    /// Blocks until the result is ready.
    pub fn wait(&self) {
        let _ = self.pool.wait_job(self.job, None);
    }

    /// Blocks at most `timeout`; true if the result is ready.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.pool
            .wait_job(self.job, Some(Instant::now() + timeout))
            .unwrap_or(false)
    }

    fn outcome(&self) -> Result<R, PoolError> {
        let d = self.pool.state.borrow();
        let job = &d.jobs[&self.job];
        let mut chunks = Vec::with_capacity(job.chunks.len());
        for chunk in &job.chunks {
            match chunk.as_ref().expect("a finished job has every chunk") {
                Ok(bytes) => chunks.push(bytes.as_slice()),
                // The first failing chunk in input order, as Python raises the first.
                Err(e) => return Err(e.clone()),
            }
        }
        (self.assemble)(&chunks)
    }
}

impl<R> Drop for AsyncResult<'_, R> {
    fn drop(&mut self) {
        // Forget the job: replies still to come for it are dropped on arrival.
        self.pool.state.borrow_mut().jobs.remove(&self.job);
    }
}

fn concat<R: DeserializeOwned>(chunks: &[&[u8]]) -> Result<Vec<R>, PoolError> {
    let mut all = Vec::new();
    for chunk in chunks {
        all.extend(postcard::from_bytes::<Vec<R>>(chunk)?);
    }
    Ok(all)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    Closed,
    Terminated,
}

/// The results of one `apply`/`map` call, chunk by chunk.
struct Job {
    chunks: Vec<Option<Result<Vec<u8>, PoolError>>>,
    missing: usize,
}

impl Job {
    fn new(chunks: usize) -> Self {
        Self {
            chunks: (0..chunks).map(|_| None).collect(),
            missing: chunks,
        }
    }
}

/// Records the outcome of a chunk (unless its handle was dropped meanwhile).
fn settle(jobs: &mut HashMap<u64, Job>, id: ChunkId, outcome: Result<Vec<u8>, PoolError>) {
    if let Some(job) = jobs.get_mut(&id.job) {
        let slot = &mut job.chunks[id.index];
        if slot.is_none() {
            *slot = Some(outcome);
            job.missing -= 1;
        }
    }
}

fn outcome_of(reply: Reply) -> Result<Vec<u8>, PoolError> {
    match reply {
        Reply::Done(bytes) => Ok(bytes),
        Reply::Panicked(message) => Err(PoolError::Panicked(message)),
        Reply::BadData(message) => Err(PoolError::Serde(message)),
    }
}

/// Everything the pool keeps: its workers, the tasks not sent yet, the results.
struct Dispatcher {
    size: usize,
    phase: Phase,
    workers: Vec<Worker>,
    pending: VecDeque<(ChunkId, Task)>,
    jobs: HashMap<u64, Job>,
    next_job: u64,
    scratch: Vec<u8>,
    last_check: Instant,
}

impl Dispatcher {
    fn new(size: usize) -> Self {
        Self {
            size,
            phase: Phase::Open,
            workers: Vec::with_capacity(size),
            pending: VecDeque::new(),
            jobs: HashMap::new(),
            next_job: 0,
            scratch: vec![0; 64 * 1024],
            last_check: Instant::now(),
        }
    }

    fn is_done(&self, job: u64) -> bool {
        self.jobs.get(&job).is_none_or(|j| j.missing == 0)
    }

    /// Forks workers until there are `size` of them, while there is work to do.
    fn top_up(&mut self) -> Result<(), PoolError> {
        let needed = match self.phase {
            Phase::Open => true,
            // A closed pool replaces a dead worker only if queued tasks need it.
            Phase::Closed => !self.pending.is_empty(),
            Phase::Terminated => false,
        };
        while needed && self.workers.len() < self.size {
            let worker = Worker::spawn(&mut self.workers)?;
            self.workers.push(worker);
        }
        Ok(())
    }

    /// Gives pending tasks to workers, least loaded first; once closed and drained,
    /// tells every worker to stop.
    fn dispatch(&mut self) {
        for load in 0..MAX_IN_FLIGHT {
            for w in &mut self.workers {
                if w.accepts_tasks() && w.in_flight.len() <= load {
                    let Some((id, task)) = self.pending.pop_front() else {
                        break;
                    };
                    w.send(id, &task);
                }
            }
        }
        if self.phase == Phase::Closed && self.pending.is_empty() {
            for w in self.workers.iter_mut().filter(|w| w.accepts_tasks()) {
                w.send_stop();
            }
        }
    }

    /// Non-blocking progress: replace dead workers, hand out tasks, write what we can.
    fn kick(&mut self) -> Result<(), PoolError> {
        self.retire_broken();
        self.top_up()?;
        self.dispatch();
        for w in &mut self.workers {
            w.flush();
        }
        Ok(())
    }

    /// One round: progress, then wait up to `wait` (forever if `None`, in slices of
    /// `CHECK_PERIOD`) for any worker's pipe, then read and write what is ready.
    fn pump(&mut self, wait: Option<Duration>) -> Result<(), PoolError> {
        self.kick()?;
        let wait = wait.map_or(CHECK_PERIOD, |w| w.min(CHECK_PERIOD));
        // (worker index, true for its replies pipe / false for its orders pipe)
        let mut which = Vec::with_capacity(2 * self.workers.len());
        let mut fds = Vec::with_capacity(2 * self.workers.len());
        for (i, w) in self.workers.iter().enumerate() {
            which.push((i, true));
            fds.push(PollFd::new(w.replies_fd(), PollFlags::POLLIN));
            if let Some(orders) = w.orders_fd() {
                which.push((i, false));
                fds.push(PollFd::new(orders, PollFlags::POLLOUT));
            }
        }
        match poll(&mut fds, poll_timeout(wait)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<(usize, bool)> = fds
            .iter()
            .zip(which)
            .filter(|(fd, _)| fd.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, which)| which)
            .collect();
        for (i, is_replies) in ready {
            let w = &mut self.workers[i];
            if is_replies {
                let jobs = &mut self.jobs;
                w.receive(&mut self.scratch, |id, reply| {
                    settle(jobs, id, outcome_of(reply))
                });
            } else {
                w.flush();
            }
        }
        if self.last_check.elapsed() >= CHECK_PERIOD {
            self.workers.iter_mut().for_each(Worker::check_exited);
            self.last_check = Instant::now();
        }
        self.kick()
    }

    /// Reaps the workers whose pipes broke or that exited: collects their last replies
    /// and fails the tasks they still held. `top_up` replaces them.
    fn retire_broken(&mut self) {
        let mut i = 0;
        while i < self.workers.len() {
            if !self.workers[i].broken {
                i += 1;
                continue;
            }
            let mut w = self.workers.remove(i);
            let exitcode = w.kill_and_reap();
            // Replies written before it died are still in the pipe.
            let jobs = &mut self.jobs;
            w.receive(&mut self.scratch, |id, reply| {
                settle(jobs, id, outcome_of(reply))
            });
            for id in w.in_flight {
                settle(
                    jobs,
                    id,
                    Err(PoolError::WorkerDied {
                        pid: w.pid,
                        exitcode,
                    }),
                );
            }
        }
    }

    /// Kills and reaps every worker; every unfinished task fails.
    fn terminate(&mut self) {
        self.phase = Phase::Terminated;
        for mut w in std::mem::take(&mut self.workers) {
            w.kill_and_reap();
            let jobs = &mut self.jobs;
            w.receive(&mut self.scratch, |id, reply| {
                settle(jobs, id, outcome_of(reply))
            });
            for id in w.in_flight {
                settle(jobs, id, Err(PoolError::Terminated));
            }
        }
        for (id, _) in std::mem::take(&mut self.pending) {
            settle(&mut self.jobs, id, Err(PoolError::Terminated));
        }
    }
}

impl Drop for Dispatcher {
    /// Dropping a pool stops its workers and reaps them, like leaving Python's
    /// `with Pool() as p:` block (which calls `terminate`).
    fn drop(&mut self) {
        self.terminate();
    }
}

/// `poll` counts whole milliseconds: round up, so a short wait is not a busy loop.
fn poll_timeout(wait: Duration) -> PollTimeout {
    let ms = wait.as_nanos().div_ceil(1_000_000);
    PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
}
