//! A thread that drains a test's output pipe into a bounded [`Capture`], so a test that
//! floods stdout never blocks on a full pipe and never costs the grader memory.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::capture::Capture;

/// The draining thread and what it has captured.
pub struct OutputPump {
    capture: Arc<Mutex<Capture>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl OutputPump {
    /// Starts draining `pipe` (the read end of the test's stdout and stderr).
    pub fn start(pipe: OwnedFd, limit: usize) -> Self {
        let capture = Arc::new(Mutex::new(Capture::new(limit)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (capture, stop) = (capture.clone(), stop.clone());
            std::thread::spawn(move || drain(&pipe, &capture, &stop))
        };
        Self {
            capture,
            stop,
            thread,
        }
    }

    /// Reads what is still buffered, then stops (even if some escaped writer still
    /// holds the pipe open) and returns the capture.
    pub fn finish(self) -> Capture {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
        let capture = self.capture.lock().unwrap_or_else(|e| e.into_inner());
        capture.clone()
    }
}

fn drain(pipe: &OwnedFd, capture: &Mutex<Capture>, stop: &AtomicBool) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(20u8)).unwrap_or(0) > 0;
        if ready {
            match nix::unistd::read(pipe, &mut buffer) {
                Ok(0) => return,
                Ok(n) => capture
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(&buffer[..n]),
                Err(_) => return,
            }
        } else if stopping {
            return;
        }
    }
}
