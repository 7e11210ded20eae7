//! Visible tests of `lock`: they are the specification. Run `cargo test -p lock`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use forklab_testkit::{Exit, SharedSlots, fork_child, procfs, wait_child};
use lock::{Lock, LockError, count_with_lock, count_without_lock};

#[test]
fn one_process_alone_counts_every_increment() {
    assert_eq!(count_without_lock(1, 10_000), 10_000);
}

#[test]
fn without_a_lock_concurrent_processes_lose_increments() {
    let (processes, increments) = (4, 300_000);
    let expected = (processes * increments) as u64;
    // Enough work for the children to overlap; a few tries in case the scheduler ran
    // them one after another.
    let results: Vec<u64> = (0..5)
        .map(|_| count_without_lock(processes, increments))
        .collect();
    assert!(
        results.iter().all(|&r| r <= expected),
        "counted too much: {results:?}"
    );
    assert!(
        results.iter().any(|&r| r < expected),
        "no increment was ever lost ({results:?}): do the children really run at once, \
         each doing read-then-write on one shared counter?"
    );
}

#[test]
fn with_a_lock_every_increment_counts() {
    assert_eq!(count_with_lock(4, 20_000), 80_000);
}

#[test]
fn try_acquire_fails_while_the_lock_is_held() {
    let lock = Lock::new();
    assert!(lock.try_acquire(), "a new lock is free");
    assert!(!lock.try_acquire(), "a held lock cannot be taken again");
    lock.release().unwrap();
    assert!(lock.try_acquire(), "a released lock is free again");
}

#[test]
fn releasing_an_unlocked_lock_is_an_error() {
    let lock = Lock::new();
    assert_eq!(lock.release(), Err(LockError::NotLocked));
    lock.acquire();
    assert_eq!(lock.release(), Ok(()));
    assert_eq!(lock.release(), Err(LockError::NotLocked));
}

#[test]
fn acquire_timeout_gives_up_on_a_held_lock() {
    let lock = Lock::new();
    lock.acquire();
    let asked = Instant::now();
    assert!(!lock.acquire_timeout(Duration::from_millis(100)));
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(90),
        "gave up after {waited:?}"
    );
    lock.release().unwrap();
    assert!(
        lock.acquire_timeout(Duration::from_millis(100)),
        "a free lock is taken"
    );
}

#[test]
fn a_child_process_waits_for_the_lock_its_parent_holds() {
    let lock = Lock::new();
    let acquired = SharedSlots::new(1);
    lock.acquire();
    let child = fork_child(|| {
        lock.acquire();
        acquired.set(0, 1);
        lock.release().unwrap();
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(acquired.get(0), 0, "the child took a lock its parent holds");
    assert!(
        procfs::eventually(Duration::from_secs(2), || procfs::state(child) == Some('S')),
        "a waiting process should sleep in the kernel, not run"
    );
    lock.release().unwrap();
    assert_eq!(
        wait_child(child, Duration::from_secs(5)),
        Some(Exit::Code(0))
    );
    assert_eq!(acquired.get(0), 1);
}

#[test]
fn a_lock_taken_by_a_child_is_held_for_the_parent_too() {
    let lock = Lock::new();
    let child = fork_child(|| lock.acquire());
    assert_eq!(
        wait_child(child, Duration::from_secs(5)),
        Some(Exit::Code(0))
    );
    assert!(
        !lock.try_acquire(),
        "the child's acquire is seen by the parent"
    );
    // Any process may release it, as in Python.
    assert_eq!(lock.release(), Ok(()));
    assert!(lock.try_acquire());
}

#[test]
fn the_guard_releases_the_lock_when_dropped() {
    let lock = Lock::new();
    {
        let _held = lock.lock();
        assert!(!lock.try_acquire(), "the guard holds the lock");
    }
    assert!(lock.try_acquire(), "dropping the guard released the lock");
}

#[test]
fn the_guard_releases_the_lock_when_its_holder_panics() {
    let lock = Lock::new();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let _held = lock.lock();
        panic!("expected panic while holding the lock");
    }));
    assert!(outcome.is_err());
    assert!(lock.try_acquire(), "the lock was left held after the panic");
}
