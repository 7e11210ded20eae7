//! Running a grading run's tests a few at a time, as cargo-nextest does: most tests
//! spend their time waiting (timeouts, sleeping waiters, children), so running several
//! at once shortens a grade without changing what each test sees. A test whose verdict
//! depends on having the machine to itself (it must see two processes really run at
//! once, say) is marked `exclusive` in the rubric and runs alone.
//!
//! "Alone" holds across every grader sharing a scratch area (a `grader batch` runs
//! several): a turnstile of two `flock`ed files under the scratch area. A test holds the
//! gate file shared while it runs, an exclusive test holds it exclusively; an exclusive
//! test waiting for the running ones to end holds the turnstile, which every test passes
//! through before taking the gate, so that no new test starts in the meantime.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};

/// The two lock files that order tests across threads and processes.
#[derive(Debug, Clone)]
pub struct Gate {
    turnstile: PathBuf,
    gate: PathBuf,
}

/// Held while a test runs; releases its place at the gate when dropped.
pub struct Pass {
    _gate: Flock<File>,
}

impl Gate {
    /// The gate of the grading runs that share `scratch`.
    pub fn new(scratch: &Path) -> Result<Self> {
        std::fs::create_dir_all(scratch)
            .with_context(|| format!("creating {}", scratch.display()))?;
        Ok(Self {
            turnstile: scratch.join("tests.turnstile.lock"),
            gate: scratch.join("tests.gate.lock"),
        })
    }

    /// Waits until a test may run: beside other tests, or alone if `exclusive`.
    pub fn enter(&self, exclusive: bool) -> Result<Pass> {
        // Each call opens its own descriptions: flock excludes between them, even
        // between threads of one process.
        let turnstile = lock(&self.turnstile, FlockArg::LockExclusive)?;
        let gate = lock(
            &self.gate,
            if exclusive {
                FlockArg::LockExclusive
            } else {
                FlockArg::LockShared
            },
        )?;
        drop(turnstile);
        Ok(Pass { _gate: gate })
    }
}

fn lock(path: &Path, how: FlockArg) -> Result<Flock<File>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    Flock::lock(file, how)
        .map_err(|(_, errno)| errno)
        .with_context(|| format!("locking {}", path.display()))
}

/// Runs `run` on every item with at most `jobs` at once, each after passing `gate`
/// (alone when `exclusive(item)`), and returns the results in the items' order. The
/// shared items start first, in order, then the exclusive ones: an exclusive item in
/// the middle would make every thread wait for it.
pub fn run_all<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    gate: &Gate,
    exclusive: impl Fn(&T) -> bool + Sync,
    run: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let (shared, alone): (Vec<usize>, Vec<usize>) =
        (0..items.len()).partition(|&i| !exclusive(&items[i]));
    let order: Vec<usize> = shared.into_iter().chain(alone).collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<R>>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                while let Some(&i) = order.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let item = &items[i];
                    let result = gate.enter(exclusive(item)).and_then(|_pass| run(item));
                    results.lock().expect("no panic holds it")[i] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("no panic holds it")
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Records how many items run at once, the most seen, and whether an exclusive item
    /// ever shared the machine.
    #[derive(Default)]
    struct Overlap {
        now: AtomicUsize,
        most: AtomicUsize,
        exclusive_shared: AtomicUsize,
    }

    fn run(items: &[(usize, bool)], jobs: usize, overlap: &Overlap) -> Vec<usize> {
        let scratch = tempfile::tempdir().unwrap();
        let gate = Gate::new(scratch.path()).unwrap();
        run_all(
            items,
            jobs,
            &gate,
            |(_, exclusive)| *exclusive,
            |(n, exclusive)| {
                let running = overlap.now.fetch_add(1, Ordering::SeqCst) + 1;
                overlap.most.fetch_max(running, Ordering::SeqCst);
                for _ in 0..10 {
                    if *exclusive && overlap.now.load(Ordering::SeqCst) > 1 {
                        overlap.exclusive_shared.fetch_add(1, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                overlap.now.fetch_sub(1, Ordering::SeqCst);
                Ok(n * 10)
            },
        )
        .unwrap()
    }

    #[test]
    fn results_come_back_in_order_with_up_to_jobs_at_once() {
        let items: Vec<(usize, bool)> = (0..12).map(|n| (n, false)).collect();
        let overlap = Overlap::default();
        let results = run(&items, 4, &overlap);
        assert_eq!(results, (0..12).map(|n| n * 10).collect::<Vec<_>>());
        assert!(overlap.most.load(Ordering::SeqCst) <= 4);
        assert!(
            overlap.most.load(Ordering::SeqCst) >= 2,
            "never ran two at once"
        );
    }

    #[test]
    fn an_exclusive_item_runs_alone() {
        let items: Vec<(usize, bool)> = (0..16).map(|n| (n, n % 5 == 2)).collect();
        let overlap = Overlap::default();
        let results = run(&items, 4, &overlap);
        assert_eq!(results.len(), 16);
        assert_eq!(overlap.exclusive_shared.load(Ordering::SeqCst), 0);
        assert!(overlap.most.load(Ordering::SeqCst) >= 2);
    }

    #[test]
    fn one_job_runs_one_at_a_time() {
        let items: Vec<(usize, bool)> = (0..5).map(|n| (n, false)).collect();
        let overlap = Overlap::default();
        run(&items, 1, &overlap);
        assert_eq!(overlap.most.load(Ordering::SeqCst), 1);
    }
}
