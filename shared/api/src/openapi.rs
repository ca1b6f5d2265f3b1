//! The OpenAPI 3 document, generated from the route table and the body schemas below.

use eucora_domain::cab::{BlastRadiusClass, CabVerdict, Role};
use eucora_domain::exception::ExceptionKind;
use eucora_domain::gates::GateKind;
use serde_json::{Value, json};

use crate::bodies::SEVERITIES;
use crate::routes::ROUTES;

fn keys<T: Copy>(all: &[T], key: impl Fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|v| key(*v)).collect()
}

fn schemas() -> Value {
    let text = json!({ "type": "string", "minLength": 1 });
    let hash = json!({ "type": "string", "pattern": "^[0-9a-fA-F]{64}$" });
    let ring = json!({ "type": "integer", "minimum": 0, "maximum": 4 });
    json!({
        "Submission": {
            "type": "object",
            "description": "A deployment intent with its evidence pack. Every missing or invalid field is named in one 400 EVIDENCE_INCOMPLETE answer. See events/deployments/low-risk.json for a complete example.",
            "required": ["correlation_id", "app", "privileged", "business_criticality", "evidence"],
            "additionalProperties": false,
            "properties": {
                "correlation_id": { "type": "string", "pattern": "^[A-Za-z0-9._:@-]{1,128}$" },
                "app": { "type": "object", "required": ["name", "version", "vendor", "vendor_known"] },
                "privileged": { "type": "boolean" },
                "business_criticality": { "enum": keys(BlastRadiusClass::ALL, BlastRadiusClass::key) },
                "urgency": { "enum": ["standard", "urgent"] },
                "cross_boundary": { "type": "boolean" },
                "evidence": {
                    "type": "object",
                    "required": ["artifacts", "sbom", "vulnerabilities", "installation", "behaviour", "rollout", "rollback", "tests", "history"],
                    "properties": {
                        "artifacts": { "type": "array", "minItems": 1, "items": { "type": "object", "required": ["platform", "file_name", "sha256", "size_bytes", "location", "signing", "detection"] } },
                        "rollout": { "type": "object", "required": ["rings", "site_class", "critical_targets"] },
                        "exceptions": { "type": "array", "items": { "$ref": "#/components/schemas/ExceptionRequest" } }
                    }
                }
            }
        },
        "CabDecision": {
            "type": "object", "additionalProperties": false,
            "required": ["ring", "verdict", "evidence_hash"],
            "properties": {
                "ring": ring,
                "verdict": { "enum": keys(CabVerdict::ALL, CabVerdict::key) },
                "conditions": { "type": "array", "items": text },
                "comment": { "type": ["string", "null"], "description": "Required when rejecting." },
                "evidence_hash": hash
            }
        },
        "ExceptionRequest": {
            "type": "object", "additionalProperties": false,
            "required": ["kind", "justification", "compensating_controls"],
            "properties": {
                "kind": { "enum": keys(ExceptionKind::ALL, ExceptionKind::key) },
                "justification": text,
                "compensating_controls": { "type": "array", "minItems": 1, "items": text },
                "ring": ring,
                "gate": { "enum": keys(GateKind::ALL, GateKind::key), "description": "Required for gate_override." },
                "break_glass": { "type": "boolean" },
                "expires_in_days": { "type": "integer", "minimum": 1, "maximum": 90 }
            }
        },
        "Reason": { "type": "object", "additionalProperties": false, "required": ["reason"], "properties": { "reason": text } },
        "Extension": { "type": "object", "additionalProperties": false, "required": ["days"], "properties": { "days": { "type": "integer", "minimum": 1, "maximum": 90 } } },
        "Incident": {
            "type": "object", "additionalProperties": false,
            "required": ["severity", "summary"],
            "properties": {
                "severity": { "enum": SEVERITIES },
                "summary": text,
                "reclassify_blast_radius": { "enum": keys(BlastRadiusClass::ALL, BlastRadiusClass::key) }
            }
        },
        "Resolution": { "type": "object", "additionalProperties": false, "required": ["resolution"], "properties": { "resolution": text } },
        "Error": {
            "type": "object",
            "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                "code": { "type": "string" }, "message": { "type": "string" }, "field": { "type": "string" },
                "fields": { "type": "array", "items": { "type": "object", "properties": { "field": { "type": "string" }, "problem": { "type": "string" } } } }
            } } }
        }
    })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let roles: Vec<&str> = r.roles.iter().map(|x: &Role| x.key()).collect();
        let mut op = json!({
            "operationId": format!("{:?}", r.id),
            "summary": r.summary,
            "description": format!("Roles allowed: {}. Any other role gets 403.", roles.join(", ")),
            "x-eucora-roles": roles,
            "x-eucora-function": r.function,
            "parameters": params,
            "responses": {
                r.success.to_string(): { "description": "Success", "content": { "application/json": {} } },
                "400": { "description": "Invalid request; the field is named", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "401": { "description": "No valid identity token" },
                "403": { "description": "Role not allowed" },
                "404": { "description": "Not found" },
                "409": { "description": "Conflict (state, duplicate, changed evidence)" }
            }
        });
        if let Some(body) = r.body {
            op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{body}") } } } });
        }
        if r.id == crate::RouteId::SubmitDeployment {
            op["parameters"] = json!([{ "name": "Idempotency-Key", "in": "header", "required": false, "schema": { "type": "string", "maxLength": 128 },
                "description": "A repeat with the same key and body returns the first answer; the same key with another body is 409. Without it, the correlation_id plays this part." }]);
        }
        let entry = paths.entry(r.path).or_insert_with(|| json!({}));
        entry[r.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "EUCORA control plane API",
            "version": "1",
            "description": "Deployment governance for end-user computing. Identity: a JWT validated by API Gateway; the `sub` claim is the actor and `eucora:roles` (space-separated) or `cognito:groups` the roles: packaging, publisher, cab, security_reviewer, auditor."
        },
        "security": [{ "jwt": [] }],
        "components": {
            "securitySchemes": { "jwt": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
            "schemas": schemas()
        },
        "paths": paths
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_with_its_roles() {
        let doc = document();
        for r in ROUTES {
            let op = &doc["paths"][r.path][r.method.to_ascii_lowercase()];
            assert!(op.is_object(), "{} missing", r.key());
            assert!(!op["x-eucora-roles"].as_array().unwrap().is_empty());
            if let Some(body) = r.body {
                assert!(doc["components"]["schemas"][body].is_object(), "{body}");
            }
        }
    }
}
