//! The local event-source mapping keeps Lambda's semantics on moto's queues: successes are
//! deleted, a reported failure comes back, and after maxReceiveCount it is in the DLQ.

use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::QueueAttributeName;
use eucora_local::stack::esm::EventSourceMapping;
use eucora_local::stack::moto::Moto;

fn fail_the_poison(event: &SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for r in &event.records {
        if r.body.as_deref() == Some("poison") {
            let mut f = BatchItemFailure::default();
            f.item_identifier = r.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(f);
        }
    }
    response
}

#[tokio::test]
async fn partial_batch_failures_come_back_then_reach_the_dlq() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let moto = Moto::start(&repo).unwrap();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk().await);
    let dlq = sqs
        .create_queue()
        .queue_name("esm-dlq")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let dlq_arn = "arn:aws:sqs:us-east-1:123456789012:esm-dlq";
    let url = sqs
        .create_queue()
        .queue_name("esm-main")
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"2"}}"#),
        )
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    for body in ["good", "poison"] {
        sqs.send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let esm = EventSourceMapping {
        sqs: sqs.clone(),
        queue_url: url.clone(),
        queue_arn: "arn:aws:sqs:us-east-1:123456789012:esm-main".into(),
        batch_size: 10,
    };

    let mut seen = Vec::new();
    for _ in 0..6 {
        esm.poll_once(Duration::from_secs(1), |event| {
            seen.extend(event.records.iter().filter_map(|r| r.body.clone()));
            let counts: Vec<String> = event
                .records
                .iter()
                .filter_map(|r| r.attributes.get("ApproximateReceiveCount").cloned())
                .collect();
            assert!(!counts.is_empty());
            let response = fail_the_poison(&event);
            async move { response }
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(
        seen.iter().filter(|b| *b == "good").count(),
        1,
        "a success is deleted: {seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|b| *b == "poison").count(),
        2,
        "a failure comes back until maxReceiveCount: {seen:?}"
    );
    let dead = sqs
        .receive_message()
        .queue_url(&dlq)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert_eq!(dead.messages().len(), 1);
    assert_eq!(dead.messages()[0].body(), Some("poison"));
}
