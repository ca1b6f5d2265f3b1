//! The DynamoDB adapter: one table for deployments, their audit trails, idempotency records and
//! install telemetry. The design (access patterns, keys, indexes) is in `docs/table-design.md` at the repository root.
//!
//! | item | `pk` | `sk` | other attributes |
//! |---|---|---|---|
//! | deployment | `DEP#<id>` | `META` | `version`, `state`, `doc`; `gsi1pk`=`INFLIGHT` while in flight; `gsi2pk`=`CAB` while awaiting CAB |
//! | audit event | `DEP#<id>` | `AUDIT#<seq, 20 digits>` | `doc` (written once, never updated) |
//! | status head | `DEP#<id>` | `TEL#<ring>#<platform>` | `doc` (the platform's status), `gen`, `chunks`, `queried_ms` |
//! | status chunk | `DEP#<id>` | `TELC#<ring>#<platform>#<gen>#<n, 5 digits>` | `doc` (up to ~300 KB of device results) |
//! | idempotency | `IDEM#<key>` | `IDEM` | `doc`, `expires_at` (TTL; none for a correlation id) |

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use eucora_domain::DeploymentId;
use eucora_domain::audit::AuditEvent;
use eucora_service::ports::{
    AUDIT_PAGE_MAX_BYTES, AuditPage, CreateError, DeploymentStore, IdempotencyRecord, StoreError,
};
use eucora_service::record::{Change, DeploymentRecord};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The most actions one `TransactWriteItems` takes.
pub const TRANSACTION_LIMIT: usize = 100;

/// The sparse index of deployments in flight.
pub const INFLIGHT_INDEX: &str = "inflight";
/// The sparse index of deployments awaiting CAB.
pub const CAB_INDEX: &str = "cab_queue";

pub(crate) type Item = HashMap<String, AttributeValue>;

/// Deployments, audit trails, idempotency records and telemetry in one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn dep_pk(id: &DeploymentId) -> String {
    format!("DEP#{id}")
}

fn audit_sk(seq: u64) -> String {
    format!("AUDIT#{seq:020}")
}

pub(crate) fn to_doc<T: Serialize>(v: &T) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(v)
        .map(AttributeValue::S)
        .map_err(|e| StoreError::Failed(format!("cannot serialise item: {e}")))
}

pub(crate) fn from_doc<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    let doc = item
        .get("doc")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Failed("item has no doc attribute".into()))?;
    serde_json::from_str(doc).map_err(|e| StoreError::Failed(format!("corrupt item: {e}")))
}

/// Codes DynamoDB (and the SDK) use for a request worth retrying later.
fn retryable_code(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "Throttling"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "TransactionConflictException"
            | "TransactionInProgressException"
    )
}

/// Classifies any SDK error: timeouts, connection failures and throttling are retryable, a failed
/// condition is a conflict, anything else fails.
pub(crate) fn classify<E, R>(err: &SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Retryable(DisplayErrorContext(err).to_string())
        }
        SdkError::ServiceError(se) => match se.err().code() {
            Some("ConditionalCheckFailedException") => StoreError::Conflict,
            Some(code) if retryable_code(code) => {
                StoreError::Retryable(DisplayErrorContext(err).to_string())
            }
            _ => StoreError::Failed(DisplayErrorContext(err).to_string()),
        },
        _ => StoreError::Failed(DisplayErrorContext(err).to_string()),
    }
}

/// What a cancelled transaction means: which item's condition failed, or a retryable cause.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cancelled {
    /// The condition of the item at this index failed.
    Condition(usize),
    /// Throttled or conflicting with another transaction: retry.
    Retryable(String),
    Other(String),
}

pub(crate) fn cancelled<R: std::fmt::Debug>(
    err: &SdkError<TransactWriteItemsError, R>,
) -> Option<Cancelled> {
    let SdkError::ServiceError(se) = err else {
        return None;
    };
    let TransactWriteItemsError::TransactionCanceledException(e) = se.err() else {
        return None;
    };
    let reasons = e.cancellation_reasons();
    if let Some(i) = reasons
        .iter()
        .position(|r| r.code() == Some("ConditionalCheckFailed"))
    {
        return Some(Cancelled::Condition(i));
    }
    let codes: Vec<&str> = reasons
        .iter()
        .filter_map(|r| r.code())
        .filter(|c| *c != "None")
        .collect();
    if codes.iter().any(|c| {
        matches!(
            *c,
            "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
        )
    }) {
        return Some(Cancelled::Retryable(codes.join(",")));
    }
    Some(Cancelled::Other(if codes.is_empty() {
        e.to_string()
    } else {
        codes.join(",")
    }))
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoStore {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The SDK client (for tools and tests that look at the table directly).
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn meta_item(r: &DeploymentRecord) -> Result<Item, StoreError> {
        let mut item = Item::from([
            ("pk".into(), s(dep_pk(&r.id))),
            ("sk".into(), s("META")),
            ("version".into(), AttributeValue::N(r.version.to_string())),
            ("state".into(), s(r.lifecycle.state.name())),
            ("doc".into(), to_doc(r)?),
        ]);
        if r.lifecycle.state.is_in_flight() {
            item.insert("gsi1pk".into(), s("INFLIGHT"));
            item.insert("gsi1sk".into(), s(r.id.as_str()));
        }
        if r.awaits_cab() {
            item.insert("gsi2pk".into(), s("CAB"));
            item.insert("gsi2sk".into(), s(format!("{}#{}", r.updated_at, r.id)));
        }
        Ok(item)
    }

    fn put(
        &self,
        item: Item,
        condition: &str,
        values: Option<(&str, AttributeValue)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut p = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition);
        if let Some((k, v)) = values {
            p = p.expression_attribute_values(k, v);
        }
        let put = p.build().map_err(|e| StoreError::Failed(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn audit_puts(&self, events: &[AuditEvent]) -> Result<Vec<TransactWriteItem>, StoreError> {
        events
            .iter()
            .map(|e| {
                let item = Item::from([
                    ("pk".into(), s(dep_pk(&e.deployment_id))),
                    ("sk".into(), s(audit_sk(e.seq))),
                    ("doc".into(), to_doc(e)?),
                ]);
                // Append-only: an event position is written once, never replaced.
                self.put(item, "attribute_not_exists(pk)", None)
            })
            .collect()
    }

    pub(crate) async fn query_all(
        &self,
        index: Option<&str>,
        key: &str,
        value: &str,
        sk_prefix: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                .expression_attribute_names("#k", key)
                .expression_attribute_values(":k", s(value))
                .set_exclusive_start_key(start.take());
            q = match sk_prefix {
                Some(prefix) => q
                    .key_condition_expression("#k = :k AND begins_with(sk, :p)")
                    .expression_attribute_values(":p", s(prefix))
                    .consistent_read(true),
                None => q.key_condition_expression("#k = :k"),
            };
            let page = q.send().await.map_err(|e| classify(&e))?;
            out.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    fn ids_of(items: &[Item], attr: &str) -> Vec<DeploymentId> {
        items
            .iter()
            .filter_map(|i| i.get(attr).and_then(|v| v.as_s().ok()))
            .filter_map(|p| DeploymentId::parse(p.trim_start_matches("DEP#")).ok())
            .collect()
    }
}

impl DeploymentStore for DynamoStore {
    async fn create(
        &self,
        change: &Change,
        claims: &[IdempotencyRecord],
    ) -> Result<(), CreateError> {
        let mut items = Vec::new();
        for c in claims {
            let mut item = Item::from([
                ("pk".into(), s(format!("IDEM#{}", c.key))),
                ("sk".into(), s("IDEM")),
                ("doc".into(), to_doc(c)?),
            ]);
            if let Some(at) = c.expires_at {
                item.insert(
                    "expires_at".into(),
                    AttributeValue::N(at.unix_seconds().to_string()),
                );
            }
            items.push(self.put(item, "attribute_not_exists(pk)", None)?);
        }
        items.push(self.put(
            Self::meta_item(&change.record)?,
            "attribute_not_exists(pk)",
            None,
        )?);
        items.extend(self.audit_puts(&change.events)?);
        if items.len() > TRANSACTION_LIMIT {
            // DynamoDB would refuse it whole; say why instead of sending it.
            return Err(StoreError::Failed(format!(
                "a change of {} audit events is over DynamoDB's {TRANSACTION_LIMIT} actions per transaction",
                change.events.len()
            ))
            .into());
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => match cancelled(&err) {
                Some(Cancelled::Condition(i)) if i < claims.len() => {
                    match self.idempotency(&claims[i].key).await? {
                        Some(existing) => Err(CreateError::Taken(existing)),
                        None => Err(StoreError::Conflict.into()),
                    }
                }
                Some(Cancelled::Condition(_)) => Err(StoreError::Conflict.into()),
                Some(Cancelled::Retryable(why)) => Err(StoreError::Retryable(why).into()),
                Some(Cancelled::Other(why)) => Err(StoreError::Failed(why).into()),
                None => Err(classify(&err).into()),
            },
        }
    }

    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("IDEM#{key}")))
            .key("sk", s("IDEM"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        out.item().map(from_doc).transpose()
    }

    async fn get(&self, id: &DeploymentId) -> Result<Option<DeploymentRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(dep_pk(id)))
            .key("sk", s("META"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        out.item().map(from_doc).transpose()
    }

    async fn save(&self, change: &Change) -> Result<(), StoreError> {
        let mut items = vec![self.put(
            Self::meta_item(&change.record)?,
            "version = :expected",
            Some((
                ":expected",
                AttributeValue::N(change.expected_version.to_string()),
            )),
        )?];
        items.extend(self.audit_puts(&change.events)?);
        if items.len() > TRANSACTION_LIMIT {
            // DynamoDB would refuse it whole; say why instead of sending it.
            return Err(StoreError::Failed(format!(
                "a change of {} audit events is over DynamoDB's {TRANSACTION_LIMIT} actions per transaction",
                change.events.len()
            )));
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => Err(match cancelled(&err) {
                Some(Cancelled::Condition(_)) => StoreError::Conflict,
                Some(Cancelled::Retryable(why)) => StoreError::Retryable(why),
                Some(Cancelled::Other(why)) => StoreError::Failed(why),
                None => classify(&err),
            }),
        }
    }

    async fn in_flight(&self) -> Result<Vec<DeploymentId>, StoreError> {
        let items = self
            .query_all(Some(INFLIGHT_INDEX), "gsi1pk", "INFLIGHT", None)
            .await?;
        Ok(Self::ids_of(&items, "gsi1sk"))
    }

    async fn awaiting_cab(&self) -> Result<Vec<DeploymentId>, StoreError> {
        let items = self
            .query_all(Some(CAB_INDEX), "gsi2pk", "CAB", None)
            .await?;
        Ok(Self::ids_of(&items, "pk"))
    }

    async fn audit_trail(&self, id: &DeploymentId) -> Result<Vec<AuditEvent>, StoreError> {
        let items = self
            .query_all(None, "pk", &dep_pk(id), Some("AUDIT#"))
            .await?;
        items.iter().map(from_doc).collect()
    }

    /// `sk BETWEEN AUDIT#<after + 1> AND AUDIT#<u64::MAX>`, one event more than asked for (to
    /// know whether a next page exists), querying on from `LastEvaluatedKey` when DynamoDB stops
    /// at its 1 MB limit with fewer items. An event's position is its sort key.
    async fn audit_page(
        &self,
        id: &DeploymentId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        let limit = limit.max(1);
        let mut page = AuditPage::default();
        let Some(from) = after.map_or(Some(0), |a| a.checked_add(1)) else {
            return Ok(page);
        };
        let (mut bytes, mut last) = (0, None);
        let mut start: Option<Item> = None;
        loop {
            let want = i32::try_from(limit + 1 - page.events.len()).unwrap_or(i32::MAX);
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(dep_pk(id)))
                .expression_attribute_values(":from", s(audit_sk(from)))
                .expression_attribute_values(":to", s(audit_sk(u64::MAX)))
                .consistent_read(true)
                .limit(want)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(&e))?;
            for item in out.items() {
                let position = item
                    .get("sk")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|sk| sk.strip_prefix("AUDIT#"))
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| StoreError::Failed("audit item without a position".into()))?;
                let size = item
                    .get("doc")
                    .and_then(|v| v.as_s().ok())
                    .map_or(0, String::len);
                if page.events.len() >= limit
                    || (!page.events.is_empty() && bytes + size > AUDIT_PAGE_MAX_BYTES)
                {
                    page.next = last;
                    return Ok(page);
                }
                page.events.push(from_doc(item)?);
                bytes += size;
                last = Some(position);
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(page),
            }
        }
    }
}
