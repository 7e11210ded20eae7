//! Length-prefixed frames over a byte stream (a pipe or a stream socket), and waiting
//! for one with `poll(2)`.
//!
//! A frame is the value's length as 4 little-endian bytes, then the value serialised
//! with `postcard`. A byte stream keeps no message boundaries: the prefix tells the
//! reader where each message ends.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// Bytes of the length prefix.
const PREFIX: usize = 4;

/// Serialises `value` into one buffer holding the whole frame, prefix included, so that
/// it can be written with a single `write` when it is small enough.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut frame = vec![0; PREFIX];
    frame = postcard::to_extend(value, frame).map_err(|e| Error::Codec(e.to_string()))?;
    let len = u32::try_from(frame.len() - PREFIX)
        .map_err(|_| Error::Codec("a value larger than 4 GiB".into()))?;
    frame[..PREFIX].copy_from_slice(&len.to_le_bytes());
    Ok(frame)
}

/// Writes a whole frame. A reader that is gone in every process gives `Closed` (`EPIPE`:
/// Rust programs ignore `SIGPIPE`, so the write fails instead of killing us).
pub fn write(mut out: &File, frame: &[u8]) -> Result<(), Error> {
    out.write_all(frame).map_err(io_error)
}

/// Reads one whole frame and deserialises it. End of file before or inside the frame
/// gives `Closed`: every writer is gone.
pub fn read<T: DeserializeOwned>(mut input: &File) -> Result<T, Error> {
    let mut prefix = [0; PREFIX];
    input.read_exact(&mut prefix).map_err(io_error)?;
    let mut body = vec![0; u32::from_le_bytes(prefix) as usize];
    input.read_exact(&mut body).map_err(io_error)?;
    postcard::from_bytes(&body).map_err(|e| Error::Codec(e.to_string()))
}

/// Waits until `input` can be read without blocking (data, or end of file) or until
/// `deadline` (`None`: no limit). Returns whether it is readable.
pub fn readable_before(input: &File, deadline: Option<Instant>) -> Result<bool, Error> {
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                // Round up: a 0 ms poll for 0.4 ms left would spin until the deadline.
                let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(input.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => return Ok(false), // The time ran out.
            // POLLHUP (every writer gone) also counts: the next read sees end of file.
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) => continue, // A signal: wait for what is left.
            Err(errno) => return Err(Error::Io(errno)),
        }
    }
}

/// The deadline `timeout` from now; `None` (no deadline) if it cannot be represented.
pub fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

fn io_error(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset => Error::Closed,
        _ => Error::Io(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
    }
}
