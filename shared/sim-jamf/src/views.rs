//! Read-only snapshots the handle gives tests: packages, policies and the requests received.

use time::OffsetDateTime;

use crate::catalog::Package;
use crate::policy::{Policy, Refs};

/// A package as the server holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPackage {
    pub id: u32,
    pub package_name: String,
    pub file_name: String,
    /// Whether `POST /api/v1/packages/{id}/upload` has received its file.
    pub uploaded: bool,
    /// The uploaded file's name (the multipart part's, else the package's `fileName`).
    pub upload_file_name: Option<String>,
    /// Whether the distribution service has processed the file (its hashes show).
    pub processed: bool,
    /// `"-1"` for none, as the Jamf Pro API writes it.
    pub category_id: String,
    pub priority: i64,
    pub notes: String,
    /// Hex SHA-256 of the uploaded file.
    pub upload_sha256: Option<String>,
    /// Hex SHA3-512 of the uploaded file (the `hashValue` Jamf reports once processed).
    pub upload_sha3_512: Option<String>,
    pub upload_size: Option<u64>,
}

impl SimPackage {
    pub(crate) fn of(package: &Package, now: OffsetDateTime) -> Self {
        let upload = package.upload.as_ref();
        Self {
            id: package.id,
            package_name: package.name().to_owned(),
            file_name: package.text("fileName"),
            uploaded: upload.is_some(),
            upload_file_name: upload.map(|u| u.file_name.clone()),
            processed: upload.is_some_and(|u| u.processed(now)),
            category_id: package.text("categoryId"),
            priority: package.priority(),
            notes: package.text("notes"),
            upload_sha256: upload.map(|u| u.sha256.clone()),
            upload_sha3_512: upload.map(|u| u.sha3_512.clone()),
            upload_size: upload.map(|u| u.size),
        }
    }
}

/// A policy as the server holds it.
// Jamf's own flags (enabled, trigger_checkin, all_computers, notify_on_each_failed_retry).
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPolicy {
    pub id: u32,
    pub name: String,
    pub enabled: bool,
    pub trigger_checkin: bool,
    pub frequency: String,
    /// `none`, `check-in` or `trigger`.
    pub retry_event: String,
    /// 1 to 10, or -1 (not configured).
    pub retry_attempts: i64,
    pub notify_on_each_failed_retry: bool,
    /// The category's name; `None` for "No category assigned".
    pub category: Option<String>,
    pub scope_group_ids: Vec<u32>,
    pub scope_computer_ids: Vec<u32>,
    pub all_computers: bool,
    pub excluded_group_ids: Vec<u32>,
    pub excluded_computer_ids: Vec<u32>,
    pub package_ids: Vec<u32>,
    /// 1 after creation, one more for every successful update.
    pub revision: u32,
    /// The document `GET /JSSResource/policies/id/{id}` answers.
    pub xml: String,
}

impl SimPolicy {
    pub(crate) fn of(policy: &Policy, refs: &Refs) -> Self {
        Self {
            id: policy.id,
            name: policy.name.clone(),
            enabled: policy.enabled,
            trigger_checkin: policy.trigger_checkin,
            frequency: policy.frequency.clone(),
            retry_event: policy.retry_event.clone(),
            retry_attempts: policy.retry_attempts,
            notify_on_each_failed_retry: policy.notify_on_each_failed_retry,
            category: policy
                .category_id
                .and_then(|id| refs.categories.get(&id))
                .map(|c| c.name.clone()),
            scope_group_ids: policy.scope.groups.clone(),
            scope_computer_ids: policy.scope.computers.clone(),
            all_computers: policy.scope.all_computers,
            excluded_group_ids: policy.scope.excluded_groups.clone(),
            excluded_computer_ids: policy.scope.excluded_computers.clone(),
            package_ids: policy.packages.iter().map(|p| p.id).collect(),
            revision: policy.revision,
            xml: policy.to_xml(refs).to_document(),
        }
    }
}

/// One request as the simulator received and answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Arrival order, from 0.
    pub seq: u64,
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string, without `?` (empty when none).
    pub query: String,
    /// Every header, names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy UTF-8).
    pub body: String,
    /// The status answered; 0 when the connection was dropped without an answer.
    pub status: u16,
    /// The cookies the request carried, as (name, value).
    pub cookies: Vec<(String, String)>,
    /// The cluster node that served it (0 or 1).
    pub node: usize,
}

impl RecordedRequest {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of a cookie the request carried.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}
