//! OpenTelemetry export over OTLP/HTTP: the metrics of the [`Registry`] as observable
//! instruments (one source of truth for Prometheus and OTLP), and `tracing` spans as traces via
//! tracing-opentelemetry. Nothing is exported unless an endpoint is configured.

use crate::metrics::{Registry, SeriesValue};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use std::sync::Arc;
use std::time::Duration;

pub use opentelemetry_sdk::trace::Tracer;

/// Keeps the providers alive; dropping it flushes and shuts them down.
pub struct OtelGuard {
    meters: SdkMeterProvider,
    tracer: SdkTracerProvider,
}

impl Drop for OtelGuard {
    fn drop(&mut self) {
        let _ = self.meters.force_flush();
        let _ = self.tracer.force_flush();
        let _ = self.meters.shutdown();
        let _ = self.tracer.shutdown();
    }
}

/// The SDK exports from its own threads, but the hyper client needs the tokio runtime: run
/// each request on the runtime that called [`init`].
#[derive(Debug, Clone)]
struct OnRuntime {
    handle: tokio::runtime::Handle,
    inner: opentelemetry_http::hyper::HyperClient,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OnRuntime {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let inner = self.inner.clone();
        self.handle
            .spawn(async move { inner.send_bytes(request).await })
            .await
            .map_err(|e| -> opentelemetry_http::HttpError { Box::new(e) })?
    }
}

fn hyper_client() -> Result<OnRuntime, String> {
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| "OpenTelemetry export must be started inside the tokio runtime".to_string())?;
    let _guard = handle.enter();
    Ok(OnRuntime {
        inner: opentelemetry_http::hyper::HyperClient::with_default_connector(
            Duration::from_secs(10),
            None,
        ),
        handle: handle.clone(),
    })
}

/// Starts OTLP/HTTP (protobuf) export to `endpoint` (e.g. `http://collector:4318`). Metrics
/// present in `registry` when this is called are exported every `interval`; returns the guard
/// and a tracer for the tracing-opentelemetry layer.
pub fn init(
    endpoint: &str,
    service_name: &str,
    registry: Arc<Registry>,
    interval: Duration,
) -> Result<(OtelGuard, opentelemetry_sdk::trace::Tracer), String> {
    let base = endpoint.trim_end_matches('/');
    let resource = Resource::builder()
        .with_service_name(service_name.to_string())
        .build();
    let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_http_client(hyper_client()?)
        .with_endpoint(format!("{base}/v1/metrics"))
        .build()
        .map_err(|e| format!("OTLP metric exporter: {e}"))?;
    let reader = PeriodicReader::builder(metric_exporter)
        .with_interval(interval)
        .build();
    let meters = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource.clone())
        .build();
    let meter = meters.meter("trailhose");
    registry.collect();
    let mut known = std::collections::HashSet::new();
    bridge_new_families(&meter, &registry, &mut known);
    // Components may register families after export starts (the worker does): pick them up.
    let late_registry = registry.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            bridge_new_families(&meter, &late_registry, &mut known);
        }
    });
    let span_exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(hyper_client()?)
        .with_endpoint(format!("{base}/v1/traces"))
        .build()
        .map_err(|e| format!("OTLP span exporter: {e}"))?;
    let tracer_provider = SdkTracerProvider::builder()
        .with_batch_exporter(span_exporter)
        .with_resource(resource)
        .build();
    let tracer = tracer_provider.tracer("trailhose");
    Ok((
        OtelGuard {
            meters,
            tracer: tracer_provider,
        },
        tracer,
    ))
}

/// Registers an observable instrument for every family not bridged yet.
fn bridge_new_families(
    meter: &opentelemetry::metrics::Meter,
    registry: &Arc<Registry>,
    known: &mut std::collections::HashSet<&'static str>,
) {
    for (name, kind) in registry.families() {
        if !known.insert(name) {
            continue;
        }
        let reg = registry.clone();
        // OpenTelemetry names use dots; Prometheus names use underscores.
        let otel_name = name.replacen("trailhose_", "trailhose.", 1);
        match kind {
            "counter" => {
                meter
                    .u64_observable_counter(otel_name)
                    .with_callback(move |obs| {
                        for (labels, v) in reg.series(name) {
                            if let SeriesValue::Counter(v) = v {
                                obs.observe(v, &attrs(&labels));
                            }
                        }
                    })
                    .build();
            }
            "gauge" => {
                meter
                    .i64_observable_gauge(otel_name)
                    .with_callback(move |obs| {
                        for (labels, v) in reg.series(name) {
                            if let SeriesValue::Gauge(v) = v {
                                obs.observe(v, &attrs(&labels));
                            }
                        }
                    })
                    .build();
            }
            _ => {}
        }
    }
}

fn attrs(labels: &[(&'static str, String)]) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(k, v)| KeyValue::new(*k, v.clone()))
        .collect()
}
