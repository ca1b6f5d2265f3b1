//! Identifiers. Each is a newtype with a validating constructor, so an id in the domain is always
//! well-formed: non-empty, at most 128 characters, and only `A-Z a-z 0-9 . _ : @ -`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("may contain only letters, digits and . _ : @ -")]
    InvalidCharacter,
}

const MAX_ID_LEN: usize = 128;

fn check_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { max: MAX_ID_LEN });
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
    {
        return Err(IdError::InvalidCharacter);
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates an identifier.
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check_id(&s)?;
                Ok(Self(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(s).map_err(serde::de::Error::custom)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                id_schema()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

/// What [`check_id`] accepts, as the API document states it (an ECMA-262 pattern).
pub const ID_PATTERN: &str = "^[A-Za-z0-9._:@-]{1,128}$";

fn id_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_ID_LEN))
        .pattern(Some(ID_PATTERN))
        .into()
}

id_type!(
    /// A deployment, as the control plane knows it.
    DeploymentId
);
id_type!(
    /// The id that follows a deployment from the API request to every external call and audit event.
    CorrelationId
);
id_type!(
    /// A person or service principal (the JWT `sub`, or an email-like name).
    ActorId
);
id_type!(
    /// An exception (a waived gate or policy).
    ExceptionId
);
id_type!(
    /// A security incident reported against a deployment.
    IncidentId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_jamf_spec_correlation_id() {
        assert!(CorrelationId::parse("dp-20260104-0100").is_ok());
        assert!(ActorId::parse("alice@corp.example").is_ok());
    }

    #[test]
    fn refuses_empty_long_and_odd_characters() {
        assert_eq!(DeploymentId::parse(""), Err(IdError::Empty));
        assert_eq!(
            DeploymentId::parse("x".repeat(129)),
            Err(IdError::TooLong { max: 128 })
        );
        assert_eq!(DeploymentId::parse("a b"), Err(IdError::InvalidCharacter));
        assert_eq!(DeploymentId::parse("a/b"), Err(IdError::InvalidCharacter));
    }

    #[test]
    fn deserialising_validates() {
        let bad: Result<CorrelationId, _> = serde_json::from_str("\"has space\"");
        assert!(bad.is_err());
    }
}
