//! Hidden tests of `procesos`, run by the grader one process per test.
//! Compiled as a module of the staged test binary, beside the visible tests.
//! Students never see this file; points are in `grader/rubric/procesos.toml`.

use std::time::{Duration, Instant};

use forklab_testkit::harness::Test;
use forklab_testkit::{SharedSlots, my_pid, procfs};
use nix::unistd::Pid;
use procesos::{Process, ProcessError};

/// The hidden tests, in the order the grader runs them.
pub fn tests() -> Vec<Test> {
    vec![
        Test::new(
            "child_is_another_process_whose_parent_is_the_caller",
            child_is_another_process_whose_parent_is_the_caller,
        )
        .exact_processes(1),
        Test::new(
            "target_runs_in_the_child_not_on_a_thread",
            target_runs_in_the_child_not_on_a_thread,
        )
        .exact_processes(1)
        .no_threads(),
        Test::new("is_alive_tracks_the_child", is_alive_tracks_the_child).exact_processes(1),
        Test::new("join_reaps_the_child", join_reaps_the_child).exact_processes(3),
        Test::new("join_timeout_does_not_block", join_timeout_does_not_block).exact_processes(1),
        Test::new("exit_codes_follow_python", exit_codes_follow_python).exact_processes(4),
        Test::new("signal_deaths_are_negative", signal_deaths_are_negative).exact_processes(3),
        Test::new(
            "panic_never_unwinds_into_the_caller",
            panic_never_unwinds_into_the_caller,
        )
        .exact_processes(1),
        Test::new("errors_are_values", errors_are_values).max_processes(1),
        Test::new("memory_is_isolated", memory_is_isolated).exact_processes(1),
    ]
}

fn finished(target: impl FnOnce() + Send + 'static) -> Process {
    let mut p = Process::new(target);
    p.start().expect("start");
    p.join().expect("join");
    p
}

fn child_is_another_process_whose_parent_is_the_caller() {
    let seen = SharedSlots::new(2);
    let record = seen.clone();
    let p = finished(move || {
        record.set(0, u64::from(std::process::id()));
        record.set(1, nix::unistd::getppid().as_raw() as u64);
    });
    let pid = p.pid().expect("pid after start").as_raw() as u64;
    assert_eq!(
        seen.get(0),
        pid,
        "pid() is the pid of the process that ran the target"
    );
    assert_ne!(
        seen.get(0),
        my_pid(),
        "the target ran in the caller's own process"
    );
    assert_eq!(
        seen.get(1),
        my_pid(),
        "the child's parent is the process that called start()"
    );
}

fn target_runs_in_the_child_not_on_a_thread() {
    let seen = SharedSlots::new(1);
    let record = seen.clone();
    let mut p = Process::new(move || {
        record.set(0, u64::from(std::process::id()));
        std::thread::sleep(Duration::from_millis(300));
    });
    p.start().expect("start");
    let me = Pid::this();
    assert_eq!(
        procfs::threads(me),
        Some(1),
        "start() created a thread in the caller"
    );
    let child = p.pid().expect("pid");
    assert_eq!(
        procfs::parent(child),
        Some(me),
        "the child is a process of the caller"
    );
    p.join().expect("join");
    assert_eq!(seen.get(0), child.as_raw() as u64);
}

fn is_alive_tracks_the_child() {
    let go = SharedSlots::new(1);
    let wait_for_go = go.clone();
    let mut p = Process::new(move || {
        while wait_for_go.get(0) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    assert!(!p.is_alive(), "not alive before start");
    p.start().expect("start");
    for _ in 0..5 {
        assert!(p.is_alive(), "alive while the target runs");
    }
    go.set(0, 1);
    let pid = p.pid().expect("pid");
    assert!(
        procfs::eventually(Duration::from_secs(5), || procfs::is_zombie(pid)),
        "the child should end once released"
    );
    // The parent may learn of the exit a moment after /proc shows the zombie (the
    // grader's tracer is told first): allow it that moment.
    assert!(
        procfs::eventually(Duration::from_secs(5), || !p.is_alive()),
        "not alive once the child has ended"
    );
    assert!(
        !procfs::exists(pid),
        "is_alive() saw the child end but left a zombie"
    );
    assert_eq!(p.exitcode(), Some(0));
}

fn join_reaps_the_child() {
    let mut children: Vec<Process> = (0..3).map(|_| Process::new(|| {})).collect();
    for p in &mut children {
        p.start().expect("start");
    }
    for p in &mut children {
        p.join().expect("join");
        let pid = p.pid().expect("pid");
        assert!(
            !procfs::exists(pid),
            "child {pid} is still in the process table after join"
        );
    }
    assert_eq!(procfs::zombie_children(), vec![], "zombies left after join");
    for p in &mut children {
        p.join().expect("a second join returns at once");
    }
}

fn join_timeout_does_not_block() {
    let mut p = Process::new(|| std::thread::sleep(Duration::from_secs(20)));
    p.start().expect("start");
    let asked = Instant::now();
    assert_eq!(p.join_timeout(Duration::from_millis(200)), Ok(false));
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(3),
        "join_timeout(200 ms) returned after {waited:?}"
    );
    assert!(p.is_alive());
    p.kill().expect("kill");
    assert_eq!(p.join_timeout(Duration::from_secs(5)), Ok(true));
    assert_eq!(p.exitcode(), Some(-9));
}

fn exit_codes_follow_python() {
    fn deep_exit(code: i32) {
        std::process::exit(code)
    }
    assert_eq!(finished(|| {}).exitcode(), Some(0));
    assert_eq!(finished(|| std::process::exit(3)).exitcode(), Some(3));
    assert_eq!(finished(|| deep_exit(200)).exitcode(), Some(200));
    assert_eq!(finished(|| panic!("expected panic")).exitcode(), Some(1));
}

fn signal_deaths_are_negative() {
    let raise = finished(|| {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGUSR1);
        std::thread::sleep(Duration::from_secs(5));
    });
    assert_eq!(raise.exitcode(), Some(-10), "killed by SIGUSR1");
    for (expected, use_kill) in [(-15, false), (-9, true)] {
        let mut p = Process::new(|| std::thread::sleep(Duration::from_secs(20)));
        p.start().expect("start");
        if use_kill { p.kill() } else { p.terminate() }.expect("signal");
        p.join().expect("join");
        assert_eq!(p.exitcode(), Some(expected));
    }
}

fn panic_never_unwinds_into_the_caller() {
    let ran_after_start = SharedSlots::new(4);
    let mut p = Process::new(|| panic!("expected panic in the child"));
    p.start().expect("start");
    // Only the caller may get here; a child whose panic was caught without `_exit`
    // would come back from start() and record itself too.
    ran_after_start.push(my_pid());
    p.join().expect("join");
    assert_eq!(
        p.exitcode(),
        Some(1),
        "a panic in the target gives exit code 1"
    );
    assert_eq!(
        ran_after_start.pushed(),
        vec![my_pid()],
        "the child returned from start() into the caller's code"
    );
}

fn errors_are_values() {
    let mut p = Process::new(|| {});
    assert_eq!(p.join(), Err(ProcessError::NotStarted));
    assert_eq!(
        p.join_timeout(Duration::from_millis(1)),
        Err(ProcessError::NotStarted)
    );
    assert_eq!(p.terminate(), Err(ProcessError::NotStarted));
    assert_eq!(p.kill(), Err(ProcessError::NotStarted));
    assert_eq!(p.pid(), None);
    p.start().expect("start");
    assert_eq!(p.start(), Err(ProcessError::AlreadyStarted));
    p.join().expect("join");
}

fn memory_is_isolated() {
    let data: &'static mut [u64; 4] = Box::leak(Box::new([1, 2, 3, 4]));
    let address = data.as_mut_ptr() as usize;
    let p = finished(move || {
        let child_view = address as *mut u64;
        // SAFETY: the child's copy of the leaked array; nothing else uses it there.
        unsafe { *child_view.add(2) = 99 };
        // SAFETY: as above.
        std::process::exit(unsafe { *child_view.add(2) } as i32);
    });
    assert_eq!(p.exitcode(), Some(99), "the child reads back its own write");
    assert_eq!(
        *data,
        [1, 2, 3, 4],
        "the child's write changed the parent's memory"
    );
}
