//! The byte budget the object readers of one worker share (`source.memory_budget_bytes`).
//!
//! Each reader holds a [`Grant`] and resizes it, before it reads or parses more, to what it is
//! about to hold: its splitter's record in progress plus the next read chunk, their copy into
//! chunks, the chunk being built, a simd-json pass. Growth comes from the shared *pool* when
//! it can. A reader that finds the pool spent waits, for the pool or to become the *head*: the
//! one reader that may draw on the *reserve*, which nobody else touches and which is large
//! enough for one record of `limits.max_record_bytes`. The head keeps the position until it
//! gives its reserve bytes back (its large record has gone into the pipeline), then the next
//! waiter (first come, first served) takes it.
//!
//! So the readers together hold at most the budget; large records wait instead of piling up;
//! and there is no deadlock, because the head never waits for budget: the reserve always
//! covers one record. The only excess is an *overdraft*: a record whose simd-json pass needs
//! more than the reserve (structurally far denser than CloudTrail's JSON) proceeds anyway,
//! and the excess is counted and logged.
//!
//! Counted in KiB permits of two [`Semaphore`]s; a grant rounds up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard, Semaphore};

const UNIT: u64 = 1024;

fn units(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT)
}

/// A shared byte budget; cheap to clone. [`ReadBudget::unlimited`] accounts nothing.
#[derive(Clone, Default)]
pub struct ReadBudget {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    pool: Semaphore,
    reserve: Semaphore,
    head: Arc<Mutex<()>>,
    total: u64,
    reserve_total: u64,
    held: AtomicU64,
    peak: AtomicU64,
    waits: AtomicU64,
    overdrafts: AtomicU64,
}

impl std::fmt::Debug for ReadBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            None => f.write_str("ReadBudget(unlimited)"),
            Some(i) => write!(
                f,
                "ReadBudget({} KiB, {} KiB reserve, {} KiB held)",
                i.total,
                i.reserve_total,
                i.held.load(Ordering::Relaxed)
            ),
        }
    }
}

impl ReadBudget {
    /// `total_bytes` shared by all readers, of which `reserve_bytes` (at most the total) only
    /// the head may use.
    pub fn new(total_bytes: u64, reserve_bytes: u64) -> ReadBudget {
        let max = Semaphore::MAX_PERMITS as u64;
        let total = units(total_bytes).clamp(1, max);
        let reserve_total = units(reserve_bytes).min(total);
        let permits = |n: u64| usize::try_from(n).unwrap_or(Semaphore::MAX_PERMITS);
        ReadBudget {
            inner: Some(Arc::new(Inner {
                pool: Semaphore::new(permits(total - reserve_total)),
                reserve: Semaphore::new(permits(reserve_total)),
                head: Arc::new(Mutex::new(())),
                total,
                reserve_total,
                held: AtomicU64::new(0),
                peak: AtomicU64::new(0),
                waits: AtomicU64::new(0),
                overdrafts: AtomicU64::new(0),
            })),
        }
    }

    /// No budget: grants hold nothing and never wait.
    pub fn unlimited() -> ReadBudget {
        ReadBudget { inner: None }
    }

    /// A reader's share, empty at first.
    pub fn grant(&self) -> Grant {
        Grant {
            inner: self.inner.clone(),
            pool: 0,
            reserve: 0,
            overdraft: 0,
            head: None,
        }
    }

    pub fn total_bytes(&self) -> Option<u64> {
        self.inner.as_ref().map(|i| i.total * UNIT)
    }

    /// Bytes the grants hold now (overdrafts included).
    pub fn held_bytes(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.held.load(Ordering::Relaxed) * UNIT)
    }

    /// The most the grants held at once.
    pub fn peak_bytes(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.peak.load(Ordering::Relaxed) * UNIT)
    }

    /// Times a reader had to wait for budget.
    pub fn waits(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.waits.load(Ordering::Relaxed))
    }

    /// Times a record needed more than the reserve (see the module docs).
    pub fn overdrafts(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.overdrafts.load(Ordering::Relaxed))
    }
}

/// One reader's share of a [`ReadBudget`]; given back when dropped.
pub struct Grant {
    inner: Option<Arc<Inner>>,
    /// KiB from the pool, from the reserve, and beyond both.
    pool: u64,
    reserve: u64,
    overdraft: u64,
    head: Option<OwnedMutexGuard<()>>,
}

impl Grant {
    pub fn held_bytes(&self) -> u64 {
        (self.pool + self.reserve + self.overdraft) * UNIT
    }

    /// Whether this reader is the head (it holds reserve bytes).
    pub fn is_head(&self) -> bool {
        self.head.is_some()
    }

    /// Makes the grant cover `bytes`: gives back what is above it at once, or waits for what
    /// is missing (see the module docs). Cancel-safe: a dropped wait takes nothing.
    pub async fn resize(&mut self, bytes: usize) {
        let Some(inner) = self.inner.clone() else {
            return;
        };
        let want = units(bytes as u64);
        let held = self.pool + self.reserve + self.overdraft;
        if want <= held {
            self.shrink_units(want);
            return;
        }
        let need = want - held;
        if self.take_pool(&inner, need) {
            return;
        }
        if self.head.is_none() {
            inner.waits.fetch_add(1, Ordering::Relaxed);
            let n = u32::try_from(need).unwrap_or(u32::MAX);
            tokio::select! {
                biased;
                p = inner.pool.acquire_many(n) => {
                    if let Ok(p) = p {
                        p.forget();
                        self.add(&inner, need, 0, 0);
                        return;
                    }
                }
                g = inner.head.clone().lock_owned() => self.head = Some(g),
            }
        }
        // The head: the pool if it has room by now, else the reserve, which only the head
        // uses and which covers one record of the largest size.
        if self.take_pool(&inner, need) {
            return;
        }
        let from_reserve = need.min(inner.reserve.available_permits() as u64);
        let got = u32::try_from(from_reserve)
            .ok()
            .and_then(|n| inner.reserve.try_acquire_many(n).ok())
            .map_or(0, |p| {
                p.forget();
                from_reserve
            });
        let over = need - got;
        if over > 0 {
            inner.overdrafts.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                needed_kib = want,
                reserve_kib = inner.reserve_total,
                over_kib = over,
                "an object reader needs more than the memory budget's reserve for one record; it goes ahead"
            );
        }
        self.add(&inner, 0, got, over);
        if self.reserve == 0 && self.overdraft == 0 {
            self.head = None;
        }
    }

    /// Gives back what is above `bytes` (never waits).
    pub fn shrink_to(&mut self, bytes: usize) {
        self.shrink_units(units(bytes as u64));
    }

    fn take_pool(&mut self, inner: &Arc<Inner>, need: u64) -> bool {
        let Ok(n) = u32::try_from(need) else {
            return false;
        };
        match inner.pool.try_acquire_many(n) {
            Ok(p) => {
                p.forget();
                self.add(inner, need, 0, 0);
                true
            }
            Err(_) => false,
        }
    }

    fn add(&mut self, inner: &Inner, pool: u64, reserve: u64, over: u64) {
        self.pool += pool;
        self.reserve += reserve;
        self.overdraft += over;
        let now = inner
            .held
            .fetch_add(pool + reserve + over, Ordering::Relaxed)
            + pool
            + reserve
            + over;
        inner.peak.fetch_max(now, Ordering::Relaxed);
    }

    /// Overdraft first, then the reserve (so the head position frees up), then the pool.
    fn shrink_units(&mut self, want: u64) {
        let Some(inner) = self.inner.clone() else {
            return;
        };
        let held = self.pool + self.reserve + self.overdraft;
        let mut excess = held.saturating_sub(want);
        let over = excess.min(self.overdraft);
        self.overdraft -= over;
        excess -= over;
        let reserve = excess.min(self.reserve);
        self.reserve -= reserve;
        excess -= reserve;
        let pool = excess.min(self.pool);
        self.pool -= pool;
        // Uncounted before the permits are back, so the peak never counts them twice.
        inner
            .held
            .fetch_sub(over + reserve + pool, Ordering::Relaxed);
        inner.reserve.add_permits(reserve as usize);
        inner.pool.add_permits(pool as usize);
        if self.reserve == 0 && self.overdraft == 0 {
            self.head = None;
        }
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.shrink_units(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MIB: usize = 1 << 20;

    #[tokio::test]
    async fn grants_share_the_pool_and_give_back_on_drop() {
        let b = ReadBudget::new(10 * MIB as u64, 4 * MIB as u64);
        let mut a = b.grant();
        let mut c = b.grant();
        a.resize(3 * MIB).await;
        c.resize(3 * MIB).await;
        assert_eq!(b.held_bytes(), 6 * MIB as u64);
        assert!(!a.is_head() && !c.is_head(), "the pool had room");
        a.shrink_to(MIB);
        assert_eq!(b.held_bytes(), 4 * MIB as u64);
        drop(a);
        drop(c);
        assert_eq!(b.held_bytes(), 0);
        assert_eq!(b.peak_bytes(), 6 * MIB as u64);
        assert_eq!(b.waits(), 0);
        // Unlimited: nothing is counted, nothing waits.
        let u = ReadBudget::unlimited();
        let mut g = u.grant();
        g.resize(usize::MAX / 2).await;
        assert_eq!(u.held_bytes(), 0);
    }

    /// Two readers each hold most of the pool and both need more: the first to wait becomes
    /// the head and finishes its record from the reserve; the other waits until the pool has
    /// room. Without the reserve this would be a deadlock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_head_always_progresses_and_the_budget_is_never_exceeded() {
        let total = 12 * MIB as u64;
        let reserve = 6 * MIB as u64;
        let b = ReadBudget::new(total, reserve);
        let mut first = b.grant();
        let mut second = b.grant();
        first.resize(3 * MIB).await;
        second.resize(3 * MIB).await;
        // The pool (6 MiB) is spent. The first reader grows its record to 8 MiB: head.
        tokio::time::timeout(Duration::from_secs(5), first.resize(8 * MIB))
            .await
            .expect("the head never waits for budget");
        assert!(first.is_head());
        assert_eq!(b.held_bytes(), 11 * MIB as u64);
        // The second reader needs more too: it waits (the head position is taken, the pool is
        // spent) ...
        let waiting = tokio::spawn(async move {
            second.resize(5 * MIB).await;
            second
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "no budget for the second reader yet"
        );
        assert!(b.held_bytes() <= total);
        // ... until the head's record has gone into the pipeline.
        first.shrink_to(MIB);
        assert!(!first.is_head());
        let second = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiting reader goes on")
            .expect("task");
        assert_eq!(second.held_bytes(), 5 * MIB as u64);
        assert!(b.peak_bytes() <= total, "peak {}", b.peak_bytes());
        assert_eq!(b.overdrafts(), 0);
        assert!(b.waits() >= 2);
    }

    /// Many readers each growing a large record in steps, as the S3 reader does: all finish,
    /// and together they never hold more than the budget.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_large_records_wait_instead_of_piling_up() {
        let record = 8 * MIB;
        let b = ReadBudget::new((3 * record) as u64, (record + MIB) as u64);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let b = b.clone();
            tasks.spawn(async move {
                let mut g = b.grant();
                let mut held = 0;
                while held < record {
                    held += 256 * 1024;
                    g.resize(held).await;
                    tokio::task::yield_now().await;
                }
                g.shrink_to(0);
            });
        }
        let all = async {
            while let Some(r) = tasks.join_next().await {
                r.expect("reader");
            }
        };
        tokio::time::timeout(Duration::from_secs(20), all)
            .await
            .expect("no deadlock");
        assert_eq!(b.held_bytes(), 0);
        assert!(b.peak_bytes() <= 3 * record as u64, "{}", b.peak_bytes());
        assert!(b.waits() > 0, "16 records of 8 MiB in 24 MiB had to wait");
        assert_eq!(b.overdrafts(), 0);
    }

    #[tokio::test]
    async fn a_need_beyond_the_reserve_overdraws_instead_of_hanging() {
        let b = ReadBudget::new(4 * MIB as u64, 2 * MIB as u64);
        let mut g = b.grant();
        tokio::time::timeout(Duration::from_secs(5), g.resize(6 * MIB))
            .await
            .expect("goes ahead");
        assert_eq!(b.overdrafts(), 1);
        assert_eq!(g.held_bytes(), 6 * MIB as u64);
        drop(g);
        assert_eq!(b.held_bytes(), 0);
        let mut next = b.grant();
        tokio::time::timeout(Duration::from_secs(5), next.resize(4 * MIB))
            .await
            .expect("the whole budget is back");
    }
}
