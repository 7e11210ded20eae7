//! Reading a child process's pipe to its end on a thread of its own, so that a child
//! writing a lot to one pipe never blocks while the grader reads the other one. For the
//! trusted children (cargo, the grader's own); a test's output goes through
//! [`crate::capture`], which bounds it.

use std::io::Read;
use std::thread::JoinHandle;

/// Starts reading `pipe` to its end; `join` gives every byte read.
pub fn bytes(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// Like [`bytes`], as text (invalid UTF-8 replaced).
pub fn text(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
