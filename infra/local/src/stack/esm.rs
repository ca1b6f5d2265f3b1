//! An SQS event-source mapping with Lambda's semantics, for the local stack: receive up to the
//! batch size, hand the batch to the same handler the Lambda function runs, delete the messages it
//! did not report as failures. Failures stay on the queue until their visibility timeout ends, and
//! the queue's own redrive policy moves a message received more than `maxReceiveCount` times to
//! its DLQ, as in AWS.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageSystemAttributeName;

/// One queue polled for one function.
#[derive(Debug, Clone)]
pub struct EventSourceMapping {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub queue_arn: String,
    /// The trigger's `BatchSize` (1 to 10).
    pub batch_size: i32,
}

impl EventSourceMapping {
    /// Receives one batch (waiting up to `wait` for one), runs `handle` on it, and deletes the
    /// messages that succeeded. Returns how many messages were received.
    pub async fn poll_once<F, Fut>(&self, wait: Duration, handle: F) -> Result<usize>
    where
        F: FnOnce(SqsEvent) -> Fut,
        Fut: Future<Output = SqsBatchResponse>,
    {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size.clamp(1, 10))
            .wait_time_seconds(i32::try_from(wait.as_secs()).unwrap_or(20).min(20))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .with_context(|| format!("receiving from {}", self.queue_url))?;
        let messages = out.messages();
        if messages.is_empty() {
            return Ok(0);
        }
        let mut event = SqsEvent::default();
        for m in messages {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id().map(str::to_owned);
            record.receipt_handle = m.receipt_handle().map(str::to_owned);
            record.body = m.body().map(str::to_owned);
            record.md5_of_body = m.md5_of_body().map(str::to_owned);
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(self.queue_arn.clone());
            record.aws_region = Some(crate::stack::provision::REGION.into());
            if let Some(attrs) = m.attributes() {
                for (k, v) in attrs {
                    record.attributes.insert(k.as_str().to_owned(), v.clone());
                }
            }
            event.records.push(record);
        }
        let handles: Vec<(String, String)> = messages
            .iter()
            .filter_map(|m| Some((m.message_id()?.to_owned(), m.receipt_handle()?.to_owned())))
            .collect();
        let response = handle(event).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        for (id, receipt) in &handles {
            if !failed.contains(&id.as_str()) {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .with_context(|| format!("deleting {id}"))?;
            }
        }
        Ok(handles.len())
    }
}
