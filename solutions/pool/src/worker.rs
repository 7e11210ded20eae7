//! One worker process: how it is forked, what it runs, and the pool's side of it.
//!
//! Each worker has two pipes of its own: *orders* (pool → worker: tasks, then "stop")
//! and *replies* (worker → pool: one reply per task, in order). The worker blocks on
//! its pipes; the pool never blocks on one: its ends are non-blocking, it keeps what it
//! could not write yet in an outbox and waits for all workers at once with `poll(2)`.
//! That is what makes a single thread enough (and avoids the classic deadlock of a pool
//! blocked writing a big task to a worker that is blocked writing a big result).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, pipe2};

use crate::wire::{self, Reply, Task};

/// Which chunk of which job a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkId {
    pub job: u64,
    pub index: usize,
}

/// Whether the worker process is known to have ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Running,
    /// Reaped already; its exit code (Python's convention) if we know it.
    Ended(Option<i32>),
}

/// The pool's view of one worker process.
pub(crate) struct Worker {
    pub pid: Pid,
    /// Write end of the orders pipe (non-blocking).
    orders: OwnedFd,
    /// Read end of the replies pipe (non-blocking).
    replies: OwnedFd,
    /// Frames not written yet, from `sent` on.
    outbox: Vec<u8>,
    sent: usize,
    /// Bytes read that do not make a whole frame yet.
    inbox: Vec<u8>,
    /// The tasks sent and not answered, oldest first: replies come in this order.
    pub in_flight: VecDeque<ChunkId>,
    /// "Stop" was sent: the worker takes no more tasks and will exit.
    pub stopping: bool,
    /// Its pipes failed (EOF, EPIPE) or it exited: retire it.
    pub broken: bool,
    life: Life,
}

impl Worker {
    /// Forks a new worker. `siblings` are the pool's other workers: the child closes
    /// their pipe ends, so that each pipe end lives only where it is used (a worker
    /// holding a sibling's replies pipe would hide that sibling's death from the pool).
    pub fn spawn(siblings: &mut Vec<Worker>) -> nix::Result<Worker> {
        // CLOEXEC: a task that runs another program must not pass our pipes on to it.
        let (orders_out, orders) = pipe2(OFlag::O_CLOEXEC)?;
        let (replies, replies_in) = pipe2(OFlag::O_CLOEXEC)?;
        // The pool's ends never block: it waits with poll instead. (Set before fork,
        // so that a failure here leaves no child behind.)
        for end in [&orders, &replies] {
            fcntl(end, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        }
        // SAFETY: the child runs only `serve` (the pool's tasks) and then `_exit`s; it
        // never returns into the caller. Other threads of the caller (if any) do not
        // exist in the child; glibc's malloc is fork-safe.
        match unsafe { fork() }? {
            ForkResult::Child => {
                drop(std::mem::take(siblings));
                drop((orders, replies));
                // Tasks' panics are caught in `wire`; this catches any other, so that
                // nothing ever unwinds out of the child into the caller's code.
                let code =
                    catch_unwind(AssertUnwindSafe(|| serve(orders_out, replies_in))).unwrap_or(101);
                // SAFETY: ends the worker at once: it must never return into the
                // caller's code, nor run the caller's exit handlers.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => Ok(Worker {
                pid: child,
                orders,
                replies,
                outbox: Vec::new(),
                sent: 0,
                inbox: Vec::new(),
                in_flight: VecDeque::new(),
                stopping: false,
                broken: false,
                life: Life::Running,
            }),
        }
    }

    /// True if it can be given tasks.
    pub fn accepts_tasks(&self) -> bool {
        !self.stopping && !self.broken
    }

    /// Queues `task` (sent by the next `flush`).
    pub fn send(&mut self, id: ChunkId, task: &Task) {
        task.encode(&mut self.outbox);
        self.in_flight.push_back(id);
    }

    /// Queues the order to stop once the tasks before it are done.
    pub fn send_stop(&mut self) {
        wire::encode_stop(&mut self.outbox);
        self.stopping = true;
    }

    /// The fds to poll, with whether we wait to write.
    pub fn orders_fd(&self) -> Option<BorrowedFd<'_>> {
        (self.sent < self.outbox.len()).then(|| self.orders.as_fd())
    }

    pub fn replies_fd(&self) -> BorrowedFd<'_> {
        self.replies.as_fd()
    }

    /// Writes as much of the outbox as the pipe takes now.
    pub fn flush(&mut self) {
        while self.sent < self.outbox.len() {
            match nix::unistd::write(&self.orders, &self.outbox[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                // EPIPE: nobody reads the orders any more, the worker is gone. (Rust
                // programs ignore SIGPIPE, so this is an error and not a signal.)
                Err(_) => {
                    self.broken = true;
                    return;
                }
            }
        }
        self.outbox.clear();
        self.sent = 0;
    }

    /// Reads every reply available now and hands each to `on_reply` with its task.
    /// End of file means the worker's end is closed: it has exited.
    pub fn receive(&mut self, scratch: &mut [u8], mut on_reply: impl FnMut(ChunkId, Reply)) {
        loop {
            match nix::unistd::read(&self.replies, scratch) {
                Ok(0) => {
                    self.broken = true;
                    break;
                }
                Ok(n) => self.inbox.extend_from_slice(&scratch[..n]),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                Err(_) => {
                    self.broken = true;
                    break;
                }
            }
        }
        let mut used = 0;
        while let Some(body) = wire::frame(&self.inbox[used..]) {
            used += 4 + body.len();
            match self.in_flight.pop_front() {
                Some(id) => on_reply(id, Reply::decode(body)),
                None => self.broken = true, // a reply to nothing: not our protocol
            }
        }
        self.inbox.drain(..used);
    }

    /// Notices, without blocking, that the process has ended even if its pipes do not
    /// say so (another process may hold a copy of its replies pipe).
    pub fn check_exited(&mut self) {
        if self.life != Life::Running {
            return;
        }
        match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(status) => {
                self.life = Life::Ended(exitcode(status));
                self.broken = true;
            }
            // ECHILD: someone else reaped it. Never signal that pid again.
            Err(_) => {
                self.life = Life::Ended(None);
                self.broken = true;
            }
        }
    }

    /// Ends the worker now (SIGKILL) if it still runs, and reaps it. Returns its exit
    /// code, if known.
    pub fn kill_and_reap(&mut self) -> Option<i32> {
        if self.life == Life::Running {
            // Not reaped yet, so the pid is still ours: safe to signal.
            let _ = kill(self.pid, Signal::SIGKILL);
            let code = loop {
                match waitpid(self.pid, None) {
                    Err(Errno::EINTR) => continue,
                    Ok(status) => break exitcode(status),
                    Err(_) => break None,
                }
            };
            self.life = Life::Ended(code);
        }
        match self.life {
            Life::Ended(code) => code,
            Life::Running => unreachable!("reaped above"),
        }
    }
}

/// Python's exit code convention: `n` for `exit(n)`, `-N` for signal `N`.
fn exitcode(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, signal, _) => Some(-(signal as i32)),
        _ => None,
    }
}

/// The worker's whole life: read a task, run it, write the reply; until "stop" or
/// until the pool's end of the orders pipe is closed. Returns the exit code.
fn serve(orders: OwnedFd, replies: OwnedFd) -> i32 {
    let (mut orders, mut replies) = (File::from(orders), File::from(replies));
    let mut body = Vec::new();
    loop {
        let mut header = [0; 4];
        if orders.read_exact(&mut header).is_err() {
            return 0; // the pool is gone: nothing more to do
        }
        body.resize(wire::body_len(header), 0);
        if orders.read_exact(&mut body).is_err() {
            return 1;
        }
        let Some(reply) = wire::execute(&body) else {
            return 0; // "stop"
        };
        if replies.write_all(&reply.encode()).is_err() {
            return 0; // the pool is gone
        }
    }
}
