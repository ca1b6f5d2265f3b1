//! Tokens: OAuth client credentials (`/api/v1/oauth/token`, older `/api/oauth/token`), user
//! tokens from Basic auth (`/api/v1/auth/token`), keep-alive and invalidation.

use serde_json::json;

use crate::http::{Family, Reply, Request};
use crate::state::{Shared, Token, TokenKind};
use crate::times::iso_millis;

/// `POST /api/v1/oauth/token` and `POST /api/oauth/token`.
pub(crate) fn oauth_token(shared: &Shared, request: &Request) -> Reply {
    let mut state = shared.lock();
    let path_exists = state.oauth_enabled
        && !(state.legacy_oauth_path_only && request.path == "/api/v1/oauth/token");
    if !path_exists {
        return Reply::not_found(Family::Pro);
    }
    if request.method != "POST" {
        return Reply::method_not_allowed(Family::Pro);
    }
    let form = request.form();
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    match field("grant_type").as_deref() {
        Some("client_credentials") => {}
        Some(_) => return Reply::json(400, &json!({ "error": "unsupported_grant_type" })),
        None => return Reply::json(400, &json!({ "error": "invalid_request" })),
    }
    let (client_id, client_secret) = match (field("client_id"), field("client_secret")) {
        (Some(id), Some(secret)) => (id, secret),
        _ => request.basic().unwrap_or_default(),
    };
    if client_id != state.client_id || client_secret != state.client_secret {
        return Reply::json(401, &json!({ "error": "invalid_client" }));
    }
    let (access_token, _) = state.issue(TokenKind::OAuth);
    let expires_in = state.lifetime(TokenKind::OAuth).as_secs();
    Reply::json(
        200,
        &json!({ "access_token": access_token, "scope": "api-role:1", "token_type": "Bearer", "expires_in": expires_in }),
    )
}

/// `POST /api/v1/auth/token` with Basic auth.
pub(crate) fn user_token(shared: &Shared, request: &Request) -> Reply {
    if request.method != "POST" {
        return Reply::method_not_allowed(Family::Pro);
    }
    let mut state = shared.lock();
    let valid = request
        .basic()
        .is_some_and(|(user, password)| user == state.username && password == state.password);
    if !valid {
        return Reply::json(401, &json!({ "httpStatus": 401, "errors": [] }));
    }
    let (value, token) = state.issue(TokenKind::User);
    token_reply(&value, &token)
}

/// `POST /api/v1/auth/keep-alive`: a fresh token; the one presented stops working.
pub(crate) fn keep_alive(shared: &Shared, request: &Request) -> Reply {
    if request.method != "POST" {
        return Reply::method_not_allowed(Family::Pro);
    }
    let mut state = shared.lock();
    let Some((old, token)) = request
        .bearer()
        .and_then(|value| Some((value, state.token(value)?)))
    else {
        return Reply::unauthorized(Family::Pro);
    };
    state.revoke(old);
    let (value, token) = state.issue(token.kind);
    token_reply(&value, &token)
}

/// `POST /api/v1/auth/invalidate-token`.
pub(crate) fn invalidate(shared: &Shared, request: &Request) -> Reply {
    if request.method != "POST" {
        return Reply::method_not_allowed(Family::Pro);
    }
    let mut state = shared.lock();
    match request
        .bearer()
        .filter(|value| state.token(value).is_some())
    {
        Some(value) => {
            state.revoke(value);
            Reply::empty(204)
        }
        None => Reply::unauthorized(Family::Pro),
    }
}

fn token_reply(value: &str, token: &Token) -> Reply {
    Reply::json(
        200,
        &json!({ "token": value, "expires": iso_millis(token.expires_wall) }),
    )
}
