//! The caller, from the claims API Gateway's JWT authorizer validated.
//!
//! One person is one actor, whichever application (audience) their token was issued for. The
//! actor id is the issuer plus a subject that is stable for the person at that issuer:
//!
//! - Microsoft Entra ID (issuer host `login.microsoftonline.com`, `sts.windows.net` or a sovereign
//!   cloud's): the `oid` claim (the object id, the same for every application of the tenant; Entra
//!   ID's `sub` is pairwise, different per application) in the tenant `tid`:
//!   `{oid}@entra:{tid}`. A v1 and a v2 token of one person are one actor.
//! - Amazon Cognito user pools (issuer `https://cognito-idp.<region>.amazonaws.com/<pool id>`):
//!   `sub`, stable within the pool: `{sub}@cognito:{pool id}`.
//! - Any other OIDC issuer: `sub` at the issuer's host, followed by the issuer's path
//!   segments joined by `:` if it has any: `{sub}@{host}[:{segment}…]`.
//!
//! The id must be an [`ActorId`] (letters, digits, `. _ : @ -`, at most 128 characters); a token
//! whose claims do not make one is unauthenticated (401) naming the claim, never another person.
//!
//! Roles come from `eucora:roles` (space-separated, e.g. `"cab security_reviewer"`) or, when it is
//! absent, from the Cognito groups claim (which API Gateway passes as `"[eucora-cab …]"`), where only
//! groups named with [`ROLE_GROUP_PREFIX`] count: a group named `cab` grants nothing. Unknown role
//! names are ignored.

use std::collections::HashMap;
use std::hash::BuildHasher;

use eucora_domain::ActorId;
use eucora_domain::cab::Role;
use eucora_service::Actor;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::error::ApiError;

/// The claim naming the token's issuer.
pub const ISSUER_CLAIM: &str = "iss";
/// The subject claim: the actor's subject for Cognito and other issuers (not for Entra ID, where
/// it differs per application).
pub const SUBJECT_CLAIM: &str = "sub";
/// Entra ID's object id: the person's subject, the same for every application of the tenant.
pub const ENTRA_OBJECT_ID_CLAIM: &str = "oid";
/// Entra ID's tenant id.
pub const ENTRA_TENANT_CLAIM: &str = "tid";
/// The claim holding the roles.
pub const ROLES_CLAIM: &str = "eucora:roles";
/// The Cognito groups claim, read when `eucora:roles` is absent.
pub const COGNITO_GROUPS_CLAIM: &str = "cognito:groups";
/// The prefix of the Cognito groups that grant a role: `eucora-cab` grants `cab`, a group named
/// `cab` grants nothing.
pub const ROLE_GROUP_PREFIX: &str = "eucora-";
/// The hosts of Entra ID's token issuers (global and sovereign clouds, v1 and v2 tokens).
pub const ENTRA_ISSUER_HOSTS: &[&str] = &[
    "login.microsoftonline.com",
    "sts.windows.net",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "sts.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
];

fn split_roles(raw: &str) -> impl Iterator<Item = &str> {
    raw.trim_matches(|c| c == '[' || c == ']')
        .split(|c: char| c.is_whitespace() || c == ',')
        .map(|r| r.trim_matches('"'))
}

/// Roles from `eucora:roles`.
fn parse_roles(raw: &str) -> Vec<Role> {
    split_roles(raw).filter_map(|r| r.parse().ok()).collect()
}

/// Roles from Cognito groups: only the groups named `eucora-<role>`.
fn parse_groups(raw: &str) -> Vec<Role> {
    split_roles(raw)
        .filter_map(|g| g.strip_prefix(ROLE_GROUP_PREFIX))
        .filter_map(|r| r.parse().ok())
        .collect()
}

/// A 401 about one claim.
fn bad_claim(claim: &str, problem: &str) -> ApiError {
    let mut e = ApiError::unauthenticated(&format!("the token's {claim} claim {problem}"));
    e.field = Some(claim.to_owned());
    e
}

fn claim<'a, S: BuildHasher>(
    claims: &'a HashMap<String, String, S>,
    name: &str,
) -> Result<&'a str, ApiError> {
    claims
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad_claim(name, "is missing"))
}

/// A part of the actor id: a valid id on its own, without `@` where `@` would make the id
/// ambiguous (the issuer part follows the last `@`).
fn part<'a>(value: &'a str, claim: &str, at_allowed: bool) -> Result<&'a str, ApiError> {
    if ActorId::parse(value).is_err() || (!at_allowed && value.contains('@')) {
        return Err(bad_claim(
            claim,
            "is not usable in an actor id (letters, digits and . _ : @ - only, at most 128 characters)",
        ));
    }
    Ok(value)
}

/// The actor id the claims name: the issuer plus the person's stable subject there.
pub fn actor_id<S: BuildHasher>(claims: &HashMap<String, String, S>) -> Result<ActorId, ApiError> {
    let iss = claim(claims, ISSUER_CLAIM)?;
    let url = url::Url::parse(iss).map_err(|_| bad_claim(ISSUER_CLAIM, "is not a URL"))?;
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(bad_claim(ISSUER_CLAIM, "has no host"));
    };
    let host = host.to_ascii_lowercase();
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let id = if ENTRA_ISSUER_HOSTS.contains(&host.as_str()) {
        let oid = part(
            claim(claims, ENTRA_OBJECT_ID_CLAIM)?,
            ENTRA_OBJECT_ID_CLAIM,
            false,
        )?;
        let tid = part(
            claim(claims, ENTRA_TENANT_CLAIM)?,
            ENTRA_TENANT_CLAIM,
            false,
        )?;
        format!("{oid}@entra:{tid}")
    } else if host.starts_with("cognito-idp.") && host.ends_with(".amazonaws.com") {
        let [pool] = segments.as_slice() else {
            return Err(bad_claim(
                ISSUER_CLAIM,
                "does not name one Cognito user pool",
            ));
        };
        let pool = part(pool, ISSUER_CLAIM, false)?;
        let sub = part(claim(claims, SUBJECT_CLAIM)?, SUBJECT_CLAIM, true)?;
        format!("{sub}@cognito:{pool}")
    } else {
        let mut issuer = host.clone();
        for s in &segments {
            issuer.push(':');
            issuer.push_str(s);
        }
        let issuer = part(&issuer, ISSUER_CLAIM, false)?;
        let sub = part(claim(claims, SUBJECT_CLAIM)?, SUBJECT_CLAIM, true)?;
        format!("{sub}@{issuer}")
    };
    // Each part is valid; together they may be too long.
    ActorId::parse(id).map_err(|_| {
        let claim = if ENTRA_ISSUER_HOSTS.contains(&host.as_str()) {
            ENTRA_OBJECT_ID_CLAIM
        } else {
            SUBJECT_CLAIM
        };
        bad_claim(
            claim,
            "makes an actor id longer than 128 characters with its issuer",
        )
    })
}

/// The caller the claims name, with their roles.
pub fn actor_from_claims<S: BuildHasher>(
    claims: &HashMap<String, String, S>,
) -> Result<Actor, ApiError> {
    let id = actor_id(claims)?;
    let roles = match claims.get(ROLES_CLAIM) {
        Some(r) => parse_roles(r),
        None => claims
            .get(COGNITO_GROUPS_CLAIM)
            .map(|g| parse_groups(g))
            .unwrap_or_default(),
    };
    Ok(Actor::new(id, roles))
}

/// The caller of `req`. A request without a validated identity is unauthenticated (401).
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
    actor_from_claims(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "8b2c6d0e-3f4a-4b5c-9d6e-7f8091a2b3c4";
    const OID: &str = "5f1c2a7e-0b3d-4e8f-9a6b-2c4d6e8f0a1b";

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn entra(iss: &str, aud: &str, sub: &str) -> HashMap<String, String> {
        claims(&[
            ("iss", iss),
            ("aud", aud),
            ("sub", sub),
            ("oid", OID),
            ("tid", TENANT),
            ("eucora:roles", "cab"),
        ])
    }

    fn v2() -> String {
        format!("https://login.microsoftonline.com/{TENANT}/v2.0")
    }

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

    #[test]
    fn entra_tokens_for_two_audiences_are_one_person() {
        // Entra ID's sub is pairwise: another per application. The oid is not.
        let a = actor_from_claims(&entra(&v2(), "api://eucora", "pairwise-sub-A")).unwrap();
        let b = actor_from_claims(&entra(&v2(), "api://eucora-cli", "pairwise-sub-B")).unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(a.id.as_str(), format!("{OID}@entra:{TENANT}"));
        // A v1 token of the same person (another issuer host) too.
        let v1 = format!("https://sts.windows.net/{TENANT}/");
        let c = actor_from_claims(&entra(&v1, "api://eucora", "pairwise-sub-C")).unwrap();
        assert_eq!(c.id, a.id);
        // A sovereign cloud is Entra ID as well.
        let gov = format!("https://login.microsoftonline.us/{TENANT}/v2.0");
        let d = actor_from_claims(&entra(&gov, "api://eucora", "pairwise-sub-D")).unwrap();
        assert_eq!(d.id, a.id);
        // Another person of the tenant is another actor.
        let mut other = entra(&v2(), "api://eucora", "pairwise-sub-A");
        other.insert("oid".into(), "0e9d8c7b-6a5f-4e3d-2c1b-0a9f8e7d6c5b".into());
        assert_ne!(actor_from_claims(&other).unwrap().id, a.id);
    }

    #[test]
    fn an_entra_token_without_oid_or_tid_is_unauthenticated() {
        for missing in ["oid", "tid"] {
            let mut c = entra(&v2(), "api://eucora", "pairwise-sub-A");
            c.remove(missing);
            let e = actor_from_claims(&c).unwrap_err();
            assert_eq!(e.status, 401);
            assert_eq!(e.field.as_deref(), Some(missing));
            assert!(e.message.contains(missing), "{}", e.message);
        }
    }

    #[test]
    fn cognito_groups_grant_roles_only_with_the_prefix() {
        let iss = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123";
        let sub = "3c1d5e7f-9a2b-4c6d-8e0f-1a3b5c7d9e2f";
        let only = |groups: &str| {
            actor_from_claims(&claims(&[
                ("iss", iss),
                ("sub", sub),
                ("cognito:groups", groups),
            ]))
            .unwrap()
        };
        let unrelated = only("[cab security_reviewer]");
        assert!(unrelated.roles.is_empty(), "{:?}", unrelated.roles);
        let member = only("[eucora-cab eucora-security_reviewer admins]");
        assert_eq!(
            member.roles.into_iter().collect::<Vec<_>>(),
            vec![Role::Cab, Role::SecurityReviewer]
        );
        assert_eq!(
            member.id.as_str(),
            format!("{sub}@cognito:eu-west-1_AbCdEf123")
        );
        assert_eq!(ROLE_GROUP_PREFIX, "eucora-");
    }

    #[test]
    fn other_issuers_key_on_sub_and_the_issuer() {
        let a = actor_from_claims(&claims(&[
            ("iss", "https://eucora.local"),
            ("sub", "cab-carol"),
        ]))
        .unwrap();
        assert_eq!(a.id.as_str(), "cab-carol@eucora.local");
        let b = actor_from_claims(&claims(&[
            ("iss", "https://idp.example/realms/corp"),
            ("sub", "cab-carol"),
        ]))
        .unwrap();
        assert_eq!(b.id.as_str(), "cab-carol@idp.example:realms:corp");
    }

    #[test]
    fn unusable_claims_are_unauthenticated_naming_the_claim() {
        let local = |pairs: &[(&str, &str)]| actor_from_claims(&claims(pairs)).unwrap_err();
        for (pairs, field) in [
            (
                &[("iss", "https://eucora.local"), ("sub", "carol smith")][..],
                "sub",
            ),
            (
                &[("iss", "https://eucora.local"), ("sub", "carol/x")][..],
                "sub",
            ),
            (&[("iss", "https://eucora.local"), ("sub", "")][..], "sub"),
            (&[("iss", "https://eucora.local")][..], "sub"),
            (&[("sub", "carol")][..], "iss"),
            (&[("iss", "not a url"), ("sub", "carol")][..], "iss"),
            (
                &[("iss", "https://idp.example/a%20b"), ("sub", "carol")][..],
                "iss",
            ),
            (
                &[("iss", "https://idp.example/x@y"), ("sub", "carol")][..],
                "iss",
            ),
        ] {
            let e = local(pairs);
            assert_eq!(e.status, 401, "{pairs:?}");
            assert_eq!(e.field.as_deref(), Some(field), "{pairs:?}");
        }
        // Too long together: 120 characters of sub and the issuer.
        let long = "a".repeat(120);
        let e = local(&[("iss", "https://eucora.local"), ("sub", &long)]);
        assert_eq!((e.status, e.field.as_deref()), (401, Some("sub")));
        // Entra: an oid with characters outside the id alphabet, or an @.
        for oid in ["5f1c2a7e 0b3d", "x@entra:other"] {
            let mut c = entra(&v2(), "api://eucora", "s");
            c.insert("oid".into(), oid.into());
            let e = actor_from_claims(&c).unwrap_err();
            assert_eq!((e.status, e.field.as_deref()), (401, Some("oid")));
        }
    }
}
