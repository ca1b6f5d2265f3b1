use super::*;

use crate::routes::Route;

fn repo(path: &str) -> String {
    format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))
}

fn json_files(dir: &str) -> Vec<(String, Value)> {
    let mut files: Vec<_> = std::fs::read_dir(repo(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (
                p.display().to_string(),
                serde_json::from_str(&text).unwrap(),
            )
        })
        .collect()
}

/// A validator for the component `name`, its references resolved within the document.
fn validator(doc: &Value, name: &str) -> jsonschema::Validator {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{name}"),
        "components": doc["components"].clone(),
    });
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn errors(v: &jsonschema::Validator, value: &Value) -> Vec<String> {
    v.iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn the_document_is_openapi_3_1() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    // The objects around the schemas are utoipa's: its typed model reads them back.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let mut op = op.clone();
            // (utoipa's model reads only a subset of JSON Schema; the schemas are checked below.)
            for r in op["responses"].as_object_mut().unwrap().values_mut() {
                r["content"]["application/json"]["schema"] = json!({ "type": "object" });
            }
            if op.get("requestBody").is_some() {
                op["requestBody"]["content"]["application/json"]["schema"] =
                    json!({ "type": "object" });
            }
            for p in op["parameters"].as_array_mut().unwrap() {
                p["schema"] = json!({ "type": "object" });
            }
            let typed: Result<utoipa::openapi::path::Operation, _> = serde_json::from_value(op);
            assert!(typed.is_ok(), "{method} {path}: {:?}", typed.err());
        }
    }
    // Every component is a valid JSON Schema (2020-12, the dialect of OpenAPI 3.1).
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        validator(&doc, name);
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["jwt"],
        json!({ "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "A JWT whose `eucora:roles` (or `cognito:groups`) claim names the caller's roles" })
    );
    assert_eq!(doc["security"], json!([{ "jwt": [] }]));
}

#[test]
fn every_route_appears_with_its_roles_parameters_and_a_schema_for_every_answer() {
    let doc = document();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let resolves = |schema: &Value| {
        let mut refs = Vec::new();
        let text = schema.to_string();
        for part in text.split("#/components/schemas/").skip(1) {
            refs.push(part.split('"').next().unwrap().to_owned());
        }
        assert!(!refs.is_empty(), "{schema}");
        for r in refs {
            assert!(schemas.contains_key(&r), "{r} is not a component");
        }
    };
    for r in ROUTES {
        let op = &doc["paths"][r.path][r.method.to_ascii_lowercase()];
        assert!(op.is_object(), "{} missing", r.key());
        let roles: Vec<&str> = r.roles.iter().map(|x| x.key()).collect();
        assert_eq!(op["x-roles"], json!(roles), "{}", r.key());
        for role in &roles {
            assert!(op["description"].as_str().unwrap().contains(role));
        }
        let responses = op["responses"].as_object().unwrap();
        for status in [r.success.to_string(), "401".into(), "403".into()] {
            assert!(responses.contains_key(&status), "{} {status}", r.key());
        }
        for (status, answer) in responses {
            let schema = &answer["content"]["application/json"]["schema"];
            assert!(schema.is_object(), "{} {status} has no schema", r.key());
            resolves(schema);
        }
        let params: Vec<&str> = r
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for name in &params {
            let p = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == *name && p["in"] == "path")
                .unwrap_or_else(|| panic!("{} has no parameter {name}", r.key()));
            assert_eq!(p["schema"]["pattern"], eucora_domain::ids::ID_PATTERN);
            assert!(
                responses.contains_key("404") && responses.contains_key("400"),
                "{}: an id that is well-formed but unknown is 404, a malformed one 400",
                r.key()
            );
        }
        if r.method == "POST" && contract(r.id).body.is_some() {
            resolves(&op["requestBody"]["content"]["application/json"]["schema"]);
        }
    }
}

#[test]
fn nested_objects_have_their_properties() {
    let doc = document();
    let s = &doc["components"]["schemas"];
    for (name, props) in [
        ("App", &["name", "version", "vendor", "vendor_known"][..]),
        (
            "DeploymentView",
            &["app", "risk", "approvals", "last_gate_decision", "rings"],
        ),
        (
            "RiskAssessment",
            &["score", "exact_score", "factors", "publish_blockers"],
        ),
        (
            "FactorContribution",
            &["factor", "normalised", "weight", "contribution"],
        ),
        ("GateDecision", &["ring", "verdict", "checks", "next_ring"]),
        (
            "GateCheck",
            &["gate", "threshold", "actual", "status", "detail"],
        ),
        (
            "AuditEvent",
            &["seq", "kind", "actor", "hash", "prev_hash", "detail"],
        ),
        (
            "CabDecision",
            &["ring", "approver", "verdict", "evidence_hash", "withdrawn"],
        ),
        ("Withdrawal", &["at", "reason"]),
        ("Withdrawn", &["withdrawn", "cab_status", "state"]),
        ("CabWithdrawalRequest", &["ring", "reason"]),
        ("Incident", &["reported_by", "reported_as", "resolved"]),
        (
            "EvidencePack",
            &["artifacts", "sbom", "vulnerabilities", "rollout"],
        ),
        ("Error", &["code", "message", "field", "fields"]),
    ] {
        for p in props {
            assert!(s[name]["properties"][p].is_object(), "{name}.{p}");
        }
    }
}

#[test]
fn the_sample_deployments_are_valid_by_the_document_and_the_invalid_one_is_not() {
    let doc = document();
    let v = validator(&doc, "Submission");
    for (file, body) in json_files("events/deployments") {
        assert!(eucora_domain::evidence::Submission::from_value(&body).is_ok());
        assert_eq!(errors(&v, &body), Vec::<String>::new(), "{file}");
    }
    for (file, body) in json_files("events/invalid") {
        assert!(eucora_domain::evidence::Submission::from_value(&body).is_err());
        assert!(!v.is_valid(&body), "{file} is valid by the document");
    }
}

#[test]
fn the_sample_api_bodies_are_valid_by_the_document_as_the_readers_find_them() {
    let doc = document();
    for (file, event) in json_files("events/api") {
        let key = event["routeKey"].as_str().unwrap();
        let route = ROUTES.iter().find(|r| r.key() == key).unwrap();
        let Some(body) = contract(route.id).body else {
            continue;
        };
        let value: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
        let text = value.to_string();
        let read_ok = match route.id {
            RouteId::SubmitDeployment => eucora_domain::evidence::Submission::parse(&text).is_ok(),
            RouteId::CabDecision => crate::bodies::decision(&text).is_ok(),
            RouteId::CabWithdrawal => crate::bodies::withdrawal(&text).is_ok(),
            RouteId::RequestException => crate::bodies::exception_request(&text).is_ok(),
            RouteId::RejectException => crate::bodies::reason(&text).is_ok(),
            RouteId::ExtendException => crate::bodies::extension(&text).is_ok(),
            RouteId::ReportIncident => crate::bodies::incident(&text).is_ok(),
            RouteId::ResolveIncident => crate::bodies::resolution(&text).is_ok(),
            RouteId::ValidateRollback => crate::bodies::rollback_validation(&text).is_ok(),
            _ => unreachable!("{file}: no body"),
        };
        let v = validator(&doc, &body.name);
        assert_eq!(
            v.is_valid(&value),
            read_ok,
            "{file}: the reader says {read_ok}, the document {:?}",
            errors(&v, &value)
        );
    }
}

#[test]
fn the_id_pattern_is_what_the_id_parser_accepts() {
    let doc = document();
    let v = validator(&doc, "DeploymentId");
    let long = "x".repeat(128);
    let too_long = "x".repeat(129);
    for s in [
        "dep-1",
        "dp-20261123-0001",
        "a.b_c:d@e-f",
        long.as_str(),
        too_long.as_str(),
        "",
        "a b",
        "a/b",
        "é",
        "a%2Fb",
        "x\n",
        "..",
    ] {
        assert_eq!(
            v.is_valid(&json!(s)),
            DeploymentId::parse(s).is_ok(),
            "{s:?}"
        );
    }
}

type Mutation = Box<dyn Fn(&mut Value)>;

#[test]
fn the_rules_between_fields_are_stated() {
    let doc = document();
    let v = validator(&doc, "Submission");
    let (_, sample) = json_files("events/deployments")
        .into_iter()
        .find(|(f, _)| f.ends_with("low-risk.json"))
        .unwrap();
    let mutate = |f: &dyn Fn(&mut Value)| {
        let mut b = sample.clone();
        f(&mut b);
        let by_reader = eucora_domain::evidence::Submission::from_value(&b).is_ok();
        (v.is_valid(&b), by_reader)
    };
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "rings with a gap",
            Box::new(|b| b["evidence"]["rollout"]["rings"][1]["ring"] = json!(3)),
        ),
        (
            "a windows package named .pkg",
            Box::new(|b| b["evidence"]["artifacts"][0]["file_name"] = json!("app.pkg")),
        ),
        (
            "two artifacts for one platform",
            Box::new(|b| {
                let a = b["evidence"]["artifacts"][0].clone();
                b["evidence"]["artifacts"] = json!([a.clone(), a]);
            }),
        ),
        (
            "signed without a signer",
            Box::new(|b| b["evidence"]["artifacts"][0]["signing"]["signer"] = Value::Null),
        ),
        (
            "an unknown field",
            Box::new(|b| b["evidence"]["sbom"]["extra"] = json!(1)),
        ),
        ("a blank name", Box::new(|b| b["app"]["name"] = json!("  "))),
        (
            "a name of white space only, as Rust trims it",
            Box::new(|b| b["app"]["name"] = json!("\u{85}\u{3000}")),
        ),
        (
            "a name with a character ECMA's \\s calls white space and Rust does not",
            Box::new(|b| b["app"]["name"] = json!("\u{feff}")),
        ),
        (
            "a count written 1.0",
            Box::new(|b| b["evidence"]["tests"]["passed"] = json!(1.0)),
        ),
        (
            "a count written 1.5",
            Box::new(|b| b["evidence"]["tests"]["passed"] = json!(1.5)),
        ),
        (
            "a windows package of 25 GB (under Intune's limit, over Jamf's)",
            Box::new(|b| b["evidence"]["artifacts"][0]["size_bytes"] = json!(25_000_000_000_u64)),
        ),
        (
            "a windows package over Intune's 30 GB",
            Box::new(|b| b["evidence"]["artifacts"][0]["size_bytes"] = json!(30_000_000_001_u64)),
        ),
        (
            "a macos package over Jamf's 20 GB",
            Box::new(|b| {
                let a = &mut b["evidence"]["artifacts"][0];
                a["platform"] = json!("macos");
                a["file_name"] = json!("app.pkg");
                a["detection"] = json!({ "kind": "bundle_id", "value": "com.example.app" });
                a.as_object_mut().unwrap().remove("install_command");
                a.as_object_mut().unwrap().remove("uninstall_command");
                a["size_bytes"] = json!(20_000_000_001_u64);
            }),
        ),
        (
            "urgency null (absent)",
            Box::new(|b| b["urgency"] = Value::Null),
        ),
    ];
    for (what, f) in cases {
        let (by_document, by_reader) = mutate(f.as_ref());
        assert_eq!(by_document, by_reader, "{what}");
    }
}

fn route(id: RouteId) -> &'static Route {
    Route::get(id)
}

#[test]
fn the_served_document_is_this_one() {
    // The route exists and has no body.
    assert!(contract(route(RouteId::OpenApi).id).body.is_none());
}

#[test]
fn the_rules_of_the_small_bodies_are_stated() {
    let doc = document();
    let hash = "a".repeat(64);
    for (schema, body, reader) in [
        (
            "CabDecisionRequest",
            json!({ "ring": 1, "verdict": "reject", "evidence_hash": hash }),
            "reject without comment",
        ),
        (
            "CabDecisionRequest",
            json!({ "ring": 1.0, "verdict": "approve", "evidence_hash": hash }),
            "ok",
        ),
        (
            "ExceptionRequestBody",
            json!({ "kind": "gate_override", "justification": "j", "compensating_controls": ["c"] }),
            "gate override without scope",
        ),
        (
            "ExceptionRequestBody",
            json!({ "kind": "gate_override", "justification": "j", "compensating_controls": ["c"], "ring": 1, "gate": "cab_approval" }),
            "gate override of cab approval",
        ),
        (
            "ExceptionRequestBody",
            json!({ "kind": "gate_override", "justification": "j", "compensating_controls": ["c"], "ring": 1, "gate": "success_rate", "expires_in_days": 91 }),
            "longer than the policy allows",
        ),
        (
            "ExceptionRequestBody",
            json!({ "kind": "gate_override", "justification": "j", "compensating_controls": ["c"], "ring": 1, "gate": "success_rate", "expires_in_days": 90.0 }),
            "ok",
        ),
        (
            "Extension",
            json!({ "days": 91 }),
            "longer than the policy allows",
        ),
        ("Extension", json!({ "days": 44.0 }), "ok"),
        (
            "RollbackValidationRequest",
            json!({ "devices": [], "result": "passed" }),
            "no device",
        ),
        (
            "RollbackValidationRequest",
            json!({ "devices": ["lab 1"], "result": "passed" }),
            "bad device id",
        ),
        (
            "RollbackValidationRequest",
            json!({ "devices": ["lab-1"], "result": "passed", "notes": "ok" }),
            "ok",
        ),
    ] {
        assert_eq!(
            validator(&doc, schema).is_valid(&body),
            reader == "ok",
            "{schema} {body}: {reader}"
        );
        if schema == "Extension" || schema == "CabDecisionRequest" {
            let text = body.to_string();
            let read = if schema == "Extension" {
                crate::bodies::extension(&text).is_ok()
            } else {
                crate::bodies::decision(&text).is_ok()
            };
            // The reader accepts 91 days (the policy refuses it later); everything else agrees.
            if reader == "ok" {
                assert!(read, "{schema} {body}");
            }
        }
    }
}

#[test]
fn the_audit_routes_declare_their_query_parameters_and_answers() {
    use crate::query::{CURSOR_PATTERN, cursor};
    use eucora_domain::audit::{ChainError, ChainHead, Checkpoint};
    let doc = document();
    let param = |id: RouteId, name: &str| {
        let r = route(id);
        doc["paths"][r.path][r.method.to_ascii_lowercase()]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name && p["in"] == "query")
            .cloned()
            .unwrap_or_else(|| panic!("{} has no query parameter {name}", r.key()))
    };
    let cursor_param = param(RouteId::GetAudit, "cursor");
    assert_eq!(cursor_param["required"], false);
    assert_eq!(cursor_param["schema"]["pattern"], CURSOR_PATTERN);
    let limit_param = param(RouteId::GetAudit, "limit");
    assert_eq!(
        limit_param["schema"],
        json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 200 })
    );
    let checkpoint_param = param(RouteId::VerifyAudit, "checkpoint");
    assert_eq!(checkpoint_param["schema"]["pattern"], Checkpoint::PATTERN);

    // The patterns accept exactly what the readers accept.
    let pattern =
        |p: &str| jsonschema::validator_for(&json!({ "type": "string", "pattern": p })).unwrap();
    let (cursors, checkpoints) = (pattern(CURSOR_PATTERN), pattern(Checkpoint::PATTERN));
    let hash = "0123456789abcdef".repeat(4);
    for text in [
        cursor(0),
        cursor(u64::MAX),
        "0".into(),
        "00000000000000000".into(),
        "000000000000000G".into(),
        format!("0.{hash}"),
        format!("12.{hash}"),
        format!("012.{hash}"),
        format!("9999999999999999999.{hash}"),
        format!("99999999999999999999.{hash}"),
        format!("1.{}", hash.to_uppercase()),
        format!("1.{hash}0"),
    ] {
        let instance = json!(text);
        let is_cursor = text.len() == 16
            && u64::from_str_radix(&text, 16).is_ok()
            && text == text.to_lowercase();
        assert_eq!(cursors.is_valid(&instance), is_cursor, "{text}");
        assert_eq!(
            checkpoints.is_valid(&instance),
            Checkpoint::parse(&text).is_ok(),
            "{text}"
        );
    }

    // The answers.
    let page = validator(&doc, "AuditTrail");
    assert!(page.is_valid(&json!({ "events": [], "next_cursor": null })));
    assert!(page.is_valid(&json!({ "events": [], "next_cursor": cursor(41) })));
    assert!(
        !page.is_valid(&json!({ "events": [] })),
        "next_cursor is always there"
    );
    assert!(!page.is_valid(&json!({ "events": [], "next_cursor": "41" })));
    let checkpoint = Checkpoint {
        seq: 4,
        hash: hash.clone(),
    };
    let answer = eucora_service::usecases::read::Verification {
        deployment_id: DeploymentId::parse("dep-1").unwrap(),
        valid: false,
        events: 4,
        checked: 0,
        head: ChainHead {
            len: 5,
            hash: hash.clone(),
        },
        from: Some(checkpoint.clone()),
        checkpoint: Some(checkpoint),
        problem: Some(ChainError::CheckpointMismatch { seq: 4 }),
        message: Some("m".into()),
    };
    let verification = validator(&doc, "Verification");
    assert_eq!(
        errors(&verification, &serde_json::to_value(&answer).unwrap()),
        Vec::<String>::new()
    );
    for problem in [
        ChainError::UnknownCheckpoint { seq: 9, len: 5 },
        ChainError::Unrecorded { len: 5 },
        ChainError::Altered { index: 2 },
    ] {
        let mut body = serde_json::to_value(&answer).unwrap();
        body["problem"] = serde_json::to_value(&problem).unwrap();
        assert_eq!(
            errors(&verification, &body),
            Vec::<String>::new(),
            "{problem}"
        );
    }
}

/// Every list and every text a request may carry has a stated limit (issue 13, point 7): arrays
/// `maxItems` (or a fixed tuple), strings `maxLength` (or an enumeration).
#[test]
fn every_array_and_string_of_a_request_body_is_bounded() {
    fn walk(doc: &Value, v: &Value, at: &str, seen: &mut Vec<String>, unbounded: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let name = r.trim_start_matches("#/components/schemas/").to_owned();
                    if !seen.contains(&name) {
                        seen.push(name.clone());
                        walk(
                            doc,
                            &doc["components"]["schemas"][&name],
                            &name,
                            seen,
                            unbounded,
                        );
                    }
                    return;
                }
                let types: Vec<&str> = match m.get("type") {
                    Some(Value::String(t)) => vec![t.as_str()],
                    Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                let fixed = m.contains_key("enum") || m.contains_key("const");
                if types.contains(&"array")
                    && !m.contains_key("maxItems")
                    && m.get("items") != Some(&Value::Bool(false))
                {
                    unbounded.push(format!("{at}: array"));
                }
                if types.contains(&"string") && !fixed && !m.contains_key("maxLength") {
                    unbounded.push(format!("{at}: string"));
                }
                for (k, child) in m {
                    walk(doc, child, &format!("{at}.{k}"), seen, unbounded);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(doc, child, &format!("{at}[{i}]"), seen, unbounded);
                }
            }
            _ => {}
        }
    }
    let doc = document();
    let mut seen = Vec::new();
    let mut unbounded = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") {
                walk(
                    &doc,
                    schema,
                    &format!("{method} {path}"),
                    &mut seen,
                    &mut unbounded,
                );
            }
        }
    }
    assert!(seen.len() > 10, "{seen:?}");
    assert!(unbounded.is_empty(), "{unbounded:#?}");
}
