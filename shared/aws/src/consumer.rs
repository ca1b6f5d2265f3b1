//! SQS consumers: one message's handler lifted to the batch. Each message gets its own span
//! (message id, correlation id); a failed message is reported in `batchItemFailures` so that only
//! it returns to the queue, and after the queue's `maxReceiveCount` it goes to the DLQ.

use std::future::Future;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use eucora_service::messages::Envelope;
use tracing::Instrument;

/// Why a message failed, for the log.
#[derive(Debug)]
pub struct MessageFailure {
    /// Worth retrying (transient) or not (it will reach the DLQ after the retries).
    pub retryable: bool,
    pub reason: String,
}

impl MessageFailure {
    pub fn retryable(reason: impl std::fmt::Display) -> MessageFailure {
        MessageFailure {
            retryable: true,
            reason: reason.to_string(),
        }
    }

    pub fn permanent(reason: impl std::fmt::Display) -> MessageFailure {
        MessageFailure {
            retryable: false,
            reason: reason.to_string(),
        }
    }
}

/// Runs `handle` on every message of the batch, one after another, and reports the failures.
pub async fn each_message<F, Fut>(event: SqsEvent, mut handle: F) -> SqsBatchResponse
where
    F: FnMut(Envelope) -> Fut,
    Fut: Future<Output = Result<(), MessageFailure>>,
{
    let mut failures = Vec::new();
    for record in event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let receive_count = record
            .attributes
            .get("ApproximateReceiveCount")
            .cloned()
            .unwrap_or_default();
        let envelope = match Envelope::parse(record.body.as_deref().unwrap_or_default()) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(%message_id, %receive_count, error = %e, "unusable message: it will reach the DLQ");
                failures.push(message_id);
                continue;
            }
        };
        let span = tracing::info_span!("message", %message_id, correlation_id = %envelope.correlation_id, %receive_count);
        let outcome = handle(envelope).instrument(span.clone()).await;
        if let Err(f) = outcome {
            span.in_scope(|| {
                if f.retryable {
                    tracing::warn!(reason = %f.reason, "message failed; it returns to the queue");
                } else {
                    tracing::error!(reason = %f.reason, "message failed permanently; it will reach the DLQ");
                }
            });
            failures.push(message_id);
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    response
}
