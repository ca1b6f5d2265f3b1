//! Request bodies, read with every missing or invalid field named (400 `INVALID_REQUEST`).

use eucora_domain::Ring;
use eucora_domain::cab::{BlastRadiusClass, CabVerdict};
use eucora_domain::evidence::{Sha256Hex, requested_exception};
use eucora_domain::fields::{Fields, Obj, Text, join};
use eucora_domain::gates::GateKind;
use eucora_domain::rollback::{
    MAX_DEVICES, MAX_NOTES_CHARS, RollbackResult, ValidationInput, device_id_problem,
};
use eucora_service::usecases::cab::{DecisionInput, WithdrawalInput};
use eucora_service::usecases::exceptions::ExceptionInput;
use eucora_service::usecases::gates::IncidentInput;
use serde_json::Value;

use crate::error::ApiError;

const TEXT: usize = Text::MAX;

/// The most a small body (a decision, an exception request, an incident, ...) may hold, as
/// stored: eleven texts at their longest (a justification or comment and ten list items), each
/// character as JSON writes the widest (`\u0000`: 6 bytes), and room for the rest.
pub const SMALL_BODY_LIMIT: usize = (Text::MAX_ITEMS + 1) * Text::MAX * 6 + 4096;

fn parse(body: &str) -> Result<Value, ApiError> {
    if body.trim().is_empty() {
        return Err(ApiError::bad_field("(body)", "a JSON body is required"));
    }
    let v: Value = serde_json::from_str(body)
        .map_err(|e| ApiError::bad_field("(body)", &format!("not valid JSON: {e}")))?;
    within(&v, SMALL_BODY_LIMIT)?;
    Ok(v)
}

/// 413 naming the field that takes the most when `v`, as stored (compact JSON), is over `limit`.
pub fn within(v: &Value, limit: usize) -> Result<(), ApiError> {
    let size = serde_json::to_vec(v).map_or(usize::MAX, |b| b.len());
    if size > limit {
        return Err(ApiError::too_large(
            &eucora_service::budget::largest_field(v),
            size,
            limit,
        ));
    }
    Ok(())
}

fn finish<T>(f: Fields, value: Option<T>) -> Result<T, ApiError> {
    match value {
        Some(v) if f.is_clean() => Ok(v),
        _ => Err(ApiError::invalid(
            "INVALID_REQUEST",
            "the request body is invalid",
            f.into_errors(),
        )),
    }
}

fn ring(f: &mut Fields, o: &Obj<'_>, key: &str) -> Option<Ring> {
    let n = f.count(o, key, u64::MAX)?;
    match i64::try_from(n)
        .ok()
        .and_then(|n| Ring::from_number(n).ok())
    {
        Some(r) => Some(r),
        None => {
            f.error(join(o.path(), key), "must be a ring from 0 to 4");
            None
        }
    }
}

/// `Some(None)` when absent, `None` when invalid (reported).
#[allow(clippy::option_option)]
fn opt_ring(f: &mut Fields, o: &Obj<'_>, key: &str, v: &Value) -> Option<Option<Ring>> {
    match v.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(_) => ring(f, o, key).map(Some),
    }
}

fn strings(f: &mut Fields, o: &Obj<'_>, key: &str) -> Option<Vec<String>> {
    let items = f.opt_bounded_array(o, key, Text::MAX_ITEMS)?;
    let all: Vec<Option<String>> = items
        .iter()
        .map(|(p, v)| f.check_string(p, v, TEXT))
        .collect();
    all.into_iter().collect()
}

/// `POST /v1/deployments/{id}/cab/decisions`
pub fn decision(body: &str) -> Result<DecisionInput, ApiError> {
    let v = parse(body)?;
    let mut f = Fields::default();
    let o = f.root(&v);
    f.deny_unknown(
        &o,
        &["ring", "verdict", "conditions", "comment", "evidence_hash"],
    );
    let ring = ring(&mut f, &o, "ring");
    let verdict = f.parsed::<CabVerdict>(&o, "verdict", &CabVerdict::expected());
    let conditions = strings(&mut f, &o, "conditions");
    let comment = f.opt_string(&o, "comment", TEXT);
    let hash = f.string(&o, "evidence_hash", 64).and_then(|h| {
        let parsed = Sha256Hex::parse(&h);
        if parsed.is_none() {
            f.error(
                "evidence_hash",
                "must be the deployment's evidence hash: 64 hex characters",
            );
        }
        parsed
    });
    let value = (|| {
        Some(DecisionInput {
            ring: ring?,
            verdict: verdict?,
            conditions: conditions?,
            comment: comment?,
            evidence_hash: hash?,
        })
    })();
    finish(f, value)
}

/// `POST /v1/deployments/{id}/exceptions`
pub fn exception_request(body: &str) -> Result<ExceptionInput, ApiError> {
    let v = parse(body)?;
    let mut f = Fields::default();
    let o = f.root(&v);
    f.deny_unknown(
        &o,
        &[
            "kind",
            "justification",
            "compensating_controls",
            "ring",
            "gate",
            "break_glass",
            "expires_in_days",
        ],
    );
    // Kind, justification and controls are read as the evidence pack reads them.
    let core: serde_json::Map<String, Value> = ["kind", "justification", "compensating_controls"]
        .iter()
        .filter_map(|k| v.get(*k).map(|x| ((*k).to_owned(), x.clone())))
        .collect();
    let requested = requested_exception(&mut f, String::new(), &Value::Object(core));
    let ring = opt_ring(&mut f, &o, "ring", &v);
    let gate = match v.get("gate") {
        None | Some(Value::Null) => Some(None),
        Some(_) => f
            .parsed::<GateKind>(&o, "gate", &GateKind::expected())
            .map(Some),
    };
    let break_glass = f.opt_boolean(&o, "break_glass", false);
    let days = match v.get("expires_in_days") {
        None | Some(Value::Null) => Some(None),
        Some(_) => f.count(&o, "expires_in_days", 365).and_then(|d| {
            if d == 0 {
                f.error("expires_in_days", "must be at least 1");
                None
            } else {
                u32::try_from(d).ok().map(Some)
            }
        }),
    };
    let value = (|| {
        Some(ExceptionInput {
            requested: requested?,
            ring: ring?,
            gate: gate?,
            break_glass: break_glass?,
            expires_in_days: days?,
        })
    })();
    finish(f, value)
}

fn one_text(body: &str, key: &str) -> Result<String, ApiError> {
    let v = parse(body)?;
    let mut f = Fields::default();
    let o = f.root(&v);
    f.deny_unknown(&o, &[key]);
    let text = f.string(&o, key, TEXT);
    finish(f, text)
}

/// `POST /v1/deployments/{id}/cab/withdrawals`
pub fn withdrawal(body: &str) -> Result<WithdrawalInput, ApiError> {
    let v = parse(body)?;
    let mut f = Fields::default();
    let o = f.root(&v);
    f.deny_unknown(&o, &["ring", "reason"]);
    let ring = ring(&mut f, &o, "ring");
    let reason = f.string(&o, "reason", TEXT);
    let value = (|| {
        Some(WithdrawalInput {
            ring: ring?,
            reason: reason?,
        })
    })();
    finish(f, value)
}

/// `POST .../exceptions/{exceptionId}/reject`
pub fn reason(body: &str) -> Result<String, ApiError> {
    one_text(body, "reason")
}

/// `POST .../incidents/{incidentId}/resolve`
pub fn resolution(body: &str) -> Result<String, ApiError> {
    one_text(body, "resolution")
}

/// `POST .../exceptions/{exceptionId}/extend`
pub fn extension(body: &str) -> Result<u32, ApiError> {
    let v = parse(body)?;
    let mut f = Fields::default();
    let o = f.root(&v);
    f.deny_unknown(&o, &["days"]);
    let days = f.count(&o, "days", 365).and_then(|d| u32::try_from(d).ok());
    if days == Some(0) {
        f.error("days", "must be at least 1");
    }
    finish(f, days)
}

/// Incident severities.
pub const SEVERITIES: &[&str] = &["low", "medium", "high", "critical"];

/// `POST /v1/deployments/{id}/incidents`
pub fn incident(body: &str) -> Result<IncidentInput, ApiError> {
    let v = parse(body)?;
    let mut f = Fields::default();
    let o = f.root(&v);
    f.deny_unknown(&o, &["severity", "summary", "reclassify_blast_radius"]);
    let severity = f.string(&o, "severity", 16).and_then(|s| {
        if SEVERITIES.contains(&s.as_str()) {
            Some(s)
        } else {
            f.error(
                "severity",
                format!("must be one of {}", SEVERITIES.join(", ")),
            );
            None
        }
    });
    let summary = f.string(&o, "summary", TEXT);
    let reclassify = match v.get("reclassify_blast_radius") {
        None | Some(Value::Null) => Some(None),
        Some(_) => f
            .parsed::<BlastRadiusClass>(
                &o,
                "reclassify_blast_radius",
                &BlastRadiusClass::expected(),
            )
            .map(Some),
    };
    let value = (|| {
        Some(IncidentInput {
            severity: severity?,
            summary: summary?,
            reclassify_blast_radius: reclassify?,
        })
    })();
    finish(f, value)
}

/// `POST /v1/deployments/{id}/rollback/validations`: the Ring 0 devices (at least one, at most
/// [`MAX_DEVICES`], each an id of at most 128 bytes), the result, optional notes (at most
/// [`MAX_NOTES_CHARS`] characters, as every free text).
pub fn rollback_validation(body: &str) -> Result<ValidationInput, ApiError> {
    let v = parse(body)?;
    let mut f = Fields::default();
    let o = f.root(&v);
    f.deny_unknown(&o, &["devices", "result", "notes"]);
    let devices = f.array(&o, "devices").and_then(|items| {
        if items.is_empty() {
            f.error("devices", "name at least one Ring 0 device");
            return None;
        }
        if items.len() > MAX_DEVICES {
            f.error("devices", format!("at most {MAX_DEVICES} devices"));
            return None;
        }
        let all: Vec<Option<String>> = items
            .iter()
            .map(|(p, v)| match v.as_str() {
                Some(s) => match device_id_problem(s) {
                    None => Some(s.to_owned()),
                    Some(problem) => {
                        f.error(p.clone(), problem);
                        None
                    }
                },
                None => {
                    f.error(p.clone(), "must be a string");
                    None
                }
            })
            .collect();
        all.into_iter().collect()
    });
    let result = f.parsed::<RollbackResult>(&o, "result", &RollbackResult::expected());
    let notes = f.opt_string(&o, "notes", MAX_NOTES_CHARS);
    let value = (|| {
        Some(ValidationInput {
            devices: devices?,
            result: result?,
            notes: notes?,
        })
    })();
    finish(f, value)
}

// The bodies as the API document describes them. The readers above take them apart field by
// field (to name every bad field at once); these types state the same shapes for the document,
// and the tests check the two against each other on the sample bodies.

/// A CAB member's decision on the ring the deployment awaits.
#[derive(Debug, utoipa::ToSchema)]
pub struct CabDecisionRequest {
    pub ring: Ring,
    pub verdict: CabVerdict,
    /// Conditions attached to an approval, at most 10.
    #[schema(max_items = 10)]
    pub conditions: Option<Vec<Text>>,
    /// Why: required when rejecting.
    #[schema(value_type = Option<Text>)]
    pub comment: Option<String>,
    /// The deployment's evidence hash as the member saw it; the decision is bound to it.
    pub evidence_hash: Sha256Hex,
}

/// A CAB member's withdrawal of their own approval on the ring the deployment awaits.
#[derive(Debug, utoipa::ToSchema)]
pub struct CabWithdrawalRequest {
    pub ring: Ring,
    /// Why the approval is withdrawn (kept in the audit trail).
    #[schema(value_type = Text)]
    pub reason: String,
}

/// An exception request: a waived gate or policy.
#[derive(Debug, utoipa::ToSchema)]
pub struct ExceptionRequestBody {
    pub kind: eucora_domain::exception::ExceptionKind,
    #[schema(value_type = Text)]
    pub justification: String,
    #[schema(min_items = 1, max_items = 10)]
    pub compensating_controls: Vec<Text>,
    /// For `gate_override`: the ring whose gate is waived.
    pub ring: Option<Ring>,
    /// For `gate_override`: the gate waived (`security_incidents` and `cab_approval` never are).
    pub gate: Option<GateKind>,
    /// Break-glass: needs more distinct approvers. Default false.
    pub break_glass: Option<bool>,
    /// Days until the exception expires (default: the policy's default), at most the policy's
    /// maximum.
    #[schema(minimum = 1, maximum = 365)]
    pub expires_in_days: Option<u32>,
}

/// Why an exception is rejected.
#[derive(Debug, utoipa::ToSchema)]
pub struct Reason {
    #[schema(value_type = Text)]
    pub reason: String,
}

/// How many days to extend an approved exception by, at most the policy's maximum.
#[derive(Debug, utoipa::ToSchema)]
pub struct Extension {
    #[schema(minimum = 1, maximum = 365)]
    pub days: u32,
}

/// A security incident attributed to the package.
#[derive(Debug, utoipa::ToSchema)]
pub struct IncidentReport {
    pub severity: Severity,
    #[schema(value_type = Text)]
    pub summary: String,
    /// Raise the deployment's blast-radius class.
    pub reclassify_blast_radius: Option<BlastRadiusClass>,
}

/// How an incident was resolved.
#[derive(Debug, utoipa::ToSchema)]
pub struct IncidentResolution {
    #[schema(value_type = Text)]
    pub resolution: String,
}

/// A rollback run on Ring 0 devices, as a publisher or security reviewer (not the deployment's
/// submitter) records it.
#[derive(Debug, utoipa::ToSchema)]
pub struct RollbackValidationRequest {
    /// The Ring 0 devices the rollback ran on (platform device ids).
    #[schema(min_items = 1, max_items = 20)]
    pub devices: Vec<DeviceId>,
    pub result: RollbackResult,
    /// What was seen: free text.
    #[schema(value_type = Option<Text>)]
    pub notes: Option<String>,
}

/// A platform device id: at most 128 bytes of letters, digits and `. _ : @ -`.
#[derive(Debug, Clone, Copy)]
pub struct DeviceId;

impl utoipa::PartialSchema for DeviceId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(eucora_domain::rollback::MAX_DEVICE_ID_BYTES))
            .pattern(Some(eucora_domain::ids::ID_PATTERN))
            .into()
    }
}

impl utoipa::ToSchema for DeviceId {}

/// An incident's severity: one of [`SEVERITIES`].
#[derive(Debug, Clone, Copy)]
pub struct Severity;

impl utoipa::PartialSchema for Severity {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(SEVERITIES.iter().copied()))
            .into()
    }
}

impl utoipa::ToSchema for Severity {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_decision_names_every_field() {
        let err =
            decision(r#"{"ring": 9, "verdict": "maybe", "evidence_hash": "abc", "extra": 1}"#)
                .unwrap_err();
        let fields: Vec<&str> = err.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(err.status, 400);
        for want in ["ring", "verdict", "evidence_hash", "extra"] {
            assert!(fields.contains(&want), "{want} not in {fields:?}");
        }
    }

    #[test]
    fn a_good_decision_reads() {
        let d = decision(&format!(r#"{{"ring": 1, "verdict": "approve", "conditions": ["after 18:00"], "evidence_hash": "{}"}}"#, "a".repeat(64))).unwrap();
        assert_eq!(d.ring, Ring::Canary);
        assert_eq!(d.conditions, vec!["after 18:00".to_owned()]);
    }

    #[test]
    fn exception_requests_and_incidents_name_their_fields() {
        let err =
            exception_request(r#"{"kind": "nope", "compensating_controls": [], "gate": "speed"}"#)
                .unwrap_err();
        let fields: Vec<&str> = err.fields.iter().map(|f| f.field.as_str()).collect();
        for want in ["kind", "justification", "compensating_controls", "gate"] {
            assert!(fields.contains(&want), "{want} not in {fields:?}");
        }
        let err = incident(r#"{"severity": "meh"}"#).unwrap_err();
        let fields: Vec<&str> = err.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, vec!["severity", "summary"]);
        assert_eq!(
            extension(r#"{"days": 0}"#).unwrap_err().field.as_deref(),
            Some("days")
        );
        assert_eq!(reason("").unwrap_err().field.as_deref(), Some("(body)"));
    }

    #[test]
    fn a_rollback_validation_names_its_fields() {
        let fields = |body: &str| -> Vec<String> {
            rollback_validation(body)
                .unwrap_err()
                .fields
                .into_iter()
                .map(|f| f.field)
                .collect()
        };
        assert_eq!(
            fields(r#"{"devices": [], "result": "maybe"}"#),
            vec!["devices", "result"]
        );
        assert_eq!(
            fields(r#"{"devices": ["ok", "not ok"], "result": "passed", "x": 1}"#),
            vec!["x", "devices[1]"]
        );
        let many: Vec<String> = (0..=MAX_DEVICES).map(|i| format!("d{i}")).collect();
        let body = serde_json::json!({ "devices": many, "result": "passed" }).to_string();
        assert_eq!(fields(&body), vec!["devices"]);
        let body = serde_json::json!({ "devices": ["d"], "result": "passed", "notes": "é".repeat(MAX_NOTES_CHARS + 1) }).to_string();
        assert_eq!(fields(&body), vec!["notes"]);
        let ok = rollback_validation(
            r#"{"devices": ["lab-1"], "result": "failed", "notes": "uninstall left a file"}"#,
        )
        .unwrap();
        assert_eq!(ok.result, RollbackResult::Failed);
        assert_eq!(ok.devices, vec!["lab-1".to_owned()]);
    }

    #[test]
    fn the_rollback_validation_schema_states_the_readers_limits() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(RollbackValidationRequest::schema()).unwrap();
        let p = &schema["properties"];
        assert_eq!(p["devices"]["maxItems"], MAX_DEVICES, "{schema}");
        assert_eq!(p["devices"]["minItems"], 1, "{schema}");
        let device = serde_json::to_value(DeviceId::schema()).unwrap();
        assert_eq!(
            device["maxLength"],
            eucora_domain::rollback::MAX_DEVICE_ID_BYTES
        );
        let notes = p["notes"].to_string();
        assert!(notes.contains("Text"), "{notes}");
    }
}
