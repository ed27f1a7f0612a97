//! The visibility heartbeat schedule: while a message is in flight, its visibility timeout is
//! renewed every `interval` to `visibility` from the time of the call, so it never lapses while
//! the worker still works on it, and lapses at most `visibility` after the worker dies.

use std::time::Duration;

/// SQS caps a message's total visibility at 12 hours.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(43_200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub interval: Duration,
    pub visibility: Duration,
}

impl Heartbeat {
    /// `interval` must be below `visibility` (the config checks it); it is clamped here too.
    pub fn new(interval: Duration, visibility: Duration) -> Self {
        let visibility = visibility.min(MAX_VISIBILITY);
        let interval = interval.min(visibility.saturating_sub(Duration::from_secs(1)));
        Heartbeat {
            interval: interval.max(Duration::from_millis(100)),
            visibility,
        }
    }

    /// The visibility timeout to set at a beat `since_receive` after the message was received:
    /// the configured timeout, cut so the total stays within 12 h of the receive. `None` when
    /// the cap is reached: the message is then let to come back.
    pub fn extension(&self, since_receive: Duration) -> Option<Duration> {
        let left = MAX_VISIBILITY.checked_sub(since_receive)?;
        let v = self.visibility.min(left);
        // SQS takes whole seconds; a zero timeout would release the message.
        (v.as_secs() >= 1).then(|| Duration::from_secs(v.as_secs()))
    }

    /// Beat times (since receive) and the visibility each sets, up to `horizon`.
    pub fn schedule(&self, horizon: Duration) -> Vec<(Duration, Duration)> {
        let mut out = Vec::new();
        let mut t = self.interval;
        while t <= horizon {
            match self.extension(t) {
                Some(v) => out.push((t, v)),
                None => break,
            }
            t += self.interval;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_never_lapses_between_beats() {
        let hb = Heartbeat::new(Duration::from_secs(100), Duration::from_secs(300));
        // The receive itself sets the first timeout.
        let mut expires = hb.visibility;
        for (t, v) in hb.schedule(Duration::from_secs(6 * 3600)) {
            assert!(
                t < expires,
                "beat at {t:?} comes after expiry at {expires:?}"
            );
            expires = t + v;
        }
        assert!(expires > Duration::from_secs(6 * 3600));
    }

    #[test]
    fn extension_respects_the_twelve_hour_cap() {
        let hb = Heartbeat::new(Duration::from_secs(100), Duration::from_secs(300));
        assert_eq!(
            hb.extension(Duration::from_secs(10)),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            hb.extension(Duration::from_secs(43_200 - 120)),
            Some(Duration::from_secs(120))
        );
        assert_eq!(hb.extension(Duration::from_millis(43_199_500)), None);
        assert_eq!(hb.extension(Duration::from_secs(50_000)), None);
        let last = hb.schedule(Duration::from_secs(50_000));
        let (t, v) = last.last().copied().expect("beats");
        assert!(t + v <= MAX_VISIBILITY);
    }

    #[test]
    fn interval_is_clamped_below_visibility() {
        let hb = Heartbeat::new(Duration::from_secs(60), Duration::from_secs(30));
        assert!(hb.interval < hb.visibility);
    }
}
