//! Runs one task per batch with at most `limit` at once: the shared shape of every batched
//! network sink's sender.

use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

/// Takes batches from `rx` until it closes and runs `work(batch)` for each, bounded by `limit`
/// concurrent tasks; waits for all of them before returning. A task that panics is logged under
/// `sink`: its delivery states were dropped with it, so their tokens fail the objects rather
/// than acknowledge them.
pub async fn bounded<B, F, Fut>(mut rx: mpsc::Receiver<B>, limit: usize, sink: &str, work: F)
where
    B: Send + 'static,
    F: Fn(B) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    let mut tasks = JoinSet::new();
    let note = |done: Result<(), tokio::task::JoinError>| {
        if let Err(e) = done {
            tracing::error!(sink, error = %e, "sink batch task failed");
        }
    };
    while let Some(batch) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let fut = work(batch);
        tasks.spawn(async move {
            fut.await;
            drop(permit);
        });
        while let Some(done) = tasks.try_join_next() {
            note(done);
        }
    }
    while let Some(done) = tasks.join_next().await {
        note(done);
    }
}
