//! Stands in for API Gateway's JWT authorizer: tokens signed with a local key (HS256) carrying the
//! same claims (`sub`, `email`, `eucora:roles`, `iss`, `aud`, `exp`, `iat`), checked the same way
//! (signature, issuer, audience, expiry). The claims reach the handlers as API Gateway passes them:
//! as strings.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use eucora_domain::cab::Role;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

pub const ISSUER: &str = "https://eucora.local";
pub const AUDIENCE: &str = "api://eucora-local";

/// Issues and checks local tokens.
#[derive(Clone)]
pub struct LocalIssuer {
    key: Vec<u8>,
}

impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalIssuer(<key>)")
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
    pub fn new(key: &[u8]) -> LocalIssuer {
        LocalIssuer { key: key.to_vec() }
    }

    fn sign(&self, data: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(data.as_bytes());
        B64.encode(mac.finalize().into_bytes())
    }

    /// A token for `sub` with `roles`, valid for `ttl_secs` from `now_secs`.
    pub fn token(&self, sub: &str, roles: &[Role], now_secs: i64, ttl_secs: i64) -> String {
        let header = B64.encode(json!({ "alg": "HS256", "typ": "JWT" }).to_string());
        let roles: Vec<&str> = roles.iter().map(|r| r.key()).collect();
        let claims = json!({
            "sub": sub, "email": format!("{sub}@eucora.local"), "eucora:roles": roles.join(" "),
            "iss": ISSUER, "aud": AUDIENCE, "iat": now_secs, "exp": now_secs + ttl_secs
        });
        let payload = B64.encode(claims.to_string());
        let signature = self.sign(&format!("{header}.{payload}"));
        format!("{header}.{payload}.{signature}")
    }

    /// The token's claims as strings, if it is valid at `now_secs`.
    pub fn verify(
        &self,
        token: &str,
        now_secs: i64,
    ) -> Result<BTreeMap<String, String>, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let expected = self.sign(&format!("{h}.{p}"));
        // Constant-time comparison of the signatures.
        if expected.len() != s.len()
            || expected
                .bytes()
                .zip(s.bytes())
                .fold(0_u8, |acc, (a, b)| acc | (a ^ b))
                != 0
        {
            return Err(TokenError::Signature);
        }
        let claims: Value = B64
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if claims["iss"] != ISSUER || claims["aud"] != AUDIENCE {
            return Err(TokenError::Audience);
        }
        if claims["exp"].as_i64().is_none_or(|exp| exp <= now_secs) {
            return Err(TokenError::Expired);
        }
        Ok(claims
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
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
    }
}
