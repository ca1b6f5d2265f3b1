//! The local stack creates in moto exactly what template.yaml declares.

use aws_sdk_sqs::types::QueueAttributeName;
use eucora_local::stack::moto::Moto;
use eucora_local::stack::provision::provision;
use eucora_local::stack::template::Template;

#[tokio::test]
async fn the_templates_queues_table_and_secrets_are_created_from_the_template_itself() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let template =
        Template::parse(&std::fs::read_to_string(repo.join("template.yaml")).unwrap()).unwrap();
    let moto = Moto::start(&repo).unwrap();
    let sdk = moto.sdk().await;
    let stack = provision(&template, "local", &sdk).await.unwrap();

    // Every queue of the template, with its DLQ and maxReceiveCount.
    let declared = template.of_type("AWS::SQS::Queue").count();
    assert_eq!(stack.queues.len(), declared);
    assert_eq!(
        stack.queues["IntuneQueue"].redrive,
        Some((50, "IntuneDLQ".to_owned()))
    );
    assert_eq!(
        stack.queues["ScoringQueue"].redrive,
        Some((5, "ScoringDLQ".to_owned()))
    );
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&stack.queues["JamfQueue"].url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .unwrap();
    let redrive = &attrs.attributes().unwrap()[&QueueAttributeName::RedrivePolicy];
    let redrive: serde_json::Value = serde_json::from_str(redrive).unwrap();
    assert_eq!(
        redrive["deadLetterTargetArn"],
        stack.queues["JamfDLQ"].arn.as_str()
    );
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "50"
    );

    // The table with both sparse indexes and TTL.
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let t = dynamo
        .describe_table()
        .table_name(&stack.table)
        .send()
        .await
        .unwrap();
    let mut indexes: Vec<String> = t
        .table()
        .unwrap()
        .global_secondary_indexes()
        .iter()
        .filter_map(|g| g.index_name().map(str::to_owned))
        .collect();
    indexes.sort();
    assert_eq!(indexes, vec!["cab_queue", "inflight"]);
    let ttl = dynamo
        .describe_time_to_live()
        .table_name(&stack.table)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description().unwrap().attribute_name(),
        Some("expires_at")
    );

    // Both secrets, named as the template names them.
    assert_eq!(stack.secrets.len(), 2);
    assert!(stack.secrets["IntuneSecret"].contains("eucora/local/intune"));
}
