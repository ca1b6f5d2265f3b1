//! What every integration test uses: a Graph client with a token, and the whole publish flow.
#![allow(dead_code)] // each test binary uses its own part of the helpers

use std::time::Duration;

use eucora_sim_intune::{SimConfig, SimHandle, start};
use reqwest::Method;
use serde_json::{Value, json};

pub const APPS: &str = "/v1.0/deviceAppManagement/mobileApps";

/// A simulator with the default tenant, answering without the realistic latency.
pub async fn sim() -> SimHandle {
    start(fast()).await
}

/// The default configuration without latency.
pub fn fast() -> SimConfig {
    SimConfig {
        latency: Duration::ZERO,
        latency_jitter: Duration::ZERO,
        ..SimConfig::default()
    }
}

/// One answer, read completely.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The Graph error code.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Asks the token endpoint with the simulator's current registration.
pub async fn token(http: &reqwest::Client, sim: &SimHandle) -> String {
    let config = sim.config();
    let answer = http
        .post(sim.token_url())
        .form(&[
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("token JSON");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// A Graph client holding a token.
#[derive(Debug, Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub async fn new(sim: &SimHandle) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let token = token(&http, sim).await;
        Self {
            http,
            base: sim.base_url(),
            token,
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Result<Answer> {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        Ok(Answer {
            status,
            headers,
            text,
        })
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        self.try_send(method, path, body).await.expect("request")
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::PATCH, path, Some(body)).await
    }
}

/// A valid Win32 LOB app body.
pub fn win32_app(name: &str, version: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.win32LobApp",
        "displayName": name,
        "displayVersion": version,
        "description": "test app",
        "publisher": "Contoso",
        "fileName": "setup.intunewin",
        "setupFilePath": "setup.exe",
        "installCommandLine": "setup.exe /quiet",
        "uninstallCommandLine": "setup.exe /uninstall /quiet",
        "applicableArchitectures": "x64",
        "minimumSupportedWindowsRelease": "Windows11_23H2",
        "installExperience": {"runAsAccount": "system", "deviceRestartBehavior": "suppress"},
        "returnCodes": [{"returnCode": 0, "type": "success"}, {"returnCode": 3010, "type": "softReboot"}],
        "rules": [{
            "@odata.type": "#microsoft.graph.win32LobAppFileSystemRule",
            "ruleType": "detection",
            "path": "C:\\Program Files\\Contoso",
            "fileOrFolderName": "app.exe",
            "check32BitOn64System": false,
            "operationType": "exists",
            "operator": "notConfigured",
        }],
    })
}

pub fn encryption_info() -> Value {
    json!({"fileEncryptionInfo": {
        "encryptionKey": "a2V5", "initializationVector": "aXY=", "mac": "bWFj", "macKey": "bWFjS2V5",
        "profileIdentifier": "ProfileVersion1", "fileDigest": "ZGlnZXN0", "fileDigestAlgorithm": "SHA256",
    }})
}

/// The content file of a new content version, polled until its SAS URI is ready; answers
/// (content version id, file id, SAS URI).
pub async fn start_upload(
    api: &Api,
    app_id: &str,
    size_encrypted: usize,
) -> (String, String, String) {
    let versions = format!("{APPS}/{app_id}/microsoft.graph.win32LobApp/contentVersions");
    let cv = api.post(&versions, &json!({})).await;
    assert_eq!(cv.status, 201, "{}", cv.text);
    let cv = cv.json()["id"].as_str().unwrap().to_owned();
    let file = api
        .post(
            &format!("{versions}/{cv}/files"),
            &json!({
                "@odata.type": "#microsoft.graph.mobileAppContentFile",
                "name": "setup.intunewin", "size": size_encrypted, "sizeEncrypted": size_encrypted,
                "manifest": null, "isDependency": false,
            }),
        )
        .await;
    assert_eq!(file.status, 201, "{}", file.text);
    assert_eq!(file.json()["uploadState"], "azureStorageUriRequestPending");
    assert_eq!(file.json()["azureStorageUri"], Value::Null);
    let file_id = file.json()["id"].as_str().unwrap().to_owned();
    let polled = api.get(&format!("{versions}/{cv}/files/{file_id}")).await;
    assert_eq!(
        polled.json()["uploadState"],
        "azureStorageUriRequestSuccess"
    );
    let uri = polled.json()["azureStorageUri"]
        .as_str()
        .unwrap()
        .to_owned();
    (cv, file_id, uri)
}

/// Uploads `content` to a SAS URI in two blocks and commits the block list.
pub async fn upload_blocks(http: &reqwest::Client, uri: &str, content: &[u8]) {
    let (first, second) = content.split_at(content.len() / 2);
    // base64("AAAA") and base64("BBBB"): ids of equal length, as Azure wants.
    for (id, chunk) in [("QUFBQQ%3D%3D", first), ("QkJCQg%3D%3D", second)] {
        let put = http
            .put(format!("{uri}&comp=block&blockid={id}"))
            .header("x-ms-blob-type", "BlockBlob")
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201);
    }
    let list = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>QUFBQQ==</Latest><Latest>QkJCQg==</Latest></BlockList>";
    let put = http
        .put(format!("{uri}&comp=blocklist"))
        .body(list)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
}

/// Create → content version → file → blocks → commit → `committedContentVersion` → published.
pub async fn publish(api: &Api, name: &str, version: &str) -> String {
    publish_app(api, &win32_app(name, version)).await
}

/// [`publish`] with the app's whole body.
pub async fn publish_app(api: &Api, app: &Value) -> String {
    let created = api.post(APPS, app).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let app_id = created.json()["id"].as_str().unwrap().to_owned();
    let content = b"encrypted intunewin payload".repeat(10);
    let (cv, file_id, uri) = start_upload(api, &app_id, content.len()).await;
    upload_blocks(&api.http, &uri, &content).await;
    let file_path =
        format!("{APPS}/{app_id}/microsoft.graph.win32LobApp/contentVersions/{cv}/files/{file_id}");
    let commit = api
        .post(&format!("{file_path}/commit"), &encryption_info())
        .await;
    assert_eq!(commit.status, 204, "{}", commit.text);
    assert_eq!(
        api.get(&file_path).await.json()["uploadState"],
        "commitFilePending"
    );
    let done = api.get(&file_path).await.json();
    assert_eq!(done["uploadState"], "commitFileSuccess");
    assert_eq!(done["isCommitted"], true);
    let patch = api
        .patch(
            &format!("{APPS}/{app_id}"),
            &json!({"@odata.type": "#microsoft.graph.win32LobApp", "committedContentVersion": cv}),
        )
        .await;
    assert_eq!(patch.status, 204, "{}", patch.text);
    assert_eq!(
        api.get(&format!("{APPS}/{app_id}")).await.json()["publishingState"],
        "processing"
    );
    assert_eq!(
        api.get(&format!("{APPS}/{app_id}")).await.json()["publishingState"],
        "published"
    );
    app_id
}

pub fn group_assignment(intent: &str, group_id: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.mobileAppAssignment",
        "intent": intent,
        "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group_id},
        "settings": null,
    })
}

pub async fn assign(api: &Api, app_id: &str, assignments: Vec<Value>) -> Answer {
    api.post(
        &format!("{APPS}/{app_id}/assign"),
        &json!({"mobileAppAssignments": assignments}),
    )
    .await
}
