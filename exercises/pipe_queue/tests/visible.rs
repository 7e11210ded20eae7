//! Visible tests of `pipe_queue`: they are the specification. Run `cargo test -p pipe_queue`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use forklab_testkit::{Exit, SharedSlots, fork_child, wait_child};
use pipe_queue::{Error, Queue, pipe};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u32,
    item: String,
    quantities: Vec<u16>,
}

fn order(id: u32) -> Order {
    Order {
        id,
        item: format!("item-{id}"),
        quantities: vec![1, 2, 3],
    }
}

#[test]
fn a_value_sent_at_one_end_is_received_at_the_other() {
    let (a, b) = pipe(true).unwrap();
    a.send(&order(1)).unwrap();
    assert_eq!(b.recv::<Order>().unwrap(), order(1));
    // Duplex: the other way round too.
    b.send("pong").unwrap();
    assert_eq!(a.recv::<String>().unwrap(), "pong");
}

#[test]
fn a_child_process_sends_to_its_parent() {
    let (mut receiver, sender) = pipe(false).unwrap();
    let child = fork_child(|| {
        receiver.close(); // This process does not receive: close its copy of that end.
        for id in 0..3 {
            sender.send(&order(id)).unwrap();
        }
    });
    drop(sender); // The parent does not send.
    for id in 0..3 {
        assert_eq!(receiver.recv::<Order>().unwrap(), order(id));
    }
    assert_eq!(
        wait_child(child, Duration::from_secs(5)),
        Some(Exit::Code(0))
    );
}

#[test]
fn recv_says_closed_once_every_sender_is_gone() {
    let (mut receiver, sender) = pipe(false).unwrap();
    let child = fork_child(|| {
        receiver.close();
        sender.send(&42u64).unwrap();
        // The child ends: its copy of `sender` is closed.
    });
    drop(sender); // Without this, the parent's own copy would keep the pipe open.
    assert_eq!(receiver.recv::<u64>(), Ok(42));
    assert_eq!(receiver.recv::<u64>(), Err(Error::Closed));
    assert_eq!(
        wait_child(child, Duration::from_secs(5)),
        Some(Exit::Code(0))
    );
}

#[test]
fn the_ends_of_a_one_way_pipe_only_go_one_way() {
    let (receiver, sender) = pipe(false).unwrap();
    assert!(receiver.send(&1u8).is_err(), "the first end only receives");
    assert!(
        sender
            .recv_timeout::<u8>(Duration::from_millis(10))
            .is_err(),
        "the second end only sends"
    );
}

#[test]
fn poll_and_recv_timeout_wait_no_longer_than_asked() {
    let (a, b) = pipe(true).unwrap();
    let asked = Instant::now();
    assert_eq!(b.poll(Duration::from_millis(100)), Ok(false));
    assert_eq!(
        b.recv_timeout::<u32>(Duration::from_millis(100)),
        Err(Error::Empty)
    );
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(180) && waited < Duration::from_secs(3),
        "waited {waited:?} for 2 x 100 ms"
    );
    a.send(&7u32).unwrap();
    assert_eq!(b.poll(Duration::from_millis(100)), Ok(true));
    assert_eq!(b.recv_timeout(Duration::from_millis(100)), Ok(7u32));
}

#[test]
fn a_queue_gives_items_back_in_the_order_put() {
    let queue = Queue::new().unwrap();
    for id in 0..5 {
        queue.put(&order(id)).unwrap();
    }
    for id in 0..5 {
        assert_eq!(queue.get::<Order>().unwrap(), order(id));
    }
}

#[test]
fn get_timeout_on_an_empty_queue_gives_empty() {
    let queue = Queue::new().unwrap();
    let asked = Instant::now();
    assert_eq!(
        queue.get_timeout::<u32>(Duration::from_millis(100)),
        Err(Error::Empty)
    );
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(90) && waited < Duration::from_secs(3),
        "get_timeout(100 ms) returned after {waited:?}"
    );
}

#[test]
fn a_full_bounded_queue_refuses_a_put_after_the_timeout() {
    let queue = Queue::with_maxsize(2).unwrap();
    queue.put(&1u32).unwrap();
    queue.put(&2u32).unwrap();
    assert_eq!(
        queue.put_timeout(&3u32, Duration::from_millis(100)),
        Err(Error::Full)
    );
    assert_eq!(queue.get::<u32>(), Ok(1));
    assert_eq!(queue.put_timeout(&3u32, Duration::from_millis(100)), Ok(()));
    assert_eq!(queue.get::<u32>(), Ok(2));
    assert_eq!(queue.get::<u32>(), Ok(3));
}

#[test]
fn a_consumer_process_gets_what_a_producer_process_puts() {
    let queue = Queue::new().unwrap();
    let got = SharedSlots::new(10);
    let consumer = fork_child(|| {
        for _ in 0..10 {
            got.push(queue.get::<u64>().unwrap());
        }
    });
    let producer = fork_child(|| {
        for n in 0..10u64 {
            queue.put(&n).unwrap();
        }
    });
    assert_eq!(
        wait_child(producer, Duration::from_secs(5)),
        Some(Exit::Code(0))
    );
    assert_eq!(
        wait_child(consumer, Duration::from_secs(5)),
        Some(Exit::Code(0))
    );
    assert_eq!(got.pushed(), (0..10).collect::<Vec<u64>>());
}

#[test]
fn two_producers_and_two_consumers_move_every_item_exactly_once() {
    const PER_PRODUCER: u64 = 200;
    let queue = Queue::new().unwrap();
    let got = SharedSlots::new(2 * PER_PRODUCER as usize);
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            fork_child(|| {
                // `None` is the "no more items" sentinel.
                while let Some(n) = queue.get::<Option<u64>>().unwrap() {
                    got.push(n);
                }
            })
        })
        .collect();
    let queue = &queue;
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            fork_child(move || {
                for i in 0..PER_PRODUCER {
                    queue.put(&Some(p * 1000 + i)).unwrap();
                }
            })
        })
        .collect();
    for child in producers {
        assert_eq!(
            wait_child(child, Duration::from_secs(10)),
            Some(Exit::Code(0))
        );
    }
    queue.put(&None::<u64>).unwrap();
    queue.put(&None::<u64>).unwrap();
    for child in consumers {
        assert_eq!(
            wait_child(child, Duration::from_secs(10)),
            Some(Exit::Code(0))
        );
    }
    let mut got = got.pushed();
    got.sort_unstable();
    let expected: Vec<u64> = (0..2)
        .flat_map(|p| (0..PER_PRODUCER).map(move |i| p * 1000 + i))
        .collect();
    assert_eq!(got, expected, "every item exactly once");
}

#[test]
fn a_large_item_crosses_whole() {
    // Far more than the 4096 bytes a pipe writes atomically, and than its 64 KiB buffer.
    let big: Vec<u32> = (0..100_000).collect();
    let queue = Queue::new().unwrap();
    let (mut receiver, sender) = pipe(false).unwrap();
    let child = fork_child(|| {
        receiver.close();
        queue.put(&big).unwrap();
        sender.send(&big).unwrap();
    });
    drop(sender);
    assert_eq!(queue.get::<Vec<u32>>().unwrap(), big);
    assert_eq!(receiver.recv::<Vec<u32>>().unwrap(), big);
    assert_eq!(
        wait_child(child, Duration::from_secs(10)),
        Some(Exit::Code(0))
    );
    let distinct: BTreeSet<u32> = big.into_iter().collect();
    assert_eq!(distinct.len(), 100_000);
}
