//! # Exercise 2 — `pipe_queue`: pipes and queues between processes
//!
//! Build the Rust counterparts of Python's `multiprocessing.Pipe` ([`pipe`],
//! [`Connection`]) and `multiprocessing.Queue` ([`Queue`]) on top of `nix` pipes (or
//! `ipc-channel`), sending any `serde` value. Read `README.md` first (Spanish and
//! English), then replace every `todo!()`.
//!
//! ```python
//! padre, hijo = Pipe()
//! hijo.send({"n": 1}); print(padre.recv())
//! q = Queue(maxsize=10)
//! q.put(item); item = q.get(timeout=1.0)
//! ```
//!
//! ```no_run
//! use pipe_queue::{Queue, pipe};
//! use nix::sys::wait::waitpid;
//! use nix::unistd::{ForkResult, fork};
//!
//! let queue = Queue::new().unwrap(); // before fork: parent and child share it
//! let (receiver, sender) = pipe(false).unwrap();
//! match unsafe { fork() }.unwrap() {
//!     ForkResult::Child => {
//!         drop(receiver); // close the end this process does not use
//!         queue.put(&(1, "uno")).unwrap();
//!         sender.send("done").unwrap();
//!         unsafe { libc::_exit(0) }
//!     }
//!     ForkResult::Parent { child } => {
//!         drop(sender);
//!         let item: (i32, String) = queue.get().unwrap();
//!         let note: String = receiver.recv().unwrap();
//!         waitpid(child, None).unwrap();
//!         assert_eq!((item, note.as_str()), ((1, "uno".to_string()), "done"));
//!     }
//! }
//! ```
//!
//! Run the visible tests with `cargo test -p pipe_queue`.

// Delete this line once you have written the bodies: it only silences the warnings
// about the arguments and fields that the `todo!()` stubs do not use yet.
#![allow(unused_variables, dead_code)]

use std::fmt;
use std::fs::File;
use std::time::Duration;

use nix::errno::Errno;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a [`Connection`] or [`Queue`] operation failed. Given complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The other end is closed in every process: nothing more can arrive (`recv`), or
    /// nobody can read what is sent (`send`). Python raises `EOFError` / `BrokenPipeError`.
    Closed,
    /// Nothing arrived before the timeout (Python's `queue.Empty`).
    Empty,
    /// A bounded queue stayed full until the timeout (Python's `queue.Full`).
    Full,
    /// The operating system refused a call (`EBADF` for sending on the receive-only end
    /// of a one-way pipe, or receiving on its send-only end).
    Io(Errno),
    /// A value could not be serialised, or the bytes received are not a value of the
    /// type asked for.
    Codec(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => write!(f, "the other end is closed"),
            Error::Empty => write!(f, "nothing arrived before the timeout"),
            Error::Full => write!(f, "the queue stayed full until the timeout"),
            Error::Io(errno) => write!(f, "system call failed: {errno}"),
            Error::Codec(why) => write!(f, "cannot (de)serialise the value: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Errno> for Error {
    fn from(errno: Errno) -> Self {
        Error::Io(errno)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
    }
}

/// Python's `Pipe(duplex)`: two connected ends.
///
/// - `duplex == true`: both ends send and receive.
/// - `duplex == false`: the first end only receives, the second only sends, as in
///   Python; the wrong operation on an end gives `Error::Io(Errno::EBADF)`.
///
/// Make it before `fork`. Each process then holds a copy of both ends and must drop the
/// ones it does not use: an end sees end of file ([`Error::Closed`]) only once every
/// copy of the other end, in every process, is closed.
pub fn pipe(duplex: bool) -> Result<(Connection, Connection), Error> {
    todo!("a socket pair when duplex, a pipe(2) otherwise")
}

/// One end of a [`pipe`]. Use one end from one process at a time (as in Python); for
/// many producers or consumers, use a [`Queue`].
pub struct Connection {
    /// A suggestion (you may change the private fields): the end's file descriptor,
    /// read and written as a `File`; `None` once closed.
    stream: Option<File>,
}

impl Connection {
    /// Closes this process's copy of the end now (Python's `conn.close()`), as dropping
    /// it does. In a child, close the end it does not use; later calls on a closed end
    /// give `Error::Io(Errno::EBADF)`.
    pub fn close(&mut self) {
        todo!("close the descriptor now")
    }

    /// Sends `value` (any serde value) to the other end; blocks while the kernel's
    /// buffer is full. A value of any size arrives whole.
    ///
    /// Errors: [`Error::Closed`] if the other end is closed in every process.
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        todo!("serialise, then write the length and the bytes")
    }

    /// Blocks until a value arrives and returns it, whole and in the order sent.
    ///
    /// Errors: [`Error::Closed`] once the other end is closed in every process and
    /// everything sent has been received: never blocks forever on a dead writer.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T, Error> {
        todo!("read one length-prefixed value; end of file is Closed")
    }

    /// Like [`recv`](Self::recv), but gives up after `timeout` with [`Error::Empty`].
    pub fn recv_timeout<T: DeserializeOwned>(&self, timeout: Duration) -> Result<T, Error> {
        todo!("poll for at most timeout, then recv")
    }

    /// Waits at most `timeout` for something to receive (Python's `conn.poll(timeout)`):
    /// `true` if `recv` would not block now (a value waits, or the other end is closed
    /// and `recv` would say so), `false` if the time ran out.
    pub fn poll(&self, timeout: Duration) -> Result<bool, Error> {
        todo!("poll(2) the descriptor")
    }
}

/// Python's `multiprocessing.Queue`: made before `fork`, shared by many producer and
/// many consumer processes. Every item put is got exactly once, by one consumer, whole
/// (never torn, never mixed with another item, whatever its size), and items put by one
/// process come out in the order it put them.
///
/// No thread may be started (Python starts a feeder thread): `put` on an unbounded
/// queue may block while the pipe's buffer is full, until consumers read.
pub struct Queue {
    /// A suggestion (you may change the private fields): the two ends of one pipe
    /// shared by every process...
    reader: File,
    writer: File,
    // ...plus what makes one consumer read one whole item, one producer write one whole
    // item, and counts the free places of a bounded queue (see the hints).
}

impl Queue {
    /// An unbounded queue (Python's `Queue()`).
    pub fn new() -> Result<Self, Error> {
        todo!("an unbounded queue")
    }

    /// A queue holding at most `maxsize` items (Python's `Queue(maxsize)`); `0` means
    /// unbounded, as in Python.
    pub fn with_maxsize(maxsize: usize) -> Result<Self, Error> {
        todo!("the pipe, the locks, the free places")
    }

    /// Puts `item` at the end of the queue (Python's `q.put(item)`); blocks while a
    /// bounded queue is full.
    pub fn put<T: Serialize + ?Sized>(&self, item: &T) -> Result<(), Error> {
        todo!("take a free place, then write one whole item")
    }

    /// Like [`put`](Self::put), but waits at most `timeout` for a free place in a
    /// bounded queue (Python's `q.put(item, timeout=...)`).
    ///
    /// Errors: [`Error::Full`] if the queue stayed full; the item is not put.
    pub fn put_timeout<T: Serialize + ?Sized>(
        &self,
        item: &T,
        timeout: Duration,
    ) -> Result<(), Error> {
        todo!("put, giving up on a full queue after timeout")
    }

    /// Takes the item at the front of the queue (Python's `q.get()`); blocks until
    /// there is one.
    pub fn get<T: DeserializeOwned>(&self) -> Result<T, Error> {
        todo!("read one whole item, alone; give its place back")
    }

    /// Like [`get`](Self::get), but waits at most `timeout` (Python's
    /// `q.get(timeout=...)`).
    ///
    /// Errors: [`Error::Empty`] if no item came in time.
    pub fn get_timeout<T: DeserializeOwned>(&self, timeout: Duration) -> Result<T, Error> {
        todo!("get, giving up after timeout")
    }
}
