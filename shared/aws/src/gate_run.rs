//! The gate schedule's lease and cursor: one item, `pk` = `GATERUN`, `sk` = `STATE`, with
//! `run_id` and `lease_until` (milliseconds) while a run holds the lease, and `cursor` (the id
//! the last run evaluated last). Taking the lease is one conditional `UpdateItem`, so two runs
//! (an EventBridge retry, a slow run overtaken by the next schedule) never both run.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use eucora_domain::{DeploymentId, Timestamp};
use eucora_service::ports::{GateRunStore, RunLease, StoreError};

use crate::dynamodb::{DynamoStore, classify, s};

const PK: &str = "GATERUN";
const SK: &str = "STATE";

fn millis(t: Timestamp) -> AttributeValue {
    AttributeValue::N(t.unix_millis().to_string())
}

impl GateRunStore for DynamoStore {
    async fn begin_run(
        &self,
        run_id: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<RunLease, StoreError> {
        let out = self
            .client()
            .update_item()
            .table_name(self.table())
            .key("pk", s(PK))
            .key("sk", s(SK))
            .update_expression("SET run_id = :r, lease_until = :until")
            .condition_expression("attribute_not_exists(lease_until) OR lease_until <= :now")
            .expression_attribute_values(":r", s(run_id))
            .expression_attribute_values(":until", millis(until))
            .expression_attribute_values(":now", millis(now))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match out {
            Ok(out) => Ok(RunLease::Taken {
                cursor: out
                    .attributes()
                    .and_then(|a| a.get("cursor"))
                    .and_then(|v| v.as_s().ok())
                    .and_then(|c| DeploymentId::parse(c).ok()),
            }),
            Err(e) => match e.as_service_error() {
                Some(se) if se.is_conditional_check_failed_exception() => {
                    let held = match se {
                        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => c
                            .item()
                            .and_then(|i| i.get("lease_until"))
                            .and_then(|v| v.as_n().ok())
                            .and_then(|n| n.parse::<i64>().ok())
                            .and_then(|ms| Timestamp::from_unix_millis(ms).ok()),
                        _ => None,
                    };
                    Ok(RunLease::Busy {
                        until: held.unwrap_or(until),
                    })
                }
                _ => Err(classify(&e)),
            },
        }
    }

    async fn end_run(&self, run_id: &str, cursor: Option<&DeploymentId>) -> Result<(), StoreError> {
        let mut update = self
            .client()
            .update_item()
            .table_name(self.table())
            .key("pk", s(PK))
            .key("sk", s(SK))
            .condition_expression("run_id = :r")
            .expression_attribute_values(":r", s(run_id));
        update = match cursor {
            // CURSOR is one of DynamoDB's reserved words: named through `#cur`.
            Some(c) => update
                .update_expression("SET #cur = :c REMOVE lease_until, run_id")
                .expression_attribute_names("#cur", "cursor")
                .expression_attribute_values(":c", s(c.as_str())),
            None => update
                .update_expression("REMOVE lease_until, run_id, #cur")
                .expression_attribute_names("#cur", "cursor"),
        };
        match update.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(aws_sdk_dynamodb::operation::update_item::UpdateItemError::is_conditional_check_failed_exception) =>
            {
                // Our lease lapsed and another run took it: its cursor is the one to keep.
                tracing::warn!(run_id, "the gate run's lease had passed to another run");
                Ok(())
            }
            Err(e) => Err(classify(&e)),
        }
    }
}
