//! The caller, from the claims API Gateway's JWT authorizer validated.
//!
//! Claims read: `sub` (the actor id) and the roles, from `eucora:roles` (space-separated, e.g.
//! `"cab security_reviewer"`) or, for Amazon Cognito user pools, `cognito:groups` (which API
//! Gateway passes as `"[cab security_reviewer]"`). Unknown role names are ignored.

use eucora_domain::ActorId;
use eucora_domain::cab::Role;
use eucora_service::Actor;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::error::ApiError;

/// The claim holding the actor id.
pub const SUBJECT_CLAIM: &str = "sub";
/// The claim holding the roles.
pub const ROLES_CLAIM: &str = "eucora:roles";
/// The Cognito groups claim, read when `eucora:roles` is absent.
pub const COGNITO_GROUPS_CLAIM: &str = "cognito:groups";

fn parse_roles(raw: &str) -> Vec<Role> {
    raw.trim_matches(|c| c == '[' || c == ']')
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter_map(|r| r.trim_matches('"').parse().ok())
        .collect()
}

/// The caller of `req`. A request without a validated subject is unauthenticated (401).
pub fn actor(req: &Request) -> Result<Actor, ApiError> {
    let claims = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|j| &j.claims),
        _ => None,
    };
    let Some(claims) = claims else {
        return Err(ApiError::unauthenticated("no validated identity token"));
    };
    let id = claims
        .get(SUBJECT_CLAIM)
        .and_then(|s| ActorId::parse(s.as_str()).ok())
        .ok_or_else(|| ApiError::unauthenticated("the token has no usable sub claim"))?;
    let roles = claims
        .get(ROLES_CLAIM)
        .or_else(|| claims.get(COGNITO_GROUPS_CLAIM))
        .map(|r| parse_roles(r))
        .unwrap_or_default();
    Ok(Actor::new(id, roles))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_from_either_claim_format() {
        assert_eq!(
            parse_roles("cab security_reviewer"),
            vec![Role::Cab, Role::SecurityReviewer]
        );
        assert_eq!(parse_roles("[cab auditor]"), vec![Role::Cab, Role::Auditor]);
        assert_eq!(parse_roles("admin cab"), vec![Role::Cab]);
        assert!(parse_roles("").is_empty());
    }
}
