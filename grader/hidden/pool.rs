//! Hidden tests of `pool`, run by the grader one process per test.
//! Compiled as a module of the staged test binary, beside the visible tests.
//! Students never see this file; points are in `grader/rubric/pool.toml`.
//!
//! Task functions are plain `fn`s, so they reach the test's shared memory through a
//! `static` set before the pool forks its workers (each test has its own statics).
//! Facts are recorded by the tasks themselves in `SharedSlots` (memory the test owns)
//! and checked against `/proc`, never taken from the pool's own answers alone.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use forklab_testkit::harness::Test;
use forklab_testkit::intervals::{self, BusyLog};
use forklab_testkit::{SharedSlots, procfs};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pool::{Pool, PoolError};

/// The hidden tests, in the order the grader runs them.
pub fn tests() -> Vec<Test> {
    vec![
        Test::new(
            "workers_are_distinct_children_of_the_caller",
            workers_are_distinct_children_of_the_caller,
        )
        .exact_processes(3)
        .no_threads(),
        Test::new(
            "the_pool_size_stays_fixed_however_many_tasks_run",
            the_pool_size_stays_fixed_however_many_tasks_run,
        )
        .exact_processes(2)
        .no_threads(),
        Test::new(
            "map_keeps_order_over_many_items",
            map_keeps_order_over_many_items,
        )
        .exact_processes(4)
        .no_threads(),
        Test::new(
            "cpu_bound_tasks_run_in_parallel",
            cpu_bound_tasks_run_in_parallel,
        )
        .exact_processes(2)
        .no_threads(),
        Test::new(
            "async_results_are_ready_only_after_the_work_is_done",
            async_results_are_ready_only_after_the_work_is_done,
        )
        .exact_processes(2)
        .no_threads(),
        Test::new(
            "a_panicking_task_is_reported_and_later_tasks_still_run",
            a_panicking_task_is_reported_and_later_tasks_still_run,
        )
        .exact_processes(2)
        .no_threads(),
        Test::new(
            "large_arguments_and_results_cross_the_pipes",
            large_arguments_and_results_cross_the_pipes,
        )
        .exact_processes(2)
        .no_threads(),
        Test::new(
            "a_killed_worker_gives_an_error_not_a_hang",
            a_killed_worker_gives_an_error_not_a_hang,
        )
        .exact_processes(3)
        .no_threads(),
        Test::new(
            "close_and_join_finish_the_work_and_leave_no_process",
            close_and_join_finish_the_work_and_leave_no_process,
        )
        .exact_processes(3)
        .no_threads(),
        Test::new(
            "dropping_a_busy_pool_stops_and_reaps_its_workers",
            dropping_a_busy_pool_stops_and_reaps_its_workers,
        )
        .exact_processes(2)
        .no_threads(),
        Test::new(
            "terminate_stops_busy_workers_now",
            terminate_stops_busy_workers_now,
        )
        .exact_processes(2)
        .no_threads(),
        Test::new("errors_are_values", errors_are_values).exact_processes(1),
    ]
}

fn me() -> u32 {
    std::process::id()
}

fn as_u32(pid: Pid) -> u32 {
    pid.as_raw() as u32
}

/// The caller's children as pids (workers, and zombies if any).
fn children() -> BTreeSet<u32> {
    procfs::children(Pid::this())
        .into_iter()
        .map(as_u32)
        .collect()
}

fn assert_single_threaded() {
    assert_eq!(
        procfs::threads(Pid::this()),
        Some(1),
        "the pool created a thread in the caller: workers must be processes"
    );
}

fn assert_no_process_left() {
    assert_eq!(procfs::zombie_children(), vec![], "zombies left");
    assert_eq!(children(), BTreeSet::new(), "worker processes left");
}

/// Sleeps in small steps until `slots[index] != 0`, at most 20 s (a safety net so that
/// a task never outlives a failing test by much).
fn wait_for_flag(slots: &SharedSlots, index: usize) {
    let until = Instant::now() + Duration::from_secs(20);
    while slots.get(index) == 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn workers_are_distinct_children_of_the_caller() {
    // Slot 0: the caller's pid; then (pid, parent) pairs pushed by each task.
    static SLOTS: OnceLock<SharedSlots> = OnceLock::new();
    fn record(x: u32) -> u32 {
        let slots = SLOTS.get().expect("set before the pool");
        slots.push_all(&[
            u64::from(std::process::id()),
            nix::unistd::getppid().as_raw() as u64,
        ]);
        x
    }
    let slots = SLOTS.get_or_init(|| SharedSlots::new(2 * 300 + 8));
    let pool = Pool::new(3).expect("Pool::new");
    assert_single_threaded();
    let workers = children();
    assert_eq!(
        workers.len(),
        3,
        "Pool::new(3) must fork 3 workers, children of the caller"
    );
    assert_eq!(
        pool.map(record, 0..300).expect("map"),
        (0..300).collect::<Vec<_>>()
    );
    let pairs = slots.pushed();
    assert_eq!(pairs.len(), 600, "every task ran once");
    for pair in pairs.chunks(2) {
        let (pid, parent) = (pair[0] as u32, pair[1] as u32);
        assert_ne!(pid, me(), "a task ran in the caller's process");
        assert!(
            workers.contains(&pid),
            "task ran in {pid}, not one of the workers {workers:?}"
        );
        assert_eq!(
            parent,
            me(),
            "the worker's parent is the process that made the pool"
        );
    }
    assert_eq!(children(), workers, "the workers changed while tasks ran");
}

fn the_pool_size_stays_fixed_however_many_tasks_run() {
    static SLOTS: OnceLock<SharedSlots> = OnceLock::new();
    fn record(x: u64) -> u64 {
        SLOTS
            .get()
            .expect("set")
            .push(u64::from(std::process::id()));
        x + 1
    }
    let slots = SLOTS.get_or_init(|| SharedSlots::new(20 * 60 + 8));
    let pool = Pool::new(2).expect("Pool::new");
    let workers = children();
    for round in 0..20 {
        assert_eq!(pool.map(record, 0..50).expect("map").len(), 50);
        assert_eq!(pool.apply(record, round).expect("apply"), round + 1);
        let r = pool.apply_async(record, round).expect("apply_async");
        assert_eq!(r.get().expect("get"), round + 1);
    }
    assert_single_threaded();
    let used: BTreeSet<u32> = slots.pushed().into_iter().map(|p| p as u32).collect();
    assert_eq!(slots.pushed().len(), 20 * 52);
    assert_eq!(
        children(),
        workers,
        "a pool of 2 must keep its 2 workers: no fork per task"
    );
    assert!(
        used.is_subset(&workers),
        "tasks ran in {used:?}, workers are {workers:?}"
    );
    assert_eq!(
        used.len(),
        2,
        "both workers should have taken part in 20 maps of 50 items"
    );
    pool.close();
    pool.join().expect("join");
    assert_no_process_left();
}

fn map_keeps_order_over_many_items() {
    // Slot 0: the caller's pid. Slot 1: items run elsewhere. Slot 2: items run in the
    // caller (must stay 0).
    static SLOTS: OnceLock<SharedSlots> = OnceLock::new();
    fn triple(x: u64) -> u64 {
        let slots = SLOTS.get().expect("set");
        let here = u64::from(std::process::id()) == slots.get(0);
        slots.add(if here { 2 } else { 1 }, 1);
        3 * x + 1
    }
    fn label(i: u32) -> String {
        format!("item-{i}")
    }
    let slots = SLOTS.get_or_init(|| SharedSlots::new(3));
    slots.set(0, u64::from(me()));
    let pool = Pool::new(4).expect("Pool::new");
    let n = 100_000u64;
    let result = pool.map_async(triple, 0..n).expect("map_async");
    assert_single_threaded();
    let got = result.get().expect("map");
    assert_eq!(got.len(), n as usize);
    assert!(
        got.iter().zip(0..n).all(|(&y, x)| y == 3 * x + 1),
        "map lost the input order"
    );
    assert_eq!(slots.get(2), 0, "items ran in the caller's process");
    assert_eq!(slots.get(1), n, "every item ran exactly once in a worker");
    let labels = pool.map(label, 0..5_000).expect("map of strings");
    assert!(
        labels
            .iter()
            .enumerate()
            .all(|(i, s)| *s == format!("item-{i}"))
    );
    for chunksize in [1, 3, 100_000] {
        let got = pool
            .map_chunked(triple, 0..1_000, chunksize)
            .expect("map_chunked");
        assert_eq!(
            got,
            (0..1_000).map(|x| 3 * x + 1).collect::<Vec<_>>(),
            "chunksize {chunksize}"
        );
    }
    assert_eq!(
        pool.map(triple, Vec::new()).expect("empty map"),
        Vec::<u64>::new()
    );
    assert_eq!(children().len(), 4);
}

fn cpu_bound_tasks_run_in_parallel() {
    static LOG: OnceLock<BusyLog> = OnceLock::new();
    /// Spins for `ms` milliseconds of this process's own CPU time.
    fn spin(ms: u64) -> u64 {
        use nix::time::{ClockId, clock_gettime};
        let cpu = || {
            let t = clock_gettime(ClockId::CLOCK_PROCESS_CPUTIME_ID).expect("clock");
            t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
        };
        LOG.get().expect("set").record(|| {
            let until = cpu() + ms * 1_000_000;
            let mut spins = 0u64;
            while cpu() < until {
                spins = std::hint::black_box(spins + 1);
            }
            spins
        })
    }
    let log = LOG.get_or_init(|| BusyLog::new(16));
    let pool = Pool::new(2).expect("Pool::new");
    let result = pool.map_async(spin, [150; 4]).expect("map_async");
    assert_single_threaded();
    assert_eq!(result.get().expect("map").len(), 4);
    let busy = log.intervals();
    assert_eq!(busy.len(), 4, "each task ran once");
    assert!(
        busy.iter().all(|i| i.pid != me()),
        "a task ran in the caller"
    );
    assert_eq!(
        intervals::distinct_pids(&busy),
        2,
        "both workers should have worked"
    );
    let overlap = intervals::parallel_overlap_ns(&busy);
    // Shown in the report's evidence: how long the two workers were busy at once.
    forklab_testkit::harness::record_metric("overlap_ms", overlap as f64 / 1e6);
    assert!(
        overlap > 0,
        "the workers never ran at the same time: {busy:?}"
    );
}

fn async_results_are_ready_only_after_the_work_is_done() {
    // Slot 0: the gate (0 closed). Then the argument of each task that finished.
    static SLOTS: OnceLock<SharedSlots> = OnceLock::new();
    fn gated(x: u64) -> u64 {
        let slots = SLOTS.get().expect("set");
        wait_for_flag(slots, 0);
        slots.push(x);
        10 * x
    }
    let slots = SLOTS.get_or_init(|| SharedSlots::new(16));
    let pool = Pool::new(2).expect("Pool::new");
    let one = pool.apply_async(gated, 4).expect("apply_async");
    let many = pool.map_async(gated, [1, 2, 3]).expect("map_async");
    for _ in 0..5 {
        assert!(
            !one.ready(),
            "apply_async is ready before its task could finish"
        );
        assert!(
            !many.ready(),
            "map_async is ready before its tasks could finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let asked = Instant::now();
    assert_eq!(
        one.get_timeout(Duration::from_millis(100)),
        Err(PoolError::Timeout)
    );
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(80) && waited < Duration::from_secs(3),
        "get_timeout(100 ms) returned after {waited:?}"
    );
    assert!(!many.wait_timeout(Duration::from_millis(50)));
    assert_single_threaded();
    assert_eq!(
        slots.pushed(),
        Vec::<u64>::new(),
        "a gated task finished before the gate opened"
    );

    slots.set(0, 1);
    one.wait();
    assert!(one.ready());
    assert!(
        slots.pushed().contains(&4),
        "ready() before the task recorded its end"
    );
    assert_eq!(one.get(), Ok(40));
    assert_eq!(one.get(), Ok(40), "get may be called again");
    assert_eq!(
        many.get_timeout(Duration::from_secs(5)),
        Ok(vec![10, 20, 30])
    );
    let done: BTreeSet<u64> = slots.pushed().into_iter().collect();
    assert_eq!(done, BTreeSet::from([1, 2, 3, 4]));
}

fn a_panicking_task_is_reported_and_later_tasks_still_run() {
    fn picky(x: u64) -> u64 {
        if x % 7 == 3 {
            panic!("picky refuses {x}");
        }
        x
    }
    let pool = Pool::new(2).expect("Pool::new");
    let workers = children();
    match pool.apply(picky, 3) {
        Err(PoolError::Panicked(message)) => {
            assert!(
                message.contains("picky refuses 3"),
                "the panic message is lost: {message:?}"
            )
        }
        other => panic!("a panicking task must give Err(Panicked), got {other:?}"),
    }
    let pending = pool.apply_async(picky, 10).expect("apply_async");
    assert!(matches!(pending.get(), Err(PoolError::Panicked(m)) if m.contains("picky refuses 10")));
    assert!(matches!(
        pool.map(picky, 0..100),
        Err(PoolError::Panicked(_))
    ));
    assert_eq!(
        pool.map(picky, [1, 2, 4, 5]).expect("map after panics"),
        vec![1, 2, 4, 5]
    );
    assert_eq!(pool.apply(picky, 8).expect("apply after panics"), 8);
    assert_eq!(
        children(),
        workers,
        "a panic must not kill or replace a worker"
    );
}

fn large_arguments_and_results_cross_the_pipes() {
    fn checksum(bytes: Vec<u8>) -> u64 {
        bytes.iter().map(|&b| u64::from(b)).sum()
    }
    fn grow(n: u32) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }
    fn reverse(text: String) -> String {
        text.chars().rev().collect()
    }
    let pool = Pool::new(2).expect("Pool::new");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 256) as u8).collect();
    let expected: u64 = big.iter().map(|&b| u64::from(b)).sum();
    assert_eq!(
        pool.apply(checksum, big).expect("a 3 MB argument"),
        expected
    );
    let grown = pool.map(grow, [500_000; 6]).expect("6 results of 500 KB");
    assert!(grown.iter().all(|v| *v == grow(500_000)));
    let texts: Vec<String> = (0..8).map(|i| format!("{i}").repeat(200_000)).collect();
    let reversed = pool
        .map_chunked(reverse, texts.clone(), 1)
        .expect("map of big strings");
    assert_eq!(
        reversed,
        texts.iter().map(|t| reverse(t.clone())).collect::<Vec<_>>()
    );
}

fn a_killed_worker_gives_an_error_not_a_hang() {
    // Slot 0: pid of the worker running the long task.
    static SLOTS: OnceLock<SharedSlots> = OnceLock::new();
    fn long(x: u64) -> u64 {
        let slots = SLOTS.get().expect("set");
        slots.set(0, u64::from(std::process::id()));
        wait_for_flag(slots, 1); // never set: the worker is killed first
        x
    }
    fn whose(_: u64) -> u32 {
        std::process::id()
    }
    let slots = SLOTS.get_or_init(|| SharedSlots::new(2));
    let pool = Pool::new(2).expect("Pool::new");
    let result = pool.apply_async(long, 1).expect("apply_async");
    assert!(
        procfs::eventually(Duration::from_secs(5), || slots.get(0) != 0),
        "the long task never started"
    );
    let victim = Pid::from_raw(slots.get(0) as i32);
    assert!(
        children().contains(&as_u32(victim)),
        "the task ran outside the workers"
    );
    kill(victim, Signal::SIGKILL).expect("kill the worker");
    let asked = Instant::now();
    match result.get_timeout(Duration::from_secs(5)) {
        Err(PoolError::WorkerDied { pid, .. }) => {
            assert_eq!(pid, victim, "WorkerDied names the dead worker")
        }
        Err(PoolError::Timeout) => panic!("a killed worker's task must fail, not hang"),
        other => panic!("expected Err(WorkerDied), got {other:?}"),
    }
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "the death took {:?} to notice",
        asked.elapsed()
    );
    assert_single_threaded();
    let used: BTreeSet<u32> = pool
        .map(whose, 0..40)
        .expect("the pool works on")
        .into_iter()
        .collect();
    assert!(!used.contains(&as_u32(victim)));
    assert!(!procfs::exists(victim), "the dead worker was not reaped");
    let now = children();
    assert_eq!(
        now.len(),
        2,
        "the dead worker was replaced: still 2 workers, got {now:?}"
    );
    assert!(used.is_subset(&now));
    pool.close();
    pool.join().expect("join");
    assert_no_process_left();
}

fn close_and_join_finish_the_work_and_leave_no_process() {
    static SLOTS: OnceLock<SharedSlots> = OnceLock::new();
    fn slow(x: u64) -> u64 {
        std::thread::sleep(Duration::from_millis(100));
        SLOTS.get().expect("set").push(x);
        x * 2
    }
    let slots = SLOTS.get_or_init(|| SharedSlots::new(16));
    let pool = Pool::new(3).expect("Pool::new");
    let workers: Vec<Pid> = procfs::children(Pid::this());
    let outstanding = pool.map_async(slow, 0..6).expect("map_async");
    let single = pool.apply_async(slow, 10).expect("apply_async");
    pool.close();
    assert_eq!(
        pool.apply(slow, 1),
        Err(PoolError::Closed),
        "a closed pool takes no task"
    );
    pool.join().expect("join");
    let done: BTreeSet<u64> = slots.pushed().into_iter().collect();
    assert_eq!(
        done,
        BTreeSet::from([0, 1, 2, 3, 4, 5, 10]),
        "join returned before the work was done"
    );
    for w in workers {
        assert!(
            !procfs::exists(w),
            "worker {w} is still in the process table after join"
        );
    }
    assert_no_process_left();
    assert!(outstanding.ready() && single.ready());
    assert_eq!(outstanding.get(), Ok(vec![0, 2, 4, 6, 8, 10]));
    assert_eq!(single.get(), Ok(20));
}

fn dropping_a_busy_pool_stops_and_reaps_its_workers() {
    static SLOTS: OnceLock<SharedSlots> = OnceLock::new();
    fn long(x: u64) -> u64 {
        let slots = SLOTS.get().expect("set");
        slots.add(0, 1);
        wait_for_flag(slots, 1); // never set: the pool is dropped first
        x
    }
    let slots = SLOTS.get_or_init(|| SharedSlots::new(2));
    let pool = Pool::new(2).expect("Pool::new");
    for x in 0..2 {
        drop(pool.apply_async(long, x).expect("apply_async"));
    }
    assert!(
        procfs::eventually(Duration::from_secs(5), || slots.get(0) == 2),
        "both long tasks should be running"
    );
    assert_eq!(children().len(), 2);
    let dropped = Instant::now();
    drop(pool);
    assert!(
        dropped.elapsed() < Duration::from_secs(3),
        "drop waited for the tasks"
    );
    assert_no_process_left();
}

fn terminate_stops_busy_workers_now() {
    static SLOTS: OnceLock<SharedSlots> = OnceLock::new();
    fn long(x: u64) -> u64 {
        let slots = SLOTS.get().expect("set");
        slots.add(0, 1);
        wait_for_flag(slots, 1);
        x
    }
    let slots = SLOTS.get_or_init(|| SharedSlots::new(2));
    let pool = Pool::new(2).expect("Pool::new");
    let result = pool.apply_async(long, 5).expect("apply_async");
    assert!(procfs::eventually(Duration::from_secs(5), || slots.get(0) == 1));
    let asked = Instant::now();
    pool.terminate();
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "terminate waited for the task"
    );
    assert_no_process_left();
    assert_eq!(
        result.get_timeout(Duration::from_secs(3)),
        Err(PoolError::Terminated)
    );
    assert_eq!(pool.apply(long, 1), Err(PoolError::Closed));
    pool.join().expect("join after terminate");
}

fn errors_are_values() {
    fn id(x: u8) -> u8 {
        x
    }
    let pool = Pool::new(1).expect("Pool::new");
    assert_eq!(pool.processes(), 1);
    assert_eq!(
        pool.join(),
        Err(PoolError::StillRunning),
        "join before close is an error"
    );
    assert_eq!(pool.apply(id, 1), Ok(1));
    pool.close();
    assert_eq!(pool.apply(id, 1), Err(PoolError::Closed));
    assert!(matches!(pool.map_async(id, [1, 2]), Err(PoolError::Closed)));
    assert!(matches!(pool.apply_async(id, 1), Err(PoolError::Closed)));
    pool.join().expect("join");
    pool.join().expect("a second join returns at once");
    assert_no_process_left();
}
