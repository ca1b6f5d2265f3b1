//! The SQS adapter: sends envelopes to the queue each function is configured with.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::MessageAttributeValue;
use eucora_domain::evidence::Platform;
use eucora_service::messages::Envelope;
use eucora_service::ports::{Queue, QueueError, QueueName};

/// The queue URLs a function may send to; the others stay `None`.
#[derive(Debug, Clone, Default)]
pub struct QueueUrls {
    pub scoring: Option<String>,
    pub intune: Option<String>,
    pub jamf: Option<String>,
}

impl QueueUrls {
    fn url(&self, queue: QueueName) -> Option<&str> {
        match queue {
            QueueName::Scoring => self.scoring.as_deref(),
            QueueName::Connector(Platform::Windows) => self.intune.as_deref(),
            QueueName::Connector(Platform::Macos) => self.jamf.as_deref(),
        }
    }
}

/// Sends messages over SQS, with the correlation id as a message attribute too.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    urls: QueueUrls,
}

impl SqsQueue {
    pub fn new(client: Client, urls: QueueUrls) -> SqsQueue {
        SqsQueue { client, urls }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn attribute(value: &str) -> Option<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .ok()
}

impl Queue for SqsQueue {
    async fn send(&self, queue: QueueName, message: &Envelope) -> Result<(), QueueError> {
        let url = self.urls.url(queue).ok_or_else(|| QueueError {
            queue,
            reason: "this function has no URL configured for the queue".into(),
        })?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(message.to_json())
            .set_message_attributes(Some(
                [
                    ("correlation_id", message.correlation_id.as_str()),
                    ("message_id", message.message_id.as_str()),
                ]
                .into_iter()
                .filter_map(|(k, v)| attribute(v).map(|a| (k.to_owned(), a)))
                .collect(),
            ))
            .send()
            .await
            .map_err(|e| QueueError {
                queue,
                reason: DisplayErrorContext(&e).to_string(),
            })?;
        Ok(())
    }
}
