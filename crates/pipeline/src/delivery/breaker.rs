//! The circuit breaker of one sink, and the board of every sink's breaker that the source
//! watches ([`DeliveryControl`]).
//!
//! A breaker opens when the destination refuses the sink itself (credentials, IAM, a missing
//! endpoint) or after [`TRANSIENT_FAILURES_TO_OPEN`] whole requests in a row failed for a
//! transient reason. While it is open nothing is sent, except one *probe* at a time on a
//! jittered, capped schedule; the probe's success closes it. Deliveries waiting behind an open
//! breaker are held, not failed, until their `max_retry_duration` runs out or the source asks
//! the sinks to stop retrying (shutdown): a held SQS message stays invisible by heartbeat and
//! consumes no receive.

use crate::rate::backoff;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use trailhose_core::sync::lock;

/// Whole-request transient failures in a row that open a breaker.
pub const TRANSIENT_FAILURES_TO_OPEN: u32 = 3;

/// Why a delivery could not be completed; the source treats both alike (retry the object
/// later, never dead-letter it), but operators need to know which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Throttling, 5xx, timeouts, connection refused/reset, DNS, disk full.
    Transient,
    /// The destination refuses the sink as a whole: access denied, bad credentials, a
    /// destination that cannot be created, EACCES.
    SinkRefused,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Transient => "transient",
            FailureClass::SinkRefused => "sink_refused",
        }
    }
}

/// The probe schedule of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSchedule {
    /// Wait before the first probe; doubles per failed probe, with jitter.
    pub first: Duration,
    pub max: Duration,
}

impl Default for ProbeSchedule {
    fn default() -> Self {
        ProbeSchedule {
            first: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone)]
enum State {
    Closed {
        transient_in_a_row: u32,
    },
    Open {
        class: FailureClass,
        reason: String,
        since: Instant,
        failed_probes: u32,
        next_probe: Instant,
        probing: bool,
    },
}

/// What [`Breaker::admit`] allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Send; `probe` when this request is the half-open trial.
    Go { probe: bool },
    /// Do not send: the deadline passed or the source stopped retries while the breaker was
    /// open. Carries the breaker's reason.
    GiveUp { class: FailureClass, reason: String },
}

/// A snapshot for readiness, metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenBreaker {
    pub sink: String,
    pub class: FailureClass,
    pub reason: String,
    pub open_for: Duration,
}

pub struct Breaker {
    sink: String,
    schedule: ProbeSchedule,
    state: Mutex<State>,
    /// Requests waiting in [`admit`](Self::admit): while there are none and a probe is due, the
    /// breaker has nothing to probe with and the source must hand it some work.
    waiting: std::sync::atomic::AtomicUsize,
    /// Bumped on every change of state, so waiters and the board wake up.
    changed: watch::Sender<u64>,
    board: Mutex<Option<Arc<BoardInner>>>,
}

impl Breaker {
    pub fn new(sink: &str, schedule: ProbeSchedule) -> Arc<Breaker> {
        Arc::new(Breaker {
            sink: sink.to_string(),
            schedule,
            state: Mutex::new(State::Closed {
                transient_in_a_row: 0,
            }),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            changed: watch::channel(0).0,
            board: Mutex::new(None),
        })
    }

    pub fn sink(&self) -> &str {
        &self.sink
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        let board = lock(&self.board).clone();
        if let Some(b) = board {
            b.changed.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    pub fn open_state(&self) -> Option<OpenBreaker> {
        match &*self.lock() {
            State::Closed { .. } => None,
            State::Open {
                class,
                reason,
                since,
                ..
            } => Some(OpenBreaker {
                sink: self.sink.clone(),
                class: *class,
                reason: reason.clone(),
                open_for: since.elapsed(),
            }),
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(&*self.lock(), State::Open { .. })
    }

    /// Open, its probe due, no probe out and no request waiting to be one: the sink can only
    /// close if the source gives it something to send (its held deliveries ran out of time).
    pub fn starved(&self) -> bool {
        if self.waiting.load(std::sync::atomic::Ordering::Acquire) > 0 {
            return false;
        }
        match &*self.lock() {
            State::Closed { .. } => false,
            State::Open {
                next_probe,
                probing,
                ..
            } => !*probing && Instant::now() >= *next_probe,
        }
    }

    /// A request got an answer the destination means (accepted or refused per record): the
    /// sink works.
    pub fn succeeded(&self) {
        let was_open = {
            let mut s = self.lock();
            let was = match &*s {
                State::Open { since, .. } => Some(since.elapsed()),
                State::Closed { .. } => None,
            };
            *s = State::Closed {
                transient_in_a_row: 0,
            };
            was
        };
        if let Some(open_for) = was_open {
            tracing::info!(sink = %self.sink, ?open_for, "sink answers again: circuit closed, resuming");
            self.notify();
        }
    }

    /// A whole request failed. `probe` is what [`admit`](Self::admit) said about it.
    pub fn failed(&self, class: FailureClass, reason: &str, probe: bool) {
        let now = Instant::now();
        let opened = {
            let mut s = self.lock();
            match &mut *s {
                State::Closed { transient_in_a_row } => {
                    *transient_in_a_row += 1;
                    if class == FailureClass::SinkRefused
                        || *transient_in_a_row >= TRANSIENT_FAILURES_TO_OPEN
                    {
                        *s = State::Open {
                            class,
                            reason: reason.to_string(),
                            since: now,
                            failed_probes: 0,
                            next_probe: now + self.probe_wait(0),
                            probing: false,
                        };
                        true
                    } else {
                        false
                    }
                }
                State::Open {
                    class: c,
                    reason: r,
                    failed_probes,
                    next_probe,
                    probing,
                    ..
                } => {
                    *c = class;
                    if r != reason {
                        *r = reason.to_string();
                    }
                    if probe {
                        *failed_probes += 1;
                        *probing = false;
                        *next_probe = now + self.probe_wait(*failed_probes);
                    }
                    false
                }
            }
        };
        if opened {
            tracing::warn!(
                sink = %self.sink,
                class = class.as_str(),
                reason,
                "sink failing: circuit open, deliveries held and the source paused"
            );
        }
        self.notify();
    }

    fn probe_wait(&self, failed_probes: u32) -> Duration {
        backoff(
            failed_probes,
            self.schedule.first * 2,
            self.schedule.max.max(self.schedule.first),
            rand::random(),
        )
    }

    /// Waits until a request may be sent: at once while closed; while open, until this caller
    /// is the next probe. Gives up at `deadline` or when `stop` turns true.
    pub async fn admit(&self, deadline: Instant, stop: &mut watch::Receiver<bool>) -> Admission {
        struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            }
        }
        self.waiting
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting);
        let mut changed = self.changed.subscribe();
        loop {
            let wait_until = {
                let mut s = self.lock();
                match &mut *s {
                    State::Closed { .. } => return Admission::Go { probe: false },
                    State::Open {
                        class,
                        reason,
                        next_probe,
                        probing,
                        ..
                    } => {
                        let now = Instant::now();
                        if *stop.borrow() || now >= deadline {
                            return Admission::GiveUp {
                                class: *class,
                                reason: reason.clone(),
                            };
                        }
                        if !*probing && now >= *next_probe {
                            *probing = true;
                            return Admission::Go { probe: true };
                        }
                        if *probing {
                            deadline
                        } else {
                            (*next_probe).min(deadline)
                        }
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wait_until) => {}
                r = changed.changed() => if r.is_err() { return Admission::Go { probe: false } },
                r = stop.changed() => if r.is_err() {
                    // The control is gone: nobody can ask to stop any more; keep waiting on time.
                    tokio::time::sleep_until(wait_until).await;
                },
            }
        }
    }
}

/// Sleeps `d`, but no later than `deadline` and not past a stop request. False when stopped
/// or the deadline passed: the caller gives up instead of retrying.
pub async fn pause(d: Duration, deadline: Instant, stop: &mut watch::Receiver<bool>) -> bool {
    let until = (Instant::now() + d).min(deadline);
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep_until(until) => {}
        r = stop.changed() => if r.is_ok() && *stop.borrow() { return false },
    }
    Instant::now() < deadline && !*stop.borrow()
}

/// A deadline that never comes: waiting behind an open breaker for as long as it takes.
pub fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 86_400)
}

struct BoardInner {
    breakers: Mutex<Vec<Arc<Breaker>>>,
    /// The source can wait for a failing sink indefinitely (the SQS worker: its heartbeat
    /// keeps messages invisible), so deliveries behind an open breaker are held past
    /// `max_retry_duration`.
    hold_while_open: std::sync::atomic::AtomicBool,
    changed: watch::Sender<u64>,
    stop: watch::Sender<bool>,
}

/// What a running pipeline's sinks share with its source: every sink's breaker (the source
/// stops taking work while one is open; readiness reports it) and the request to stop
/// retrying (shutdown).
#[derive(Clone)]
pub struct DeliveryControl {
    inner: Arc<BoardInner>,
}

impl Default for DeliveryControl {
    fn default() -> Self {
        DeliveryControl::new()
    }
}

impl DeliveryControl {
    pub fn new() -> DeliveryControl {
        DeliveryControl {
            inner: Arc::new(BoardInner {
                breakers: Mutex::new(Vec::new()),
                hold_while_open: std::sync::atomic::AtomicBool::new(false),
                changed: watch::channel(0).0,
                stop: watch::channel(false).0,
            }),
        }
    }

    /// A new breaker for `sink`, on this board.
    pub fn breaker(&self, sink: &str, schedule: ProbeSchedule) -> Arc<Breaker> {
        let b = Breaker::new(sink, schedule);
        match b.board.lock() {
            Ok(mut g) => *g = Some(self.inner.clone()),
            Err(p) => *p.into_inner() = Some(self.inner.clone()),
        }
        lock(&self.inner.breakers).push(b.clone());
        b
    }

    pub fn open_breakers(&self) -> Vec<OpenBreaker> {
        let all: Vec<Arc<Breaker>> = lock(&self.inner.breakers).clone();
        all.iter().filter_map(|b| b.open_state()).collect()
    }

    /// Every sink with a breaker, and its state (`None`: closed).
    pub fn states(&self) -> Vec<(String, Option<OpenBreaker>)> {
        let all: Vec<Arc<Breaker>> = lock(&self.inner.breakers).clone();
        all.iter()
            .map(|b| (b.sink().to_string(), b.open_state()))
            .collect()
    }

    /// Completes when any breaker changes state.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// The source says it can wait for a failing sink as long as it takes (the SQS worker):
    /// deliveries behind an open breaker are then held past `max_retry_duration` — they are
    /// the breaker's probes, and releasing them would only have them received again. A source
    /// that cannot (a local run that must end) leaves this off: they fail at
    /// `max_retry_duration`.
    pub fn hold_while_open(&self, hold: bool) {
        self.inner
            .hold_while_open
            .store(hold, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn holds_while_open(&self) -> bool {
        self.inner
            .hold_while_open
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Some open breaker has nothing to probe with (see [`Breaker::starved`]).
    pub fn starved(&self) -> bool {
        let all: Vec<Arc<Breaker>> = lock(&self.inner.breakers).clone();
        all.iter().any(|b| b.starved())
    }

    /// Waits until no breaker is open.
    pub async fn wait_until_closed(&self) {
        let mut rx = self.subscribe();
        loop {
            if self.open_breakers().is_empty() {
                return;
            }
            // Probes change the state; a periodic look covers a lost wake-up.
            let _ = tokio::time::timeout(Duration::from_secs(1), rx.changed()).await;
        }
    }

    /// Sinks stop waiting for a destination that does not answer: held and retried
    /// deliveries fail at once (the source releases their objects). Used on shutdown.
    pub fn stop_retrying(&self) {
        self.inner.stop.send_replace(true);
        self.inner.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.inner.stop.subscribe()
    }

    pub fn is_stopping(&self) -> bool {
        *self.inner.stop.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> ProbeSchedule {
        ProbeSchedule {
            first: Duration::from_millis(100),
            max: Duration::from_secs(1),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refusal_opens_at_once_and_a_probe_closes() {
        let control = DeliveryControl::new();
        let b = control.breaker("cwl", schedule());
        let mut stop = control.stop_signal();
        let far = Instant::now() + Duration::from_secs(3600);
        assert_eq!(
            b.admit(far, &mut stop).await,
            Admission::Go { probe: false }
        );
        b.failed(FailureClass::SinkRefused, "AccessDeniedException", false);
        let open = control.open_breakers();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].sink, "cwl");
        assert_eq!(open[0].class, FailureClass::SinkRefused);
        let t = Instant::now();
        assert_eq!(b.admit(far, &mut stop).await, Admission::Go { probe: true });
        assert!(
            t.elapsed() >= Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        b.succeeded();
        assert!(control.open_breakers().is_empty());
        assert_eq!(
            b.admit(far, &mut stop).await,
            Admission::Go { probe: false }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_open_after_a_run_and_success_resets_the_run() {
        let control = DeliveryControl::new();
        let b = control.breaker("hec", schedule());
        for _ in 0..TRANSIENT_FAILURES_TO_OPEN - 1 {
            b.failed(FailureClass::Transient, "503", false);
        }
        b.succeeded();
        for _ in 0..TRANSIENT_FAILURES_TO_OPEN - 1 {
            b.failed(FailureClass::Transient, "503", false);
        }
        assert!(!b.is_open());
        b.failed(FailureClass::Transient, "503", false);
        assert!(b.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn only_one_probe_at_a_time_and_failed_probes_back_off() {
        let control = DeliveryControl::new();
        let b = control.breaker("s", schedule());
        let mut stop = control.stop_signal();
        let far = Instant::now() + Duration::from_secs(3600);
        b.failed(FailureClass::SinkRefused, "denied", false);
        assert_eq!(b.admit(far, &mut stop).await, Admission::Go { probe: true });
        // A second caller waits while the probe is out; it gives up at its deadline.
        let near = Instant::now() + Duration::from_millis(50);
        let mut stop2 = control.stop_signal();
        assert!(matches!(
            b.admit(near, &mut stop2).await,
            Admission::GiveUp {
                class: FailureClass::SinkRefused,
                ..
            }
        ));
        b.failed(FailureClass::SinkRefused, "denied", true);
        let t = Instant::now();
        assert_eq!(b.admit(far, &mut stop).await, Admission::Go { probe: true });
        // Second probe: base 200 ms doubled once, equal jitter → at least 200 ms.
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_with_nothing_to_send_asks_for_work() {
        let control = DeliveryControl::new();
        let b = control.breaker("s", schedule());
        assert!(!control.starved(), "closed");
        b.failed(FailureClass::SinkRefused, "denied", false);
        assert!(!control.starved(), "probe not due yet");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(control.starved(), "due, and nobody waits to probe");
        let mut stop = control.stop_signal();
        let far = Instant::now() + Duration::from_secs(3600);
        assert_eq!(b.admit(far, &mut stop).await, Admission::Go { probe: true });
        assert!(!control.starved(), "a probe is out");
        b.failed(FailureClass::SinkRefused, "denied", true);
        let waiter = {
            let b = b.clone();
            let mut stop = control.stop_signal();
            tokio::spawn(async move { b.admit(far, &mut stop).await })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(!control.starved(), "a request waits to be the next probe");
        assert_eq!(waiter.await.expect("waiter"), Admission::Go { probe: true });
    }

    #[tokio::test(start_paused = true)]
    async fn stop_retrying_releases_waiters() {
        let control = DeliveryControl::new();
        let b = control.breaker("s", schedule());
        b.failed(FailureClass::SinkRefused, "denied", false);
        let mut stop = control.stop_signal();
        let far = Instant::now() + Duration::from_secs(3600);
        assert_eq!(b.admit(far, &mut stop).await, Admission::Go { probe: true });
        let waiter = {
            let b = b.clone();
            let mut stop = control.stop_signal();
            tokio::spawn(async move { b.admit(far, &mut stop).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        control.stop_retrying();
        let got = waiter.await.expect("waiter");
        assert!(matches!(got, Admission::GiveUp { .. }), "{got:?}");
    }
}
