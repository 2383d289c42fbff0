//! Event-time timestamps: RFC 3339 with a mandatory offset.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};

/// An instant in event time, with the UTC offset it was reported in.
///
/// The instant is what orders and compares; the offset is kept because the local time of
/// a scan ("left the hub this morning") is part of what a customer is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Timestamp {
    /// Microseconds since the Unix epoch, UTC.
    pub micros: i64,
    /// The offset from UTC the producer reported, in minutes.
    pub offset_minutes: i16,
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timestamp {
    /// Ordered by instant only; the offset is presentation.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.micros.cmp(&other.micros)
    }
}

/// Why a timestamp text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampError {
    /// A valid date and time, but no `Z` or `±hh:mm` offset.
    MissingOffset,
    /// Not an RFC 3339 timestamp at all.
    Malformed,
}

impl Timestamp {
    pub const MICROS_PER_SECOND: i64 = 1_000_000;
    pub const MICROS_PER_HOUR: i64 = 3_600 * Self::MICROS_PER_SECOND;
    pub const MICROS_PER_DAY: i64 = 24 * Self::MICROS_PER_HOUR;

    /// Parses RFC 3339 text; a timestamp without an offset is refused, never guessed.
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        match DateTime::parse_from_rfc3339(text) {
            Ok(dt) => Ok(Self::from_datetime(&dt)),
            Err(_) => {
                let naive =
                    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"));
                Err(if naive.is_ok() { TimestampError::MissingOffset } else { TimestampError::Malformed })
            }
        }
    }

    pub fn from_datetime(dt: &DateTime<FixedOffset>) -> Self {
        Timestamp { micros: dt.timestamp_micros(), offset_minutes: (dt.offset().local_minus_utc() / 60) as i16 }
    }

    /// A UTC timestamp from microseconds since the epoch.
    pub const fn from_micros_utc(micros: i64) -> Self {
        Timestamp { micros, offset_minutes: 0 }
    }

    /// Days since the Unix epoch of the UTC date: the lake's partition key.
    pub fn utc_date_days(&self) -> i32 {
        self.micros.div_euclid(Self::MICROS_PER_DAY) as i32
    }

    /// The same instant shifted by `micros`, keeping the offset.
    pub fn plus_micros(self, micros: i64) -> Self {
        Timestamp { micros: self.micros + micros, offset_minutes: self.offset_minutes }
    }

    /// The instant in the reported offset.
    pub fn to_datetime(&self) -> DateTime<FixedOffset> {
        let offset = FixedOffset::east_opt(i32::from(self.offset_minutes) * 60).unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset is valid"));
        DateTime::<Utc>::from_timestamp_micros(self.micros).unwrap_or_default().with_timezone(&offset)
    }

    /// RFC 3339 text in the reported offset (`Z` for UTC).
    pub fn to_rfc3339(&self) -> String {
        self.to_datetime().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_refuses_naive_times() {
        let cases: &[(&str, Result<(i64, i16), TimestampError>)] = &[
            ("2026-11-20T10:00:00Z", Ok((1_795_168_800_000_000, 0))),
            ("2026-11-20T18:00:00+08:00", Ok((1_795_168_800_000_000, 480))),
            ("2026-11-20T10:00:00.5-01:30", Ok((1_795_174_200_500_000, -90))),
            ("2026-11-20T10:00:00", Err(TimestampError::MissingOffset)),
            ("2026-11-20 10:00:00", Err(TimestampError::MissingOffset)),
            ("yesterday", Err(TimestampError::Malformed)),
            ("2026-13-40T10:00:00Z", Err(TimestampError::Malformed)),
        ];
        for (text, expected) in cases {
            let got = Timestamp::parse(text).map(|t| (t.micros, t.offset_minutes));
            assert_eq!(&got, expected, "{text}");
        }
    }

    #[test]
    fn round_trips_through_rfc3339_in_its_own_offset() {
        let t = Timestamp::parse("2026-11-20T18:00:00+08:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-20T18:00:00+08:00");
        assert_eq!(t.utc_date_days(), 20_777);
    }
}
