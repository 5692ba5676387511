//! Timestamps as text: RFC 3339 with milliseconds for records and logs, and the date
//! format Kinesis error messages use. Calendar arithmetic is the `time` crate's
//! (already in the tree through the AWS SDK).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Epoch milliseconds as a UTC date-time; out-of-range values clamp to the nearest end
/// `time` represents (they cannot come from a clock).
fn utc(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(if ms < 0 {
        OffsetDateTime::new_utc(time::Date::MIN, time::Time::MIDNIGHT)
    } else {
        OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT)
    })
}

/// `2024-05-01T12:34:56.789Z`: always three fraction digits, so the text sorts as
/// the time does.
pub fn rfc3339_millis(ms: i64) -> String {
    let t = utc(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// `Thu Jan 22 01:22:02 UTC 2015`, as Kinesis writes times in its error messages.
pub fn kinesis_message_date(ms: i64) -> String {
    let t = utc(ms);
    let weekday = t.weekday().to_string();
    let month = t.month().to_string();
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        weekday.get(..3).unwrap_or(&weekday),
        month.get(..3).unwrap_or(&month),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.year()
    )
}

/// Parses an RFC 3339 date-time (`2015-01-22T01:22:02.123Z`, any offset) into epoch
/// milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_421_889_722_123),
            "2015-01-22T01:22:02.123Z"
        );
        assert_eq!(
            parse_rfc3339("2015-01-22T01:22:02.123Z"),
            Some(1_421_889_722_123)
        );
        assert_eq!(
            parse_rfc3339("2015-01-22T02:22:02+01:00"),
            Some(1_421_889_722_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2015-13-22T01:22:02Z"), None);
    }

    #[test]
    fn kinesis_dates_read_as_in_its_messages() {
        assert_eq!(
            kinesis_message_date(1_421_889_722_123),
            "Thu Jan 22 01:22:02 UTC 2015"
        );
        assert_eq!(kinesis_message_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(
            kinesis_message_date(1_717_200_000_000),
            "Sat Jun 01 00:00:00 UTC 2024"
        );
    }
}
