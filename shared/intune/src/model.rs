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

/// A content file (`mobileAppContentFile`) as the upload reads it. Its `Debug` leaves out the
/// storage URI's query: the SAS, signature included.
#[derive(Clone, Deserialize)]
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

impl std::fmt::Debug for ContentFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let uri = self
            .azure_storage_uri
            .as_deref()
            .map(|u| u.split('?').next().unwrap_or_default());
        f.debug_struct("ContentFile")
            .field("id", &self.id)
            .field("upload_state", &self.upload_state)
            .field("azure_storage_uri", &uri)
            .field(
                "azure_storage_uri_expiration_date_time",
                &self.azure_storage_uri_expiration_date_time,
            )
            .field("size", &self.size)
            .field("size_encrypted", &self.size_encrypted)
            .field("is_committed", &self.is_committed)
            .finish()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_file_never_shows_its_signature() {
        let file: ContentFile = serde_json::from_value(serde_json::json!({
            "id": "f1", "uploadState": "azureStorageUriRequestSuccess",
            "azureStorageUri": "https://acct.blob.core.windows.net/c/f.intunewin.bin?sv=2017-04-17&sr=b&si=p&sig=SECRET%3D"
        }))
        .unwrap();
        let shown = format!("{file:?}");
        assert!(
            !shown.contains("sig=") && !shown.contains("SECRET"),
            "{shown}"
        );
        assert!(shown.contains("/c/f.intunewin.bin"), "{shown}");
    }
}
