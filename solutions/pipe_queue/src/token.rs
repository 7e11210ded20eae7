//! A semaphore made of a pipe: the pipe holds one byte per free token. Taking a token
//! is reading one byte, giving one back is writing one byte. Every process forked after
//! [`Tokens::new`] shares the pipe, so this excludes processes: with one token it is a
//! lock; with `maxsize` tokens it counts a bounded queue's free places.
//!
//! Waiting with a timeout: the read end is non-blocking; `poll(2)` waits for a byte,
//! then `read` tries to take it. Another process may take it first (`EAGAIN`): then we
//! wait again, for what is left of the time.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::time::Instant;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::unistd::pipe2;

use crate::{Error, frame};

/// A counting semaphore shared by processes, made of a pipe.
pub struct Tokens {
    take: File,
    give: File,
}

impl Tokens {
    /// A semaphore holding `tokens` tokens.
    pub fn new(tokens: usize) -> Result<Self, Error> {
        let (take, give) = pipe2(OFlag::O_CLOEXEC)?;
        // Only the read end is non-blocking: `give` never finds the pipe full, since
        // there are never more bytes in it than `tokens`.
        fcntl(take.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        if tokens > 65536 {
            // The default capacity of a pipe is 64 KiB; ask for room for every token.
            let room = i32::try_from(tokens).map_err(|_| Error::Io(nix::errno::Errno::EINVAL))?;
            fcntl(give.as_fd(), FcntlArg::F_SETPIPE_SZ(room))?;
        }
        let tokens_pipe = Self {
            take: File::from(take),
            give: File::from(give),
        };
        (&tokens_pipe.give).write_all(&vec![0; tokens])?;
        Ok(tokens_pipe)
    }

    /// Takes one token before `deadline` (`None`: no limit); returns whether it did.
    pub fn take_until(&self, deadline: Option<Instant>) -> Result<bool, Error> {
        let mut byte = [0];
        loop {
            match (&self.take).read(&mut byte) {
                Ok(1) => return Ok(true),
                Ok(_) => return Err(Error::Closed), // Cannot happen: we hold `give`.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if !frame::readable_before(&self.take, deadline)? {
                        return Ok(false);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Gives one token back, waking the processes waiting for one.
    pub fn give(&self) -> Result<(), Error> {
        (&self.give).write_all(&[0])?;
        Ok(())
    }
}
