//! The Microsoft identity platform's token endpoint, client-credentials grant only:
//! `POST /{tenant}/oauth2/v2.0/token`.

use std::time::{Instant, SystemTime};

use hyper::Method;
use serde_json::json;

use crate::faults::Fault;
use crate::state::State;
use crate::wire::{Ctx, Reply, aad_timestamp, derived_guid, fnv64, http_date, retry_after_value};

const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";

/// Answers a token request for `tenant` (the first path segment).
pub(crate) fn handle(state: &mut State, ctx: &Ctx, tenant: &str) -> Reply {
    if ctx.method != Method::POST {
        let message = format!(
            "The endpoint only accepts POST, OPTIONS requests. Received a {} request.",
            ctx.method
        );
        return error(ctx, 400, "invalid_request", 900_561, &message);
    }
    if !tenant.eq_ignore_ascii_case(&state.config.tenant_id) {
        let message = format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        );
        return error(ctx, 400, "invalid_request", 90_002, &message);
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&ctx.body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    for required in ["grant_type", "client_id", "scope"] {
        if field(required).is_none() {
            let message =
                format!("The request body must contain the following parameter: '{required}'.");
            return error(ctx, 400, "invalid_request", 900_144, &message);
        }
    }
    let grant_type = field("grant_type").unwrap_or_default();
    if grant_type != "client_credentials" {
        let message = format!("The app requested an unsupported grant type '{grant_type}'.");
        return error(ctx, 400, "unsupported_grant_type", 70_003, &message);
    }
    let client_id = field("client_id").unwrap_or_default();
    if !client_id.eq_ignore_ascii_case(&state.config.client_id) {
        let message = format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        );
        return error(ctx, 400, "unauthorized_client", 700_016, &message);
    }
    let Some(secret) = field("client_secret") else {
        let message = "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.";
        return error(ctx, 401, "invalid_client", 7_000_218, message);
    };
    if secret != state.config.client_secret {
        return invalid_secret(ctx, client_id);
    }
    if state.secret_expired {
        let message = format!(
            "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app."
        );
        return error(ctx, 401, "invalid_client", 7_000_222, &message);
    }
    let scope = field("scope").unwrap_or_default();
    if !scope.ends_with("/.default") {
        let message = format!(
            "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
        );
        return error(ctx, 400, "invalid_scope", 1_002_012, &message);
    }
    if !scope.eq_ignore_ascii_case(GRAPH_DEFAULT_SCOPE) {
        let resource = scope.trim_end_matches("/.default");
        let message = format!(
            "Resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
        );
        return error(ctx, 400, "invalid_resource", 500_011, &message);
    }
    let (token, expires_in) = state.issue_token(ctx.now, Instant::now());
    let body = json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": token,
    });
    Reply::new(200, "application/json; charset=utf-8", body.to_string())
}

fn invalid_secret(ctx: &Ctx, client_id: &str) -> Reply {
    let message = format!(
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
    );
    error(ctx, 401, "invalid_client", 7_000_215, &message)
}

/// An injected fault, answered as the identity platform would.
pub(crate) fn fault_reply(ctx: &Ctx, fault: &Fault) -> Option<Reply> {
    Some(match fault {
        Fault::TooManyRequests { retry_after } => {
            let reply = error(
                ctx,
                429,
                "temporarily_unavailable",
                90_055,
                "TenantThrottlingError - There are too many incoming requests.",
            );
            match retry_after {
                Some(seconds) => reply.with_header("retry-after", retry_after_value(*seconds)),
                None => reply,
            }
        }
        Fault::ServiceUnavailable => error(
            ctx,
            503,
            "temporarily_unavailable",
            90_033,
            "A transient error has occurred. Please try again.",
        ),
        Fault::InternalError => error(
            ctx,
            500,
            "server_error",
            90_033,
            "A transient error has occurred. Please try again.",
        ),
        Fault::Unauthorized | Fault::Forbidden => invalid_secret(ctx, "unknown"),
        Fault::Conflict => error(
            ctx,
            409,
            "invalid_request",
            90_100,
            "The request could not be completed because of a conflict.",
        ),
        _ => return None,
    })
}

/// The identity platform's error body (RFC 6749 §5.2 plus Microsoft's fields).
fn error(ctx: &Ctx, status: u16, error: &str, code: u32, message: &str) -> Reply {
    let trace_id = ctx.request_id.clone();
    // Entra ID takes the caller's `client-request-id` as the correlation id, or makes one up.
    let correlation_id = ctx.header("client-request-id").map_or_else(
        || derived_guid(0xC0AA, fnv64(&ctx.request_id)),
        str::to_owned,
    );
    let timestamp = aad_timestamp(ctx.now);
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {message} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}"),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    Reply::new(status, "application/json; charset=utf-8", body.to_string())
}

/// Headers the token endpoint sets on every answer.
pub(crate) fn finish(ctx: &Ctx, reply: Reply, now: SystemTime) -> Reply {
    let mut reply = reply
        .with_header("cache-control", "no-store, no-cache")
        .with_header("pragma", "no-cache")
        .with_header("x-ms-request-id", ctx.request_id.clone())
        .with_header("date", http_date(now));
    if let Some(client_request_id) = ctx.header("client-request-id") {
        reply = reply.with_header("client-request-id", client_request_id.to_owned());
    }
    reply
}
