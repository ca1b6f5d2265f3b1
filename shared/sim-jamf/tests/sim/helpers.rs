//! A started simulator with a client that keeps the `jpro-ingress` cookie and holds a token.

use eucora_sim_jamf::{SimConfig, SimHandle, start};
use reqwest::{Client, Response};
use serde_json::{Value, json};

pub struct Sim {
    pub handle: SimHandle,
    pub http: Client,
    pub token: String,
}

/// A client that keeps cookies, as a connector pinning its node does.
pub fn pinned_client() -> Client {
    Client::builder().cookie_store(true).build().unwrap()
}

/// A client without a cookie store: every request is routed afresh.
pub fn unpinned_client() -> Client {
    Client::new()
}

pub async fn oauth_token(http: &Client, base: &str, config: &SimConfig) -> String {
    let response = http
        .post(format!("{base}/api/v1/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

impl Sim {
    pub async fn start() -> Self {
        Self::with(SimConfig::instant()).await
    }

    pub async fn with(config: SimConfig) -> Self {
        Self::with_client(config, pinned_client()).await
    }

    pub async fn with_client(config: SimConfig, http: Client) -> Self {
        let handle = start(config.clone()).await;
        let token = oauth_token(&http, &handle.base_url(), &config).await;
        Self {
            handle,
            http,
            token,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.base_url())
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_xml(&self, path: &str, xml: &str) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .header("content-type", "application/xml")
            .body(xml.to_owned())
            .send()
            .await
            .unwrap()
    }

    pub async fn put_xml(&self, path: &str, xml: &str) -> Response {
        self.http
            .put(self.url(path))
            .bearer_auth(&self.token)
            .header("content-type", "application/xml")
            .body(xml.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// Creates a package and answers its id.
    pub async fn create_package(&self, name: &str) -> String {
        let response = self.post_json("/api/v1/packages", &package(name)).await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    /// Creates a package with a small file uploaded (processed at once with `SimConfig::instant`)
    /// and answers its id.
    pub async fn create_uploaded_package(&self, name: &str) -> String {
        let id = self.create_package(name).await;
        let part = reqwest::multipart::Part::bytes(format!("xar!{name}").into_bytes())
            .file_name(format!("{name}.pkg"));
        let response = self
            .http
            .post(self.url(&format!("/api/v1/packages/{id}/upload")))
            .bearer_auth(&self.token)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        id
    }

    /// Creates a policy and answers its id.
    pub async fn create_policy(&self, xml: &str) -> u32 {
        let response = self.post_xml("/JSSResource/policies/id/0", xml).await;
        assert_eq!(response.status(), 201);
        let body = response.text().await.unwrap();
        between(&body, "<id>", "</id>").parse().unwrap()
    }
}

/// A package with every required field.
pub fn package(name: &str) -> Value {
    json!({
        "packageName": name,
        "fileName": format!("{name}.pkg"),
        "categoryId": "1",
        "priority": 10,
        "fillUserTemplate": false,
        "rebootRequired": false,
        "osInstall": false,
        "suppressUpdates": false,
        "suppressFromDock": false,
        "suppressEula": false,
        "suppressRegistration": false
    })
}

/// A policy as the connector writes one, with `notes` (and a package `priority`) in elements
/// Jamf's policy schema does not have.
pub fn policy_xml(name: &str, group_id: u32, package_id: &str, notes: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<policy>
  <general>
    <name>{name}</name>
    <enabled>true</enabled>
    <trigger_checkin>true</trigger_checkin>
    <frequency>Once per computer</frequency>
    <retry_event>check-in</retry_event>
    <retry_attempts>3</retry_attempts>
    <notify_on_each_failed_retry>false</notify_on_each_failed_retry>
    <category><name>control-plane-auto</name></category>
    <notes>{notes}</notes>
  </general>
  <scope>
    <all_computers>false</all_computers>
    <computer_groups><computer_group><id>{group_id}</id></computer_group></computer_groups>
  </scope>
  <package_configuration>
    <packages><package><id>{package_id}</id><action>Install</action><priority>7</priority></package></packages>
  </package_configuration>
</policy>"#
    )
}

/// A policy with a name and nothing else.
pub fn bare_policy_xml(name: &str) -> String {
    format!("<policy><general><name>{name}</name></general></policy>")
}

/// The text between the first `start` and the `end` after it.
pub fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in {text}"))
        + start.len();
    let to = text[from..]
        .find(end)
        .unwrap_or_else(|| panic!("{end} not in {text}"))
        + from;
    &text[from..to]
}

/// The text of the second `<p>` of a Classic API error page.
pub fn second_paragraph(html: &str) -> String {
    let paragraphs: Vec<&str> = html.split("<p").skip(1).collect();
    let second = paragraphs
        .get(1)
        .unwrap_or_else(|| panic!("no second <p> in {html}"));
    let after_tag = &second[second.find('>').unwrap() + 1..];
    after_tag[..after_tag.find("</p>").unwrap()].to_owned()
}
