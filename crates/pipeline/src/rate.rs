//! Rate control for batched network sinks (CloudWatch Logs PutLogEvents, the SIEM sinks):
//! `governor` limiters for requests/s and bytes/s shared by everything one sink sends, an AIMD
//! factor that slows down further when the destination throttles and recovers on success, and
//! the per-batch backoff schedule.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;
use trailhose_core::sync::lock;

/// Additive-increase / multiplicative-decrease of the fraction of the configured rate used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aimd {
    factor: f64,
    min: f64,
    step: f64,
}

impl Default for Aimd {
    fn default() -> Self {
        Aimd {
            factor: 1.0,
            min: 1.0 / 64.0,
            step: 1.0 / 32.0,
        }
    }
}

impl Aimd {
    pub fn factor(&self) -> f64 {
        self.factor
    }

    pub fn on_throttle(&mut self) {
        self.factor = (self.factor / 2.0).max(self.min);
    }

    pub fn on_success(&mut self) {
        self.factor = (self.factor + self.step).min(1.0);
    }

    /// Extra wait after a rate-limiter permit so the effective rate is `factor × rate`.
    pub fn pacing(&self, requests_per_second: u32) -> Duration {
        if self.factor >= 1.0 || requests_per_second == 0 {
            return Duration::ZERO;
        }
        let interval = 1.0 / f64::from(requests_per_second);
        Duration::from_secs_f64(interval * (1.0 / self.factor - 1.0))
    }
}

/// Exponential backoff with "equal jitter": half the capped delay fixed, half random, so
/// retries spread out but never come back immediately. `jitter` is uniform in [0, 1).
pub fn backoff(attempt: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(20));
    let capped = exp.min(cap);
    capped / 2 + capped.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
}

pub struct RateControl {
    requests: DefaultDirectRateLimiter,
    bytes: DefaultDirectRateLimiter,
    byte_burst: u32,
    requests_per_second: u32,
    aimd: Mutex<Aimd>,
}

impl RateControl {
    pub fn new(requests_per_second: u32, bytes_per_second: u32) -> RateControl {
        let rps = NonZeroU32::new(requests_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        // A small burst keeps the achieved rate at the limit over any window of a second or so.
        let req_burst =
            NonZeroU32::new((requests_per_second / 20).max(1)).unwrap_or(NonZeroU32::MIN);
        let bps = NonZeroU32::new(bytes_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        // One request carries up to 1 MiB, so the bucket must hold at least that much.
        let byte_burst = bytes_per_second.max(1_048_576 + 10_000 * 26);
        let byte_burst_nz = NonZeroU32::new(byte_burst).unwrap_or(NonZeroU32::MIN);
        RateControl {
            requests: RateLimiter::direct(Quota::per_second(rps).allow_burst(req_burst)),
            bytes: RateLimiter::direct(Quota::per_second(bps).allow_burst(byte_burst_nz)),
            byte_burst,
            requests_per_second,
            aimd: Mutex::new(Aimd::default()),
        }
    }

    /// Waits until a request of `bytes` may be sent.
    pub async fn acquire(&self, bytes: usize) {
        self.requests.until_ready().await;
        let n = (bytes as u64).min(u64::from(self.byte_burst)) as u32;
        if let Some(n) = NonZeroU32::new(n) {
            // `n` never exceeds the burst, so this cannot fail; if it did, pacing by requests
            // alone is the safe fallback.
            let _ = self.bytes.until_n_ready(n).await;
        }
        let pacing = self.with_aimd(|a| a.pacing(self.requests_per_second));
        if !pacing.is_zero() {
            tokio::time::sleep(pacing).await;
        }
    }

    pub fn throttled(&self) {
        self.with_aimd(Aimd::on_throttle);
    }

    pub fn succeeded(&self) {
        self.with_aimd(Aimd::on_success);
    }

    pub fn factor(&self) -> f64 {
        self.with_aimd(|a| a.factor())
    }

    fn with_aimd<T>(&self, f: impl FnOnce(&mut Aimd) -> T) -> T {
        let mut g = lock(&self.aimd);
        f(&mut g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aimd_halves_and_recovers() {
        let mut a = Aimd::default();
        a.on_throttle();
        a.on_throttle();
        assert_eq!(a.factor(), 0.25);
        assert_eq!(a.pacing(100), Duration::from_secs_f64(0.01 * 3.0));
        for _ in 0..100 {
            a.on_success();
        }
        assert_eq!(a.factor(), 1.0);
        assert_eq!(a.pacing(100), Duration::ZERO);
        for _ in 0..100 {
            a.on_throttle();
        }
        assert_eq!(a.factor(), 1.0 / 64.0);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(10);
        assert_eq!(backoff(0, base, cap, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(3, base, cap, 0.0), Duration::from_millis(400));
        assert_eq!(backoff(3, base, cap, 0.999_999).as_millis(), 799);
        assert_eq!(backoff(30, base, cap, 0.0), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = false)]
    async fn limiter_holds_the_request_rate() {
        let rc = RateControl::new(200, 100_000_000);
        let t = std::time::Instant::now();
        for _ in 0..60 {
            rc.acquire(10).await;
        }
        // 60 requests at 200/s with a burst of 10 need at least 50 intervals of 5 ms.
        assert!(
            t.elapsed() >= Duration::from_millis(240),
            "{:?}",
            t.elapsed()
        );
    }
}
