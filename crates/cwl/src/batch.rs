//! The PutLogEvents rules, as pure functions over (timestamp, size) pairs. Nothing here talks to
//! AWS, so every rule is tested directly, including with random streams.
//!
//! Rules (CloudWatch Logs API, PutLogEvents):
//! - at most 10,000 events and Σ(UTF-8 bytes + 26) ≤ 1,048,576 bytes per call;
//! - events in chronological order within a call;
//! - a call spans at most 24 hours;
//! - events older than 14 days (or the group's retention) or more than 2 hours in the future are
//!   rejected by the service, so they are set aside here, before they cost a request;
//! - one event is at most 1 MiB − 26 bytes (configurable: older accounts/regions need 256 KB).

use std::fmt;

pub const MAX_BATCH_BYTES: usize = 1_048_576;
pub const EVENT_OVERHEAD: usize = 26;
pub const MAX_BATCH_EVENTS: usize = 10_000;
pub const MAX_EVENT_BYTES: usize = MAX_BATCH_BYTES - EVENT_OVERHEAD;
pub const MAX_SPAN_MS: i64 = 24 * 3600 * 1000;
pub const MAX_PAST_MS: i64 = 14 * 24 * 3600 * 1000;
pub const MAX_FUTURE_MS: i64 = 2 * 3600 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// Retention values CloudWatch Logs accepts, in days.
pub const RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRules {
    pub max_events: usize,
    pub max_bytes: usize,
    pub max_event_bytes: usize,
    pub max_span_ms: i64,
}

impl Default for BatchRules {
    fn default() -> Self {
        BatchRules {
            max_events: MAX_BATCH_EVENTS,
            max_bytes: MAX_BATCH_BYTES,
            max_event_bytes: MAX_EVENT_BYTES,
            max_span_ms: MAX_SPAN_MS,
        }
    }
}

/// Why an event cannot go to CloudWatch Logs. It goes to the overflow destination instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Older than 14 days before now.
    TooOld,
    /// Older than the log group's retention.
    Expired { retention_days: i32 },
    /// More than 2 hours ahead of now.
    TooNew,
    /// Over the per-event size limit.
    TooLarge { size: usize, limit: usize },
    /// No usable timestamp.
    NoTimestamp,
    /// The service rejected the batch for good (after retries), or reported the event in
    /// `rejectedLogEventsInfo`.
    Service,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::TooOld => write!(f, "event is older than 14 days"),
            Reject::Expired { retention_days } => {
                write!(
                    f,
                    "event is older than the log group's retention of {retention_days} days"
                )
            }
            Reject::TooNew => write!(f, "event is more than 2 hours in the future"),
            Reject::TooLarge { size, limit } => {
                write!(f, "event of {size} bytes exceeds the {limit}-byte limit")
            }
            Reject::NoTimestamp => write!(f, "event has no valid eventTime"),
            Reject::Service => write!(f, "rejected by CloudWatch Logs"),
        }
    }
}

impl Reject {
    pub fn label(&self) -> &'static str {
        match self {
            Reject::TooOld => "too_old",
            Reject::Expired { .. } => "expired",
            Reject::TooNew => "too_new",
            Reject::TooLarge { .. } => "too_large",
            Reject::NoTimestamp => "no_timestamp",
            Reject::Service => "service_rejected",
        }
    }
}

/// Decides whether an event can be sent at `now_ms`. The margins keep an event that is barely
/// acceptable now from being rejected by the time its batch arrives.
pub fn admit(
    timestamp_ms: Option<i64>,
    size: usize,
    now_ms: i64,
    retention_days: Option<i32>,
    rules: &BatchRules,
) -> Result<i64, Reject> {
    const MARGIN_MS: i64 = 5 * 60 * 1000;
    if size > rules.max_event_bytes {
        return Err(Reject::TooLarge {
            size,
            limit: rules.max_event_bytes,
        });
    }
    let ts = timestamp_ms.ok_or(Reject::NoTimestamp)?;
    if ts < 0 {
        return Err(Reject::NoTimestamp);
    }
    if ts > now_ms + MAX_FUTURE_MS - MARGIN_MS {
        return Err(Reject::TooNew);
    }
    if ts < now_ms - MAX_PAST_MS + MARGIN_MS {
        return Err(Reject::TooOld);
    }
    if let Some(days) = retention_days {
        if ts < now_ms - i64::from(days) * DAY_MS + MARGIN_MS {
            return Err(Reject::Expired {
                retention_days: days,
            });
        }
    }
    Ok(ts)
}

/// Cuts events into batches that obey every rule. `events` are `(timestamp_ms, size, item)`;
/// they are sorted by timestamp (stable, so equal timestamps keep their arrival order), then
/// cut greedily. Every event must already have passed [`admit`].
pub fn cut_batches<T>(
    mut events: Vec<(i64, usize, T)>,
    rules: &BatchRules,
) -> Vec<Vec<(i64, usize, T)>> {
    events.sort_by_key(|e| e.0);
    let mut batches = Vec::new();
    let mut current: Vec<(i64, usize, T)> = Vec::new();
    let mut bytes = 0usize;
    for e in events {
        let cost = e.1 + EVENT_OVERHEAD;
        let span_ok = current
            .first()
            .is_none_or(|f| e.0 - f.0 <= rules.max_span_ms);
        if !current.is_empty()
            && (current.len() + 1 > rules.max_events || bytes + cost > rules.max_bytes || !span_ok)
        {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += cost;
        current.push(e);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// The cost of an event in the batch budget.
pub fn event_cost(size: usize) -> usize {
    size + EVENT_OVERHEAD
}

/// Reads `rejectedLogEventsInfo`: which indices of a sent batch were not stored. AWS documents
/// `tooOldLogEventEndIndex` and `expiredLogEventEndIndex` as exclusive ends; moto stores the last
/// index instead, so the caller says which reading to use (see `inclusive_old_end`).
pub fn rejected_indices(
    n: usize,
    too_new_start: Option<i32>,
    too_old_end: Option<i32>,
    expired_end: Option<i32>,
) -> Vec<(usize, Reject)> {
    let mut out = Vec::new();
    let old_end = too_old_end.map_or(0, |e| (e.max(0) as usize).min(n));
    let exp_end = expired_end.map_or(0, |e| (e.max(0) as usize).min(n));
    let new_start = too_new_start.map_or(n, |s| (s.max(0) as usize).min(n));
    for i in 0..n {
        if i < old_end {
            out.push((i, Reject::TooOld));
        } else if i < exp_end {
            out.push((i, Reject::Service));
        } else if i >= new_start {
            out.push((i, Reject::TooNew));
        }
    }
    out
}

/// Checks a batch against every rule; used by tests and as a debug assertion before sending.
pub fn check_batch<T>(batch: &[(i64, usize, T)], rules: &BatchRules) -> Result<(), String> {
    if batch.is_empty() {
        return Err("empty batch".into());
    }
    if batch.len() > rules.max_events {
        return Err(format!("{} events > {}", batch.len(), rules.max_events));
    }
    let bytes: usize = batch.iter().map(|e| event_cost(e.1)).sum();
    if bytes > rules.max_bytes {
        return Err(format!("{bytes} bytes > {}", rules.max_bytes));
    }
    if batch.windows(2).any(|w| w[0].0 > w[1].0) {
        return Err("not in chronological order".into());
    }
    let span = batch[batch.len() - 1].0 - batch[0].0;
    if span > rules.max_span_ms {
        return Err(format!("span {span} ms > {}", rules.max_span_ms));
    }
    if let Some(e) = batch.iter().find(|e| e.1 > rules.max_event_bytes) {
        return Err(format!(
            "event of {} bytes > {}",
            e.1, rules.max_event_bytes
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn admit_rules() {
        let r = BatchRules::default();
        assert_eq!(admit(Some(NOW), 100, NOW, None, &r), Ok(NOW));
        assert_eq!(admit(None, 100, NOW, None, &r), Err(Reject::NoTimestamp));
        assert_eq!(
            admit(Some(NOW - MAX_PAST_MS), 1, NOW, None, &r),
            Err(Reject::TooOld)
        );
        assert_eq!(
            admit(Some(NOW + MAX_FUTURE_MS), 1, NOW, None, &r),
            Err(Reject::TooNew)
        );
        assert_eq!(
            admit(Some(NOW - 2 * DAY_MS), 1, NOW, Some(1), &r),
            Err(Reject::Expired { retention_days: 1 })
        );
        assert_eq!(
            admit(Some(NOW - 2 * DAY_MS), 1, NOW, Some(3), &r),
            Ok(NOW - 2 * DAY_MS)
        );
        assert_eq!(
            admit(Some(NOW), MAX_EVENT_BYTES + 1, NOW, None, &r),
            Err(Reject::TooLarge {
                size: MAX_EVENT_BYTES + 1,
                limit: MAX_EVENT_BYTES
            })
        );
        let small = BatchRules {
            max_event_bytes: 256 * 1024 - 26,
            ..r
        };
        assert!(admit(Some(NOW), 300_000, NOW, None, &small).is_err());
    }

    #[test]
    fn cuts_on_count_bytes_and_span() {
        let r = BatchRules::default();
        let ev: Vec<_> = (0..25_000).map(|i| (NOW - i, 10, i)).collect();
        let b = cut_batches(ev, &r);
        assert_eq!(
            b.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![10_000, 10_000, 5_000]
        );
        assert!(b[0].windows(2).all(|w| w[0].0 <= w[1].0));

        // 1 MiB budget: 4 events of 262,118 bytes (+26 = 262,144) fill it exactly.
        let ev: Vec<_> = (0..9).map(|i| (NOW + i, 262_118usize, i)).collect();
        let b = cut_batches(ev, &r);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 1]);

        let ev = vec![
            (NOW, 1, 0),
            (NOW + MAX_SPAN_MS, 1, 1),
            (NOW + MAX_SPAN_MS + 1, 1, 2),
        ];
        let b = cut_batches(ev, &r);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
    }

    #[test]
    fn reads_rejected_info() {
        let r = rejected_indices(6, Some(4), Some(1), Some(2));
        assert_eq!(
            r,
            vec![
                (0, Reject::TooOld),
                (1, Reject::Service),
                (4, Reject::TooNew),
                (5, Reject::TooNew)
            ]
        );
        assert!(rejected_indices(3, None, None, None).is_empty());
        assert_eq!(rejected_indices(2, Some(-5), Some(99), None).len(), 2);
    }

    proptest! {
        #[test]
        fn random_streams_never_break_a_rule(
            events in prop::collection::vec((0i64..(3 * MAX_SPAN_MS), 1usize..300_000), 0..400),
            max_events in 1usize..50,
        ) {
            let rules = BatchRules { max_events, ..BatchRules::default() };
            let items: Vec<_> = events.iter().enumerate().map(|(i, (t, s))| (NOW + t, *s, i)).collect();
            let batches = cut_batches(items, &rules);
            let mut seen = vec![0u32; events.len()];
            for b in &batches {
                prop_assert_eq!(check_batch(b, &rules), Ok(()));
                for e in b {
                    seen[e.2] += 1;
                    prop_assert_eq!((e.0, e.1), (NOW + events[e.2].0, events[e.2].1));
                }
            }
            prop_assert!(seen.iter().all(|&n| n == 1), "every event in exactly one batch");
        }
    }
}
