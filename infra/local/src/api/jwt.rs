//! Stands in for API Gateway's JWT authorizer: tokens signed with a local key (HS256) carrying the
//! same claims (`sub`, `email`, `eucora:roles`, `iss`, `aud`, `exp`, `iat`; for Entra ID-shaped
//! tokens also `oid` and `tid`), checked the same way (signature, issuer one of the configured
//! ones, audience one of the configured list, expiry). The claims reach the handlers as API
//! Gateway passes them: as strings.
//!
//! By default the issuer is [`ISSUER`] and the audience [`AUDIENCE`]. [`LocalIssuer::accepting`]
//! configures more, as the template's `JwtAudience` list does: an Entra ID issuer
//! ([`entra_issuer`]) and a second audience let a test hold two tokens of one Entra ID person,
//! each with the `sub` Entra ID gives that audience (see [`LocalIssuer::entra_token`]).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use eucora_domain::cab::Role;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

pub const ISSUER: &str = "https://eucora.local";
pub const AUDIENCE: &str = "api://eucora-local";

/// The actor id the API gives the person `sub` of a default local token (issuer [`ISSUER`]).
pub fn actor_id(sub: &str) -> String {
    format!("{sub}@{}", ISSUER.trim_start_matches("https://"))
}

/// Entra ID's v2.0 token issuer for tenant `tid`.
pub fn entra_issuer(tid: &str) -> String {
    format!("https://login.microsoftonline.com/{tid}/v2.0")
}

/// The `sub` Entra ID gives person `oid` of tenant `tid` in tokens for audience `aud`: pairwise,
/// another for each application (here a hash of the three, in Entra ID's 43-character shape).
pub fn entra_pairwise_sub(tid: &str, oid: &str, aud: &str) -> String {
    B64.encode(Sha256::digest(format!("{tid}/{oid}/{aud}")))
}

/// Issues and checks local tokens.
#[derive(Clone)]
pub struct LocalIssuer {
    signing: EncodingKey,
    checking: DecodingKey,
    issuers: Vec<String>,
    audiences: Vec<String>,
}

/// The key is never shown.
impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIssuer")
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

/// Why a token is refused (API Gateway answers 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a JWT")]
    Malformed,
    #[error("bad signature")]
    Signature,
    #[error("expired")]
    Expired,
    #[error("wrong issuer or audience")]
    Audience,
}

impl LocalIssuer {
    /// Accepts [`ISSUER`] and [`AUDIENCE`].
    pub fn new(key: &[u8]) -> LocalIssuer {
        LocalIssuer::accepting(key, &[ISSUER.to_owned()], &[AUDIENCE.to_owned()])
    }

    /// Accepts tokens from any of `issuers` for any of `audiences` (API Gateway's authorizer:
    /// the issuer must match, the audience be one of the list).
    ///
    /// # Panics
    /// If `key` is empty (HS256 needs a key; the local stack makes a random one of 16 bytes).
    pub fn accepting(key: &[u8], issuers: &[String], audiences: &[String]) -> LocalIssuer {
        LocalIssuer {
            signing: EncodingKey::from_secret(key).expect("a local signing key is not empty"),
            checking: DecodingKey::from_secret(key).expect("a local signing key is not empty"),
            issuers: issuers.to_vec(),
            audiences: audiences.to_vec(),
        }
    }

    fn signed(&self, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.signing)
            .expect("HS256 signs any claims that serialise")
    }

    /// A token for `sub` with `roles`, valid for `ttl_secs` from `now_secs` (issuer [`ISSUER`],
    /// audience [`AUDIENCE`]).
    pub fn token(&self, sub: &str, roles: &[Role], now_secs: i64, ttl_secs: i64) -> String {
        let roles: Vec<&str> = roles.iter().map(|r| r.key()).collect();
        self.signed(&json!({
            "sub": sub, "email": format!("{sub}@eucora.local"), "eucora:roles": roles.join(" "),
            "iss": ISSUER, "aud": AUDIENCE, "iat": now_secs, "exp": now_secs + ttl_secs
        }))
    }

    /// An Entra ID-shaped v2.0 token of person `oid` in tenant `tid` for audience `aud`: issuer
    /// [`entra_issuer`], the object id and tenant (`oid`, `tid`), and the pairwise `sub` Entra ID
    /// gives that audience ([`entra_pairwise_sub`]).
    pub fn entra_token(
        &self,
        tid: &str,
        oid: &str,
        aud: &str,
        roles: &[Role],
        now_secs: i64,
        ttl_secs: i64,
    ) -> String {
        let roles: Vec<&str> = roles.iter().map(|r| r.key()).collect();
        self.signed(&json!({
            "sub": entra_pairwise_sub(tid, oid, aud), "oid": oid, "tid": tid,
            "eucora:roles": roles.join(" "), "iss": entra_issuer(tid), "aud": aud,
            "ver": "2.0", "iat": now_secs, "exp": now_secs + ttl_secs
        }))
    }

    /// The token's claims as strings, if it is valid at `now_secs` (the caller's clock, not the
    /// machine's: the expiry is checked here, the rest by `jsonwebtoken`).
    pub fn verify(
        &self,
        token: &str,
        now_secs: i64,
    ) -> Result<BTreeMap<String, String>, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&self.issuers);
        // `aud` is one audience or a list of them; one of them must be configured.
        validation.set_audience(&self.audiences);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &self.checking, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => TokenError::Signature,
                ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => TokenError::Audience,
                ErrorKind::MissingRequiredClaim(claim) if claim != "exp" => TokenError::Audience,
                ErrorKind::MissingRequiredClaim(_) => TokenError::Expired,
                _ => TokenError::Malformed,
            })?
            .claims;
        if claims
            .get("exp")
            .and_then(Value::as_i64)
            .is_none_or(|exp| exp <= now_secs)
        {
            return Err(TokenError::Expired);
        }
        Ok(claims
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_tampering_is_refused() {
        let issuer = LocalIssuer::new(b"local-key");
        let t = issuer.token("cab-bob", &[Role::Cab, Role::Auditor], 1000, 3600);
        let claims = issuer.verify(&t, 1001).unwrap();
        assert_eq!(claims["sub"], "cab-bob");
        assert_eq!(claims["eucora:roles"], "cab auditor");
        assert_eq!(claims["exp"], "4600");
        assert_eq!(issuer.verify(&t, 4600), Err(TokenError::Expired));
        assert_eq!(
            LocalIssuer::new(b"other").verify(&t, 1001),
            Err(TokenError::Signature)
        );
        let mut forged = t.clone();
        forged.insert(forged.find('.').unwrap() + 2, 'x');
        assert!(issuer.verify(&forged, 1001).is_err());
        assert_eq!(issuer.verify("nope", 1), Err(TokenError::Malformed));
        // A token that says it is unsigned, or signed another way, is refused whatever it claims.
        let (_, rest) = t.split_once('.').unwrap();
        let (payload, _) = rest.split_once('.').unwrap();
        for alg in ["none", "HS512", "RS256"] {
            let header = B64.encode(json!({ "alg": alg, "typ": "JWT" }).to_string());
            let unsigned = format!("{header}.{payload}.");
            assert!(issuer.verify(&unsigned, 1001).is_err(), "alg {alg}");
        }
        let no_exp = issuer.signed(&json!({ "sub": "x", "iss": ISSUER, "aud": AUDIENCE }));
        assert_eq!(issuer.verify(&no_exp, 1), Err(TokenError::Expired));
    }

    #[test]
    fn issuer_and_audience_are_checked_against_the_configured_ones() {
        let tid = "8b2c6d0e-3f4a-4b5c-9d6e-7f8091a2b3c4";
        let oid = "5f1c2a7e-0b3d-4e8f-9a6b-2c4d6e8f0a1b";
        let auds = ["api://eucora".to_owned(), "api://eucora-cli".to_owned()];
        let default = LocalIssuer::new(b"k");
        let entra = LocalIssuer::accepting(b"k", &[entra_issuer(tid)], &auds);
        let a = entra.entra_token(tid, oid, &auds[0], &[Role::Cab], 1000, 3600);
        let b = entra.entra_token(tid, oid, &auds[1], &[Role::Cab], 1000, 3600);
        let (ca, cb) = (
            entra.verify(&a, 1001).unwrap(),
            entra.verify(&b, 1001).unwrap(),
        );
        // One person: the same oid and tid; Entra ID's sub differs per audience.
        assert_eq!((&ca["oid"], &ca["tid"]), (&cb["oid"], &cb["tid"]));
        assert_ne!(ca["sub"], cb["sub"]);
        assert_eq!(ca["iss"], entra_issuer(tid));
        // An issuer or an audience not configured is refused.
        assert_eq!(default.verify(&a, 1001), Err(TokenError::Audience));
        let other_aud = entra.entra_token(tid, oid, "api://other", &[], 1000, 3600);
        assert_eq!(entra.verify(&other_aud, 1001), Err(TokenError::Audience));
        let local = default.token("cab-bob", &[Role::Cab], 1000, 3600);
        assert_eq!(entra.verify(&local, 1001), Err(TokenError::Audience));
        assert!(default.verify(&local, 1001).is_ok());
        assert_eq!(actor_id("cab-bob"), "cab-bob@eucora.local");
    }
}
