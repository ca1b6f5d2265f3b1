//! Time, passed in. The domain never reads a clock; callers hand it a [`Timestamp`].
//!
//! The one clock type of the system lives here too: [`Clock`] is what the adapters, the
//! connectors, the simulators and the local stack read "now" from, so that a test can hand all of
//! them the same [`ManualClock`] and nothing it checks depends on the date, the time zone or the
//! machine's speed. Production code is handed a [`SystemClock`].

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

/// An instant in UTC, serialised as RFC 3339 (`2026-11-23T10:00:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

/// A string that is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an RFC 3339 timestamp such as 2026-11-23T10:00:00Z")]
pub struct InvalidTimestamp;

impl Timestamp {
    pub fn parse(s: &str) -> Result<Self, InvalidTimestamp> {
        OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| Self(t.to_offset(UtcOffset::UTC)))
            .map_err(|_| InvalidTimestamp)
    }

    /// From whole seconds since the Unix epoch.
    pub fn from_unix_seconds(secs: i64) -> Result<Self, InvalidTimestamp> {
        OffsetDateTime::from_unix_timestamp(secs)
            .map(Self)
            .map_err(|_| InvalidTimestamp)
    }

    /// From milliseconds since the Unix epoch.
    pub fn from_unix_millis(millis: i64) -> Result<Self, InvalidTimestamp> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
            .map(Self)
            .map_err(|_| InvalidTimestamp)
    }

    /// From the standard library's wall-clock time (what an HTTP `Date` header parses to).
    pub fn from_system_time(t: std::time::SystemTime) -> Self {
        Self(OffsetDateTime::from(t))
    }

    /// As the standard library's wall-clock time.
    pub fn to_system_time(self) -> std::time::SystemTime {
        self.0.into()
    }

    /// As a `time` date-time in UTC.
    pub fn to_offset_date_time(self) -> OffsetDateTime {
        self.0
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    pub fn unix_millis(self) -> i64 {
        i64::try_from(self.0.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }

    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d))
    }

    /// `self - earlier`; negative when `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        self.0 - earlier.0
    }

    pub fn to_rfc3339(self) -> String {
        // Formatting a UTC OffsetDateTime with Rfc3339 only fails for years outside 0..=9999,
        // which parse() and from_unix_* cannot produce for realistic input; fall back to the
        // Unix seconds rather than panic.
        self.0
            .format(&Rfc3339)
            .unwrap_or_else(|_| self.0.unix_timestamp().to_string())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The API document's schema: an RFC 3339 date-time (written in UTC).
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            // As the readers take it (RFC 3339, at most 64 characters).
            .max_length(Some(64))
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

/// Where "now" comes from. Every part that needs the time is handed one (never reads the system
/// clock itself); the domain's decisions are then handed the value it read.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The system's wall clock (UTC), as the Lambda functions read it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp(OffsetDateTime::now_utc())
    }
}

/// A clock that stands still until it is moved: the one clock of a test. Clones share the time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<Timestamp>>);

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock(Arc::new(Mutex::new(start)))
    }

    /// Moves the clock forward by `by` (a negative duration is ignored: time never runs back).
    pub fn advance(&self, by: Duration) {
        if by.is_positive() {
            let mut t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            *t = t.plus(by);
        }
    }

    /// Moves the clock to `to` if that is later than now.
    pub fn advance_to(&self, to: Timestamp) {
        let mut t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if to > *t {
            *t = to;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// Whole hours in a duration, as a float for display (`36.5`).
pub fn hours(d: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss)] // durations here are far below 2^52 ms
    let ms = d.whole_milliseconds() as f64;
    ms / 3_600_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc3339_in_utc() {
        let t = Timestamp::parse("2026-11-23T12:00:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-23T10:00:00Z");
        assert_eq!(Timestamp::parse("yesterday"), Err(InvalidTimestamp));
    }

    #[test]
    fn a_manual_clock_moves_only_forward_and_its_clones_share_it() {
        let t = Timestamp::parse("2026-11-23T10:00:00Z").unwrap();
        let c = ManualClock::new(t);
        let shared = c.clone();
        c.advance(Duration::hours(2));
        c.advance(Duration::hours(-5));
        c.advance_to(t);
        assert_eq!(shared.now(), t.plus(Duration::hours(2)));
    }

    #[test]
    fn arithmetic() {
        let t = Timestamp::parse("2026-11-23T10:00:00Z").unwrap();
        let later = t.plus(Duration::hours(48));
        assert_eq!(later.since(t), Duration::hours(48));
        assert!((hours(Duration::minutes(90)) - 1.5).abs() < f64::EPSILON);
    }
}
