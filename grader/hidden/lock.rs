//! Hidden tests of `lock`, run by the grader one process per test.
//! Compiled as a module of the staged test binary, beside the visible tests.
//! Students never see this file; points are in `grader/rubric/lock.toml`.
//!
//! The lock tests fork their own children (with `fork_child`) and count with their own
//! `SharedSlots`, never with the submission's `SharedCounter`: only the submission's
//! `Lock` is under test there. The `count_*` tests learn which processes the submission
//! forked through a `pthread_atfork` handler that records every child's pid and parent.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use forklab_testkit::harness::Test;
use forklab_testkit::intervals::{ms, now_ns};
use forklab_testkit::procfs::until;
use forklab_testkit::{Exit, SharedSlots, fork_child, my_pid, procfs, wait_all, wait_child};
use lock::{Lock, LockError, count_with_lock, count_without_lock};
use nix::sys::resource::{UsageWho, getrusage};
use nix::unistd::Pid;

/// The hidden tests, in the order the grader runs them.
pub fn tests() -> Vec<Test> {
    vec![
        Test::new(
            "count_without_lock_loses_increments_across_processes",
            count_without_lock_loses_increments_across_processes,
        )
        .min_processes(4)
        .no_threads(),
        Test::new(
            "count_with_lock_is_exact_in_processes",
            count_with_lock_is_exact_in_processes,
        )
        .exact_processes(14)
        .no_threads(),
        Test::new(
            "locked_increments_from_processes_are_exact",
            locked_increments_from_processes_are_exact,
        )
        .exact_processes(4)
        .no_threads(),
        Test::new(
            "the_lock_excludes_other_processes",
            the_lock_excludes_other_processes,
        )
        .exact_processes(4)
        .no_threads(),
        Test::new(
            "a_waiter_is_released_when_the_holder_releases",
            a_waiter_is_released_when_the_holder_releases,
        )
        .exact_processes(2)
        .no_threads(),
        Test::new(
            "timeouts_and_try_acquire_respect_a_holder_in_another_process",
            timeouts_and_try_acquire_respect_a_holder_in_another_process,
        )
        .exact_processes(1)
        .no_threads(),
        Test::new("every_waiter_gets_its_turn", every_waiter_gets_its_turn)
            .exact_processes(4)
            .no_threads(),
        Test::new(
            "a_blocked_waiter_uses_little_cpu",
            a_blocked_waiter_uses_little_cpu,
        )
        .exact_processes(1)
        .no_threads(),
        Test::new(
            "a_blocked_waiter_sleeps_until_woken",
            a_blocked_waiter_sleeps_until_woken,
        )
        .exact_processes(1)
        .no_threads(),
        Test::new(
            "release_without_acquire_is_rejected",
            release_without_acquire_is_rejected,
        )
        .exact_processes(1)
        .no_threads(),
        Test::new(
            "the_guard_releases_on_drop_and_on_panic",
            the_guard_releases_on_drop_and_on_panic,
        )
        .exact_processes(2)
        .no_threads(),
    ]
}

// ---------------------------------------------------------------------------------
// Recording the processes the submission forks.

/// Slot 0: how many children were forked while [`RECORDING`] was on; then, for child
/// `i`, its pid in slot `1 + 2i` and its parent's in slot `2 + 2i` (see [`note_child`]).
static FORKED: OnceLock<SharedSlots> = OnceLock::new();
static RECORDING: AtomicBool = AtomicBool::new(false);
const MOST_FORKS: u64 = 1000;

/// `pthread_atfork` child handler: runs in each new child, right after `fork`. Only
/// atomics and `getpid`/`getppid`: no allocation, no lock, no panic (which would abort).
extern "C" fn note_child() {
    let Some(slots) = FORKED.get() else { return };
    if !RECORDING.load(Ordering::SeqCst) {
        return;
    }
    let i = slots.add(0, 1);
    if i < MOST_FORKS {
        let i = i as usize;
        slots.set(1 + 2 * i, my_pid());
        slots.set(2 + 2 * i, nix::unistd::getppid().as_raw() as u64);
    }
}

/// Runs `f` and returns its result with the `(pid, parent)` of every child forked
/// meanwhile (by `fork()` through libc, as `nix::unistd::fork` does).
fn forks_during<R>(f: impl FnOnce() -> R) -> (R, Vec<(u64, u64)>) {
    let slots = FORKED.get_or_init(|| {
        // SAFETY: registers a handler that only uses atomics and getpid/getppid: safe
        // to run in a freshly forked child.
        let status = unsafe { libc::pthread_atfork(None, None, Some(note_child)) };
        assert_eq!(status, 0, "pthread_atfork failed");
        SharedSlots::new(1 + 2 * MOST_FORKS as usize)
    });
    let before = slots.get(0).min(MOST_FORKS) as usize;
    RECORDING.store(true, Ordering::SeqCst);
    let result = f();
    RECORDING.store(false, Ordering::SeqCst);
    let after = slots.get(0).min(MOST_FORKS) as usize;
    let forked = (before..after)
        .map(|i| (slots.get(1 + 2 * i), slots.get(2 + 2 * i)))
        .collect();
    (result, forked)
}

/// Checks that `what` forked exactly `processes` children of this process, all gone.
fn check_children(what: &str, forked: &[(u64, u64)], processes: usize) {
    assert!(
        !forked.is_empty(),
        "{what} forked no process: the increments must be made by child processes (fork), \
         not by threads or by the caller"
    );
    assert_eq!(
        forked.len(),
        processes,
        "{what} should fork one child per process, it forked {}",
        forked.len()
    );
    for &(pid, parent) in forked {
        assert_ne!(pid, my_pid(), "a child has the caller's pid");
        assert_eq!(parent, my_pid(), "child {pid} is not a child of the caller");
        assert!(
            !procfs::exists(Pid::from_raw(pid as i32)),
            "{what} returned while child {pid} still exists (not reaped, or still running)"
        );
    }
}

// ---------------------------------------------------------------------------------
// Helpers for the tests that fork their own children.

/// Slots of a start barrier: children announce themselves, then wait for the go.
const READY: usize = 0;
const GO: usize = 1;

/// In a child: announce readiness, then wait (sleeping a little) for the go, so that
/// all children start their work at the same moment and really overlap.
fn start_together(slots: &SharedSlots) {
    slots.add(READY, 1);
    while slots.get(GO) == 0 {
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// In the test: wait until `n` children are ready, then let them go.
fn release_when_ready(slots: &SharedSlots, n: u64) {
    assert!(
        procfs::eventually(Duration::from_secs(5), || slots.get(READY) == n),
        "the children did not start"
    );
    slots.set(GO, 1);
}

// ---------------------------------------------------------------------------------
// The race and its cure.

fn count_without_lock_loses_increments_across_processes() {
    let (processes, increments) = (4, 300_000);
    let expected = (processes * increments) as u64;
    let mut results = Vec::new();
    for _ in 0..5 {
        let (counted, forked) = forks_during(|| count_without_lock(processes, increments));
        check_children("count_without_lock", &forked, processes);
        assert!(
            counted <= expected,
            "counted {counted}, more than the {expected} increments made"
        );
        assert!(counted > 0, "counted nothing");
        results.push(counted);
        if counted < expected {
            return;
        }
    }
    panic!(
        "without a lock, {processes} processes x {increments} increments never lost one in 5 \
         tries ({results:?}): each child must do read-then-write on one shared counter, \
         all children running at once"
    );
}

fn count_with_lock_is_exact_in_processes() {
    // Several rounds: a lock that does not exclude loses increments in most of them,
    // but not in every one (the children do not always overlap).
    for (processes, increments) in [(4, 200_000), (6, 60_000), (4, 200_000)] {
        let (counted, forked) = forks_during(|| count_with_lock(processes, increments));
        check_children("count_with_lock", &forked, processes);
        assert_eq!(
            counted,
            (processes * increments) as u64,
            "{processes} processes x {increments} locked increments"
        );
    }
    assert_eq!(procfs::zombie_children(), vec![], "zombies left");
}

fn locked_increments_from_processes_are_exact() {
    const PROCESSES: usize = 4;
    const INCREMENTS: u64 = 50_000;
    const COUNTER: usize = 2;
    let lock = Lock::new();
    let slots = SharedSlots::new(3);
    let pids = SharedSlots::new(PROCESSES);
    let children: Vec<Pid> = (0..PROCESSES)
        .map(|i| {
            fork_child(|| {
                pids.push(my_pid());
                start_together(&slots);
                for _ in 0..INCREMENTS {
                    // Half the children use acquire/release, half the guard.
                    if i % 2 == 0 {
                        lock.acquire();
                        slots.set(COUNTER, slots.get(COUNTER) + 1);
                        lock.release().expect("release of a held lock");
                    } else {
                        let _held = lock.lock();
                        slots.set(COUNTER, slots.get(COUNTER) + 1);
                    }
                }
            })
        })
        .collect();
    release_when_ready(&slots, PROCESSES as u64);
    let ends = wait_all(&children, Duration::from_secs(8));
    assert!(
        ends.iter().all(|&e| e == Some(Exit::Code(0))),
        "children ended with {ends:?} (None: still blocked after 8 s)"
    );
    let mut seen = pids.pushed();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), PROCESSES, "the children are distinct processes");
    assert!(!seen.contains(&my_pid()));
    assert_eq!(
        slots.get(COUNTER),
        PROCESSES as u64 * INCREMENTS,
        "increments were lost: two processes held the lock at once"
    );
}

fn the_lock_excludes_other_processes() {
    const PROCESSES: usize = 4;
    const ROUNDS: u64 = 20_000;
    const INSIDE: usize = 2;
    const MOST_INSIDE: usize = 3;
    const ENTRIES: usize = 4;
    let lock = Lock::new();
    let slots = SharedSlots::new(5);
    let children: Vec<Pid> = (0..PROCESSES)
        .map(|_| {
            fork_child(|| {
                start_together(&slots);
                for _ in 0..ROUNDS {
                    let _held = lock.lock();
                    let inside = slots.add(INSIDE, 1) + 1;
                    if inside > slots.get(MOST_INSIDE) {
                        slots.set(MOST_INSIDE, inside);
                    }
                    for _ in 0..50 {
                        std::hint::spin_loop();
                    }
                    slots.add(INSIDE, u64::MAX); // minus one, wrapping
                    slots.add(ENTRIES, 1);
                }
            })
        })
        .collect();
    release_when_ready(&slots, PROCESSES as u64);
    let ends = wait_all(&children, Duration::from_secs(8));
    assert!(
        ends.iter().all(|&e| e == Some(Exit::Code(0))),
        "children ended with {ends:?} (None: still blocked after 8 s)"
    );
    assert_eq!(slots.get(ENTRIES), PROCESSES as u64 * ROUNDS);
    assert_eq!(
        slots.get(MOST_INSIDE),
        1,
        "up to {} processes were inside the critical section at once",
        slots.get(MOST_INSIDE)
    );
}

// ---------------------------------------------------------------------------------
// Waiting: blocked waiters are woken, timeouts are kept, waiters sleep.

fn a_waiter_is_released_when_the_holder_releases() {
    const WAITING: usize = 0;
    const ACQUIRED_AT: usize = 1;
    let lock = Lock::new();
    let slots = SharedSlots::new(2);

    // A child waits for the test.
    lock.acquire();
    let child = fork_child(|| {
        slots.set(WAITING, 1);
        lock.acquire();
        slots.set(ACQUIRED_AT, now_ns());
        lock.release().expect("release of a held lock");
    });
    until("the child did not start", || slots.get(WAITING) == 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        slots.get(ACQUIRED_AT),
        0,
        "the child took a lock held by the test process"
    );
    let released_at = now_ns();
    lock.release().expect("release");
    let end = wait_child(child, Duration::from_secs(5));
    assert_eq!(
        end,
        Some(Exit::Code(0)),
        "the waiter was not released within 5 s"
    );
    let acquired_at = slots.get(ACQUIRED_AT);
    assert!(
        acquired_at >= released_at,
        "the child acquired before the release"
    );
    assert!(
        acquired_at - released_at < 2_000_000_000,
        "the waiter took {:.0} ms to notice the release",
        ms(acquired_at - released_at)
    );

    // The test waits for a child.
    slots.set(WAITING, 0);
    let child = fork_child(|| {
        lock.acquire();
        slots.set(WAITING, 1);
        std::thread::sleep(Duration::from_millis(200));
        slots.set(ACQUIRED_AT, now_ns()); // here: the time of the release
        lock.release().expect("release of a held lock");
    });
    until("the child did not take the free lock", || {
        slots.get(WAITING) == 1
    });
    assert!(
        !lock.try_acquire(),
        "the lock held by the child was free for the test"
    );
    lock.acquire();
    let acquired_at = now_ns();
    assert!(
        acquired_at >= slots.get(ACQUIRED_AT),
        "the test acquired while the child still held the lock"
    );
    lock.release().expect("release");
    assert_eq!(
        wait_child(child, Duration::from_secs(5)),
        Some(Exit::Code(0))
    );
}

fn timeouts_and_try_acquire_respect_a_holder_in_another_process() {
    const TRY_WHILE_HELD: usize = 0; // 1 false, 2 true
    const GAVE_UP: usize = 1; // 1 false, 2 true
    const GAVE_UP_AFTER_NS: usize = 2;
    const WAITING: usize = 3;
    const GOT_IT: usize = 4; // 1 false, 2 true
    const GOT_IT_AFTER_NS: usize = 5;
    let as_slot = |b: bool| if b { 2 } else { 1 };
    let lock = Lock::new();
    let slots = SharedSlots::new(6);
    lock.acquire();
    let child = fork_child(|| {
        slots.set(TRY_WHILE_HELD, as_slot(lock.try_acquire()));
        let start = now_ns();
        slots.set(
            GAVE_UP,
            as_slot(lock.acquire_timeout(Duration::from_millis(300))),
        );
        slots.set(GAVE_UP_AFTER_NS, now_ns() - start);
        slots.set(WAITING, 1);
        let start = now_ns();
        let got = lock.acquire_timeout(Duration::from_secs(10));
        slots.set(GOT_IT_AFTER_NS, now_ns() - start);
        slots.set(GOT_IT, as_slot(got));
        if got {
            lock.release().expect("release of a held lock");
        }
    });
    until("the child never got past its first acquire_timeout", || {
        slots.get(WAITING) == 1
    });
    std::thread::sleep(Duration::from_millis(200));
    lock.release().expect("release");
    let end = wait_child(child, Duration::from_secs(5));
    assert_eq!(
        slots.get(TRY_WHILE_HELD),
        1,
        "try_acquire took a lock held by another process"
    );
    assert_eq!(
        slots.get(GAVE_UP),
        1,
        "acquire_timeout took a lock held by another process"
    );
    let gave_up = ms(slots.get(GAVE_UP_AFTER_NS));
    assert!(
        (250.0..3000.0).contains(&gave_up),
        "acquire_timeout(300 ms) on a held lock returned after {gave_up:.0} ms"
    );
    assert_eq!(
        end,
        Some(Exit::Code(0)),
        "acquire_timeout(10 s) did not return within 5 s of the release"
    );
    assert_eq!(
        slots.get(GOT_IT),
        2,
        "acquire_timeout(10 s) gave up though the lock was released"
    );
    let got_it = ms(slots.get(GOT_IT_AFTER_NS));
    assert!(
        got_it < 3000.0,
        "acquire_timeout returned {got_it:.0} ms after it began"
    );
    assert!(lock.try_acquire(), "the child released the lock");
}

fn every_waiter_gets_its_turn() {
    const PROCESSES: usize = 4;
    const WAITING: usize = 0;
    const INSIDE: usize = 1;
    const MOST_INSIDE: usize = 2;
    const DONE: usize = 3;
    let lock = Lock::new();
    let slots = SharedSlots::new(4);
    lock.acquire();
    let children: Vec<Pid> = (0..PROCESSES)
        .map(|_| {
            fork_child(|| {
                slots.add(WAITING, 1);
                let _held = lock.lock();
                let inside = slots.add(INSIDE, 1) + 1;
                if inside > slots.get(MOST_INSIDE) {
                    slots.set(MOST_INSIDE, inside);
                }
                // Hold it a while, so that the others are asleep when it is released.
                std::thread::sleep(Duration::from_millis(30));
                slots.add(INSIDE, u64::MAX);
                slots.add(DONE, 1);
            })
        })
        .collect();
    until("the children did not start", || {
        slots.get(WAITING) == PROCESSES as u64
    });
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(slots.get(DONE), 0, "a child took the lock held by the test");
    lock.release().expect("release");
    let ends = wait_all(&children, Duration::from_secs(6));
    assert_eq!(
        slots.get(DONE),
        PROCESSES as u64,
        "{} of {PROCESSES} waiters got the lock; the others slept on (ended: {ends:?}): does a \
         release wake a waiter whenever one may be asleep?",
        slots.get(DONE)
    );
    assert!(
        ends.iter().all(|&e| e == Some(Exit::Code(0))),
        "children ended with {ends:?}"
    );
    assert_eq!(
        slots.get(MOST_INSIDE),
        1,
        "two waiters held the lock at once"
    );
}

/// Forks a child that blocks about 500 ms in `acquire` on a lock the test holds, and
/// returns its CPU time (user + system) and its voluntary context switches during the
/// wait, from its own `getrusage`.
fn blocked_waiter_usage() -> (Duration, i64) {
    const WAITING: usize = 0;
    const CPU_US: usize = 1;
    const SWITCHES: usize = 2;
    const ACQUIRED: usize = 3;
    let lock = Lock::new();
    let slots = SharedSlots::new(4);
    lock.acquire();
    let child = fork_child(|| {
        let cpu_us = |u: &nix::sys::resource::Usage| {
            let us =
                |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
            us(u.user_time()) + us(u.system_time())
        };
        let before = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
        slots.set(WAITING, 1);
        lock.acquire();
        let after = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
        slots.set(CPU_US, cpu_us(&after) - cpu_us(&before));
        let switches = after.voluntary_context_switches() - before.voluntary_context_switches();
        slots.set(SWITCHES, switches as u64);
        slots.set(ACQUIRED, 1);
        lock.release().expect("release of a held lock");
    });
    until("the child did not start", || slots.get(WAITING) == 1);
    std::thread::sleep(Duration::from_millis(500));
    lock.release().expect("release");
    let end = wait_child(child, Duration::from_secs(5));
    assert_eq!(
        end,
        Some(Exit::Code(0)),
        "the waiter was not released within 5 s"
    );
    assert_eq!(slots.get(ACQUIRED), 1);
    (
        Duration::from_micros(slots.get(CPU_US)),
        slots.get(SWITCHES) as i64,
    )
}

fn a_blocked_waiter_uses_little_cpu() {
    let (cpu, _) = blocked_waiter_usage();
    assert!(
        cpu < Duration::from_millis(100),
        "a process blocked about 500 ms in acquire used {cpu:?} of CPU: a waiter must sleep \
         in the kernel (a shared futex, a process-shared mutex...), not spin"
    );
}

fn a_blocked_waiter_sleeps_until_woken() {
    let (_, switches) = blocked_waiter_usage();
    assert!(
        switches < 10,
        "a process blocked about 500 ms in acquire went to sleep {switches} times: it polls \
         (sleep, try again) instead of sleeping until the holder's release wakes it"
    );
}

// ---------------------------------------------------------------------------------
// Errors and the guard.

fn release_without_acquire_is_rejected() {
    let lock = Lock::new();
    assert_eq!(
        lock.release(),
        Err(LockError::NotLocked),
        "release of a new lock"
    );
    assert!(lock.try_acquire(), "a rejected release broke the lock");
    assert_eq!(lock.release(), Ok(()));
    assert_eq!(
        lock.release(),
        Err(LockError::NotLocked),
        "a second release"
    );
    assert!(
        lock.acquire_timeout(Duration::ZERO),
        "a free lock is taken even with no time"
    );
    assert!(
        !lock.acquire_timeout(Duration::ZERO),
        "a held lock is not taken with no time"
    );
    assert_eq!(lock.release(), Ok(()));

    // Any process may release the lock, as in Python; once.
    let child = fork_child(|| lock.acquire());
    assert_eq!(
        wait_child(child, Duration::from_secs(5)),
        Some(Exit::Code(0))
    );
    assert!(
        !lock.try_acquire(),
        "the child's acquire is not seen by the test"
    );
    assert_eq!(
        lock.release(),
        Ok(()),
        "the test could not release the child's lock"
    );
    assert_eq!(lock.release(), Err(LockError::NotLocked));
}

fn the_guard_releases_on_drop_and_on_panic() {
    const HELD_INSIDE: usize = 0; // 1: try_acquire failed while the guard lived
    const FREE_AFTER_PANIC: usize = 1; // 1: try_acquire succeeded after the panic
    const HOLDING: usize = 2;
    const DROP_NOW: usize = 3;
    let lock = Lock::new();
    let slots = SharedSlots::new(4);

    // In a child: a panic while the guard lives releases the lock as it unwinds.
    let child = fork_child(|| {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let _held = lock.lock();
            if !lock.try_acquire() {
                slots.set(HELD_INSIDE, 1);
            }
            panic!("expected panic while holding the lock");
        }));
        if outcome.is_err() && lock.try_acquire() {
            slots.set(FREE_AFTER_PANIC, 1);
            lock.release().expect("release of a held lock");
        }
    });
    assert_eq!(
        wait_child(child, Duration::from_secs(5)),
        Some(Exit::Code(0))
    );
    assert_eq!(slots.get(HELD_INSIDE), 1, "the guard did not hold the lock");
    assert_eq!(
        slots.get(FREE_AFTER_PANIC),
        1,
        "the lock stayed held after the panic"
    );
    assert!(
        lock.try_acquire(),
        "the lock is held for the test after the child's panic"
    );
    lock.release().expect("release");

    // A guard in a child holds the lock for the test until the child drops it.
    let child = fork_child(|| {
        let held = lock.lock();
        slots.set(HOLDING, 1);
        while slots.get(DROP_NOW) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(held);
        slots.set(HOLDING, 0);
        std::thread::sleep(Duration::from_millis(100));
    });
    until("the child did not take the lock", || {
        slots.get(HOLDING) == 1
    });
    let free_for_the_test = lock.try_acquire();
    slots.set(DROP_NOW, 1);
    assert!(
        !free_for_the_test,
        "a guard in a child did not hold the lock for the test"
    );
    until("the child did not drop its guard", || {
        slots.get(HOLDING) == 0
    });
    assert!(
        lock.try_acquire(),
        "dropping the guard in the child did not release the lock"
    );
    lock.release().expect("release");
    assert_eq!(
        wait_child(child, Duration::from_secs(5)),
        Some(Exit::Code(0))
    );
}
