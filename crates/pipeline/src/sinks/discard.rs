//! Counts and acknowledges everything: measures the pipeline without any sink cost.

use crate::sink::{Delivery, Sink, SinkFuture, SinkReport};
use tokio::sync::mpsc;

pub struct DiscardSink {
    pub name: String,
}

impl Sink for DiscardSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Box<Self>, mut rx: mpsc::Receiver<Delivery>) -> SinkFuture {
        Box::pin(async move {
            let mut report = SinkReport {
                name: self.name,
                ..Default::default()
            };
            while let Some(d) = rx.recv().await {
                for r in d.records() {
                    report.records += 1;
                    report.bytes += r.range.len() as u64;
                }
                d.token.ack();
            }
            report
        })
    }
}
