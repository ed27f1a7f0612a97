//! The worker's counters as metrics: mirrored from [`WorkerStats`] at scrape/export time (one
//! source of truth), plus the queue depth sampled with GetQueueAttributes. Names follow the
//! OpenTelemetry messaging conventions where they apply (`messaging.system = aws_sqs`,
//! `messaging.destination.name` = queue).

use crate::stats::WorkerStats;
use std::sync::Arc;
use std::time::Duration;
use trailhose_ops::{Health, Registry};

fn queue_name(url: &str) -> String {
    url.rsplit('/').next().unwrap_or(url).to_string()
}

pub fn export(registry: &Arc<Registry>, stats: Arc<WorkerStats>, queue_url: &str) {
    let queue = queue_name(queue_url);
    registry.attach_histogram(
        "trailhose_lag_seconds",
        "now minus delivery time of each delivered object (from its key)",
        vec![],
        stats.lag_seconds.clone(),
    );
    registry.add_collector(move |r| {
        let s = stats.snapshot();
        let q = || {
            vec![
                ("messaging_system", "aws_sqs".to_string()),
                ("messaging_destination_name", queue.clone()),
            ]
        };
        let counters: [(&'static str, &'static str, u64); 14] = [
            (
                "trailhose_messaging_messages_received",
                "SQS messages received",
                s.messages_received,
            ),
            (
                "trailhose_messaging_messages_deleted",
                "SQS messages deleted after full acknowledgement",
                s.messages_deleted,
            ),
            (
                "trailhose_messaging_messages_dead_lettered",
                "SQS messages sent to the dead-letter place",
                s.messages_dead_lettered,
            ),
            (
                "trailhose_messaging_messages_released",
                "SQS messages released at shutdown",
                s.messages_released,
            ),
            (
                "trailhose_messaging_messages_retried",
                "SQS messages left for another try",
                s.messages_retried,
            ),
            (
                "trailhose_messaging_messages_sink_retried",
                "SQS messages left or released because a sink failed (not counted as poison)",
                s.messages_sink_retried,
            ),
            (
                "trailhose_messaging_receive_pauses",
                "times receiving paused because a sink's breaker was open",
                s.receive_pauses,
            ),
            (
                "trailhose_messaging_test_events",
                "s3:TestEvent messages deleted",
                s.test_events,
            ),
            ("trailhose_objects_read", "S3 objects read", s.objects_read),
            (
                "trailhose_objects_delivered",
                "S3 objects whose records every sink acknowledged",
                s.objects_delivered,
            ),
            (
                "trailhose_objects_duplicates",
                "notifications for objects already shipped",
                s.duplicates,
            ),
            (
                "trailhose_source_records",
                "records read from S3 objects",
                s.records,
            ),
            (
                "trailhose_source_bytes_compressed",
                "compressed bytes read from S3",
                s.compressed_bytes,
            ),
            (
                "trailhose_source_bytes_decompressed",
                "decompressed bytes read from S3",
                s.decompressed_bytes,
            ),
        ];
        for (name, help, v) in counters {
            r.counter(name, help, q()).set_total(v);
        }
        for (reason, n) in &s.skipped {
            r.counter(
                "trailhose_objects_skipped",
                "objects skipped, by reason",
                vec![("reason", reason.clone())],
            )
            .set_total(*n);
        }
        r.gauge(
            "trailhose_messages_in_flight",
            "SQS messages being processed",
            q(),
        )
        .set(s.messages_in_flight);
        r.gauge(
            "trailhose_objects_in_flight",
            "S3 objects being processed",
            vec![],
        )
        .set(s.objects_in_flight);
        r.gauge(
            "trailhose_lag_milliseconds",
            "now minus delivery time of the last delivered object",
            vec![],
        )
        .set(s.lag_ms_last);
    });
}

/// Samples the queue depth every 30 s and makes SQS reachability a readiness check.
pub fn watch_queue(
    registry: &Arc<Registry>,
    health: &Arc<Health>,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
) {
    let queue = queue_name(&queue_url);
    let labels = || vec![("messaging_destination_name", queue.clone())];
    let visible = registry.gauge(
        "trailhose_queue_messages_visible",
        "ApproximateNumberOfMessages (sampled)",
        labels(),
    );
    let invisible = registry.gauge(
        "trailhose_queue_messages_not_visible",
        "ApproximateNumberOfMessagesNotVisible (sampled)",
        labels(),
    );
    let check_sqs = sqs.clone();
    let check_url = queue_url.clone();
    health.add_check(
        "sqs",
        Arc::new(move || {
            let sqs = check_sqs.clone();
            let url = check_url.clone();
            Box::pin(async move {
                sqs.get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        format!(
                            "GetQueueAttributes: {}",
                            aws_sdk_sqs::error::DisplayErrorContext(&e)
                        )
                    })
            })
        }),
    );
    tokio::spawn(async move {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        loop {
            if let Ok(out) = sqs
                .get_queue_attributes()
                .queue_url(&queue_url)
                .attribute_names(A::ApproximateNumberOfMessages)
                .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
            {
                let get = |k: &A| {
                    out.attributes()
                        .and_then(|m| m.get(k))
                        .and_then(|v| v.parse::<i64>().ok())
                        .unwrap_or(0)
                };
                visible.set(get(&A::ApproximateNumberOfMessages));
                invisible.set(get(&A::ApproximateNumberOfMessagesNotVisible));
            }
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    });
}
