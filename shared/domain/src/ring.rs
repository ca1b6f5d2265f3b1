//! The five rings a deployment passes through, in order.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A deployment ring. Serialised as its number (`0`..=`4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ring {
    Lab = 0,
    Canary = 1,
    Pilot = 2,
    Department = 3,
    Global = 4,
}

/// A ring number outside `0..=4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ring must be 0 (Lab), 1 (Canary), 2 (Pilot), 3 (Department) or 4 (Global), got {0}")]
pub struct InvalidRing(pub i64);

impl Ring {
    pub const ALL: [Ring; 5] = [
        Ring::Lab,
        Ring::Canary,
        Ring::Pilot,
        Ring::Department,
        Ring::Global,
    ];

    pub fn number(self) -> u8 {
        self as u8
    }

    pub fn from_number(n: i64) -> Result<Ring, InvalidRing> {
        match n {
            0 => Ok(Ring::Lab),
            1 => Ok(Ring::Canary),
            2 => Ok(Ring::Pilot),
            3 => Ok(Ring::Department),
            4 => Ok(Ring::Global),
            other => Err(InvalidRing(other)),
        }
    }

    /// The ring after this one; `None` for Global.
    pub fn next(self) -> Option<Ring> {
        Ring::from_number(i64::from(self.number()) + 1).ok()
    }

    pub fn name(self) -> &'static str {
        match self {
            Ring::Lab => "Lab",
            Ring::Canary => "Canary",
            Ring::Pilot => "Pilot",
            Ring::Department => "Department",
            Ring::Global => "Global",
        }
    }
}

impl fmt::Display for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ring {} ({})", self.number(), self.name())
    }
}

impl Serialize for Ring {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.number())
    }
}

impl<'de> Deserialize<'de> for Ring {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        Ring::from_number(n).map_err(serde::de::Error::custom)
    }
}

/// The API document's schema: the ring's number.
impl utoipa::PartialSchema for Ring {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .minimum(Some(0))
            .maximum(Some(4))
            .description(Some(
                "A ring: 0 Lab, 1 Canary, 2 Pilot, 3 Department, 4 Global",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Ring {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_are_ordered_and_chain() {
        assert_eq!(Ring::Lab.next(), Some(Ring::Canary));
        assert_eq!(Ring::Department.next(), Some(Ring::Global));
        assert_eq!(Ring::Global.next(), None);
        assert!(Ring::Canary < Ring::Pilot);
        assert_eq!(Ring::from_number(5), Err(InvalidRing(5)));
    }

    #[test]
    fn serialises_as_a_number() {
        assert_eq!(serde_json::to_string(&Ring::Pilot).unwrap(), "2");
        assert_eq!(serde_json::from_str::<Ring>("3").unwrap(), Ring::Department);
        assert!(serde_json::from_str::<Ring>("7").is_err());
    }
}
