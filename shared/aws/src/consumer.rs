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

/// What a connector does with a message besides acknowledging it: give it back later, or hand it
/// to the dead-letter queue (SQS in production; a recorder in tests).
pub trait MessageControl: Send + Sync {
    /// The message comes back after `after` (its visibility timeout), not before.
    fn delay(
        &self,
        receipt_handle: &str,
        after: std::time::Duration,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// Sends the message to the dead-letter queue with the reason.
    fn dead_letter(
        &self,
        body: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// The SQS implementation: `ChangeMessageVisibility` on the connector's queue, `SendMessage` to its DLQ.
#[derive(Debug, Clone)]
pub struct SqsControl {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dlq_url: String,
}

impl MessageControl for SqsControl {
    async fn delay(&self, receipt_handle: &str, after: std::time::Duration) -> Result<(), String> {
        // SQS allows up to 12 hours.
        let secs = i32::try_from(after.as_secs().clamp(1, 43_200)).unwrap_or(43_200);
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(secs)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), String> {
        let attr = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(reason.chars().take(1000).collect::<String>())
            .build()
            .map_err(|e| e.to_string())?;
        self.client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(body)
            .message_attributes("failure_reason", attr)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
    }
}

/// What the connector decided for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done (or a duplicate, or nothing to do): acknowledge.
    Ack,
    /// Transient: back to the queue after this long.
    RetryAfter(std::time::Duration),
    /// Permanent: to the DLQ now, with the reason.
    DeadLetter(String),
}

/// Runs a connector over a batch: each message's disposition is carried out (visibility delay,
/// dead-letter), and only messages to retry are reported as failures.
pub async fn each_command<F, Fut, M>(
    event: SqsEvent,
    control: &M,
    mut handle: F,
) -> SqsBatchResponse
where
    F: FnMut(Envelope, u32, String) -> Fut,
    Fut: Future<Output = Disposition>,
    M: MessageControl,
{
    let mut failures = Vec::new();
    for record in event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let receipt = record.receipt_handle.clone().unwrap_or_default();
        let body = record.body.clone().unwrap_or_default();
        let attempt = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        // The command's span (message id, correlation id, attempt) covers its handling and what
        // happens to its message, so every log line about it carries the correlation id.
        let (disposition, span) = match Envelope::parse(&body) {
            Ok(envelope) => {
                let span = tracing::info_span!("command", %message_id, correlation_id = %envelope.correlation_id, attempt);
                let d = handle(envelope, attempt, message_id.clone())
                    .instrument(span.clone())
                    .await;
                (d, span)
            }
            Err(e) => (
                Disposition::DeadLetter(e.to_string()),
                tracing::info_span!("command", %message_id, attempt),
            ),
        };
        let retry = async {
            match disposition {
                Disposition::Ack => false,
                Disposition::RetryAfter(after) => {
                    if let Err(e) = control.delay(&receipt, after).await {
                        tracing::warn!(%message_id, error = %e, "could not set the retry delay; the queue's visibility timeout applies");
                    }
                    true
                }
                Disposition::DeadLetter(reason) => {
                    tracing::error!(%message_id, %reason, "permanent failure: to the dead-letter queue");
                    if let Err(e) = control.dead_letter(&body, &reason).await {
                        tracing::error!(%message_id, error = %e, "could not dead-letter; the message returns to the queue");
                        true
                    } else {
                        false
                    }
                }
            }
        }
        .instrument(span)
        .await;
        if retry {
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
