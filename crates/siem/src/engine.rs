//! The SIEM sinks' side of the delivery engine ([`trailhose_pipeline::delivery::engine`]): how
//! a record becomes a document — the output shape (`raw`/`ecs`/`ocsf`) and, for sinks with
//! several destinations, the index or topic template. Batching, rate, retries, the breaker,
//! dead letters and acknowledgements are the engine's.

use crate::format::render;
use std::sync::Arc;
use trailhose_config::siem::{DeliveryConfig, OutputFormat};
use trailhose_pipeline::delivery::engine::{Prepare, Prepared, Refusal};
use trailhose_pipeline::delivery::DeadLetterPlace;
use trailhose_pipeline::template::Template;
use trailhose_pipeline::{RecordChunk, RecordMeta};

pub use trailhose_pipeline::delivery::engine::{
    content_id, BatchSink, Doc, SendFuture, SendResult, Transport, Verdict, MAX_RETRY_AFTER,
};

/// How a sink names the destination of each record (index, topic).
pub struct Router {
    pub template: Template,
    /// Makes a rendered name legal for the destination (lower-case index names, …).
    pub sanitize: fn(String) -> String,
}

/// A SIEM sink: records shaped by `format`, routed by `router`, sent by `transport`.
pub fn batch_sink<T: Transport>(
    name: &str,
    format: OutputFormat,
    delivery: &DeliveryConfig,
    router: Option<Router>,
    dead_letters: Arc<dyn DeadLetterPlace>,
    transport: T,
) -> BatchSink<T> {
    let prepare: Prepare = Box::new(move |chunk: &RecordChunk, r: &RecordMeta| {
        let mut body = Vec::with_capacity(r.range.len() + 64);
        render(format, chunk, r, &mut body).map_err(|reason| Refusal {
            label: "format",
            reason,
            dest: String::new(),
        })?;
        let dest = match &router {
            Some(router) => (router.sanitize)(router.template.render(&r.fields, &chunk.object)),
            None => String::new(),
        };
        Ok(Prepared {
            body,
            dest,
            time_ms: r.fields.event_time_ms,
        })
    });
    BatchSink::new(name, delivery, transport, prepare, dead_letters)
}
