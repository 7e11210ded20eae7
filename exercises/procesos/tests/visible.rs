//! Visible tests of `procesos`: they are the specification. Run `cargo test -p procesos`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use forklab_testkit::SharedSlots;
use procesos::{Process, ProcessError};

#[test]
fn a_child_that_returns_exits_with_code_zero() {
    let mut p = Process::new(|| {});
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(0));
}

#[test]
fn an_explicit_exit_code_is_reported() {
    let mut p = Process::new(|| std::process::exit(7));
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(7));
}

#[test]
fn a_panic_in_the_child_gives_exit_code_one() {
    let mut p = Process::new(|| panic!("boom in the child"));
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(1));
}

#[test]
fn exitcode_is_none_before_the_child_ends() {
    let mut p = Process::new(|| std::thread::sleep(Duration::from_secs(30)));
    assert_eq!(p.exitcode(), None);
    p.start().unwrap();
    assert_eq!(p.exitcode(), None);
    p.kill().unwrap();
    p.join().unwrap();
}

#[test]
fn kill_gives_minus_sigkill() {
    let mut p = Process::new(|| std::thread::sleep(Duration::from_secs(30)));
    p.start().unwrap();
    p.kill().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(-9));
}

#[test]
fn terminate_gives_minus_sigterm() {
    let mut p = Process::new(|| std::thread::sleep(Duration::from_secs(30)));
    p.start().unwrap();
    p.terminate().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(-15));
}

#[test]
fn join_before_start_is_an_error() {
    let mut p = Process::new(|| {});
    assert_eq!(p.join(), Err(ProcessError::NotStarted));
}

#[test]
fn starting_twice_is_an_error() {
    let mut p = Process::new(|| {});
    p.start().unwrap();
    assert_eq!(p.start(), Err(ProcessError::AlreadyStarted));
    p.join().unwrap();
}

#[test]
fn is_alive_while_running_and_not_after_join() {
    let mut p = Process::new(|| std::thread::sleep(Duration::from_millis(300)));
    assert!(!p.is_alive(), "a process not started is not alive");
    p.start().unwrap();
    assert!(p.is_alive());
    p.join().unwrap();
    assert!(!p.is_alive());
}

#[test]
fn join_timeout_gives_up_on_a_running_child() {
    let mut p = Process::new(|| std::thread::sleep(Duration::from_secs(30)));
    p.start().unwrap();
    assert_eq!(p.join_timeout(Duration::from_millis(100)), Ok(false));
    p.kill().unwrap();
    assert_eq!(p.join_timeout(Duration::from_secs(10)), Ok(true));
    assert_eq!(p.exitcode(), Some(-9));
}

#[test]
fn the_child_has_its_own_pid() {
    let seen = SharedSlots::new(1);
    let in_child = seen.clone();
    let mut p = Process::new(move || in_child.set(0, u64::from(std::process::id())));
    assert_eq!(p.pid(), None);
    p.start().unwrap();
    p.join().unwrap();
    let child = p.pid().expect("a started process has a pid");
    assert_ne!(child.as_raw() as u32, std::process::id());
    assert_eq!(
        seen.get(0),
        child.as_raw() as u64,
        "the target ran in the child"
    );
}

#[test]
fn a_child_writes_to_its_own_copy_of_memory() {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut p = Process::new(|| {
        COUNTER.store(42, Ordering::SeqCst);
        std::process::exit(COUNTER.load(Ordering::SeqCst) as i32);
    });
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(42), "the child saw its own write");
    assert_eq!(
        COUNTER.load(Ordering::SeqCst),
        0,
        "the parent's copy is untouched"
    );
}

#[test]
fn processes_have_names() {
    let named = Process::with_name("worker", || {});
    assert_eq!(named.name(), "worker");
    let first = Process::new(|| {});
    let second = Process::new(|| {});
    let number = |p: &Process| -> usize {
        let n = p
            .name()
            .strip_prefix("Process-")
            .expect("default names are Process-N");
        n.parse().expect("N is a number")
    };
    assert!(number(&second) > number(&first));
}
