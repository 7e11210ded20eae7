//! What travels over the pipes between the pool and a worker, and how a worker knows
//! which function to run: the Rust analogue of pickling a top-level function.
//!
//! Python's `Pool` pickles the *name* of a top-level function and the worker looks it
//! up again. Rust has no such registry, but a forked worker is a copy of its parent:
//! same program, same addresses. So a task can carry the *address* of the function,
//! as a plain number, and the worker can call it. This only works because workers are
//! forked and never `exec`: a freshly started program could have its code elsewhere
//! (ASLR).
//!
//! A bare `fn(T) -> R` address is not enough, because the worker does not know `T` and
//! `R` and so cannot decode the arguments nor encode the results. Each task therefore
//! carries two addresses: the user's function `f`, and a *trampoline*
//! `run_chunk::<T, R>`, the generic function below monomorphised for this very `(T, R)`.
//! The worker only knows the trampoline's type, `fn(usize, &[u8]) -> Reply`, which is
//! the same for every `(T, R)`; the trampoline knows the rest.
//!
//! Frames, both ways, are a little-endian `u32` body length followed by the body:
//! - task:  `run: u64 | f: u64 | args` (postcard of the chunk `[T]`); `run == 0` is the
//!   order to stop;
//! - reply: `kind: u8 | payload` (postcard of `Vec<R>`, or a UTF-8 message).

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The type every trampoline shares, whatever its `T` and `R`.
type Trampoline = fn(f: usize, args: &[u8]) -> Reply;

const LEN: usize = size_of::<u32>();
const TASK_HEADER: usize = 2 * size_of::<u64>();

/// One task: a chunk of arguments for one function.
pub(crate) struct Task {
    run: usize,
    f: usize,
    args: Vec<u8>,
}

impl Task {
    /// Encodes the chunk `items` for `f`, with the trampoline that matches `f`'s type.
    pub(crate) fn new<T, R>(f: fn(T) -> R, items: &[T]) -> Result<Task, postcard::Error>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let run: Trampoline = run_chunk::<T, R>;
        Ok(Task {
            run: run as usize,
            f: f as usize,
            args: postcard::to_stdvec(items)?,
        })
    }

    /// Appends this task's frame to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_header(out, TASK_HEADER + self.args.len());
        out.extend_from_slice(&(self.run as u64).to_le_bytes());
        out.extend_from_slice(&(self.f as u64).to_le_bytes());
        out.extend_from_slice(&self.args);
    }
}

/// Appends the frame that tells a worker to finish: a task without a trampoline.
pub(crate) fn encode_stop(out: &mut Vec<u8>) {
    put_header(out, TASK_HEADER);
    out.extend_from_slice(&[0; TASK_HEADER]);
}

fn put_header(out: &mut Vec<u8>, body_len: usize) {
    let len = u32::try_from(body_len).expect("a message larger than 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
}

/// The body of the first whole frame at the start of `bytes`, if there is one.
pub(crate) fn frame(bytes: &[u8]) -> Option<&[u8]> {
    let len = u32::from_le_bytes(bytes.get(..LEN)?.try_into().ok()?) as usize;
    bytes.get(LEN..LEN + len)
}

/// The length of a frame from its 4-byte header.
pub(crate) fn body_len(header: [u8; LEN]) -> usize {
    u32::from_le_bytes(header) as usize
}

/// In a worker: runs the task whose frame body is `body`. `None` means "stop".
pub(crate) fn execute(body: &[u8]) -> Option<Reply> {
    let word = |i: usize| {
        let bytes = body.get(i * 8..i * 8 + 8)?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?) as usize)
    };
    let (run, f) = (word(0)?, word(1)?);
    if run == 0 {
        return None;
    }
    // SAFETY: `run` is the address of a `run_chunk::<T, R>`, cast to `Trampoline` and
    // then to an integer by `Task::new` in the process that forked this one. A forked
    // child runs the same program image at the same addresses, and only our parent can
    // write to this pipe, so the address is that function in this process too.
    let run = unsafe { std::mem::transmute::<usize, Trampoline>(run) };
    Some(run(f, &body[TASK_HEADER..]))
}

/// The trampoline, one instance per `(T, R)`: decodes the chunk, calls `f` on each
/// item, encodes the results. A panic in `f` is caught and becomes the reply.
fn run_chunk<T: DeserializeOwned, R: Serialize>(f: usize, args: &[u8]) -> Reply {
    // SAFETY: `Task::new` sent `run_chunk::<T, R>` together with an `f` of type
    // `fn(T) -> R` (see `execute` for why the address is valid in this process).
    let f = unsafe { std::mem::transmute::<usize, fn(T) -> R>(f) };
    let items: Vec<T> = match postcard::from_bytes(args) {
        Ok(items) => items,
        Err(e) => return Reply::BadData(format!("cannot decode the task's arguments: {e}")),
    };
    // One catch_unwind for the whole chunk: catching costs nothing until a panic, and a
    // panic fails the chunk (and so the map) like an exception in Python's worker.
    match catch_unwind(AssertUnwindSafe(|| {
        items.into_iter().map(f).collect::<Vec<R>>()
    })) {
        Ok(results) => match postcard::to_stdvec(&results) {
            Ok(bytes) => Reply::Done(bytes),
            Err(e) => Reply::BadData(format!("cannot encode the task's results: {e}")),
        },
        Err(payload) => Reply::Panicked(panic_message(payload.as_ref())),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "the task panicked (with a payload that is not a string)".to_owned()
    }
}

/// A worker's answer to one task.
pub(crate) enum Reply {
    /// The postcard encoding of the chunk's `Vec<R>`.
    Done(Vec<u8>),
    /// The task panicked: its message.
    Panicked(String),
    /// Arguments or results could not go through serde.
    BadData(String),
}

impl Reply {
    /// The whole frame (header included), ready to write in one go.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let (kind, payload) = match self {
            Reply::Done(bytes) => (0, bytes.as_slice()),
            Reply::Panicked(message) => (1, message.as_bytes()),
            Reply::BadData(message) => (2, message.as_bytes()),
        };
        let mut out = Vec::with_capacity(LEN + 1 + payload.len());
        put_header(&mut out, 1 + payload.len());
        out.push(kind);
        out.extend_from_slice(payload);
        out
    }

    /// Decodes a reply frame's body.
    pub(crate) fn decode(body: &[u8]) -> Reply {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        match body.split_first() {
            Some((0, bytes)) => Reply::Done(bytes.to_vec()),
            Some((1, message)) => Reply::Panicked(text(message)),
            Some((2, message)) => Reply::BadData(text(message)),
            _ => Reply::BadData("a malformed reply from a worker".to_owned()),
        }
    }
}
