//! A client of the EUCORA HTTP API (the deployed API Gateway or the local stack's), used by the
//! operator CLI, the demo and the end-to-end tests.

use anyhow::{Context, Result};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

/// Events per page when the client reads a whole audit trail (the API's most).
pub const AUDIT_PAGE: usize = 1000;

/// An HTTP answer: the status and the JSON body (`null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body, or an error with the API's message when the status is not 2xx.
    pub fn into_ok(self) -> Result<Value> {
        if self.ok() {
            Ok(self.body)
        } else {
            anyhow::bail!("HTTP {}: {}", self.status, self.body)
        }
    }
}

/// The API at `base` (e.g. `http://127.0.0.1:8080`), called with one bearer token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn new(base: &str, token: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// The same API, called with another token.
    #[must_use]
    pub fn with_token(&self, token: &str) -> Client {
        Client {
            token: token.to_owned(),
            ..self.clone()
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Reply> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req
            .send()
            .await
            .with_context(|| format!("{method} {}{path}", self.base))?;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        Ok(Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Reply> {
        self.call(reqwest::Method::GET, path, None, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply> {
        self.call(reqwest::Method::POST, path, Some(body), None)
            .await
    }

    /// `POST /v1/deployments`.
    pub async fn submit(&self, submission: &Value, idempotency_key: Option<&str>) -> Result<Reply> {
        self.call(
            reqwest::Method::POST,
            "/v1/deployments",
            Some(submission),
            idempotency_key,
        )
        .await
    }

    pub async fn deployment(&self, id: &str) -> Result<Reply> {
        self.get(&format!("/v1/deployments/{id}")).await
    }

    /// One page of the audit trail: `GET /v1/deployments/{id}/audit?cursor=&limit=`.
    pub async fn audit_page(
        &self,
        id: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Reply> {
        let mut query: Vec<String> = Vec::new();
        if let Some(c) = cursor {
            query.push(format!(
                "cursor={}",
                utf8_percent_encode(c, NON_ALPHANUMERIC)
            ));
        }
        if let Some(l) = limit {
            query.push(format!("limit={l}"));
        }
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        self.get(&format!("/v1/deployments/{id}/audit{q}")).await
    }

    /// The whole audit trail, following `next_cursor` page after page (pages of the most events
    /// the API gives): `{"events": [...]}`, or the first answer that is not 200.
    pub async fn audit(&self, id: &str) -> Result<Reply> {
        let mut events: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let r = self
                .audit_page(id, cursor.as_deref(), Some(AUDIT_PAGE))
                .await?;
            if !r.ok() {
                return Ok(r);
            }
            if let Some(page) = r.body["events"].as_array() {
                events.extend(page.iter().cloned());
            }
            match r.body["next_cursor"].as_str() {
                Some(next) if Some(next) != cursor.as_deref() => cursor = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(Reply {
            status: 200,
            body: json!({ "events": events }),
        })
    }

    pub async fn verify(&self, id: &str) -> Result<Reply> {
        self.verify_from(id, None).await
    }

    /// Verifies the trail, from the start or from a checkpoint (`<seq>.<hash>`) an earlier
    /// verification answered.
    pub async fn verify_from(&self, id: &str, checkpoint: Option<&str>) -> Result<Reply> {
        let q = checkpoint.map_or_else(String::new, |c| {
            format!("?checkpoint={}", utf8_percent_encode(c, NON_ALPHANUMERIC))
        });
        self.get(&format!("/v1/deployments/{id}/audit/verify{q}"))
            .await
    }

    pub async fn cab_queue(&self) -> Result<Reply> {
        self.get("/v1/cab/queue").await
    }

    /// A CAB decision on `ring`: `approve` (with conditions) or `reject` (with a comment), bound
    /// to the evidence hash the member reviewed.
    pub async fn decide(
        &self,
        id: &str,
        ring: u8,
        verdict: &str,
        evidence_hash: &str,
        conditions: &[String],
        comment: Option<&str>,
    ) -> Result<Reply> {
        self.post(
            &format!("/v1/deployments/{id}/cab/decisions"),
            &json!({ "ring": ring, "verdict": verdict, "evidence_hash": evidence_hash, "conditions": conditions, "comment": comment }),
        )
        .await
    }

    pub async fn request_exception(&self, id: &str, request: &Value) -> Result<Reply> {
        self.post(&format!("/v1/deployments/{id}/exceptions"), request)
            .await
    }

    pub async fn approve_exception(&self, id: &str, exception: &str) -> Result<Reply> {
        self.post(
            &format!("/v1/deployments/{id}/exceptions/{exception}/approve"),
            &json!({}),
        )
        .await
    }

    pub async fn reject_exception(&self, id: &str, exception: &str, reason: &str) -> Result<Reply> {
        self.post(
            &format!("/v1/deployments/{id}/exceptions/{exception}/reject"),
            &json!({ "reason": reason }),
        )
        .await
    }

    pub async fn extend_exception(&self, id: &str, exception: &str, days: u32) -> Result<Reply> {
        self.post(
            &format!("/v1/deployments/{id}/exceptions/{exception}/extend"),
            &json!({ "days": days }),
        )
        .await
    }

    pub async fn report_incident(
        &self,
        id: &str,
        severity: &str,
        summary: &str,
        reclassify: Option<&str>,
    ) -> Result<Reply> {
        let mut body = json!({ "severity": severity, "summary": summary });
        if let Some(c) = reclassify {
            body["reclassify_blast_radius"] = c.into();
        }
        self.post(&format!("/v1/deployments/{id}/incidents"), &body)
            .await
    }

    pub async fn resolve_incident(
        &self,
        id: &str,
        incident: &str,
        resolution: &str,
    ) -> Result<Reply> {
        self.post(
            &format!("/v1/deployments/{id}/incidents/{incident}/resolve"),
            &json!({ "resolution": resolution }),
        )
        .await
    }

    /// Records a rollback run on Ring 0 devices (`result`: `passed` or `failed`): the rollback
    /// gate reads the latest record. Not by the deployment's submitter.
    pub async fn validate_rollback(
        &self,
        id: &str,
        devices: &[String],
        result: &str,
        notes: Option<&str>,
    ) -> Result<Reply> {
        let mut body = json!({ "devices": devices, "result": result });
        if let Some(n) = notes {
            body["notes"] = n.into();
        }
        self.post(&format!("/v1/deployments/{id}/rollback/validations"), &body)
            .await
    }
}

/// A deployment's state as one short string: `in_ring 1`, `awaiting_cab 2`, `completed`.
pub fn state_of(deployment: &Value) -> String {
    let s = &deployment["state"];
    match (s["state"].as_str(), s["ring"].as_u64()) {
        (Some(state), Some(ring)) => format!("{state} {ring}"),
        (Some(state), None) => state.to_owned(),
        _ => s.to_string(),
    }
}
