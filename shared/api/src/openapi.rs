//! The OpenAPI 3.1 document, generated from the request and response types themselves.
//!
//! Every body's schema comes from its Rust type through utoipa's `ToSchema` (a derive on the
//! structs and enums, a hand-written impl next to the serde impl where the wire form is
//! hand-written: rings, timestamps, ids, closed sets of strings). The route table gives the
//! paths, methods and roles; [`contract`] gives each route its body, answers and errors, and is an
//! exhaustive `match` over [`RouteId`], so a route without a contract does not compile.
//!
//! Why utoipa, 6.0 (`cargo info utoipa` resolves 6.0.0 here; 6.0 differs from 5.x only in its
//! YAML backend, which this crate does not use): its derive reads the same serde attributes the
//! types are serialised with (`rename`, `tag`/`content`, `transparent`, `skip`,
//! `skip_serializing_if`, `Option` as nullable and not required), so a field added, renamed or
//! retyped changes the document in the same commit; it emits OpenAPI 3.1 (JSON Schema 2020-12);
//! and it needs no web framework, which matters because the routes are served by three Lambda
//! functions and the local gateway, not by one router. schemars gives JSON Schema without the
//! OpenAPI objects (paths, parameters, security), and the hand-written document it replaces had
//! drifted from the code.
//!
//! A few rules of the readers in [`crate::bodies`] and [`eucora_domain::evidence`] tie one field
//! to another (an artifact's file name and detection depend on its platform; rings are
//! contiguous; a gate override names its ring and gate; a rejection its reason); [`refine`] states
//! them in the document. One cannot be stated in JSON Schema: `exploited_in_the_wild` at most the
//! sum of the other four counts; its description says so (and the fuzzer's hook,
//! `infra/scripts/fuzz_api_hooks.py`, keeps its valid bodies to that rule).

use std::collections::BTreeSet;

use eucora_domain::Ring;
use eucora_domain::cab::{CabVerdict, Role};
use eucora_domain::evidence::{DetectionKind, Platform, Submission};
use eucora_domain::exception::ExceptionKind;
use eucora_domain::fields::Text;
use eucora_domain::gates::GateKind;
use eucora_domain::policy::Policy;
use eucora_domain::{DeploymentId, ExceptionId, IncidentId};
use eucora_service::usecases::cab::{Decided, Withdrawn};
use eucora_service::usecases::exceptions::ExceptionOutcome;
use eucora_service::usecases::gates::IncidentOutcome;
use eucora_service::usecases::read::{DeploymentView, Verification};
use eucora_service::usecases::rollback::RollbackValidationOutcome;
use serde_json::{Map, Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{PartialSchema, ToSchema};

use crate::bodies::{
    CabDecisionRequest, CabWithdrawalRequest, ExceptionRequestBody, Extension, IncidentReport,
    IncidentResolution, Reason, RollbackValidationRequest,
};
use crate::error::{ErrorBody, GatewayMessage};
use crate::response::{AuditTrail, CabQueue};
use crate::routes::{ROUTES, RouteId};

/// The document's version of the OpenAPI specification.
pub const OPENAPI_VERSION: &str = "3.1.0";

type Schemas = Vec<(String, RefOr<Schema>)>;

/// A component schema: its name, and how to add it (with every schema it refers to).
struct Named {
    name: String,
    add: fn(&mut Schemas),
}

fn add<T: ToSchema>(out: &mut Schemas) {
    out.push((T::name().into_owned(), T::schema()));
    T::schemas(out);
}

fn named<T: ToSchema>() -> Named {
    Named {
        name: T::name().into_owned(),
        add: add::<T>,
    }
}

/// What a route takes and answers.
struct Contract {
    body: Option<Named>,
    /// Success answers: status, description, body.
    ok: Vec<(u16, &'static str, Named)>,
    /// Error statuses besides 401 and 403, which every route may answer.
    errors: &'static [u16],
}

/// Errors of a route that reads a deployment by id.
const READ_ERRORS: &[u16] = &[400, 404, 500, 503];
/// Errors of a route that changes a deployment.
const WRITE_ERRORS: &[u16] = &[400, 404, 409, 413, 500, 503];

/// `POST /v1/deployments/{id}/cab/withdrawals`.
fn withdrawal_contract() -> Contract {
    Contract {
        body: Some(named::<CabWithdrawalRequest>()),
        ok: vec![(
            200,
            "The withdrawn approval (kept, marked withdrawn), the ring's approval status and the deployment's state",
            named::<Withdrawn>(),
        )],
        errors: WRITE_ERRORS,
    }
}

/// `POST /v1/deployments/{id}/rollback/validations`.
fn rollback_validation_contract() -> Contract {
    Contract {
        body: Some(named::<RollbackValidationRequest>()),
        ok: vec![(
            201,
            "The validation recorded, whether the rollback gate is now satisfied, and the deployment's state",
            named::<RollbackValidationOutcome>(),
        )],
        errors: WRITE_ERRORS,
    }
}

fn contract(id: RouteId) -> Contract {
    use RouteId as R;
    let reply = |status, description, body| Contract {
        body: None,
        ok: vec![(status, description, body)],
        errors: READ_ERRORS,
    };
    let change = |body, status, description, answer| Contract {
        body,
        ok: vec![(status, description, answer)],
        errors: WRITE_ERRORS,
    };
    match id {
        R::SubmitDeployment => Contract {
            body: Some(named::<Submission>()),
            ok: vec![
                (
                    201,
                    "Stored and queued for scoring",
                    named::<DeploymentView>(),
                ),
                (
                    200,
                    "A repeat of an earlier request (same Idempotency-Key, or without one the same correlation_id, and the same body): the deployment it created",
                    named::<DeploymentView>(),
                ),
            ],
            errors: &[400, 409, 413, 500, 503],
        },
        R::GetDeployment => reply(
            200,
            "The deployment: state, risk breakdown, approvals, rings, last gate decision",
            named::<DeploymentView>(),
        ),
        R::GetAudit => reply(
            200,
            "One page of the audit trail, in order, and the next page's cursor",
            named::<AuditTrail>(),
        ),
        R::VerifyAudit => reply(
            200,
            "Whether the trail's hash chain is intact (from the start or the checkpoint), where it breaks, and the checkpoint to resume from",
            named::<Verification>(),
        ),
        R::OpenApi => Contract {
            body: None,
            ok: vec![(200, "This document", named::<OpenApiDocument>())],
            errors: &[],
        },
        R::CabQueue => Contract {
            body: None,
            ok: vec![(200, "Deployments awaiting CAB", named::<CabQueue>())],
            errors: &[500, 503],
        },
        R::CabDecision => change(
            Some(named::<CabDecisionRequest>()),
            201,
            "The decision, the ring's approval status and the deployment's state",
            named::<Decided>(),
        ),
        R::CabWithdrawal => withdrawal_contract(),
        R::RequestException => change(
            Some(named::<ExceptionRequestBody>()),
            201,
            "The exception, pending approval",
            named::<ExceptionOutcome>(),
        ),
        R::ApproveException => change(
            None,
            200,
            "The exception after the approval",
            named::<ExceptionOutcome>(),
        ),
        R::RejectException => change(
            Some(named::<Reason>()),
            200,
            "The rejected exception",
            named::<ExceptionOutcome>(),
        ),
        R::ExtendException => change(
            Some(named::<Extension>()),
            200,
            "The extended exception",
            named::<ExceptionOutcome>(),
        ),
        R::ReportIncident => change(
            Some(named::<IncidentReport>()),
            201,
            "The incident; the rollout is halted",
            named::<IncidentOutcome>(),
        ),
        R::ResolveIncident => change(
            Some(named::<IncidentResolution>()),
            200,
            "The resolved incident",
            named::<IncidentOutcome>(),
        ),
        R::ValidateRollback => rollback_validation_contract(),
    }
}

/// `GET /v1/openapi.json`'s answer: an OpenAPI 3.1 document (this one).
#[derive(Debug, Clone, Copy)]
pub struct OpenApiDocument;

impl PartialSchema for OpenApiDocument {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "openapi",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([OPENAPI_VERSION])),
            )
            .required("openapi")
            .property("info", ObjectBuilder::new().schema_type(Type::Object))
            .required("info")
            .property("paths", ObjectBuilder::new().schema_type(Type::Object))
            .required("paths")
            .into()
    }
}

impl ToSchema for OpenApiDocument {}

fn status_description(status: u16) -> &'static str {
    match status {
        400 => "Invalid request: every offending field is named (`error.fields`)",
        401 => {
            "No valid token: API Gateway's own answer (`message`), or no usable identity in the token"
        }
        403 => "The caller's roles do not allow this route",
        404 => "No deployment (exception, incident) with this id",
        409 => {
            "Conflict with the deployment's state, a repeated key with another body, or a concurrent change"
        }
        413 => {
            "Too large, naming the field that takes the most: the body is over the route's limit (`PAYLOAD_TOO_LARGE`), or what it adds does not fit in the deployment's record (`DEPLOYMENT_FULL`; the room left is kept for incidents and halts)"
        }
        500 => "Internal error; the request id identifies it in the logs",
        503 => "Busy or not yet queued; repeat the same request",
        _ => "Error",
    }
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_content(schema: &Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn schema_json<T: PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).unwrap_or_default()
}

/// The schema of a path parameter, by its name in the route table.
///
/// # Panics
/// For a name no route uses (the tests build the document for every route).
fn path_parameter(name: &str) -> Value {
    match name {
        "id" => schema_json::<DeploymentId>(),
        "exceptionId" => schema_json::<ExceptionId>(),
        "incidentId" => schema_json::<IncidentId>(),
        other => panic!("path parameter {other} has no type in openapi.rs"),
    }
}

fn operation(r: &crate::Route, schemas: &mut Schemas) -> Value {
    let c = contract(r.id);
    let roles: Vec<&str> = r.roles.iter().map(|x: &Role| x.key()).collect();
    let mut parameters: Vec<Value> = r
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            json!({ "name": name, "in": "path", "required": true, "schema": path_parameter(name) })
        })
        .collect();
    parameters.extend(crate::query::parameters(r.id));
    if r.id == RouteId::SubmitDeployment {
        parameters.push(json!({
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "A repeat with the same key and body returns the first answer; the same key with another body is 409. Without it, the correlation_id plays this part.",
            "schema": { "type": "string", "pattern": "^[!-~]{1,128}$" }
        }));
    }
    let mut responses = Map::new();
    for (status, description, body) in &c.ok {
        (body.add)(schemas);
        let mut answer =
            json!({ "description": description, "content": json_content(&reference(&body.name)) });
        if r.id == RouteId::SubmitDeployment {
            answer["headers"] = json!({
                "Location": { "description": "The deployment's address", "schema": { "type": "string" } },
                "X-Correlation-Id": { "description": "The deployment's correlation id", "schema": schema_json::<eucora_domain::CorrelationId>() }
            });
        }
        responses.insert(status.to_string(), answer);
    }
    add::<ErrorBody>(schemas);
    add::<GatewayMessage>(schemas);
    let error = reference(&ErrorBody::name());
    responses.insert(
        "401".into(),
        json!({ "description": status_description(401), "content": json_content(&json!({ "anyOf": [error, reference(&GatewayMessage::name())] })) }),
    );
    for status in [403].iter().chain(c.errors) {
        responses.insert(
            status.to_string(),
            json!({ "description": status_description(*status), "content": json_content(&error) }),
        );
    }
    let mut op = json!({
        "operationId": format!("{:?}", r.id),
        "summary": r.summary,
        "description": format!("Roles allowed: {}. Any other role gets 403.", roles.join(", ")),
        "x-roles": roles,
        "x-eucora-function": r.function,
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(body) = &c.body {
        (body.add)(schemas);
        op["requestBody"] =
            json!({ "required": true, "content": json_content(&reference(&body.name)) });
    }
    op
}

/// The whole document. It depends on nothing but the code and the bundled policy, so it is built
/// once per container, on the first request for it (not at cold start, not per request).
pub fn document() -> Value {
    static DOCUMENT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(build).clone()
}

fn build() -> Value {
    let mut schemas = Schemas::new();
    let mut paths = Map::new();
    for r in ROUTES {
        let op = operation(r, &mut schemas);
        let entry = paths.entry(r.path).or_insert_with(|| json!({}));
        entry[r.method.to_ascii_lowercase()] = op;
    }
    let mut components: Map<String, Value> = schemas
        .into_iter()
        .map(|(name, s)| (name, serde_json::to_value(s).unwrap_or_default()))
        .collect();
    refine(&mut components, &Policy::bundled());
    json!({
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "EUCORA control plane API",
            "version": "1",
            "description": "Deployment governance for end-user computing. Identity: a JWT validated by API Gateway; the actor is the issuer plus the person's stable subject (Entra ID: `oid` and `tid`, as `{oid}@entra:{tid}`; Cognito: `sub` in the pool, as `{sub}@cognito:{pool id}`; other issuers: `sub`, as `{sub}@{host}`), and `eucora:roles` (space-separated) or the Cognito groups named `eucora-<role>` the roles: packaging, publisher, cab, security_reviewer, auditor. Each operation lists its roles in its description and in `x-roles`. A method a path does not serve is answered 405 with `Allow`."
        },
        "security": [{ "jwt": [] }],
        "components": {
            "securitySchemes": { "jwt": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "A JWT whose `eucora:roles` (or `cognito:groups`) claim names the caller's roles" } },
            "schemas": components
        },
        "paths": paths
    })
}

/// The names `roots` refer to, directly or through each other.
fn reachable(components: &Map<String, Value>, roots: &[&str]) -> BTreeSet<String> {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref")
                    && let Some(name) = r.strip_prefix("#/components/schemas/")
                {
                    out.push(name.to_owned());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = roots.iter().map(|s| (*s).to_owned()).collect();
    while let Some(name) = todo.pop() {
        if seen.insert(name.clone())
            && let Some(s) = components.get(&name)
        {
            refs(s, &mut todo);
        }
    }
    seen
}

/// States in the document the request rules that tie fields together, and closes the request
/// objects (the readers refuse unknown fields).
fn refine(components: &mut Map<String, Value>, policy: &Policy) {
    close_requests(components);
    artifacts_per_platform(components);
    rollout_and_signing(components);
    small_bodies(components, policy);
}

/// Unknown fields are refused in every request object.
fn close_requests(components: &mut Map<String, Value>) {
    let requests = [
        Submission::name(),
        CabDecisionRequest::name(),
        CabWithdrawalRequest::name(),
        ExceptionRequestBody::name(),
        Reason::name(),
        Extension::name(),
        IncidentReport::name(),
        IncidentResolution::name(),
        RollbackValidationRequest::name(),
    ];
    let roots: Vec<&str> = requests.iter().map(AsRef::as_ref).collect();
    for name in reachable(components, &roots) {
        if let Some(s) = components.get_mut(&name)
            && s.get("properties").is_some()
        {
            s["additionalProperties"] = Value::Bool(false);
        }
    }
}

/// An artifact per platform: the package's extension and size limit, the detection kinds, and (windows) the
/// install and uninstall commands; at most one artifact per platform.
fn artifacts_per_platform(components: &mut Map<String, Value>) {
    let artifact = components.get("Artifact").cloned().unwrap_or_default();
    let detection = components.get("Detection").cloned().unwrap_or_default();
    let mut variants = Vec::new();
    for platform in Platform::ALL {
        let mut a = artifact.clone();
        a["properties"]["platform"] = json!({ "const": platform.key() });
        let (extension, max) = match platform {
            Platform::Windows => (r"\.[iI][nN][tT][uU][nN][eE][wW][iI][nN]$", 255),
            Platform::Macos => (r"\.([pP][kK][gG]|[dD][mM][gG])$", 255),
        };
        a["properties"]["file_name"] = json!({
            "type": "string", "maxLength": max, "pattern": format!("[^/]{extension}"),
            "description": a["properties"]["file_name"]["description"].clone(),
        });
        // The platform's own package limit (the reader refuses a larger one, naming it).
        let (limit, whose) = platform.package_size_limit();
        a["properties"]["size_bytes"]["maximum"] = json!(limit);
        a["properties"]["size_bytes"]["description"] =
            json!(format!("The package's size in bytes, at most {whose}."));
        let mut d = detection.clone();
        let kinds: Vec<&str> = DetectionKind::ALL
            .iter()
            .filter(|k| k.fits(*platform))
            .map(|k| k.key())
            .collect();
        d["properties"]["kind"] = json!({ "enum": kinds });
        a["properties"]["detection"] = d;
        if *platform == Platform::Windows {
            for key in ["install_command", "uninstall_command"] {
                a["properties"][key]["type"] = json!("string");
                if let Some(req) = a["required"].as_array_mut() {
                    req.push(json!(key));
                }
            }
        }
        let name = format!("{}Artifact", capitalised(platform.key()));
        components.insert(name.clone(), a);
        variants.push(reference(&name));
    }
    components.insert(
        "Artifact".into(),
        json!({ "oneOf": variants, "description": artifact["description"].clone() }),
    );
    // At most one artifact per platform.
    if let Some(artifacts) = components
        .get_mut("EvidencePack")
        .and_then(|e| e["properties"].get_mut("artifacts"))
    {
        let once: Vec<Value> = Platform::ALL
            .iter()
            .map(|p| json!({ "contains": { "properties": { "platform": { "const": p.key() } } }, "minContains": 0, "maxContains": 1 }))
            .collect();
        artifacts["allOf"] = Value::Array(once);
    }
}

/// A signed package names its signer; rings are contiguous and ascending from ring 0 or 1.
fn rollout_and_signing(components: &mut Map<String, Value>) {
    if let Some(signing) = components.get_mut("Signing") {
        signing["oneOf"] = json!([
            { "properties": { "status": { "const": "signed" }, "signer": { "type": "string", "maxLength": 200 } }, "required": ["signer"] },
            { "properties": { "status": { "enum": ["self_signed", "unsigned"] } } }
        ]);
    }

    // Rings: contiguous and ascending from ring 0 or 1.
    let target = components.get("RingTarget").cloned().unwrap_or_default();
    if let Some(rings) = components
        .get_mut("RolloutPlan")
        .and_then(|p| p["properties"].get_mut("rings"))
    {
        let mut plans = Vec::new();
        for first in 0..=1 {
            for last in first..=4 {
                let items: Vec<Value> = (first..=last)
                    .map(|n| {
                        let mut t = target.clone();
                        t["properties"]["ring"] = json!({ "const": n });
                        t
                    })
                    .collect();
                plans
                    .push(json!({ "prefixItems": items, "items": false, "minItems": items.len() }));
            }
        }
        rings["oneOf"] = Value::Array(plans);
    }
}

/// A gate override names its ring and a gate that may be overridden; a rejection says why;
/// exceptions last as long as the policy allows.
fn small_bodies(components: &mut Map<String, Value>, policy: &Policy) {
    if let Some(s) = components.get_mut(ExceptionRequestBody::name().as_ref()) {
        let overridable: Vec<&str> = GateKind::ALL
            .iter()
            .filter(|g| g.overridable())
            .map(|g| g.key())
            .collect();
        s["if"] = json!({ "properties": { "kind": { "const": ExceptionKind::GateOverride.key() } }, "required": ["kind"] });
        s["then"] = json!({ "required": ["ring", "gate"], "properties": { "ring": reference(&<Ring as ToSchema>::name()), "gate": { "enum": overridable } } });
    }
    // A rejection says why.
    if let Some(s) = components.get_mut(CabDecisionRequest::name().as_ref()) {
        s["if"] = json!({ "properties": { "verdict": { "const": CabVerdict::Reject.key() } }, "required": ["verdict"] });
        s["then"] = json!({ "required": ["comment"], "properties": { "comment": reference(&Text::name()) } });
    }

    // Exception lengths come from the policy.
    for (schema, key, max) in [
        (
            ExceptionRequestBody::name(),
            "expires_in_days",
            policy.exceptions.max_expiry.whole_days(),
        ),
        (
            Extension::name(),
            "days",
            policy.exceptions.max_extension.whole_days(),
        ),
    ] {
        if let Some(s) = components.get_mut(schema.as_ref()) {
            s["properties"][key]["maximum"] = json!(max);
        }
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
