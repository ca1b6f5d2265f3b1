//! Creates, in the emulator, the queues, the table and the secrets `template.yaml` declares.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_norway::Value;

use super::template::{Names, Template};

pub const REGION: &str = "us-east-1";
/// moto's default account.
pub const ACCOUNT: &str = "123456789012";

/// A queue as created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub name: String,
    pub url: String,
    pub arn: String,
    /// `maxReceiveCount` and the DLQ's logical id, when it has a redrive policy.
    pub redrive: Option<(u32, String)>,
    pub visibility_timeout: Option<u32>,
}

/// What the local stack created, by logical id.
#[derive(Debug, Clone, Default)]
pub struct Stack {
    pub table: String,
    pub queues: BTreeMap<String, Queue>,
    pub secrets: BTreeMap<String, String>,
    pub names: Names,
}

fn num(v: &Value) -> Option<u32> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Creates every `AWS::SQS::Queue`, `AWS::DynamoDB::Table` and `AWS::SecretsManager::Secret` of
/// the template for `stage`.
pub async fn provision(
    template: &Template,
    stage: &str,
    sdk: &aws_config::SdkConfig,
) -> Result<Stack> {
    let mut stack = Stack::default();
    stack.names.params.extend([
        ("Stage".to_owned(), stage.to_owned()),
        ("AWS::Region".to_owned(), REGION.to_owned()),
        ("AWS::AccountId".to_owned(), ACCOUNT.to_owned()),
        ("AWS::Partition".to_owned(), "aws".to_owned()),
        ("AWS::StackName".to_owned(), format!("eucora-{stage}")),
    ]);
    create_queues(template, sdk, &mut stack).await?;
    create_tables(template, stage, sdk, &mut stack).await?;
    create_secrets(template, sdk, &mut stack).await?;
    Ok(stack)
}

async fn create_queues(
    template: &Template,
    sdk: &aws_config::SdkConfig,
    stack: &mut Stack,
) -> Result<()> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    // Queues without a redrive policy (the DLQs) first, so the others can point at them.
    let mut queues: Vec<(&str, &Value)> = template
        .of_type("AWS::SQS::Queue")
        .map(|(id, r)| (id, &r.properties))
        .collect();
    queues.sort_by_key(|(_, p)| !p["RedrivePolicy"].is_null());
    for (id, p) in queues {
        let name = stack
            .names
            .resolve(&p["QueueName"])
            .with_context(|| format!("{id}.QueueName"))?;
        let mut req = sqs.create_queue().queue_name(&name);
        let mut redrive = None;
        let visibility = num(&p["VisibilityTimeout"]);
        if let Some(v) = visibility {
            req = req.attributes(QueueAttributeName::VisibilityTimeout, v.to_string());
        }
        if let Some(v) = num(&p["MessageRetentionPeriod"]) {
            req = req.attributes(QueueAttributeName::MessageRetentionPeriod, v.to_string());
        }
        if !p["RedrivePolicy"].is_null() {
            let target = &p["RedrivePolicy"]["deadLetterTargetArn"];
            let arn = stack
                .names
                .resolve(target)
                .with_context(|| format!("{id}.RedrivePolicy"))?;
            let max = num(&p["RedrivePolicy"]["maxReceiveCount"])
                .ok_or_else(|| anyhow!("{id}: maxReceiveCount"))?;
            let dlq = match target {
                Value::Tagged(t) => t
                    .value
                    .as_str()
                    .unwrap_or_default()
                    .trim_end_matches(".Arn")
                    .to_owned(),
                _ => String::new(),
            };
            req = req.attributes(
                QueueAttributeName::RedrivePolicy,
                format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{max}"}}"#),
            );
            redrive = Some((max, dlq));
        }
        let out = req
            .send()
            .await
            .with_context(|| format!("creating queue {name}"))?;
        let url = out.queue_url().unwrap_or_default().to_owned();
        let arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}");
        stack.names.refs.insert(id.to_owned(), url.clone());
        stack.names.arns.insert(id.to_owned(), arn.clone());
        stack.queues.insert(
            id.to_owned(),
            Queue {
                name,
                url,
                arn,
                redrive,
                visibility_timeout: visibility,
            },
        );
    }

    Ok(())
}

async fn create_tables(
    template: &Template,
    stage: &str,
    sdk: &aws_config::SdkConfig,
    stack: &mut Stack,
) -> Result<()> {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    for (id, r) in template.of_type("AWS::DynamoDB::Table") {
        let p = &r.properties;
        let name = match p.get("TableName") {
            Some(v) => stack.names.resolve(v)?,
            None => format!("eucora-{stage}-{id}"),
        };
        let key = |v: &Value| -> Result<KeySchemaElement> {
            Ok(KeySchemaElement::builder()
                .attribute_name(v["AttributeName"].as_str().unwrap_or_default())
                .key_type(if v["KeyType"].as_str() == Some("HASH") {
                    KeyType::Hash
                } else {
                    KeyType::Range
                })
                .build()?)
        };
        let mut req = dynamo
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest);
        for a in p["AttributeDefinitions"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(a["AttributeName"].as_str().unwrap_or_default())
                    .attribute_type(ScalarAttributeType::from(
                        a["AttributeType"].as_str().unwrap_or("S"),
                    ))
                    .build()?,
            );
        }
        for k in p["KeySchema"].as_sequence().into_iter().flatten() {
            req = req.key_schema(key(k)?);
        }
        for g in p["GlobalSecondaryIndexes"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let projection = match g["Projection"]["ProjectionType"].as_str() {
                Some("KEYS_ONLY") => ProjectionType::KeysOnly,
                Some("INCLUDE") => ProjectionType::Include,
                _ => ProjectionType::All,
            };
            let mut b = GlobalSecondaryIndex::builder()
                .index_name(g["IndexName"].as_str().unwrap_or_default())
                .projection(Projection::builder().projection_type(projection).build());
            for k in g["KeySchema"].as_sequence().into_iter().flatten() {
                b = b.key_schema(key(k)?);
            }
            req = req.global_secondary_indexes(b.build()?);
        }
        req.send()
            .await
            .with_context(|| format!("creating table {name}"))?;
        if let Some(attr) = p["TimeToLiveSpecification"]["AttributeName"].as_str() {
            dynamo
                .update_time_to_live()
                .table_name(&name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(attr)
                        .enabled(true)
                        .build()?,
                )
                .send()
                .await
                .with_context(|| format!("enabling TTL on {name}"))?;
        }
        stack.names.refs.insert(id.to_owned(), name.clone());
        stack.names.arns.insert(
            id.to_owned(),
            format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"),
        );
        stack.table = name;
    }

    Ok(())
}

async fn create_secrets(
    template: &Template,
    sdk: &aws_config::SdkConfig,
    stack: &mut Stack,
) -> Result<()> {
    let secrets = aws_sdk_secretsmanager::Client::new(sdk);
    for (id, r) in template.of_type("AWS::SecretsManager::Secret") {
        let name = stack
            .names
            .resolve(&r.properties["Name"])
            .with_context(|| format!("{id}.Name"))?;
        let out = secrets
            .create_secret()
            .name(&name)
            .send()
            .await
            .with_context(|| format!("creating secret {name}"))?;
        let arn = out.arn().unwrap_or_default().to_owned();
        stack.names.refs.insert(id.to_owned(), arn.clone());
        stack.names.arns.insert(id.to_owned(), arn.clone());
        stack.secrets.insert(id.to_owned(), arn);
    }
    Ok(())
}
