//! Hidden tests of `value_array`, run by the grader one process per test.
//! Compiled as a module of the staged test binary, beside the visible tests.
//! Students never see this file; points are in `grader/rubric/value_array.toml`.
//!
//! Every child is forked by the test itself (`fork_child`), records what it saw in
//! `SharedSlots` (memory owned by the test, not by the code under test) and is reaped
//! with `wait_child`, which kills and reaps it if it hangs.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use forklab_testkit::harness::Test;
use forklab_testkit::intervals::now_ns;
use forklab_testkit::{Exit, SharedSlots, fork_child, my_pid, procfs, wait_all, wait_child};
use nix::sys::resource::{UsageWho, getrusage};
use nix::unistd::Pid;
use value_array::{AnyArray, AnyValue, Array, RawArray, RawValue, ShmError, TypeCode, Value};

const K: usize = 4;
const N: usize = 20_000;

/// The hidden tests, in the order the grader runs them.
pub fn tests() -> Vec<Test> {
    vec![
        Test::new(
            "a_childs_write_is_seen_by_the_parent_and_a_sibling",
            a_childs_write_is_seen_by_the_parent_and_a_sibling,
        )
        .exact_processes(2)
        .no_threads(),
        Test::new(
            "a_value_made_after_fork_is_not_shared",
            a_value_made_after_fork_is_not_shared,
        )
        .exact_processes(1)
        .no_threads(),
        Test::new(
            "update_from_k_processes_loses_no_increment",
            update_from_k_processes_loses_no_increment,
        )
        .exact_processes(K as u32)
        .no_threads(),
        Test::new(
            "the_guards_from_k_processes_lose_no_increment",
            the_guards_from_k_processes_lose_no_increment,
        )
        .exact_processes(K as u32)
        .no_threads(),
        Test::new(
            "raw_variants_are_shared_without_a_lock",
            raw_variants_are_shared_without_a_lock,
        )
        .exact_processes(K as u32)
        .no_threads(),
        Test::new(
            "k_processes_fill_disjoint_parts_of_an_array",
            k_processes_fill_disjoint_parts_of_an_array,
        )
        .exact_processes(K as u32)
        .no_threads(),
        Test::new(
            "update_slice_and_to_vec_hold_the_lock",
            update_slice_and_to_vec_hold_the_lock,
        )
        .exact_processes(3)
        .no_threads(),
        Test::new(
            "each_object_has_its_own_lock_that_blocks_other_processes",
            each_object_has_its_own_lock_that_blocks_other_processes,
        )
        .exact_processes(1)
        .no_threads(),
        Test::new(
            "a_blocked_waiter_sleeps_in_the_kernel",
            a_blocked_waiter_sleeps_in_the_kernel,
        )
        .exact_processes(2)
        .no_threads(),
        Test::new(
            "a_panic_under_the_lock_releases_it",
            a_panic_under_the_lock_releases_it,
        )
        .exact_processes(2)
        .no_threads(),
        Test::new(
            "the_typecode_mapping_is_exact",
            the_typecode_mapping_is_exact,
        )
        .exact_processes(1)
        .no_threads(),
        Test::new("index_errors_are_values", index_errors_are_values).max_processes(0),
    ]
}

/// Waits for `child` to end with code 0 (at most 10 s; it is killed and reaped if not).
fn reap(child: Pid, what: &str) {
    reap_all(&[child], what);
}

/// Waits for every child (each killed and reaped if still running after 10 s in all),
/// then checks that each ended with code 0: a failure leaves no process behind.
fn reap_all(children: &[Pid], what: &str) {
    for end in wait_all(children, Duration::from_secs(10)) {
        assert_eq!(end, Some(Exit::Code(0)), "{what}: a child failed or hung");
    }
}

/// Waits up to 10 s for `condition`; on failure kills and reaps `children`, then fails.
fn until(children: &[Pid], what: &str, condition: impl FnMut() -> bool) {
    if !procfs::eventually(Duration::from_secs(10), condition) {
        for &child in children {
            let _ = wait_child(child, Duration::ZERO);
        }
        panic!("{what}");
    }
}

/// Forks `k` workers running `work(i)`; each records `(pid, parent)` in slots 2i, 2i+1
/// of `who`. Reaps them all, then checks they were `k` distinct children of the test.
fn workers(k: usize, who: &SharedSlots, work: impl Fn(usize)) {
    let children: Vec<Pid> = (0..k)
        .map(|i| {
            let work = &work;
            fork_child(move || {
                who.set(2 * i, my_pid());
                who.set(2 * i + 1, nix::unistd::getppid().as_raw() as u64);
                work(i);
            })
        })
        .collect();
    reap_all(&children, "a worker");
    let mut pids: Vec<u64> = (0..k).map(|i| who.get(2 * i)).collect();
    for i in 0..k {
        assert_eq!(
            who.get(2 * i + 1),
            my_pid(),
            "worker {i} is not a child of the test"
        );
    }
    assert!(
        !pids.contains(&my_pid()),
        "the test process did a worker's job"
    );
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(
        pids.len(),
        k,
        "the work was not done by {k} distinct processes"
    );
    assert_eq!(procfs::zombie_children(), vec![]);
}

// ---------------------------------------------------------------------------------
// Sharing across fork.

fn a_childs_write_is_seen_by_the_parent_and_a_sibling() {
    const GO: usize = 0;
    const SEEN_INT: usize = 1;
    const SEEN_DOUBLE: usize = 2;
    const SEEN_BYTES: usize = 3; // 5 slots, one byte each
    let v = Value::new(0_i32).unwrap();
    let d = Value::new(0.0_f64).unwrap();
    let a = Array::<u8>::new(5).unwrap();
    let raw = RawArray::<i32>::new(3).unwrap();
    let slots = SharedSlots::new(SEEN_BYTES + 5);

    // The sibling is forked BEFORE the writer writes: what it reads later can only come
    // through memory that is really shared, not from a copy made at fork.
    let reader = fork_child(|| {
        while slots.get(GO) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        slots.set(SEEN_INT, v.get() as u32 as u64);
        slots.set(SEEN_DOUBLE, d.get().to_bits());
        for (i, byte) in a.to_vec().into_iter().enumerate() {
            slots.set(SEEN_BYTES + i, u64::from(byte));
        }
        assert_eq!(
            raw.to_vec(),
            vec![0, 0, -5],
            "the sibling did not see the RawArray write"
        );
    });
    let writer = fork_child(|| {
        v.set(-7);
        d.set(2.5);
        a.update_slice(0..5, |s| s.copy_from_slice(b"hello"))
            .unwrap();
        raw.set(2, -5).unwrap();
    });
    let writer_end = wait_child(writer, Duration::from_secs(10));
    slots.set(GO, 1); // even if the writer failed: the reader must end too
    reap(reader, "the sibling reader");
    assert_eq!(writer_end, Some(Exit::Code(0)), "the writer failed or hung");

    assert_eq!(
        v.get(),
        -7,
        "the parent does not see the child's write (MAP_PRIVATE?)"
    );
    assert_eq!(d.get(), 2.5);
    assert_eq!(a.to_vec(), b"hello".to_vec());
    assert_eq!(raw.to_vec(), vec![0, 0, -5]);
    assert_eq!(
        slots.get(SEEN_INT) as u32 as i32,
        -7,
        "the sibling does not see the write"
    );
    assert_eq!(f64::from_bits(slots.get(SEEN_DOUBLE)), 2.5);
    let seen: Vec<u8> = (0..5).map(|i| slots.get(SEEN_BYTES + i) as u8).collect();
    assert_eq!(
        seen,
        b"hello".to_vec(),
        "the sibling does not see the Array write"
    );
}

fn a_value_made_after_fork_is_not_shared() {
    const MADE: usize = 0;
    let before = Value::new(0_i32).unwrap();
    let slots = SharedSlots::new(1);
    let child = fork_child(|| {
        while slots.get(MADE) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The child's own objects, made after the fork: new mappings only it has.
        let values: Vec<Value<i32>> = (0..4).map(|_| Value::new(0).unwrap()).collect();
        let array = Array::<i32>::new(4).unwrap();
        for v in &values {
            v.set(99);
        }
        array.update_slice(0..4, |s| s.fill(99)).unwrap();
        before.set(1);
    });
    // The parent's own objects, made after the fork.
    let values: Vec<Value<i32>> = (0..4).map(|_| Value::new(7).unwrap()).collect();
    let array = Array::from_slice(&[7; 4]).unwrap();
    slots.set(MADE, 1);
    reap(child, "the child");
    assert_eq!(
        before.get(),
        1,
        "a value made before the fork must be shared"
    );
    assert!(
        values.iter().all(|v| v.get() == 7),
        "the child's new value wrote into a value the parent made after the fork"
    );
    assert_eq!(
        array.to_vec(),
        vec![7; 4],
        "the child's new array aliases the parent's"
    );
}

// ---------------------------------------------------------------------------------
// The lock.

fn update_from_k_processes_loses_no_increment() {
    let v = Value::new(0_i32).unwrap();
    let who = SharedSlots::new(2 * K);
    workers(K, &who, |_| {
        for _ in 0..N {
            v.update(|x| x + 1);
        }
    });
    assert_eq!(
        v.get(),
        (K * N) as i32,
        "update() lost increments: it must hold the lock"
    );
}

fn the_guards_from_k_processes_lose_no_increment() {
    const LEN: usize = 3;
    let d = Value::new(0.0_f64).unwrap();
    let a = Array::<i32>::new(LEN).unwrap();
    let who = SharedSlots::new(2 * K);
    workers(K, &who, |_| {
        for round in 0..N {
            {
                let mut guard = d.get_lock();
                let x = guard.get();
                guard.set(x + 0.5);
            }
            let mut guard = a.get_lock();
            let i = round % LEN;
            let x = guard.get(i).unwrap();
            guard.set(i, x + 1).unwrap();
        }
    });
    assert_eq!(
        d.get(),
        (K * N) as f64 * 0.5,
        "a Value's guard did not exclude"
    );
    assert_eq!(
        a.to_vec().iter().sum::<i32>(),
        (K * N) as i32,
        "an Array's guard did not exclude"
    );
}

fn raw_variants_are_shared_without_a_lock() {
    let v = RawValue::new(0_i32).unwrap();
    let a = RawArray::<f64>::new(K * 10).unwrap();
    let who = SharedSlots::new(2 * K);
    workers(K, &who, |k| {
        for _ in 0..N {
            v.set(v.get() + 1); // may lose updates: no lock
        }
        for i in k * 10..(k + 1) * 10 {
            a.set(i, i as f64 + 0.25).unwrap();
        }
    });
    let total = v.get();
    assert!(
        (1..=(K * N) as i32).contains(&total),
        "{total} increments after {K}×{N} unlocked ones: the RawValue is not shared"
    );
    let expected: Vec<f64> = (0..K * 10).map(|i| i as f64 + 0.25).collect();
    assert_eq!(a.to_vec(), expected, "a RawArray's writes are lost");
}

fn k_processes_fill_disjoint_parts_of_an_array() {
    const PART: usize = 250;
    let ints = Array::<i32>::new(K * PART).unwrap();
    let bytes = Array::<u8>::new(K * PART).unwrap();
    let who = SharedSlots::new(2 * K);
    workers(K, &who, |k| {
        let part = k * PART..(k + 1) * PART;
        for i in part.clone() {
            ints.set(i, -(i as i32)).unwrap();
        }
        bytes
            .update_slice(part, |s| s.fill(b'a' + k as u8))
            .unwrap();
    });
    let expected: Vec<i32> = (0..K * PART).map(|i| -(i as i32)).collect();
    assert_eq!(
        ints.to_vec(),
        expected,
        "an element written by a child is missing"
    );
    let expected: Vec<u8> = (0..K * PART).map(|i| b'a' + (i / PART) as u8).collect();
    assert_eq!(
        bytes.to_vec(),
        expected,
        "a part filled by update_slice is missing"
    );
}

fn update_slice_and_to_vec_hold_the_lock() {
    const LEN: usize = 4096;
    const ROUNDS: usize = 200;
    const TORN: usize = 0;
    const SNAPSHOTS: usize = 1;
    const WRITERS_DONE: usize = 2;
    let a = Array::<i32>::new(LEN).unwrap();
    let slots = SharedSlots::new(3);
    let writers: Vec<Pid> = (0..2)
        .map(|_| {
            fork_child(|| {
                for _ in 0..ROUNDS {
                    a.update_slice(0..LEN, |s| s.iter_mut().for_each(|x| *x += 1))
                        .unwrap();
                }
                slots.add(WRITERS_DONE, 1);
            })
        })
        .collect();
    // The reader takes snapshots for as long as the writers write.
    let reader = fork_child(|| {
        while slots.get(WRITERS_DONE) < 2 {
            let snapshot = a.to_vec();
            if snapshot.iter().any(|&x| x != snapshot[0]) {
                slots.add(TORN, 1);
            }
            slots.add(SNAPSHOTS, 1);
        }
    });
    reap_all(&[writers[0], writers[1], reader], "a writer or the reader");
    assert_eq!(
        a.to_vec(),
        vec![2 * ROUNDS as i32; LEN],
        "update_slice lost updates"
    );
    assert!(slots.get(SNAPSHOTS) > 0);
    assert_eq!(
        slots.get(TORN),
        0,
        "to_vec saw a half-done update_slice in {} of {} snapshots: both must hold the lock",
        slots.get(TORN),
        slots.get(SNAPSHOTS)
    );
}

fn each_object_has_its_own_lock_that_blocks_other_processes() {
    const OTHERS_DONE: usize = 0;
    const WAITING: usize = 1;
    const DONE_NS: usize = 2;
    let a = Value::new(0_i32).unwrap();
    let b = Value::new(0_i32).unwrap();
    let c = Array::<i32>::new(2).unwrap();
    let slots = SharedSlots::new(3);
    let guard = a.get_lock();
    let child = fork_child(|| {
        b.update(|x| x + 1);
        c.update_slice(0..2, |s| s[1] = 5).unwrap();
        slots.set(OTHERS_DONE, 1);
        slots.set(WAITING, 1);
        a.update(|x| x + 1); // blocks until the test drops its guard
        slots.set(DONE_NS, now_ns());
    });
    until(
        &[child],
        "while a Value's lock was held, another Value and an Array could not be used: \
         each object needs its own lock",
        || slots.get(OTHERS_DONE) == 1,
    );
    std::thread::sleep(Duration::from_millis(300));
    let still_blocked = slots.get(DONE_NS) == 0;
    let released = now_ns();
    drop(guard);
    reap(child, "the waiter");
    assert!(
        still_blocked,
        "another process updated the value while the test held its lock"
    );
    assert!(slots.get(DONE_NS) >= released);
    assert_eq!((a.get(), b.get(), c.to_vec()), (1, 1, vec![0, 5]));
}

/// With `held` (a guard) taken by the test, a child blocks about 500 ms in
/// `wait_on_lock`; returns its CPU time (µs) and voluntary context switches during the
/// wait, from its own `getrusage`.
fn blocked_usage<G>(held: G, wait_on_lock: impl FnOnce()) -> (u64, u64) {
    const WAITING: usize = 0;
    const CPU_US: usize = 1;
    const SWITCHES: usize = 2;
    let slots = SharedSlots::new(3);
    let child = fork_child(|| {
        let cpu_us = |u: &nix::sys::resource::Usage| {
            let us =
                |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
            us(u.user_time()) + us(u.system_time())
        };
        let before = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
        slots.set(WAITING, 1);
        wait_on_lock();
        let after = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
        slots.set(CPU_US, cpu_us(&after) - cpu_us(&before));
        let switches = after.voluntary_context_switches() - before.voluntary_context_switches();
        slots.set(SWITCHES, switches as u64);
    });
    until(&[child], "the waiting child did not start", || {
        slots.get(WAITING) == 1
    });
    std::thread::sleep(Duration::from_millis(500));
    drop(held);
    reap(child, "the waiter was not released");
    (slots.get(CPU_US), slots.get(SWITCHES))
}

fn a_blocked_waiter_sleeps_in_the_kernel() {
    let v = Value::new(0_i32).unwrap();
    let a = Array::<u8>::new(4).unwrap();
    let by_value = blocked_usage(v.get_lock(), || {
        v.update(|x| x + 1);
    });
    let by_array = blocked_usage(a.get_lock(), || {
        a.to_vec();
    });
    for ((cpu_us, switches), what) in [(by_value, "Value::update"), (by_array, "Array::to_vec")] {
        assert!(
            cpu_us < 100_000,
            "a process blocked about 500 ms in {what} used {cpu_us} µs of CPU: a waiter \
             must sleep in the kernel (a shared futex), not spin"
        );
        assert!(
            switches < 10,
            "a process blocked about 500 ms in {what} went to sleep {switches} times: it \
             polls instead of sleeping until the holder's release wakes it"
        );
    }
    assert_eq!(v.get(), 1);
}

fn a_panic_under_the_lock_releases_it() {
    let v = Value::new(5_i32).unwrap();
    let a = Array::from_slice(&[1, 2, 3]).unwrap();
    let first = fork_child(|| {
        std::panic::set_hook(Box::new(|_| {})); // expected panics: keep stderr quiet
        let panicked = catch_unwind(AssertUnwindSafe(|| v.update(|_| panic!("in update"))));
        assert!(panicked.is_err());
        assert_eq!(v.get(), 5, "a panicking update changed the value");
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            a.update_slice(0..3, |s| {
                s[0] = 100;
                panic!("in update_slice")
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(
            a.to_vec(),
            vec![1, 2, 3],
            "a panicking update_slice wrote back"
        );
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            let _guard = v.get_lock();
            panic!("holding the guard")
        }));
        assert!(panicked.is_err());
        v.update(|x| x + 1);
    });
    reap(
        first,
        "after a panic under the lock, the same process could not take it again",
    );
    let second = fork_child(|| {
        v.update(|x| x + 1);
        a.set(0, 10).unwrap();
    });
    reap(
        second,
        "after a panic under the lock, another process could not take it",
    );
    assert_eq!(v.get(), 7);
    assert_eq!(a.to_vec(), vec![10, 2, 3]);
}

// ---------------------------------------------------------------------------------
// Typecodes and errors.

fn the_typecode_mapping_is_exact() {
    assert_eq!((i32::CODE, f64::CODE, u8::CODE), ('i', 'd', 'c'));
    assert_eq!(Value::new(0_i32).unwrap().typecode(), 'i');
    assert_eq!(RawValue::new(0.0_f64).unwrap().typecode(), 'd');
    assert_eq!(Array::<u8>::new(1).unwrap().typecode(), 'c');
    assert_eq!(RawArray::<i32>::new(1).unwrap().typecode(), 'i');

    for code in (0..=127u8).map(char::from).chain(['é', 'ñ', '€']) {
        let value = AnyValue::from_typecode(code);
        let array = AnyArray::from_typecode(code, 3);
        match code {
            'i' | 'd' | 'c' => {
                assert_eq!(value.as_ref().map(AnyValue::typecode).ok(), Some(code));
                assert_eq!(array.as_ref().map(AnyArray::typecode).ok(), Some(code));
            }
            _ => {
                assert_eq!(value.err(), Some(ShmError::UnknownTypecode(code)));
                assert_eq!(array.err(), Some(ShmError::UnknownTypecode(code)));
            }
        }
    }
    let message = ShmError::UnknownTypecode('q').to_string();
    assert!(message.contains('q'), "{message}");

    let (AnyValue::Int(i), AnyValue::Double(d), AnyValue::Char(c)) = (
        AnyValue::from_typecode('i').unwrap(),
        AnyValue::from_typecode('d').unwrap(),
        AnyValue::from_typecode('c').unwrap(),
    ) else {
        panic!("'i', 'd', 'c' must give Int, Double, Char");
    };
    assert_eq!(
        (i.get(), d.get(), c.get()),
        (0, 0.0, 0),
        "a new value is zero"
    );
    let AnyArray::Double(arr) = AnyArray::from_typecode('d', 3).unwrap() else {
        panic!("'d' must give an array of f64");
    };
    assert_eq!((arr.len(), arr.to_vec()), (3, vec![0.0; 3]));

    // Every bit of each type survives the trip through shared memory and a child.
    let nan = f64::from_bits(0x7ff8_dead_beef_0001);
    let child = fork_child(|| {
        i.set(i32::MIN);
        d.set(-0.0);
        c.set(255);
        arr.update_slice(0..3, |s| s.copy_from_slice(&[nan, f64::MAX, 0.1]))
            .unwrap();
    });
    reap(child, "the writer");
    assert_eq!(i.get(), i32::MIN);
    assert_eq!(d.get().to_bits(), (-0.0_f64).to_bits());
    assert_eq!(c.get(), 255);
    let bits: Vec<u64> = arr.to_vec().iter().map(|x| x.to_bits()).collect();
    assert_eq!(
        bits,
        vec![nan.to_bits(), f64::MAX.to_bits(), 0.1_f64.to_bits()]
    );
}

fn index_errors_are_values() {
    let a = Array::from_slice(&[1.0, 2.0]).unwrap();
    let r = RawArray::from_slice(b"ab").unwrap();
    let out = |index| ShmError::IndexOutOfRange { index, len: 2 };
    assert_eq!(a.get(2), Err(out(2)));
    assert_eq!(a.set(usize::MAX, 9.0), Err(out(usize::MAX)));
    assert_eq!(r.get(5), Err(out(5)));
    assert_eq!(r.set(2, b'z'), Err(out(2)));
    {
        let mut guard = a.get_lock();
        assert_eq!(guard.len(), 2);
        assert_eq!(guard.get(2), Err(out(2)));
        assert_eq!(guard.set(3, 9.0), Err(out(3)));
    }
    let mut called = false;
    let bad = |start, end| ShmError::RangeOutOfRange { start, end, len: 2 };
    assert_eq!(a.update_slice(1..3, |_| called = true), Err(bad(1, 3)));
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = a.update_slice(2..1, |_| called = true);
    assert_eq!(backwards, Err(bad(2, 1)));
    assert!(!called, "update_slice called f with a bad range");
    assert_eq!(
        a.to_vec(),
        vec![1.0, 2.0],
        "a refused operation wrote something"
    );
    assert_eq!(r.to_vec(), b"ab".to_vec());
    assert_eq!(
        a.update_slice(2..2, |s| s.len()),
        Ok(0),
        "an empty range at the end is fine"
    );

    let empty = Array::<i32>::new(0).unwrap();
    assert!(empty.is_empty() && empty.to_vec().is_empty());
    assert_eq!(
        empty.get(0),
        Err(ShmError::IndexOutOfRange { index: 0, len: 0 })
    );
    assert!(RawArray::<u8>::from_slice(&[]).unwrap().is_empty());
    assert_eq!(
        AnyArray::from_typecode('c', 0).map(|a| a.is_empty()).ok(),
        Some(true)
    );
}
