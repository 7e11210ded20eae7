//! Visible tests of `pool`: they are the specification. Run `cargo test -p pool`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use forklab_testkit::procfs;
use nix::sys::signal::{Signal, kill};
use pool::{Pid, Pool, PoolError};

fn square(x: u64) -> u64 {
    x * x
}

fn my_pid(_: u64) -> u32 {
    std::process::id()
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn fail_on_three(x: u64) -> u64 {
    if x == 3 {
        panic!("three is not allowed");
    }
    x
}

#[test]
fn map_returns_results_in_input_order() {
    let pool = Pool::new(3).unwrap();
    assert_eq!(
        pool.map(square, 0..10).unwrap(),
        vec![0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    );
    let many: Vec<u64> = (0..10_000).collect();
    let expected: Vec<u64> = many.iter().map(|x| x * x).collect();
    assert_eq!(pool.map(square, many).unwrap(), expected);
    assert_eq!(pool.map(square, Vec::new()).unwrap(), Vec::<u64>::new());
}

#[test]
fn map_chunked_keeps_the_order_for_any_chunksize() {
    let pool = Pool::new(2).unwrap();
    for chunksize in [1, 7, 1000] {
        assert_eq!(
            pool.map_chunked(square, 0..100, chunksize).unwrap(),
            (0..100).map(square).collect::<Vec<_>>()
        );
    }
}

#[test]
fn apply_runs_one_task_and_strings_travel_too() {
    fn shout(text: String) -> String {
        text.to_uppercase()
    }
    let pool = Pool::new(1).unwrap();
    assert_eq!(pool.apply(square, 12).unwrap(), 144);
    assert_eq!(pool.apply(shout, "hola".to_owned()).unwrap(), "HOLA");
}

#[test]
fn tasks_run_in_the_pool_s_own_worker_processes_reused_for_every_task() {
    let pool = Pool::new(2).unwrap();
    let workers: BTreeSet<u32> = pool
        .worker_pids()
        .iter()
        .map(|p| p.as_raw() as u32)
        .collect();
    assert_eq!(workers.len(), 2, "two distinct workers");
    assert!(!workers.contains(&std::process::id()));
    for _ in 0..3 {
        let seen: BTreeSet<u32> = pool.map(my_pid, 0..200).unwrap().into_iter().collect();
        assert!(
            seen.is_subset(&workers),
            "a task ran outside the workers: {seen:?}"
        );
    }
    for &pid in &workers {
        assert_eq!(procfs::parent(Pid::from_raw(pid as i32)), Some(Pid::this()));
    }
}

#[test]
fn an_async_result_is_ready_only_after_the_work_is_done() {
    let pool = Pool::new(1).unwrap();
    let result = pool.apply_async(sleep_ms, 500).unwrap();
    assert!(!result.ready(), "ready before the task had time to run");
    result.wait();
    assert!(result.ready());
    assert_eq!(result.get().unwrap(), 500);
}

#[test]
fn map_async_gives_the_results_later() {
    let pool = Pool::new(2).unwrap();
    let result = pool.map_async(sleep_ms, [400, 100, 50]).unwrap();
    assert!(!result.ready());
    assert!(result.wait_timeout(Duration::from_secs(10)));
    assert_eq!(result.get().unwrap(), vec![400, 100, 50]);
}

#[test]
fn get_timeout_gives_up_then_the_result_can_still_be_had() {
    let pool = Pool::new(1).unwrap();
    let result = pool.apply_async(sleep_ms, 2000).unwrap();
    let asked = Instant::now();
    assert_eq!(
        result.get_timeout(Duration::from_millis(100)),
        Err(PoolError::Timeout)
    );
    assert!(
        asked.elapsed() < Duration::from_millis(1500),
        "get_timeout waited too long"
    );
    assert_eq!(result.get_timeout(Duration::from_secs(10)), Ok(2000));
}

#[test]
fn a_panicking_task_is_an_error_and_the_pool_keeps_working() {
    let pool = Pool::new(2).unwrap();
    match pool.apply(fail_on_three, 3) {
        Err(PoolError::Panicked(message)) => {
            assert!(message.contains("three is not allowed"), "{message}")
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    assert!(matches!(
        pool.map(fail_on_three, 0..10),
        Err(PoolError::Panicked(_))
    ));
    assert_eq!(pool.map(fail_on_three, [1, 2, 4]).unwrap(), vec![1, 2, 4]);
}

#[test]
fn a_killed_worker_gives_an_error_not_a_hang_and_is_replaced() {
    let pool = Pool::new(1).unwrap();
    let victim = pool.worker_pids()[0];
    let result = pool.apply_async(sleep_ms, 30_000).unwrap();
    kill(victim, Signal::SIGKILL).unwrap();
    match result.get_timeout(Duration::from_secs(5)) {
        Err(PoolError::WorkerDied { pid, .. }) => assert_eq!(pid, victim),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert_eq!(pool.apply(square, 5).unwrap(), 25, "the pool works on");
    assert_eq!(pool.worker_pids().len(), 1);
    assert_ne!(
        pool.worker_pids()[0],
        victim,
        "a new worker took the dead one's place"
    );
}

#[test]
fn close_then_join_finishes_the_work_and_reaps_every_worker() {
    let pool = Pool::new(3).unwrap();
    let workers = pool.worker_pids();
    let pending = pool.map_async(sleep_ms, [100, 100, 100, 100]).unwrap();
    pool.close();
    pool.join().unwrap();
    for pid in workers {
        assert!(
            !procfs::exists(pid),
            "worker {pid} still exists (or is a zombie) after join"
        );
    }
    assert!(pending.ready(), "join waits for the outstanding work");
    assert_eq!(pending.get().unwrap(), vec![100; 4]);
}

#[test]
fn a_closed_pool_takes_no_tasks_and_join_needs_close() {
    let pool = Pool::new(1).unwrap();
    assert_eq!(pool.join(), Err(PoolError::StillRunning));
    pool.close();
    assert_eq!(pool.apply(square, 2), Err(PoolError::Closed));
    assert!(matches!(pool.map(square, 0..3), Err(PoolError::Closed)));
    pool.join().unwrap();
}

#[test]
fn terminate_stops_the_workers_now() {
    let pool = Pool::new(2).unwrap();
    let workers = pool.worker_pids();
    let result = pool.apply_async(sleep_ms, 30_000).unwrap();
    let asked = Instant::now();
    pool.terminate();
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "terminate waited for the task"
    );
    assert_eq!(result.get(), Err(PoolError::Terminated));
    for pid in workers {
        assert!(!procfs::exists(pid), "worker {pid} left after terminate");
    }
    pool.join().unwrap();
}

#[test]
fn dropping_a_pool_stops_and_reaps_its_workers() {
    let workers = {
        let pool = Pool::new(2).unwrap();
        assert_eq!(pool.map(my_pid, 0..4).unwrap().len(), 4);
        pool.worker_pids()
    };
    for pid in workers {
        assert!(!procfs::exists(pid), "worker {pid} left after drop");
    }
}
