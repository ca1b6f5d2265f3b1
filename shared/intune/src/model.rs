//! Graph wire shapes the adapter reads.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct TokenAnswer {
    pub access_token: String,
    pub expires_in: u64,
}

#[derive(Debug, Deserialize)]
pub struct GraphErrorBody {
    pub error: GraphError,
}

#[derive(Debug, Deserialize)]
pub struct GraphError {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// The identity platform's error body.
#[derive(Debug, Deserialize)]
pub struct TokenError {
    pub error: String,
    #[serde(default)]
    pub error_codes: Vec<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MobileApp {
    pub id: String,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub publishing_state: Option<String>,
    #[serde(default)]
    pub committed_content_version: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Listing<T> {
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Id {
    pub id: String,
}

/// A content file (`mobileAppContentFile`) as the upload reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentFile {
    pub id: String,
    pub upload_state: String,
    #[serde(default)]
    pub azure_storage_uri: Option<String>,
    #[serde(default)]
    pub azure_storage_uri_expiration_date_time: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub size_encrypted: Option<u64>,
    #[serde(default)]
    pub is_committed: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Report {
    pub total_row_count: u64,
    pub schema: Vec<Column>,
    pub values: Vec<Vec<serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Column {
    pub column: String,
}
