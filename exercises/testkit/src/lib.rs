//! Shared test support for forklab. Not an exercise: nothing here is graded.
//!
//! Visible tests (in `exercises/*/tests/`) and hidden tests (in `grader/hidden/`) use it
//! to fork helper processes, look at processes through `/proc`, record facts in memory
//! that survives `fork` and, for hidden tests, to talk to the grader.

pub mod child;
pub mod harness;
pub mod intervals;
pub mod procfs;
pub mod shared;

pub use child::{Exit, fork_child, my_pid, wait_all, wait_child};
pub use shared::SharedSlots;
