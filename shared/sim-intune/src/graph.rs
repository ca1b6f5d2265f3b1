//! Microsoft Graph under `/v1.0/` and `/beta/`: authentication, the tenant write limit, and the
//! Intune routes (mobile apps, content upload, assignments, managed devices, install reports).

use std::collections::HashSet;
use std::time::Instant;

use hyper::Method;
use serde_json::{Map, Value, json};

use crate::faults::Fault;
use crate::reports;
use crate::state::{
    ALL_DEVICES_GROUP, ALL_USERS_GROUP, App, Assignment, Blob, ContentFile, ContentVersion,
    PublishingState, State, Stepped, TokenProblem, UploadState,
};
use crate::wire::{
    Ctx, Reply, derived_guid, fnv64, http_date, inner_error_date, retry_after_value,
};
use crate::{devices, groups, odata};

/// Graph's content type for `OData` answers.
pub(crate) const ODATA_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

const WIN32_LOB_APP: &str = "#microsoft.graph.win32LobApp";
const RULE_TYPES: [&str; 4] = [
    "#microsoft.graph.win32LobAppFileSystemRule",
    "#microsoft.graph.win32LobAppRegistryRule",
    "#microsoft.graph.win32LobAppProductCodeRule",
    "#microsoft.graph.win32LobAppPowerShellScriptRule",
];
const INTENTS: [&str; 4] = [
    "available",
    "required",
    "uninstall",
    "availableWithoutEnrollment",
];
const GROUP_TARGET: &str = "#microsoft.graph.groupAssignmentTarget";
const EXCLUSION_TARGET: &str = "#microsoft.graph.exclusionGroupAssignmentTarget";
const ALL_DEVICES_TARGET: &str = "#microsoft.graph.allDevicesAssignmentTarget";
const ALL_USERS_TARGET: &str = "#microsoft.graph.allLicensedUsersAssignmentTarget";
/// Properties the service owns: ignored when a client sends them on create or update.
const READ_ONLY: [&str; 11] = [
    "@odata.type",
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "publishingState",
    "committedContentVersion",
    "size",
    "isAssigned",
    "dependentAppCount",
    "supersedingAppCount",
    "supersededAppCount",
];
/// Properties only the beta endpoint's types have (`mobileApp`, `mobileAppContentFile`): a v1.0
/// answer leaves them out, as Graph v1.0's description (msgraph-metadata, `v1.0-Prod.csdl`)
/// declares none of them.
const BETA_ONLY: [&str; 6] = [
    "roleScopeTagIds",
    "dependentAppCount",
    "supersedingAppCount",
    "supersededAppCount",
    "isAssigned",
    "isFrameworkFile",
];

/// What a Graph route serves; its keys (app, content version, file, ...) come with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Apps,
    App,
    Assign,
    Assignments,
    Assignment,
    ContentVersions,
    ContentVersion,
    Files,
    File,
    Commit,
    RenewUpload,
    ManagedDevices,
    ManagedDevice,
    Report,
    /// The older report action, which only the beta endpoint still has (the fact sheet).
    BetaReport,
    /// An Entra ID group's direct members.
    Members,
    /// An Entra ID group's members, nested groups' members included.
    TransitiveMembers,
}

/// Every Graph route the simulator serves, as lower-cased path tokens:
/// - `{}` a key;
/// - `!name` a bound action, called by its bare name or qualified by the namespace
///   (`microsoft.graph.name`) or its alias (`graph.name`), as Graph accepts all three;
/// - `#lob` a type cast to a line-of-business app (`mobileLobApp` or its `win32LobApp`), which
///   Graph requires before a property that only those types have (`contentVersions`);
/// - `#app?`, `#device?` an optional cast within the entity's own type family;
/// - anything else a literal segment.
///
/// A cast, too, may name the namespace or its alias: `microsoft.graph.win32LobApp` and
/// `graph.win32LobApp` reach the same resource.
const ROUTES: [(&str, Kind); 17] = [
    ("deviceappmanagement/mobileapps/#app?", Kind::Apps),
    ("deviceappmanagement/mobileapps/#app?/{}/#app?", Kind::App),
    (
        "deviceappmanagement/mobileapps/#app?/{}/#app?/!assign",
        Kind::Assign,
    ),
    (
        "deviceappmanagement/mobileapps/#app?/{}/#app?/assignments",
        Kind::Assignments,
    ),
    (
        "deviceappmanagement/mobileapps/#app?/{}/#app?/assignments/{}",
        Kind::Assignment,
    ),
    (
        "deviceappmanagement/mobileapps/#app?/{}/#lob/contentversions",
        Kind::ContentVersions,
    ),
    (
        "deviceappmanagement/mobileapps/#app?/{}/#lob/contentversions/{}",
        Kind::ContentVersion,
    ),
    (
        "deviceappmanagement/mobileapps/#app?/{}/#lob/contentversions/{}/files",
        Kind::Files,
    ),
    (
        "deviceappmanagement/mobileapps/#app?/{}/#lob/contentversions/{}/files/{}",
        Kind::File,
    ),
    (
        "deviceappmanagement/mobileapps/#app?/{}/#lob/contentversions/{}/files/{}/!commit",
        Kind::Commit,
    ),
    (
        "deviceappmanagement/mobileapps/#app?/{}/#lob/contentversions/{}/files/{}/!renewupload",
        Kind::RenewUpload,
    ),
    (
        "devicemanagement/manageddevices/#device?",
        Kind::ManagedDevices,
    ),
    (
        "devicemanagement/manageddevices/#device?/{}/#device?",
        Kind::ManagedDevice,
    ),
    (
        "devicemanagement/reports/!retrievedeviceappinstallationstatusreport",
        Kind::Report,
    ),
    (
        "devicemanagement/reports/!getdeviceinstallstatusreport",
        Kind::BetaReport,
    ),
    ("groups/{}/members/#entra?", Kind::Members),
    (
        "groups/{}/transitivemembers/#entra?",
        Kind::TransitiveMembers,
    ),
];

/// The type names a cast may give to one of the simulator's apps (all Win32 LOB apps): the
/// type itself and its bases.
const APP_TYPES: [&str; 3] = ["mobileapp", "mobilelobapp", "win32lobapp"];
/// The app types that have `contentVersions`.
const LOB_TYPES: [&str; 2] = ["mobilelobapp", "win32lobapp"];
const DEVICE_TYPES: [&str; 1] = ["manageddevice"];
/// The directory object types a group member may be cast to (groups hold devices here).
const MEMBER_TYPES: [&str; 1] = ["device"];

/// A lower-cased segment's name under the `microsoft.graph` namespace or its alias `graph`.
fn qualified(segment: &str) -> Option<&str> {
    segment
        .strip_prefix("microsoft.graph.")
        .or_else(|| segment.strip_prefix("graph."))
}

/// Whether one lower-cased segment fits one token (optional tokens are the caller's concern).
fn fits(token: &str, segment: &str) -> bool {
    let cast = |types: &[&str]| qualified(segment).is_some_and(|t| types.contains(&t));
    match token.trim_end_matches('?') {
        "{}" => qualified(segment).is_none(),
        "#app" => cast(&APP_TYPES),
        "#lob" => cast(&LOB_TYPES),
        "#device" => cast(&DEVICE_TYPES),
        "#entra" => cast(&MEMBER_TYPES),
        action if action.starts_with('!') => {
            let name = &action[1..];
            segment == name || qualified(segment) == Some(name)
        }
        literal => segment == literal,
    }
}

/// Matches lower-cased segments against one route: its keys, or how many segments fit before
/// the first that does not.
fn match_route<'a>(pattern: &str, segments: &[&'a str]) -> Result<Vec<&'a str>, usize> {
    let mut keys = Vec::new();
    let mut next = 0;
    for token in pattern.split('/') {
        match segments.get(next) {
            Some(segment) if fits(token, segment) => {
                if token == "{}" {
                    keys.push(*segment);
                }
                next += 1;
            }
            _ if token.ends_with('?') => {}
            _ => return Err(next),
        }
    }
    if next == segments.len() {
        Ok(keys)
    } else {
        Err(next)
    }
}

/// The route and its keys; or the index of the segment Graph would name as not found (the
/// first that leaves every known route).
fn route<'a>(segments: &[&'a str], version: &str) -> Result<(Kind, Vec<&'a str>), usize> {
    let mut fitting = 0;
    for (pattern, kind) in ROUTES {
        if kind == Kind::BetaReport && version != "beta" {
            continue;
        }
        match match_route(pattern, segments) {
            Ok(keys) => return Ok((kind, keys)),
            Err(fit) => fitting = fitting.max(fit),
        }
    }
    Err(fitting.min(segments.len().saturating_sub(1)))
}

/// Answers one Graph request (`version` is `v1.0` or `beta`, `segments` the rest of the path).
pub(crate) fn handle(state: &mut State, ctx: &Ctx, version: &str, segments: &[&str]) -> Reply {
    let now = Instant::now();
    if let Err(problem) = state.check_bearer(ctx.header("authorization"), now) {
        let message = match problem {
            TokenProblem::Missing => "Access token is empty.",
            TokenProblem::Unknown => "CompactToken parsing failed with error code: 80049217",
            TokenProblem::Expired => "Lifetime validation failed, the token is expired.",
        };
        return unauthorized(ctx, message);
    }
    if is_write(&ctx.method)
        && let Err(wait) = state.admit_write(now)
    {
        return too_many_requests(ctx, Some(wait.as_secs_f64()));
    }
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let (kind, keys) = match route(&lower, version) {
        Ok(found) => found,
        Err(index) => {
            let segment = segments.get(index).copied().unwrap_or(version);
            return error(
                ctx,
                400,
                "BadRequest",
                &format!("Resource not found for the segment '{segment}'."),
            );
        }
    };
    let at = Here { version, ctx };
    match (kind, keys.as_slice(), &ctx.method) {
        (Kind::Apps, [], &Method::GET) => list_apps(state, &at),
        (Kind::Apps, [], &Method::POST) => create_app(state, &at),
        (Kind::App, [app], &Method::GET) => get_app(state, &at, app),
        (Kind::App, [app], &Method::PATCH) => patch_app(state, &at, app),
        (Kind::App, [app], &Method::DELETE) => delete_app(state, &at, app),
        (Kind::Assign, [app], &Method::POST) => assign(state, &at, app),
        (Kind::Assignments, [app], &Method::GET) => list_assignments(state, &at, app),
        (Kind::Assignments, [app], &Method::POST) => add_assignment(state, &at, app),
        (Kind::Assignment, [app, id], &Method::GET) => get_assignment(state, &at, app, id),
        (Kind::Assignment, [app, id], &Method::DELETE) => delete_assignment(state, &at, app, id),
        (Kind::ContentVersions, [app], &Method::GET) => list_content_versions(state, &at, app),
        (Kind::ContentVersions, [app], &Method::POST) => create_content_version(state, &at, app),
        (Kind::ContentVersion, [app, cv], &Method::GET) => get_content_version(state, &at, app, cv),
        (Kind::Files, [app, cv], &Method::GET) => list_files(state, &at, app, cv),
        (Kind::Files, [app, cv], &Method::POST) => create_file(state, &at, app, cv),
        (Kind::File, [app, cv, file], &Method::GET) => get_file(state, &at, app, cv, file),
        (Kind::Commit, [app, cv, file], &Method::POST) => commit_file(state, &at, app, cv, file),
        (Kind::RenewUpload, [app, cv, file], &Method::POST) => {
            renew_upload(state, &at, app, cv, file)
        }
        (Kind::ManagedDevices, [], &Method::GET) => devices::list(state, ctx, version),
        (Kind::ManagedDevice, [id], &Method::GET) => devices::get(state, ctx, version, id),
        (Kind::Report | Kind::BetaReport, [], &Method::POST) => reports::handle(state, ctx),
        (Kind::Members, [group], &Method::GET) => {
            groups::members(state, ctx, version, group, "members", lower.len() == 4)
        }
        (Kind::TransitiveMembers, [group], &Method::GET) => groups::members(
            state,
            ctx,
            version,
            group,
            "transitiveMembers",
            lower.len() == 4,
        ),
        _ => error(
            ctx,
            405,
            "BadRequest",
            &format!(
                "The HTTP method '{}' is not allowed on this resource.",
                ctx.method
            ),
        ),
    }
}

fn is_write(method: &Method) -> bool {
    [Method::POST, Method::PATCH, Method::PUT, Method::DELETE].contains(method)
}

/// Where a request landed, for links in answers.
struct Here<'a> {
    version: &'a str,
    ctx: &'a Ctx,
}

impl Here<'_> {
    /// An object as this endpoint answers it: without the beta-only properties on v1.0.
    fn shaped(&self, mut object: Map<String, Value>) -> Map<String, Value> {
        if self.version != "beta" {
            object.retain(|k, _| !BETA_ONLY.contains(&k.as_str()));
        }
        object
    }

    fn shaped_value(&self, value: Value) -> Value {
        match value {
            Value::Object(object) => Value::Object(self.shaped(object)),
            other => other,
        }
    }

    fn context(&self, fragment: &str) -> String {
        format!(
            "{}/{}/$metadata#{fragment}",
            self.ctx.base_url, self.version
        )
    }
}

// ---- answers ---------------------------------------------------------------------------------

pub(crate) fn json_reply(status: u16, value: &Value) -> Reply {
    Reply::new(status, ODATA_JSON, value.to_string())
}

/// Graph's error body: `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`.
pub(crate) fn error(ctx: &Ctx, status: u16, code: &str, message: &str) -> Reply {
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": inner_error_date(ctx.now),
                "request-id": ctx.request_id,
                "client-request-id": ctx.client_request_id(),
            }
        }
    });
    Reply::new(status, "application/json", body.to_string())
}

/// An error raised by the Intune service behind Graph: its `message` is itself a JSON document
/// (`_version`, `Message` with operation and activity ids, ...), as Intune writes it.
pub(crate) fn intune_error(ctx: &Ctx, status: u16, code: &str, message: &str) -> Reply {
    let operation = derived_guid(0x1A7E, fnv64(&ctx.request_id));
    let inner = json!({
        "_version": 3,
        "Message": format!(
            "{message} - Operation ID (for customer support): {operation} - Activity ID: {} - Url: {}{}",
            ctx.client_request_id(),
            ctx.base_url,
            ctx.path
        ),
        "CustomApiErrorPhrase": "",
        "RetryAfter": null,
        "ErrorSourceService": "",
        "HttpHeaders": "{}",
    });
    let text = serde_json::to_string_pretty(&inner)
        .unwrap_or_default()
        .replace('\n', "\r\n");
    error(ctx, status, code, &text)
}

fn bad_request(ctx: &Ctx, message: &str) -> Reply {
    intune_error(ctx, 400, "BadRequest", message)
}

fn not_found(ctx: &Ctx, what: &str, id: &str) -> Reply {
    intune_error(
        ctx,
        404,
        "ResourceNotFound",
        &format!("The {what} '{id}' was not found."),
    )
}

fn unreadable(ctx: &Ctx) -> Reply {
    error(
        ctx,
        400,
        "BadRequest",
        "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
    )
}

pub(crate) fn unauthorized(ctx: &Ctx, message: &str) -> Reply {
    error(ctx, 401, "InvalidAuthenticationToken", message).with_header(
        "www-authenticate",
        "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
    )
}

pub(crate) fn too_many_requests(ctx: &Ctx, retry_after: Option<f64>) -> Reply {
    let reply = error(ctx, 429, "TooManyRequests", "Too many requests.");
    match retry_after {
        Some(seconds) => reply.with_header("retry-after", retry_after_value(seconds)),
        None => reply,
    }
}

/// An injected fault, answered as Graph would.
pub(crate) fn fault_reply(ctx: &Ctx, fault: &Fault) -> Option<Reply> {
    Some(match fault {
        Fault::TooManyRequests { retry_after } => too_many_requests(ctx, *retry_after),
        Fault::ServiceUnavailable => error(
            ctx,
            503,
            "serviceNotAvailable",
            "The service is temporarily unavailable. Please retry later.",
        ),
        Fault::InternalError => error(
            ctx,
            500,
            "InternalServerError",
            "An internal server error occurred. Please retry later.",
        ),
        Fault::Unauthorized => {
            unauthorized(ctx, "Lifetime validation failed, the token is expired.")
        }
        Fault::Forbidden => error(
            ctx,
            403,
            "Forbidden",
            "Application is not authorized to perform this operation. Application must have one of the following scopes: DeviceManagementApps.ReadWrite.All",
        ),
        Fault::Conflict => error(
            ctx,
            409,
            "Conflict",
            "The request conflicts with the current state of the resource.",
        ),
        _ => return None,
    })
}

/// Headers Graph sets on every answer.
pub(crate) fn finish(ctx: &Ctx, reply: Reply) -> Reply {
    reply
        .with_header("request-id", ctx.request_id.clone())
        .with_header("client-request-id", ctx.client_request_id())
        .with_header(
            "x-ms-ags-diagnostic",
            r#"{"ServerInfo":{"DataCenter":"Local","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"SIMULATOR"}}"#,
        )
        .with_header("strict-transport-security", "max-age=31536000")
        .with_header("date", http_date(ctx.now))
}

/// The request body as a JSON object; an empty body counts as `{}` when `empty_ok`.
fn json_object(ctx: &Ctx, empty_ok: bool) -> Result<Map<String, Value>, Reply> {
    if ctx.body.iter().all(u8::is_ascii_whitespace) {
        return if empty_ok {
            Ok(Map::new())
        } else {
            Err(unreadable(ctx))
        };
    }
    if !ctx
        .header("content-type")
        .is_some_and(|t| t.to_ascii_lowercase().contains("json"))
    {
        return Err(unreadable(ctx));
    }
    match ctx.json_body() {
        Some(Value::Object(object)) => Ok(object),
        _ => Err(unreadable(ctx)),
    }
}

/// `$select=a,b` keeps those properties (and `@odata.type`, `id`).
pub(crate) fn select(ctx: &Ctx, mut object: Map<String, Value>) -> Map<String, Value> {
    if let Some(selected) = ctx.query_param("$select") {
        let wanted: Vec<String> = selected
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        object.retain(|k, _| {
            k == "@odata.type" || k == "id" || wanted.contains(&k.to_ascii_lowercase())
        });
    }
    object
}

// ---- mobile apps -----------------------------------------------------------------------------

fn validate_win32(body: &Map<String, Value>) -> Result<(), String> {
    match body.get("@odata.type").and_then(Value::as_str) {
        None => return Err(
            "Property '@odata.type' is required: mobileApp is abstract, name the concrete type."
                .into(),
        ),
        Some(t) if !t.eq_ignore_ascii_case(WIN32_LOB_APP) => {
            return Err(format!(
                "Property '@odata.type' is '{t}': this simulator creates '{WIN32_LOB_APP}' apps only."
            ));
        }
        Some(_) => {}
    }
    for property in [
        "displayName",
        "fileName",
        "installCommandLine",
        "uninstallCommandLine",
    ] {
        if body
            .get(property)
            .and_then(Value::as_str)
            .is_none_or(|v| v.trim().is_empty())
        {
            return Err(format!(
                "Property '{property}' is required and must be a non-empty string."
            ));
        }
    }
    let rules = body
        .get("rules")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty());
    let Some(rules) = rules else {
        return Err(
            "Property 'rules' is required and must contain at least one detection rule.".into(),
        );
    };
    for (i, rule) in rules.iter().enumerate() {
        let kind = rule
            .get("@odata.type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !RULE_TYPES.iter().any(|t| t.eq_ignore_ascii_case(kind)) {
            return Err(format!(
                "Property 'rules[{i}].@odata.type' must be one of {}.",
                RULE_TYPES.join(", ")
            ));
        }
        let rule_type = rule
            .get("ruleType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if rule_type != "detection" && rule_type != "requirement" {
            return Err(format!(
                "Property 'rules[{i}].ruleType' must be 'detection' or 'requirement'."
            ));
        }
    }
    if !rules
        .iter()
        .any(|r| r.get("ruleType").and_then(Value::as_str) == Some("detection"))
    {
        return Err(
            "Property 'rules' must contain at least one rule with ruleType 'detection'.".into(),
        );
    }
    Ok(())
}

fn writable(body: Map<String, Value>) -> impl Iterator<Item = (String, Value)> {
    body.into_iter()
        .filter(|(k, _)| !READ_ONLY.contains(&k.as_str()))
}

fn create_app(state: &mut State, at: &Here) -> Reply {
    let body = match json_object(at.ctx, false) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    if let Err(message) = validate_win32(&body) {
        return bad_request(at.ctx, &message);
    }
    let app = App {
        id: state.ids.guid(),
        odata_type: WIN32_LOB_APP.to_owned(),
        props: writable(body).collect(),
        created: at.ctx.now,
        modified: at.ctx.now,
        publishing: Stepped::settled(PublishingState::NotPublished),
        committed_content_version: None,
        content_versions: Vec::new(),
        assignments: Vec::new(),
    };
    let mut object = at.shaped(app.to_json(PublishingState::NotPublished));
    object.insert(
        "@odata.context".into(),
        json!(at.context("deviceAppManagement/mobileApps/$entity")),
    );
    state.apps.push(app);
    json_reply(201, &Value::Object(object))
}

fn get_app(state: &mut State, at: &Here, id: &str) -> Reply {
    let Some(app) = state.app_mut(id) else {
        return not_found(at.ctx, "mobileApp", id);
    };
    let publishing = app.publishing.show();
    let mut object = select(at.ctx, at.shaped(app.to_json(publishing)));
    object.insert(
        "@odata.context".into(),
        json!(at.context("deviceAppManagement/mobileApps/$entity")),
    );
    json_reply(200, &Value::Object(object))
}

fn list_apps(state: &mut State, at: &Here) -> Reply {
    let clauses = match at
        .ctx
        .query_param("$filter")
        .map(|f| odata::parse(&f))
        .transpose()
    {
        Ok(clauses) => clauses.unwrap_or_default(),
        Err(message) => return error(at.ctx, 400, "BadRequest", &message),
    };
    let mut value = Vec::new();
    for app in &mut state.apps {
        if odata::matches(&clauses, &app.to_json(app.publishing.peek())) {
            let publishing = app.publishing.show();
            value.push(Value::Object(select(
                at.ctx,
                at.shaped(app.to_json(publishing)),
            )));
        }
    }
    json_reply(
        200,
        &json!({"@odata.context": at.context("deviceAppManagement/mobileApps"), "value": value}),
    )
}

fn patch_app(state: &mut State, at: &Here, id: &str) -> Reply {
    let body = match json_object(at.ctx, false) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let polls = state.config.pending_polls;
    let Some(app) = state.app_mut(id) else {
        return not_found(at.ctx, "mobileApp", id);
    };
    if let Some(kind) = body.get("@odata.type").and_then(Value::as_str)
        && !kind.eq_ignore_ascii_case(&app.odata_type)
    {
        return bad_request(
            at.ctx,
            &format!(
                "Property '@odata.type' is '{kind}' but the app is a '{}'.",
                app.odata_type
            ),
        );
    }
    if let Some(cv) = body.get("committedContentVersion") {
        let Some(cv) = cv.as_str() else {
            return bad_request(
                at.ctx,
                "Property 'committedContentVersion' must be a string.",
            );
        };
        let Some(version) = app.content_versions.iter().find(|v| v.id == cv) else {
            return bad_request(
                at.ctx,
                &format!(
                    "Property 'committedContentVersion': content version '{cv}' does not exist."
                ),
            );
        };
        if version.files.is_empty()
            || version
                .files
                .iter()
                .any(|f| f.upload.peek() != UploadState::CommitFileSuccess)
        {
            return bad_request(
                at.ctx,
                &format!(
                    "Property 'committedContentVersion': content version '{cv}' has files that are not committed (commitFileSuccess)."
                ),
            );
        }
        app.committed_content_version = Some(cv.to_owned());
        app.publishing = Stepped::pending_for(
            PublishingState::Processing,
            PublishingState::Published,
            polls,
        );
    }
    for (key, value) in writable(body) {
        app.props.insert(key, value);
    }
    app.modified = at.ctx.now;
    Reply::empty(204)
}

fn delete_app(state: &mut State, at: &Here, id: &str) -> Reply {
    let Some(index) = state
        .apps
        .iter()
        .position(|a| a.id.eq_ignore_ascii_case(id))
    else {
        return not_found(at.ctx, "mobileApp", id);
    };
    let app = state.apps.remove(index);
    state
        .device_states
        .retain(|(app_id, _), _| *app_id != app.id);
    Reply::empty(204)
}

// ---- assignments -----------------------------------------------------------------------------

/// Reads one `mobileAppAssignment`; the error names the property.
fn parse_assignment(value: &Value, at: &Here, state: &State) -> Result<Assignment, String> {
    let Some(object) = value.as_object() else {
        return Err("Each mobileAppAssignment must be an object.".into());
    };
    if let Some(kind) = object.get("@odata.type").and_then(Value::as_str)
        && !kind.eq_ignore_ascii_case("#microsoft.graph.mobileAppAssignment")
    {
        return Err(format!(
            "Property '@odata.type' is '{kind}', expected '#microsoft.graph.mobileAppAssignment'."
        ));
    }
    let intent = object
        .get("intent")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(intent_index) = INTENTS.iter().position(|i| *i == intent) else {
        return Err(format!(
            "Property 'intent' must be one of {}.",
            INTENTS.join(", ")
        ));
    };
    let target = object
        .get("target")
        .filter(|t| t.is_object())
        .ok_or("Property 'target' is required.")?;
    let target_type = target
        .get("@odata.type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group = match target_type {
        GROUP_TARGET | EXCLUSION_TARGET => match target.get("groupId").and_then(Value::as_str) {
            Some(g) if !g.trim().is_empty() => g.to_owned(),
            _ => return Err("Property 'target.groupId' is required for a group target.".into()),
        },
        ALL_DEVICES_TARGET => ALL_DEVICES_GROUP.to_owned(),
        ALL_USERS_TARGET => ALL_USERS_GROUP.to_owned(),
        other => {
            return Err(format!(
                "Property 'target.@odata.type' is '{other}', expected one of {GROUP_TARGET}, {EXCLUSION_TARGET}, {ALL_DEVICES_TARGET}, {ALL_USERS_TARGET}."
            ));
        }
    };
    let exclusion = u8::from(target_type == EXCLUSION_TARGET);
    Ok(Assignment {
        id: format!("{group}_{intent_index}_{exclusion}"),
        intent: intent.to_owned(),
        target: target.clone(),
        settings: object.get("settings").cloned().unwrap_or(Value::Null),
        assigned_at: state.clock,
        assigned_wall: at.ctx.now,
        reported: HashSet::new(),
    })
}

/// Whether two assignments target the same group (Intune allows one assignment per group).
fn same_target(a: &Assignment, b: &Assignment) -> bool {
    let group = |x: &Assignment| x.id.split('_').next().map(str::to_ascii_lowercase);
    group(a) == group(b)
}

fn not_published(at: &Here, app: &App) -> Option<Reply> {
    let state = app.publishing.peek();
    (state != PublishingState::Published).then(|| {
        bad_request(
            at.ctx,
            &format!(
                "The app '{}' cannot be assigned: its publishingState is '{}'; an app can be assigned once its content is committed and it is published.",
                app.id,
                state.as_str()
            ),
        )
    })
}

fn assign(state: &mut State, at: &Here, id: &str) -> Reply {
    let body = match json_object(at.ctx, false) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let Some(index) = state
        .apps
        .iter()
        .position(|a| a.id.eq_ignore_ascii_case(id))
    else {
        return not_found(at.ctx, "mobileApp", id);
    };
    if let Some(reply) = not_published(at, &state.apps[index]) {
        return reply;
    }
    let Some(items) = body.get("mobileAppAssignments").and_then(Value::as_array) else {
        return bad_request(
            at.ctx,
            "Property 'mobileAppAssignments' is required and must be an array.",
        );
    };
    let mut replacement: Vec<Assignment> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let assignment = match parse_assignment(item, at, state) {
            Ok(a) => a,
            Err(message) => {
                return bad_request(at.ctx, &format!("mobileAppAssignments[{i}]: {message}"));
            }
        };
        if replacement
            .iter()
            .any(|other| same_target(other, &assignment))
        {
            return bad_request(
                at.ctx,
                &format!("mobileAppAssignments[{i}]: the target is assigned more than once."),
            );
        }
        replacement.push(assignment);
    }
    let app = &mut state.apps[index];
    for assignment in &mut replacement {
        if let Some(old) = app.assignments.iter().find(|old| old.same_as(assignment)) {
            // An unchanged assignment keeps its clock: devices already on their way still report.
            assignment.assigned_at = old.assigned_at;
            assignment.assigned_wall = old.assigned_wall;
            assignment.reported.clone_from(&old.reported);
        }
    }
    app.assignments = replacement;
    app.modified = at.ctx.now;
    Reply::empty(204)
}

fn list_assignments(state: &State, at: &Here, id: &str) -> Reply {
    let Some(app) = state.app(id) else {
        return not_found(at.ctx, "mobileApp", id);
    };
    let value: Vec<Value> = app.assignments.iter().map(Assignment::to_json).collect();
    let context = at.context(&format!(
        "deviceAppManagement/mobileApps('{}')/assignments",
        app.id
    ));
    json_reply(200, &json!({"@odata.context": context, "value": value}))
}

fn add_assignment(state: &mut State, at: &Here, id: &str) -> Reply {
    let body = match json_object(at.ctx, false) {
        Ok(body) => Value::Object(body),
        Err(reply) => return reply,
    };
    let Some(index) = state
        .apps
        .iter()
        .position(|a| a.id.eq_ignore_ascii_case(id))
    else {
        return not_found(at.ctx, "mobileApp", id);
    };
    if let Some(reply) = not_published(at, &state.apps[index]) {
        return reply;
    }
    let assignment = match parse_assignment(&body, at, state) {
        Ok(a) => a,
        Err(message) => return bad_request(at.ctx, &message),
    };
    let app = &mut state.apps[index];
    if app
        .assignments
        .iter()
        .any(|other| same_target(other, &assignment))
    {
        return bad_request(
            at.ctx,
            "The app already has an assignment for this target: replace the assignments with 'assign'.",
        );
    }
    let mut object = assignment.to_json();
    if let Value::Object(map) = &mut object {
        let context = at.context(&format!(
            "deviceAppManagement/mobileApps('{}')/assignments/$entity",
            app.id
        ));
        map.insert("@odata.context".into(), Value::String(context));
    }
    app.assignments.push(assignment);
    app.modified = at.ctx.now;
    json_reply(201, &object)
}

fn get_assignment(state: &State, at: &Here, app_id: &str, id: &str) -> Reply {
    let Some(app) = state.app(app_id) else {
        return not_found(at.ctx, "mobileApp", app_id);
    };
    match app
        .assignments
        .iter()
        .find(|a| a.id.eq_ignore_ascii_case(id))
    {
        Some(assignment) => json_reply(200, &assignment.to_json()),
        None => not_found(at.ctx, "mobileAppAssignment", id),
    }
}

fn delete_assignment(state: &mut State, at: &Here, app_id: &str, id: &str) -> Reply {
    let Some(app) = state.app_mut(app_id) else {
        return not_found(at.ctx, "mobileApp", app_id);
    };
    let before = app.assignments.len();
    app.assignments.retain(|a| !a.id.eq_ignore_ascii_case(id));
    if app.assignments.len() == before {
        return not_found(at.ctx, "mobileAppAssignment", id);
    }
    Reply::empty(204)
}

// ---- content versions and files ----------------------------------------------------------------

fn content_version_json(cv: &ContentVersion) -> Value {
    json!({"@odata.type": "#microsoft.graph.mobileAppContent", "id": cv.id})
}

fn list_content_versions(state: &State, at: &Here, id: &str) -> Reply {
    let Some(app) = state.app(id) else {
        return not_found(at.ctx, "mobileApp", id);
    };
    let value: Vec<Value> = app
        .content_versions
        .iter()
        .map(content_version_json)
        .collect();
    json_reply(200, &json!({"value": value}))
}

fn create_content_version(state: &mut State, at: &Here, id: &str) -> Reply {
    if let Err(reply) = json_object(at.ctx, true) {
        return reply;
    }
    let Some(app) = state.app_mut(id) else {
        return not_found(at.ctx, "mobileApp", id);
    };
    let cv = ContentVersion {
        id: (app.content_versions.len() + 1).to_string(),
        files: Vec::new(),
    };
    let mut object = content_version_json(&cv);
    let context = at.context(&format!(
        "deviceAppManagement/mobileApps('{}')/microsoft.graph.win32LobApp/contentVersions/$entity",
        app.id
    ));
    object["@odata.context"] = Value::String(context);
    app.content_versions.push(cv);
    json_reply(201, &object)
}

fn get_content_version(state: &mut State, at: &Here, id: &str, cv: &str) -> Reply {
    match content_version(state, at, id, cv) {
        Ok(version) => json_reply(200, &content_version_json(version)),
        Err(reply) => reply,
    }
}

fn content_version<'s>(
    state: &'s mut State,
    at: &Here,
    id: &str,
    cv: &str,
) -> Result<&'s mut ContentVersion, Reply> {
    let Some(app) = state.app_mut(id) else {
        return Err(not_found(at.ctx, "mobileApp", id));
    };
    app.content_version_mut(cv)
        .ok_or_else(|| not_found(at.ctx, "mobileAppContent", cv))
}

fn file<'s>(
    state: &'s mut State,
    at: &Here,
    id: &str,
    cv: &str,
    file: &str,
) -> Result<&'s mut ContentFile, Reply> {
    let version = content_version(state, at, id, cv)?;
    version
        .files
        .iter_mut()
        .find(|f| f.id.eq_ignore_ascii_case(file))
        .ok_or_else(|| not_found(at.ctx, "mobileAppContentFile", file))
}

fn list_files(state: &mut State, at: &Here, id: &str, cv: &str) -> Reply {
    let shown: Vec<(ContentFile, UploadState)> = match content_version(state, at, id, cv) {
        Ok(version) => version
            .files
            .iter_mut()
            .map(|f| (f.clone(), f.upload.show()))
            .collect(),
        Err(reply) => return reply,
    };
    let value: Vec<Value> = shown
        .iter()
        .map(|(f, upload)| at.shaped_value(state.file_json(f, *upload, &at.ctx.base_url)))
        .collect();
    json_reply(200, &json!({"value": value}))
}

fn create_file(state: &mut State, at: &Here, id: &str, cv: &str) -> Reply {
    let body = match json_object(at.ctx, false) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let Some(name) = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
    else {
        return bad_request(
            at.ctx,
            "Property 'name' is required and must be a non-empty string.",
        );
    };
    let (Some(size), Some(size_encrypted)) = (
        body.get("size").and_then(Value::as_u64),
        body.get("sizeEncrypted").and_then(Value::as_u64),
    ) else {
        return bad_request(
            at.ctx,
            "Properties 'size' and 'sizeEncrypted' are required and must be non-negative integers.",
        );
    };
    let new_file = ContentFile {
        id: state.ids.guid(),
        name: name.to_owned(),
        size,
        size_encrypted,
        manifest: body.get("manifest").cloned().unwrap_or(Value::Null),
        is_dependency: body
            .get("isDependency")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        created: at.ctx.now,
        upload: Stepped::pending_for(
            UploadState::AzureStorageUriRequestPending,
            UploadState::AzureStorageUriRequestSuccess,
            state.config.pending_polls,
        ),
    };
    let policy = state.ids.guid();
    let sig = state.ids.hex(2);
    let expires = at.ctx.now + state.config.sas_lifetime;
    let version = match content_version(state, at, id, cv) {
        Ok(version) => version,
        Err(reply) => return reply,
    };
    let mut shown = new_file.clone();
    let upload = shown.upload.show();
    version.files.push(shown);
    state
        .blobs
        .insert(new_file.id.clone(), Blob::new(policy, sig, expires));
    let mut object = at.shaped_value(state.file_json(&new_file, upload, &at.ctx.base_url));
    object["@odata.context"] =
        Value::String(at.context("deviceAppManagement/mobileApps/contentVersions/files/$entity"));
    json_reply(201, &object)
}

fn get_file(state: &mut State, at: &Here, id: &str, cv: &str, file_id: &str) -> Reply {
    let (shown, upload) = match file(state, at, id, cv, file_id) {
        Ok(f) => {
            let upload = f.upload.show();
            (f.clone(), upload)
        }
        Err(reply) => return reply,
    };
    let mut object = at.shaped_value(state.file_json(&shown, upload, &at.ctx.base_url));
    object["@odata.context"] =
        Value::String(at.context("deviceAppManagement/mobileApps/contentVersions/files/$entity"));
    json_reply(200, &object)
}

fn validate_encryption_info(body: &Map<String, Value>) -> Result<(), String> {
    let Some(info) = body.get("fileEncryptionInfo").and_then(Value::as_object) else {
        return Err("Property 'fileEncryptionInfo' is required.".into());
    };
    for field in [
        "encryptionKey",
        "initializationVector",
        "mac",
        "macKey",
        "profileIdentifier",
        "fileDigest",
        "fileDigestAlgorithm",
    ] {
        if info
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(format!(
                "Property 'fileEncryptionInfo.{field}' is required and must be a non-empty string."
            ));
        }
    }
    Ok(())
}

fn commit_file(state: &mut State, at: &Here, id: &str, cv: &str, file_id: &str) -> Reply {
    let body = match json_object(at.ctx, false) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    if let Err(message) = validate_encryption_info(&body) {
        return bad_request(at.ctx, &message);
    }
    let uploaded = state
        .blobs
        .get(&file_id.to_ascii_lowercase())
        .filter(|b| !b.committed.is_empty())
        .map(Blob::committed_len);
    let forced_failure = state.fail_next_commits > 0;
    let polls = state.config.pending_polls;
    let target = match file(state, at, id, cv, file_id) {
        Ok(f) => f,
        Err(reply) => return reply,
    };
    let current = target.upload.peek();
    if !current.can_commit() {
        return bad_request(
            at.ctx,
            &format!(
                "The file cannot be committed while its uploadState is '{}'.",
                current.as_str()
            ),
        );
    }
    // Intune checks the uploaded blob against the declared encrypted size.
    let outcome = if !forced_failure && uploaded == Some(target.size_encrypted) {
        UploadState::CommitFileSuccess
    } else {
        UploadState::CommitFileFailed
    };
    target.upload = Stepped::pending_for(UploadState::CommitFilePending, outcome, polls);
    if forced_failure {
        state.fail_next_commits -= 1;
    }
    Reply::empty(204)
}

fn renew_upload(state: &mut State, at: &Here, id: &str, cv: &str, file_id: &str) -> Reply {
    let (polls, lifetime) = (state.config.pending_polls, state.config.sas_lifetime);
    let target = match file(state, at, id, cv, file_id) {
        Ok(f) => f,
        Err(reply) => return reply,
    };
    let current = target.upload.peek();
    if !matches!(
        current,
        UploadState::AzureStorageUriRequestSuccess | UploadState::AzureStorageUriRenewalSuccess
    ) {
        return bad_request(
            at.ctx,
            &format!(
                "The upload cannot be renewed while its uploadState is '{}'.",
                current.as_str()
            ),
        );
    }
    target.upload = Stepped::pending_for(
        UploadState::AzureStorageUriRenewalPending,
        UploadState::AzureStorageUriRenewalSuccess,
        polls,
    );
    let key = target.id.clone();
    // The stored access policy is extended: the same URI works for another lifetime.
    if let Some(blob) = state.blobs.get_mut(&key) {
        blob.expires = at.ctx.now + lifetime;
    }
    Reply::empty(204)
}
