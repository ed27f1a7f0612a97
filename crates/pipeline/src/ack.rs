//! End-to-end acknowledgements. Every delivery of a record chunk to a sink carries an
//! [`AckToken`]; an object is finished when the source's [`ObjectAck`] and every token are gone.
//! A token dropped without a verdict counts as a failure, so a crashed sink task can never make
//! an object look delivered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use trailhose_core::sync::lock;

/// The verdict on one object once every sink has answered for every record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectOutcome {
    /// Every record reached every sink it was routed to, or that sink's dead-letter place.
    Delivered { dead_lettered: u64 },
    /// At least one delivery failed and was not dead-lettered: the object must be retried.
    Failed { reasons: Vec<String> },
}

#[derive(Default)]
struct State {
    failures: Vec<String>,
    sender: Option<oneshot::Sender<ObjectOutcome>>,
}

struct Inner {
    dead_lettered: AtomicU64,
    state: Mutex<State>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let state = match self.state.get_mut() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let outcome = if state.failures.is_empty() {
            ObjectOutcome::Delivered {
                dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            }
        } else {
            ObjectOutcome::Failed {
                reasons: std::mem::take(&mut state.failures),
            }
        };
        if let Some(tx) = state.sender.take() {
            // The receiver may be gone (the source gave up waiting); nothing to tell then.
            let _ = tx.send(outcome);
        }
    }
}

impl Inner {
    fn record_failure(&self, reason: String) {
        let mut s = lock(&self.state);
        // Bound the list: one reason per distinct failure is enough to act on.
        if s.failures.len() < 16 && !s.failures.contains(&reason) {
            s.failures.push(reason);
        }
    }
}

/// Held by the source while it emits an object's records. Dropping it (after the last chunk)
/// lets the outcome fire once the sinks are done.
pub struct ObjectAck {
    inner: Arc<Inner>,
}

impl ObjectAck {
    pub fn new() -> (ObjectAck, oneshot::Receiver<ObjectOutcome>) {
        let (tx, rx) = oneshot::channel();
        let inner = Arc::new(Inner {
            dead_lettered: AtomicU64::new(0),
            state: Mutex::new(State {
                failures: Vec::new(),
                sender: Some(tx),
            }),
        });
        (ObjectAck { inner }, rx)
    }

    pub fn token(&self) -> AckToken {
        AckToken {
            inner: Some(self.inner.clone()),
        }
    }

    /// Marks the object failed from the source side (e.g. the router could not hand it on).
    pub fn fail(&self, reason: impl Into<String>) {
        self.inner.record_failure(reason.into());
    }
}

/// One sink's obligation for one chunk.
pub struct AckToken {
    inner: Option<Arc<Inner>>,
}

impl AckToken {
    /// Another obligation for the same object (a stage fanning a chunk out to several sinks).
    pub fn split(&self) -> AckToken {
        AckToken {
            inner: self.inner.clone(),
        }
    }

    /// The sink accepted (durably) every record of the delivery.
    pub fn ack(mut self) {
        self.inner = None;
    }

    /// The sink could not deliver `records` but stored them in its dead-letter place.
    pub fn dead_lettered(mut self, records: u64) {
        if let Some(i) = self.inner.take() {
            i.dead_lettered.fetch_add(records, Ordering::Relaxed);
        }
    }

    /// The sink neither delivered nor dead-lettered: the object has to come back.
    pub fn fail(mut self, reason: impl Into<String>) {
        if let Some(i) = self.inner.take() {
            i.record_failure(reason.into());
        }
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        if let Some(i) = self.inner.take() {
            i.record_failure("a sink dropped a delivery without acknowledging it".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivered_when_all_tokens_ack() {
        let (ack, rx) = ObjectAck::new();
        let a = ack.token();
        let b = ack.token();
        drop(ack);
        a.ack();
        b.dead_lettered(3);
        assert_eq!(
            rx.await.ok(),
            Some(ObjectOutcome::Delivered { dead_lettered: 3 })
        );
    }

    #[tokio::test]
    async fn dropped_token_fails_the_object() {
        let (ack, mut rx) = ObjectAck::new();
        let a = ack.token();
        let b = ack.token();
        drop(ack);
        a.ack();
        assert!(rx.try_recv().is_err(), "not finished while a token lives");
        drop(b);
        match rx.await {
            Ok(ObjectOutcome::Failed { reasons }) => assert!(reasons[0].contains("dropped")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn explicit_failure_is_reported_once() {
        let (ack, rx) = ObjectAck::new();
        for _ in 0..3 {
            ack.token().fail("throttled");
        }
        drop(ack);
        assert_eq!(
            rx.await.ok(),
            Some(ObjectOutcome::Failed {
                reasons: vec!["throttled".into()]
            })
        );
    }
}
