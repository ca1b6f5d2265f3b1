//! The SQS adapter and the queues' redrive behaviour against moto.

mod common;

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use eucora_aws::{QueueUrls, SqsQueue};
use eucora_domain::{CorrelationId, DeploymentId, Timestamp};
use eucora_service::messages::{Body, Envelope};
use eucora_service::ports::{Queue, QueueName};

async fn client() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&common::sdk().await)
}

async fn queue_with_dlq(c: &aws_sdk_sqs::Client, max_receive: u32) -> (String, String) {
    let dlq = c
        .create_queue()
        .queue_name(common::unique("dlq"))
        .send()
        .await
        .unwrap();
    let dlq_url = dlq.queue_url().unwrap().to_owned();
    let arn = c
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let q = c
        .create_queue()
        .queue_name(common::unique("main"))
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({ "deadLetterTargetArn": arn, "maxReceiveCount": max_receive.to_string() }).to_string(),
        )
        .send()
        .await
        .unwrap();
    (q.queue_url().unwrap().to_owned(), dlq_url)
}

fn envelope() -> Envelope {
    Envelope::new(
        CorrelationId::parse("dp-20261123-0001").unwrap(),
        "score:dep-1".into(),
        Timestamp::parse("2026-11-23T09:00:00Z").unwrap(),
        Body::ScoreDeployment {
            deployment_id: DeploymentId::parse("dep-1").unwrap(),
        },
    )
}

#[tokio::test]
async fn a_sent_envelope_arrives_with_its_correlation_id() {
    let c = client().await;
    let (url, _) = queue_with_dlq(&c, 5).await;
    let q = SqsQueue::new(
        c.clone(),
        QueueUrls {
            scoring: Some(url.clone()),
            ..QueueUrls::default()
        },
    );
    q.send(QueueName::Scoring, &envelope()).await.unwrap();
    let got = c
        .receive_message()
        .queue_url(&url)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    let m = &got.messages()[0];
    assert_eq!(Envelope::parse(m.body().unwrap()).unwrap(), envelope());
    assert_eq!(
        m.message_attributes().unwrap()["correlation_id"].string_value(),
        Some("dp-20261123-0001")
    );
}

#[tokio::test]
async fn sending_to_a_queue_the_function_was_not_given_fails_clearly() {
    let q = SqsQueue::new(client().await, QueueUrls::default());
    let err = q.send(QueueName::Scoring, &envelope()).await.unwrap_err();
    assert!(err.reason.contains("no URL configured"), "{err}");
}

#[tokio::test]
async fn a_message_that_keeps_failing_goes_to_the_dlq_after_max_receive_count() {
    let c = client().await;
    let (url, dlq) = queue_with_dlq(&c, 2).await;
    let q = SqsQueue::new(
        c.clone(),
        QueueUrls {
            scoring: Some(url.clone()),
            ..QueueUrls::default()
        },
    );
    q.send(QueueName::Scoring, &envelope()).await.unwrap();

    // Two receives without a delete: the consumer failed twice.
    for attempt in 1..=2 {
        let got = c
            .receive_message()
            .queue_url(&url)
            .wait_time_seconds(2)
            .send()
            .await
            .unwrap();
        assert_eq!(got.messages().len(), 1, "receive {attempt}");
        tokio::time::sleep(Duration::from_millis(1200)).await; // let the visibility timeout lapse
    }
    // The third receive finds the main queue empty: the message was redriven.
    let got = c
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(got.messages().is_empty());
    let dead = c
        .receive_message()
        .queue_url(&dlq)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert_eq!(dead.messages().len(), 1);
    assert_eq!(
        Envelope::parse(dead.messages()[0].body().unwrap()).unwrap(),
        envelope()
    );
}
