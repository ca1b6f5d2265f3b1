//! The connectors' shared state in the same table: the command ledger (idempotency per command)
//! and the circuit breaker per platform. Conditional writes make every function instance see and
//! respect the same state.
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | ledger entry | `CMD#<correlation id>:<ring>:<action>:<platform>` | `CMD` | `state` (`in_progress`/`done`), `until` (N), `doc` (with `lapsed`: claims before that ran out), `expires_at` (TTL, 30 days) |
//! | breaker | `BREAKER#<platform>` | `BREAKER` | `version` (N), `doc` |

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use eucora_connector::breaker::{BreakerState, BreakerStore, Versioned};
use eucora_connector::ledger::{Claim, CommandLedger, Entry};
use eucora_domain::Timestamp;
use eucora_domain::evidence::Platform;
use eucora_service::ports::StoreError;

use crate::DynamoStore;
use crate::dynamodb::{classify, s};

/// Ledger entries are kept this long after they are written (DynamoDB TTL).
const LEDGER_TTL_DAYS: i64 = 30;

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn doc_of(item: &HashMap<String, AttributeValue>) -> Result<&str, StoreError> {
    item.get("doc")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::Failed("item has no doc".into()))
}

impl DynamoStore {
    fn ledger_key(key: &str) -> (AttributeValue, AttributeValue) {
        (s(format!("CMD#{key}")), s("CMD"))
    }

    /// Writes a claim until `until`: of a new command (`previous` None), or over the lapsed claim
    /// that ran until `previous`, the `lapsed`-th.
    async fn put_claim(
        &self,
        key: &str,
        now: Timestamp,
        until: Timestamp,
        lapsed: u32,
        previous: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let entry = Entry::InProgress { until, lapsed };
        let (pk, sk) = Self::ledger_key(key);
        let put = self
            .client()
            .put_item()
            .table_name(self.table())
            .item("pk", pk)
            .item("sk", sk)
            .item("state", s("in_progress"))
            .item("until", n(until.unix_millis()))
            .item("doc", s(serde_json::to_string(&entry).unwrap_or_default()))
            .item(
                "expires_at",
                n(now.unix_seconds() + LEDGER_TTL_DAYS * 86_400),
            );
        let put = match previous {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(ran_out) => put
                .condition_expression("#st = :in_progress AND #until = :ran_out")
                .expression_attribute_names("#st", "state")
                .expression_attribute_names("#until", "until")
                .expression_attribute_values(":in_progress", s("in_progress"))
                .expression_attribute_values(":ran_out", n(ran_out.unix_millis())),
        };
        put.send().await.map(|_| ()).map_err(|e| classify(&e))
    }

    async fn ledger_entry(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let (pk, sk) = Self::ledger_key(key);
        let out = self
            .client()
            .get_item()
            .table_name(self.table())
            .key("pk", pk)
            .key("sk", sk)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        match out.item() {
            None => Ok(None),
            Some(item) => serde_json::from_str(doc_of(item)?)
                .map(Some)
                .map_err(|e| StoreError::Failed(format!("corrupt ledger entry: {e}"))),
        }
    }
}

impl CommandLedger for DynamoStore {
    async fn claim(&self, key: &str, now: Timestamp, lease: Duration) -> Result<Claim, StoreError> {
        let until = now.plus(time::Duration::try_from(lease).unwrap_or(time::Duration::MINUTE));
        // A new command; then, if its entry is a lapsed claim, a take-over of exactly that claim
        // (a second worker taking it over at the same moment finds it changed, and busy).
        let mut lapsed = 0;
        let mut previous: Option<Timestamp> = None;
        for _ in 0..3 {
            match self.put_claim(key, now, until, lapsed, previous).await {
                Ok(()) => return Ok(Claim::Acquired { lapsed }),
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e),
            }
            match self.ledger_entry(key).await? {
                Some(Entry::Done { outcome, .. }) => return Ok(Claim::Duplicate(outcome)),
                Some(Entry::InProgress { until, .. }) if until > now => {
                    return Ok(Claim::Busy { until });
                }
                Some(Entry::InProgress {
                    until: ran_out,
                    lapsed: before,
                }) => {
                    lapsed = before + 1;
                    previous = Some(ran_out);
                }
                // Released in between: claim it as new.
                None => (lapsed, previous) = (0, None),
            }
        }
        Err(StoreError::Conflict)
    }

    async fn complete(
        &self,
        key: &str,
        outcome: &serde_json::Value,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let entry = Entry::Done {
            outcome: outcome.clone(),
            at: now,
        };
        let (pk, sk) = Self::ledger_key(key);
        self.client()
            .put_item()
            .table_name(self.table())
            .item("pk", pk)
            .item("sk", sk)
            .item("state", s("done"))
            .item("doc", s(serde_json::to_string(&entry).unwrap_or_default()))
            .item(
                "expires_at",
                n(now.unix_seconds() + LEDGER_TTL_DAYS * 86_400),
            )
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let (pk, sk) = Self::ledger_key(key);
        let out = self
            .client()
            .delete_item()
            .table_name(self.table())
            .key("pk", pk)
            .key("sk", sk)
            .condition_expression("#st = :in_progress")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":in_progress", s("in_progress"))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            // Already done or gone: nothing to release.
            Err(e) => match classify(&e) {
                StoreError::Conflict => Ok(()),
                other => Err(other),
            },
        }
    }
}

impl BreakerStore for DynamoStore {
    async fn load(&self, platform: Platform) -> Result<Versioned, StoreError> {
        let out = self
            .client()
            .get_item()
            .table_name(self.table())
            .key("pk", s(format!("BREAKER#{platform}")))
            .key("sk", s("BREAKER"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let Some(item) = out.item() else {
            return Ok(Versioned::default());
        };
        let state: BreakerState = serde_json::from_str(doc_of(item)?)
            .map_err(|e| StoreError::Failed(format!("corrupt breaker: {e}")))?;
        let version = item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(Versioned { state, version })
    }

    async fn save(
        &self,
        platform: Platform,
        state: &BreakerState,
        expected: u64,
    ) -> Result<(), StoreError> {
        let mut put = self
            .client()
            .put_item()
            .table_name(self.table())
            .item("pk", s(format!("BREAKER#{platform}")))
            .item("sk", s("BREAKER"))
            .item("version", AttributeValue::N((expected + 1).to_string()))
            .item("doc", s(serde_json::to_string(state).unwrap_or_default()));
        put = if expected == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(expected.to_string()))
        };
        put.send().await.map_err(|e| classify(&e))?;
        Ok(())
    }
}
