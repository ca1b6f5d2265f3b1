//! Status snapshots in DynamoDB: per deployment, ring and platform, the latest status query's
//! summary and the ring's population (one result per device: 10,000 and more).
//!
//! A snapshot is written as chunks of about [`CHUNK_BYTES`] (DynamoDB items stop at 400 KB),
//! then a head item that names the chunks' generation; the previous generation's chunks are
//! deleted last. The head is the switch: a reader reads the head, then its generation's chunks,
//! so it sees the old snapshot or the new one, never a mix. Every write stays inside DynamoDB's
//! limits at any ring size: `BatchWriteItem` carries at most 25 requests, and no item grows past
//! the chunk size. A slower, older query that finishes after a newer one does not replace it:
//! the head is only written over an older one.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use eucora_domain::gates::{DeviceResult, PlatformStatus};
use eucora_domain::{DeploymentId, Ring};
use eucora_service::ports::{StatusSnapshot, StoreError, TelemetryStore};

use crate::dynamodb::{DynamoStore, Item, classify, dep_pk, from_doc, s, to_doc};

/// The most requests one `BatchWriteItem` takes.
pub const BATCH_WRITE_LIMIT: usize = 25;

/// The largest chunk of device results, in bytes of JSON: well under DynamoDB's 400 KB item
/// limit, with room for the keys, and 25 of them well under a batch's 16 MB.
pub const CHUNK_BYTES: usize = 300_000;

fn head_sk(ring: Ring, platform: eucora_domain::evidence::Platform) -> String {
    format!("TEL#{}#{platform}", ring.number())
}

fn chunk_prefix(
    ring: Ring,
    platform: eucora_domain::evidence::Platform,
    generation: &str,
) -> String {
    format!("TELC#{}#{platform}#{generation}#", ring.number())
}

/// A new generation id: the query's time, then the wall clock's nanoseconds, so that two
/// writers of one snapshot never share chunk keys.
fn generation(status: &PlatformStatus) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{:013}{nanos:09}", status.queried_at.unix_millis().max(0))
}

/// The devices as JSON arrays of at most [`CHUNK_BYTES`] each.
pub fn chunks(devices: &[DeviceResult]) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    let mut current = String::from("[");
    for d in devices {
        let one = serde_json::to_string(d)
            .map_err(|e| StoreError::Failed(format!("cannot serialise a device result: {e}")))?;
        if current.len() > 1 && current.len() + one.len() + 2 > CHUNK_BYTES {
            current.push(']');
            out.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&one);
    }
    current.push(']');
    out.push(current);
    Ok(out)
}

impl DynamoStore {
    /// Sends `requests` in batches of at most 25, retrying what DynamoDB leaves unprocessed.
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        for chunk in requests.chunks(BATCH_WRITE_LIMIT) {
            let mut pending = HashMap::from([(self.table().to_owned(), chunk.to_vec())]);
            for attempt in 0..8_u32 {
                let out = self
                    .client()
                    .batch_write_item()
                    .set_request_items(Some(pending))
                    .send()
                    .await
                    .map_err(|e| classify(&e))?;
                match out.unprocessed_items() {
                    Some(left) if left.values().any(|v| !v.is_empty()) => {
                        pending = left.clone();
                        tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                    }
                    _ => {
                        pending = HashMap::new();
                        break;
                    }
                }
            }
            if !pending.is_empty() {
                return Err(StoreError::Retryable(
                    "telemetry writes still unprocessed after retries".into(),
                ));
            }
        }
        Ok(())
    }

    /// Deletes chunks `0..count` of a generation: their keys are known, so no query is needed
    /// (and the connectors need no `dynamodb:Query`).
    async fn delete_chunks(&self, pk: &str, prefix: &str, count: usize) -> Result<(), StoreError> {
        let mut requests = Vec::with_capacity(count);
        for n in 0..count {
            let key = Item::from([
                ("pk".into(), s(pk)),
                ("sk".into(), s(format!("{prefix}{n:05}"))),
            ]);
            let delete = DeleteRequest::builder()
                .set_key(Some(key))
                .build()
                .map_err(|e| StoreError::Failed(e.to_string()))?;
            requests.push(WriteRequest::builder().delete_request(delete).build());
        }
        self.batch_write(requests).await
    }

    /// The snapshot a head item names, or `None` when its chunks are gone (a newer snapshot
    /// replaced it while we read: read the head again).
    async fn read_snapshot(
        &self,
        pk: &str,
        ring: Ring,
        head: &Item,
    ) -> Result<Option<StatusSnapshot>, StoreError> {
        let status: PlatformStatus = from_doc(head)?;
        let generation = head
            .get("gen")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let expected: usize = head
            .get("chunks")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let items = self
            .query_all(
                None,
                "pk",
                pk,
                Some(&chunk_prefix(ring, status.platform, &generation)),
            )
            .await?;
        if items.len() != expected {
            return Ok(None);
        }
        let mut devices = Vec::new();
        for item in &items {
            let part: Vec<DeviceResult> = from_doc(item)?;
            devices.extend(part);
        }
        Ok(Some(StatusSnapshot { status, devices }))
    }
}

impl TelemetryStore for DynamoStore {
    async fn snapshots(
        &self,
        id: &DeploymentId,
        ring: Ring,
    ) -> Result<Vec<StatusSnapshot>, StoreError> {
        let pk = dep_pk(id);
        let prefix = format!("TEL#{}#", ring.number());
        let mut out = Vec::new();
        for _ in 0..3 {
            out.clear();
            let heads = self.query_all(None, "pk", &pk, Some(&prefix)).await?;
            let mut replaced = false;
            // Items under the prefix without a generation are per-device results of an
            // earlier version of this table: not snapshots.
            for head in heads.iter().filter(|h| h.contains_key("gen")) {
                match self.read_snapshot(&pk, ring, head).await? {
                    Some(snapshot) => out.push(snapshot),
                    None => replaced = true,
                }
            }
            if !replaced {
                return Ok(out);
            }
        }
        Err(StoreError::Retryable(
            "the status snapshot kept changing while it was read".into(),
        ))
    }

    async fn record(
        &self,
        id: &DeploymentId,
        ring: Ring,
        snapshot: &StatusSnapshot,
    ) -> Result<(), StoreError> {
        let pk = dep_pk(id);
        let platform = snapshot.status.platform;
        let generation = generation(&snapshot.status);
        let prefix = chunk_prefix(ring, platform, &generation);
        let parts = chunks(&snapshot.devices)?;
        let mut requests = Vec::with_capacity(parts.len());
        for (n, part) in parts.iter().enumerate() {
            let item = Item::from([
                ("pk".into(), s(&pk)),
                ("sk".into(), s(format!("{prefix}{n:05}"))),
                ("doc".into(), AttributeValue::S(part.clone())),
            ]);
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::Failed(e.to_string()))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        if let Err(e) = self.batch_write(requests).await {
            // Nothing points at these chunks yet: take them back, best effort, and fail.
            let _ = self.delete_chunks(&pk, &prefix, parts.len()).await;
            return Err(e);
        }

        let queried_ms = snapshot.status.queried_at.unix_millis().to_string();
        let head = Item::from([
            ("pk".into(), s(&pk)),
            ("sk".into(), s(head_sk(ring, platform))),
            ("doc".into(), to_doc(&snapshot.status)?),
            ("gen".into(), s(&generation)),
            ("chunks".into(), AttributeValue::N(parts.len().to_string())),
            ("queried_ms".into(), AttributeValue::N(queried_ms.clone())),
        ]);
        let put = self
            .client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(head))
            .condition_expression("attribute_not_exists(queried_ms) OR queried_ms <= :q")
            .expression_attribute_values(":q", AttributeValue::N(queried_ms))
            // The head this one replaced, as DynamoDB saw it: its chunks are the ones to delete.
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await;
        match put {
            Ok(out) => {
                let previous = out.attributes().and_then(|i| {
                    let generation = i.get("gen").and_then(|v| v.as_s().ok()).cloned()?;
                    let chunks = i
                        .get("chunks")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse::<usize>().ok())?;
                    Some((generation, chunks))
                });
                if let Some((old, count)) = previous.filter(|(g, _)| *g != generation)
                    && let Err(e) = self
                        .delete_chunks(&pk, &chunk_prefix(ring, platform, &old), count)
                        .await
                {
                    // The new snapshot is in place: the old chunks are only storage now.
                    tracing::warn!(error = %e, "old status chunks not deleted");
                }
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(aws_sdk_dynamodb::operation::put_item::PutItemError::is_conditional_check_failed_exception) =>
            {
                // A newer query's snapshot is already in place: this one is superseded.
                self.delete_chunks(&pk, &prefix, parts.len()).await
            }
            Err(e) => Err(classify(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use eucora_domain::Timestamp;
    use eucora_domain::evidence::{Platform, SiteClass};
    use eucora_domain::gates::InstallOutcome;

    use super::*;

    #[test]
    fn chunks_stay_under_the_item_limit_and_keep_every_device_in_order() {
        let at = Timestamp::parse("2026-03-01T10:00:00Z").unwrap();
        let devices: Vec<DeviceResult> = (0..10_000)
            .map(|i| DeviceResult {
                device_id: format!("{i:08}-aaaa-bbbb-cccc-dddddddddddd"),
                platform: Platform::Windows,
                outcome: InstallOutcome::NotReported,
                site_class: SiteClass::Online,
                at,
                last_contact: Some(at),
            })
            .collect();
        let parts = chunks(&devices).unwrap();
        assert!(parts.len() > 1, "10,000 devices need more than one chunk");
        assert!(parts.iter().all(|p| p.len() <= CHUNK_BYTES));
        let back: Vec<DeviceResult> = parts
            .iter()
            .flat_map(|p| serde_json::from_str::<Vec<DeviceResult>>(p).unwrap())
            .collect();
        assert_eq!(back, devices);
        assert_eq!(chunks(&[]).unwrap(), vec!["[]".to_owned()]);
    }
}
