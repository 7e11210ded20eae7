//! forklab's `pipe_queue` rows: `pipe(..)` + `send`/`recv` between two processes, and
//! `Queue::put`/`get` with 1 → 1 and 2 → 2 processes.

use std::time::Instant;

use pipe_queue::{Queue, pipe};
use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::ops::{BIG, Op, SMALL, Sizes};
use crate::sys::{self, fork_gated, micros_per, rate};

/// The measurement of `op` (one of the pipe and queue rows).
pub fn measure(op: Op, sizes: &Sizes) -> Option<Result<f64, String>> {
    Some(match op {
        Op::PipeRoundTrip => pipe_round_trip(sizes),
        Op::PipeThroughput => pipe_throughput::<Bytes>(sizes),
        Op::PipeThroughputVec => pipe_throughput::<Vec<u8>>(sizes),
        Op::Queue1To1 => queue(sizes, 1, 1),
        Op::Queue2To2 => queue(sizes, 2, 2),
        _ => return None,
    })
}

fn text(e: pipe_queue::Error) -> String {
    e.to_string()
}

/// Parent (CPU 0) ↔ child (CPU 1) over a duplex `pipe(true)`, a 16-byte message sent
/// back and forth; `None` tells the child to stop. µs per round trip.
fn pipe_round_trip(sizes: &Sizes) -> Result<f64, String> {
    let (mut ours, mut theirs) = pipe(true).map_err(text)?;
    let mut children = fork_gated(&[1], |_| {
        ours.close();
        while let Ok(Some(msg)) = theirs.recv::<Option<[u8; SMALL]>>() {
            theirs.send(&Some(msg)).expect("send back");
        }
    });
    theirs.close();
    sys::pin(0);
    children.release();
    let result = (|| {
        let mut msg = Some([7u8; SMALL]);
        ours.send(&msg).map_err(text)?; // warm-up: the child is running once it answers
        msg = ours.recv().map_err(text)?;
        let start = Instant::now();
        for _ in 0..sizes.round_trips {
            ours.send(&msg).map_err(text)?;
            msg = ours.recv().map_err(text)?;
        }
        let elapsed = start.elapsed();
        ours.send(&None::<[u8; SMALL]>).map_err(text)?;
        Ok(micros_per(sizes.round_trips, elapsed))
    })();
    sys::unpin();
    children.join()?;
    result
}

/// A 64 KiB message as the benchmark sends it.
trait Message: Serialize + for<'de> Deserialize<'de> {
    fn new(bytes: Vec<u8>) -> Self;
    fn bytes(&self) -> &[u8];
}

/// A plain `Vec<u8>`: serde encodes and decodes it as a sequence, one `u8` at a time.
impl Message for Vec<u8> {
    fn new(bytes: Vec<u8>) -> Self {
        bytes
    }
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// A byte buffer that serde sees as one byte string, as `serde_bytes::ByteBuf` does (and
/// as Python pickles `bytes`): postcard writes its length and copies it in one go.
#[derive(Debug)]
struct Bytes(Vec<u8>);

impl Message for Bytes {
    fn new(bytes: Vec<u8>) -> Self {
        Bytes(bytes)
    }
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ByteString;
        impl Visitor<'_> for ByteString {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        deserializer.deserialize_byte_buf(ByteString)
    }
}

/// Child (CPU 1) sends 64 KiB messages `M` on a one-way `pipe(false)`, parent (CPU 0)
/// receives them; MiB/s, timed from the first message received.
fn pipe_throughput<M: Message>(sizes: &Sizes) -> Result<f64, String> {
    let n = sizes.big_messages;
    let (mut receiver, mut sender) = pipe(false).map_err(text)?;
    let mut children = fork_gated(&[1], |_| {
        receiver.close();
        let msg = M::new(vec![0x5au8; BIG]);
        for _ in 0..n {
            sender.send(&msg).expect("send");
        }
    });
    sender.close();
    sys::pin(0);
    children.release();
    let result = (|| {
        let mut msg: M = receiver.recv().map_err(text)?;
        let mut got = 1;
        let start = Instant::now();
        while let Ok(next) = receiver.recv::<M>() {
            msg = next;
            got += 1;
        }
        let elapsed = start.elapsed();
        if got != n || msg.bytes().len() != BIG || msg.bytes()[BIG - 1] != 0x5a {
            return Err(format!("received {got} of {n} messages"));
        }
        Ok(rate((n - 1) * BIG, elapsed) / (1024.0 * 1024.0))
    })();
    sys::unpin();
    children.join()?;
    result
}

/// `producers` processes each put `n` items `Some((producer, seq))` on one `Queue`;
/// `consumers` processes get until `None`. msg/s; every item is counted and checked.
fn queue(sizes: &Sizes, producers: usize, consumers: usize) -> Result<f64, String> {
    let n = sizes.queue_messages as u64;
    let items = Queue::new().map_err(text)?;
    // What each consumer got: (count, sum of seq), sent back on a second queue.
    let tally = Queue::new().map_err(text)?;
    let cpus: Vec<usize> = (0..producers).chain(0..consumers).collect();
    let mut children = fork_gated(&cpus, |i| {
        if i < producers {
            for seq in 0..n {
                items.put(&Some((i as u64, seq))).expect("put");
            }
        } else {
            let (mut count, mut total) = (0u64, 0u64);
            while let Some((_, seq)) = items.get::<Option<(u64, u64)>>().expect("get") {
                count += 1;
                total += seq;
            }
            tally.put(&(count, total)).expect("put the tally");
        }
    });
    let start = Instant::now();
    children.release();
    for pid in children.take_first(producers) {
        if !matches!(
            nix::sys::wait::waitpid(pid, None),
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0))
        ) {
            return Err("a producer failed".into());
        }
    }
    for _ in 0..consumers {
        items.put(&None::<(u64, u64)>).map_err(text)?;
    }
    let (mut got, mut sum) = (0, 0);
    for _ in 0..consumers {
        let (count, total): (u64, u64) = tally.get().map_err(text)?;
        got += count;
        sum += total;
    }
    children.join()?;
    let elapsed = start.elapsed();
    let want = producers as u64 * n;
    if got != want || sum != producers as u64 * (n * (n - 1) / 2) {
        return Err(format!("received {got} of {want} items"));
    }
    Ok(rate(want as usize, elapsed))
}
