//! Hidden tests of `pipe_queue`, run by the grader one process per test.
//! Compiled as a module of the staged test binary, beside the visible tests.
//! Students never see this file; points are in `grader/rubric/pipe_queue.toml`.
//!
//! Producers and consumers are forked by the tests (with `fork_child`) and record what
//! they did in the test's own `SharedSlots`: their pid, their parent, what they got.
//! Whatever might block forever in a faulty submission (a `get`, a `recv`) runs in a
//! child that the test kills after a deadline, so a hang becomes a failed assertion.

use std::collections::BTreeMap;
use std::time::Duration;

use forklab_testkit::harness::Test;
use forklab_testkit::intervals::{ms, now_ns};
use forklab_testkit::procfs::until;
use forklab_testkit::{Exit, SharedSlots, fork_child, my_pid, procfs, wait_child};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pipe_queue::{Error, Queue, pipe};
use serde::{Deserialize, Serialize};

/// The hidden tests, in the order the grader runs them.
pub fn tests() -> Vec<Test> {
    vec![
        Test::new(
            "producers_and_consumers_are_distinct_processes",
            producers_and_consumers_are_distinct_processes,
        )
        .exact_processes(4)
        .no_threads(),
        Test::new(
            "every_item_arrives_exactly_once_from_3_producers_to_3_consumers",
            every_item_arrives_exactly_once_from_3_producers_to_3_consumers,
        )
        .exact_processes(6)
        .no_threads(),
        Test::new(
            "large_items_arrive_whole_and_exactly_once",
            large_items_arrive_whole_and_exactly_once,
        )
        .exact_processes(5)
        .no_threads(),
        Test::new(
            "a_bounded_queue_blocks_put_until_a_get",
            a_bounded_queue_blocks_put_until_a_get,
        )
        .exact_processes(1)
        .no_threads(),
        Test::new(
            "a_consumer_blocked_on_an_empty_queue_is_released",
            a_consumer_blocked_on_an_empty_queue_is_released,
        )
        .exact_processes(2)
        .no_threads(),
        Test::new(
            "a_pipe_carries_values_both_ways_between_processes",
            a_pipe_carries_values_both_ways_between_processes,
        )
        .exact_processes(1)
        .no_threads(),
        Test::new(
            "poll_and_recv_timeout_wait_for_another_process",
            poll_and_recv_timeout_wait_for_another_process,
        )
        .exact_processes(1)
        .no_threads(),
        Test::new(
            "a_dead_writer_gives_closed_not_a_hang",
            a_dead_writer_gives_closed_not_a_hang,
        )
        .exact_processes(4)
        .no_threads(),
    ]
}

/// Waits for every child (at most `timeout` in all); kills and reaps the late ones.
fn wait_all(children: &[Pid], timeout: Duration) -> Vec<Option<Exit>> {
    let deadline = std::time::Instant::now() + timeout;
    children
        .iter()
        .map(|&c| {
            wait_child(
                c,
                deadline.saturating_duration_since(std::time::Instant::now()),
            )
        })
        .collect()
}

/// An item with a body derived from its id, so a consumer can tell a torn or mixed
/// item from a whole one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    producer_pid: u64,
    id: u64,
    body: Vec<u8>,
}

impl Item {
    fn new(id: u64, len: usize) -> Self {
        Item {
            producer_pid: my_pid(),
            id,
            body: (0..len).map(|i| (id as usize * 31 + i * 7) as u8).collect(),
        }
    }

    fn is_whole(&self) -> bool {
        self.body
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (self.id as usize * 31 + i * 7) as u8)
    }
}

/// Runs `producers` × `consumers` processes over one queue. Producer `p` puts the ids
/// `p * 1_000_000 + i` for `i` in `0..per_producer`, with bodies of `len(i)` bytes.
/// Returns, for each consumer pid, the `(producer pid, id)` pairs it got in order, and
/// the producer pids.
///
/// The producers start first and fill the pipe; the consumers start 200 ms later, so
/// that they read from a full pipe while the producers write into it: the contention
/// under which a missing reader or writer lock tears items. Consumers stop once all the
/// items are counted as got (by anyone), so no sentinel is needed and nothing in the
/// test process can block on the submission's queue.
#[allow(clippy::type_complexity)]
fn run_queue(
    producers: u64,
    consumers: usize,
    per_producer: u64,
    len: impl Fn(u64) -> usize + Copy,
) -> (BTreeMap<u64, Vec<(u64, u64)>>, Vec<u64>) {
    let total = producers * per_producer;
    // Each consumer pushes [its pid, producer pid, id] per item (producer pid u64::MAX:
    // the item was torn or mixed with another), and counts it in `count`.
    let got = SharedSlots::new(3 * total as usize + 16);
    let count = SharedSlots::new(1);
    let count_ref = &count;
    let queue = Queue::new().expect("Queue::new");
    let queue = &queue;
    let got_ref = &got;
    let producer_pids: Vec<Pid> = (0..producers)
        .map(|p| {
            fork_child(move || {
                for i in 0..per_producer {
                    let item = Item::new(p * 1_000_000 + i, len(i));
                    queue.put(&item).expect("put");
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let consumer_pids: Vec<Pid> = (0..consumers)
        .map(|_| {
            fork_child(move || {
                while count_ref.get(0) < total {
                    let item = match queue.get_timeout::<Item>(Duration::from_millis(200)) {
                        Ok(item) => item,
                        Err(Error::Empty) => continue,
                        Err(e) => panic!("get_timeout failed: {e}"),
                    };
                    let producer = if item.is_whole() {
                        item.producer_pid
                    } else {
                        u64::MAX
                    };
                    got_ref.push_all(&[my_pid(), producer, item.id]);
                    count_ref.add(0, 1);
                }
            })
        })
        .collect();
    assert_eq!(
        procfs::threads(Pid::this()),
        Some(1),
        "the test process has more than one thread while producers and consumers run"
    );
    let mut everyone = producer_pids.clone();
    everyone.extend(&consumer_pids);
    let ends = wait_all(&everyone, Duration::from_secs(8));
    let got_count = count.get(0);
    assert!(
        ends.iter().all(|&e| e == Some(Exit::Code(0))),
        "producers then consumers ended with {ends:?} (None: still blocked after 8 s, \
         killed; Code(101): a panic, e.g. an unwrap of an error; Signal(6): an abort, e.g. \
         an allocation of a garbage length); {got_count} of {total} items were got"
    );
    assert_eq!(procfs::zombie_children(), vec![], "zombies left");

    let mut by_consumer: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
    for chunk in got.pushed().chunks_exact(3) {
        by_consumer
            .entry(chunk[0])
            .or_default()
            .push((chunk[1], chunk[2]));
    }
    let producer_pids = producer_pids.iter().map(|p| p.as_raw() as u64).collect();
    let consumer_pids: Vec<u64> = consumer_pids.iter().map(|p| p.as_raw() as u64).collect();
    for pid in by_consumer.keys() {
        assert!(
            consumer_pids.contains(pid),
            "items were got by process {pid}, not by a consumer process"
        );
    }
    (by_consumer, producer_pids)
}

/// Checks that every id arrived exactly once, whole, from the producer that put it.
fn check_exactly_once(
    by_consumer: &BTreeMap<u64, Vec<(u64, u64)>>,
    producer_pids: &[u64],
    per_producer: u64,
) {
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for (consumer, items) in by_consumer {
        for &(producer, id) in items {
            assert_ne!(
                producer,
                u64::MAX,
                "consumer {consumer} got item {id} torn or mixed with another item"
            );
            let p = (id / 1_000_000) as usize;
            assert_eq!(
                Some(&producer),
                producer_pids.get(p),
                "item {id} claims to come from process {producer}, not from its producer"
            );
            *seen.entry(id).or_default() += 1;
        }
    }
    let twice: Vec<u64> = seen
        .iter()
        .filter(|&(_, &n)| n > 1)
        .map(|(&id, _)| id)
        .collect();
    assert!(twice.is_empty(), "items got more than once: {twice:?}");
    let missing: Vec<u64> = (0..producer_pids.len() as u64)
        .flat_map(|p| (0..per_producer).map(move |i| p * 1_000_000 + i))
        .filter(|id| !seen.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} items never arrived, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

// ---------------------------------------------------------------------------------
// Queue: processes, exactly once, large items.

fn producers_and_consumers_are_distinct_processes() {
    const PER_PRODUCER: u64 = 50;
    let (by_consumer, producers) = run_queue(2, 2, PER_PRODUCER, |_| 16);
    check_exactly_once(&by_consumer, &producers, PER_PRODUCER);
    let mut everyone: Vec<u64> = producers.clone();
    everyone.extend(by_consumer.keys());
    assert!(
        !everyone.contains(&my_pid()),
        "the test process itself produced or consumed"
    );
    everyone.sort_unstable();
    everyone.dedup();
    assert!(
        everyone.len() >= 3,
        "producers and consumers are not distinct processes: {everyone:?}"
    );
}

fn every_item_arrives_exactly_once_from_3_producers_to_3_consumers() {
    const PER_PRODUCER: u64 = 2000;
    // Small items of various sizes, all written atomically by the kernel.
    let (by_consumer, producers) = run_queue(3, 3, PER_PRODUCER, |i| (i % 7 * 40) as usize);
    check_exactly_once(&by_consumer, &producers, PER_PRODUCER);
    // One queue, FIFO: a consumer sees the items of one producer in the order put.
    for (consumer, items) in &by_consumer {
        for p in 0..3 {
            let ids: Vec<u64> = items
                .iter()
                .filter(|(_, id)| id / 1_000_000 == p)
                .map(|&(_, id)| id)
                .collect();
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "consumer {consumer} got producer {p}'s items out of order"
            );
        }
    }
}

fn large_items_arrive_whole_and_exactly_once() {
    const PER_PRODUCER: u64 = 9;
    // Items of 1.5 MiB (above the largest pipe buffer an unprivileged process may ask
    // for) and of 300 KiB (far above PIPE_BUF = 4096 and a pipe's default 64 KiB
    // buffer), between small ones: no write may land inside a big item.
    let (by_consumer, producers) = run_queue(3, 2, PER_PRODUCER, |i| match i % 3 {
        0 => 1536 * 1024,
        1 => 300 * 1024,
        _ => 100,
    });
    check_exactly_once(&by_consumer, &producers, PER_PRODUCER);
}

// ---------------------------------------------------------------------------------
// Queue: blocking and timeouts.

fn a_bounded_queue_blocks_put_until_a_get() {
    const PUT_DONE_AT: usize = 0;
    const STARTED: usize = 1;
    let queue = Queue::with_maxsize(3).expect("Queue::with_maxsize");
    for n in 1..=3u32 {
        queue.put(&n).expect("put into a queue with room");
    }
    // A full queue: put_timeout gives up with Full, and the item is not put.
    let asked = now_ns();
    assert_eq!(
        queue.put_timeout(&99u32, Duration::from_millis(200)),
        Err(Error::Full),
        "put_timeout on a full queue"
    );
    let waited = ms(now_ns() - asked);
    assert!(
        (150.0..3000.0).contains(&waited),
        "put_timeout(200 ms) on a full queue returned after {waited:.0} ms"
    );

    // A producer process blocks in put until the test gets an item.
    let slots = SharedSlots::new(2);
    let child = fork_child(|| {
        slots.set(STARTED, 1);
        queue.put(&4u32).expect("put");
        slots.set(PUT_DONE_AT, now_ns());
    });
    until("the producer did not start", || slots.get(STARTED) == 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        slots.get(PUT_DONE_AT),
        0,
        "put into a full queue (maxsize 3) returned in another process"
    );
    let got_at = now_ns();
    assert_eq!(queue.get::<u32>(), Ok(1));
    assert_eq!(
        wait_child(child, Duration::from_secs(5)),
        Some(Exit::Code(0)),
        "the blocked put was not released by a get within 5 s"
    );
    assert!(
        slots.get(PUT_DONE_AT) >= got_at,
        "put returned before the get"
    );
    for n in 2..=4u32 {
        assert_eq!(queue.get_timeout::<u32>(Duration::from_secs(2)), Ok(n));
    }
    assert_eq!(
        queue.get_timeout::<u32>(Duration::from_millis(50)),
        Err(Error::Empty),
        "the item refused with Full was put after all"
    );
}

fn a_consumer_blocked_on_an_empty_queue_is_released() {
    const RESULT: usize = 0; // 1 Empty, 2 an item, 3 another error
    const AFTER_NS: usize = 1;
    const WAITING: usize = 2;
    const GOT: usize = 3;
    const GOT_AFTER_NS: usize = 4;
    let queue = Queue::new().expect("Queue::new");
    let slots = SharedSlots::new(5);

    // Released by its timeout.
    let child = fork_child(|| {
        let start = now_ns();
        let outcome = queue.get_timeout::<u64>(Duration::from_millis(300));
        slots.set(AFTER_NS, now_ns() - start);
        slots.set(
            RESULT,
            match outcome {
                Err(Error::Empty) => 1,
                Ok(_) => 2,
                Err(_) => 3,
            },
        );
    });
    let end = wait_child(child, Duration::from_secs(5));
    assert_eq!(
        end,
        Some(Exit::Code(0)),
        "get_timeout(300 ms) on an empty queue did not return within 5 s"
    );
    assert_eq!(
        slots.get(RESULT),
        1,
        "get_timeout on an empty queue is not Err(Empty)"
    );
    let after = ms(slots.get(AFTER_NS));
    assert!(
        (250.0..3000.0).contains(&after),
        "get_timeout(300 ms) on an empty queue returned after {after:.0} ms"
    );

    // Released by an item put by another process (the test).
    let child = fork_child(|| {
        slots.set(WAITING, 1);
        let start = now_ns();
        if let Ok(n) = queue.get_timeout::<u64>(Duration::from_secs(10)) {
            slots.set(GOT, n);
        }
        slots.set(GOT_AFTER_NS, now_ns() - start);
    });
    until("the consumer did not start", || slots.get(WAITING) == 1);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        procfs::eventually(Duration::from_secs(2), || procfs::state(child) == Some('S')),
        "a consumer waiting on an empty queue should sleep in the kernel, not spin"
    );
    queue.put(&77u64).expect("put");
    assert_eq!(
        wait_child(child, Duration::from_secs(5)),
        Some(Exit::Code(0)),
        "a consumer waiting with get_timeout(10 s) was not released by a put within 5 s"
    );
    assert_eq!(
        slots.get(GOT),
        77,
        "the waiting consumer did not get the item"
    );
    assert!(ms(slots.get(GOT_AFTER_NS)) < 5000.0);
}

// ---------------------------------------------------------------------------------
// Pipe.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Request {
    Add(i64, i64),
    Echo(String),
    Bytes(Vec<u8>),
    Stop,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reply {
    pid: u64,
    answer: Request,
}

fn a_pipe_carries_values_both_ways_between_processes() {
    let (mut here, mut there) = pipe(true).expect("pipe(true)");
    let server = fork_child(|| {
        here.close(); // The server uses only `there`.
        loop {
            let request: Request = there.recv().expect("recv in the server");
            let answer = match request {
                Request::Add(a, b) => Request::Add(a + b, 0),
                Request::Echo(s) => Request::Echo(s.to_uppercase()),
                Request::Bytes(b) => Request::Bytes(b.into_iter().rev().collect()),
                Request::Stop => break,
            };
            there
                .send(&Reply {
                    pid: my_pid(),
                    answer,
                })
                .expect("send in the server");
        }
    });
    there.close();
    let big: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
    let cases = [
        (Request::Add(40, 2), Request::Add(42, 0)),
        (Request::Echo("hola".into()), Request::Echo("HOLA".into())),
        (
            Request::Bytes(big.clone()),
            Request::Bytes(big.iter().rev().copied().collect()),
        ),
    ];
    for (request, expected) in cases {
        here.send(&request).expect("send to the server");
        let reply: Reply = here.recv().expect("recv from the server");
        assert_eq!(
            reply.pid,
            server.as_raw() as u64,
            "the reply came from another process"
        );
        assert_eq!(reply.answer, expected);
    }
    here.send(&Request::Stop).expect("send");
    assert_eq!(
        wait_child(server, Duration::from_secs(5)),
        Some(Exit::Code(0)),
        "the server did not end"
    );
    assert_eq!(
        here.recv_timeout::<Reply>(Duration::from_secs(5)),
        Err(Error::Closed),
        "the other end of a duplex pipe is closed in every process"
    );
}

fn poll_and_recv_timeout_wait_for_another_process() {
    let (mut receiver, sender) = pipe(false).expect("pipe(false)");
    let child = fork_child(|| {
        receiver.close();
        std::thread::sleep(Duration::from_millis(400));
        sender.send(&123u32).expect("send");
        std::thread::sleep(Duration::from_millis(200));
    });
    drop(sender);
    let asked = now_ns();
    assert_eq!(
        receiver.poll(Duration::from_millis(100)),
        Ok(false),
        "nothing sent yet"
    );
    assert_eq!(
        receiver.recv_timeout::<u32>(Duration::from_millis(100)),
        Err(Error::Empty),
        "nothing sent yet"
    );
    let waited = ms(now_ns() - asked);
    assert!(
        (180.0..3000.0).contains(&waited),
        "poll(100 ms) then recv_timeout(100 ms) took {waited:.0} ms"
    );
    assert_eq!(
        receiver.poll(Duration::from_secs(5)),
        Ok(true),
        "poll did not see the value sent"
    );
    assert_eq!(receiver.recv_timeout(Duration::from_secs(1)), Ok(123u32));
    assert_eq!(
        wait_child(child, Duration::from_secs(5)),
        Some(Exit::Code(0))
    );
    assert_eq!(
        receiver.poll(Duration::from_secs(2)),
        Ok(true),
        "poll is true at end of file: recv would not block"
    );
    assert_eq!(
        receiver.recv_timeout::<u32>(Duration::from_secs(2)),
        Err(Error::Closed)
    );
}

fn a_dead_writer_gives_closed_not_a_hang() {
    const GOT: usize = 0;
    const OUTCOME: usize = 1; // 1 Closed, 2 another error
    const READY: usize = 2;

    // Scenario: a writer that ends, and a writer killed by SIGKILL. The reader runs in a
    // child, so that a reader that blocks forever is killed instead of hanging the test.
    for killed in [false, true] {
        let slots = SharedSlots::new(3);
        let (mut receiver, mut sender) = pipe(false).expect("pipe(false)");
        let writer = fork_child(|| {
            receiver.close();
            for n in 0..3u64 {
                sender.send(&n).expect("send");
            }
            slots.set(READY, 1);
            if killed {
                std::thread::sleep(Duration::from_secs(30)); // Until SIGKILL.
            }
        });
        let reader = fork_child(|| {
            sender.close();
            loop {
                match receiver.recv::<u64>() {
                    Ok(n) => {
                        slots.add(GOT, n + 1);
                    }
                    Err(e) => {
                        slots.set(OUTCOME, if e == Error::Closed { 1 } else { 2 });
                        break;
                    }
                }
            }
        });
        // The test closes both its copies: only the writer holds the sending end.
        receiver.close();
        sender.close();
        until("the writer did not send", || slots.get(READY) == 1);
        if killed {
            kill(writer, Signal::SIGKILL).expect("kill the writer");
        }
        let writer_end = wait_child(writer, Duration::from_secs(5));
        let reader_end = wait_child(reader, Duration::from_secs(5));
        let how = if killed { "killed" } else { "ended" };
        assert_eq!(
            reader_end,
            Some(Exit::Code(0)),
            "once the only writer {how}, the reader's recv hung instead of returning Closed"
        );
        assert_eq!(slots.get(GOT), 1 + 2 + 3, "the values sent before the end");
        assert_eq!(
            slots.get(OUTCOME),
            1,
            "recv after the writer {how} is not Err(Closed)"
        );
        let expected = if killed {
            Exit::Signal(9)
        } else {
            Exit::Code(0)
        };
        assert_eq!(writer_end, Some(expected));
    }
}
