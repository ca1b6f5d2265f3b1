//! The date formats the two APIs write.

use time::OffsetDateTime;
use time::macros::format_description;

/// The Jamf Pro API's `2022-01-24T21:35:20.373Z`.
pub(crate) fn iso_millis(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_default()
}

/// The Classic API's `date_time_utc`: `2026-01-04T10:15:30.000+0000`.
pub(crate) fn classic_utc(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"
    ))
    .unwrap_or_default()
}

/// The Classic API's `date_time`: `2026/01/04 at 10:15 AM`.
pub(crate) fn classic_local(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[year]/[month]/[day] at [hour repr:12]:[minute] [period]"
    ))
    .unwrap_or_default()
}

/// Milliseconds since the Unix epoch.
pub(crate) fn epoch_millis(at: OffsetDateTime) -> i128 {
    at.unix_timestamp_nanos() / 1_000_000
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::{classic_local, classic_utc, epoch_millis, iso_millis};

    #[test]
    fn formats() {
        let at = datetime!(2026-01-04 21:35:20.373 UTC);
        assert_eq!(iso_millis(at), "2026-01-04T21:35:20.373Z");
        assert_eq!(classic_utc(at), "2026-01-04T21:35:20.373+0000");
        assert_eq!(classic_local(at), "2026/01/04 at 09:35 PM");
        assert_eq!(epoch_millis(at), 1_767_562_520_373);
    }
}
