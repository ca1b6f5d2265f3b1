//! Exact quantities. Scores, factor values and rates are fixed-point integers so that a boundary
//! (97 % exactly, a score of 38.5) means the same thing on every machine.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value normalised to `0.0..=1.0`, held in thousandths (`0..=1000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Normalised(u16);

/// A number that is not a valid normalised value or percentage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("must be between {min} and {max}")]
    OutOfRange {
        min: &'static str,
        max: &'static str,
    },
    #[error("must have at most {0} decimal places")]
    TooPrecise(u8),
}

fn fixed_point(x: f64, scale: f64, decimals: u8) -> Result<i64, UnitError> {
    let scaled = x * scale;
    let rounded = scaled.round();
    if !x.is_finite() || (scaled - rounded).abs() > 1e-6 {
        return Err(UnitError::TooPrecise(decimals));
    }
    #[allow(clippy::cast_possible_truncation)] // finite, rounded, range-checked by callers
    Ok(rounded as i64)
}

impl Normalised {
    pub const ZERO: Normalised = Normalised(0);
    pub const ONE: Normalised = Normalised(1000);

    /// From thousandths, `0..=1000`.
    pub fn from_per_mille(per_mille: u16) -> Result<Self, UnitError> {
        if per_mille > 1000 {
            return Err(UnitError::OutOfRange {
                min: "0.0",
                max: "1.0",
            });
        }
        Ok(Self(per_mille))
    }

    /// From a decimal such as `0.7` (at most three decimal places).
    pub fn from_decimal(x: f64) -> Result<Self, UnitError> {
        let v = fixed_point(x, 1000.0, 3)?;
        u16::try_from(v)
            .map_err(|_| UnitError::OutOfRange {
                min: "0.0",
                max: "1.0",
            })
            .and_then(Self::from_per_mille)
    }

    pub fn per_mille(self) -> u16 {
        self.0
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1000.0
    }

    /// `self × factor`, capped at 1.0. `factor_per_mille` is the multiplier in thousandths (1.2 = 1200).
    #[must_use]
    pub fn scaled_capped(self, factor_per_mille: u32) -> Normalised {
        let v = (u32::from(self.0) * factor_per_mille)
            .div_ceil(1000)
            .min(1000);
        // v <= 1000 fits in u16
        Normalised(u16::try_from(v).unwrap_or(1000))
    }
}

impl fmt::Display for Normalised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_f64())
    }
}

impl Serialize for Normalised {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Normalised {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Normalised::from_decimal(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The API document's schema: a number from 0 to 1, at most three decimals.
impl utoipa::PartialSchema for Normalised {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .minimum(Some(0))
            .maximum(Some(1))
            .into()
    }
}

impl utoipa::ToSchema for Normalised {}

/// A percentage held in hundredths of a percent (basis points, `0..=10000`): 97 % is 9700.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Percent(u32);

impl Percent {
    pub const HUNDRED: Percent = Percent(10_000);

    pub fn from_basis_points(bp: u32) -> Result<Self, UnitError> {
        if bp > 10_000 {
            return Err(UnitError::OutOfRange {
                min: "0",
                max: "100",
            });
        }
        Ok(Self(bp))
    }

    /// From a decimal percentage such as `97.5` (at most two decimal places).
    pub fn from_decimal(x: f64) -> Result<Self, UnitError> {
        let v = fixed_point(x, 100.0, 2)?;
        u32::try_from(v)
            .map_err(|_| UnitError::OutOfRange {
                min: "0",
                max: "100",
            })
            .and_then(Self::from_basis_points)
    }

    pub fn basis_points(self) -> u32 {
        self.0
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    /// True when `numerator / denominator >= self`, computed exactly. An empty denominator is
    /// never at or above a threshold.
    pub fn is_met_by(self, numerator: u64, denominator: u64) -> bool {
        denominator > 0
            && u128::from(numerator) * 10_000 >= u128::from(self.0) * u128::from(denominator)
    }

    /// `numerator / denominator` rounded down to a basis point; `None` when the denominator is 0.
    pub fn ratio(numerator: u64, denominator: u64) -> Option<Percent> {
        if denominator == 0 || numerator > denominator {
            return None;
        }
        let bp = u128::from(numerator) * 10_000 / u128::from(denominator);
        u32::try_from(bp).ok().map(Percent)
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02} %", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Percent::from_decimal(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The API document's schema: a percentage from 0 to 100, at most two decimals.
impl utoipa::PartialSchema for Percent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .minimum(Some(0))
            .maximum(Some(100))
            .multiple_of(Some(0.01))
            .into()
    }
}

impl utoipa::ToSchema for Percent {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_from_decimal_is_exact() {
        assert_eq!(Normalised::from_decimal(0.7).unwrap().per_mille(), 700);
        assert_eq!(Normalised::from_decimal(0.1).unwrap().per_mille(), 100);
        assert!(Normalised::from_decimal(1.5).is_err());
        assert!(Normalised::from_decimal(-0.1).is_err());
        assert_eq!(
            Normalised::from_decimal(0.1234),
            Err(UnitError::TooPrecise(3))
        );
    }

    #[test]
    fn multiplier_caps_at_one() {
        let r3 = Normalised::from_decimal(0.7).unwrap();
        assert_eq!(r3.scaled_capped(1200).per_mille(), 840);
        assert_eq!(Normalised::ONE.scaled_capped(1200), Normalised::ONE);
    }

    #[test]
    fn percent_threshold_is_exact_at_the_boundary() {
        let p97 = Percent::from_decimal(97.0).unwrap();
        assert!(p97.is_met_by(97, 100));
        assert!(!p97.is_met_by(96, 99)); // 96.97 %
        assert!(!p97.is_met_by(0, 0));
        assert_eq!(Percent::ratio(97, 100).unwrap().to_string(), "97.00 %");
    }
}
