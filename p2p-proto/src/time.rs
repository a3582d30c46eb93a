//! Board timestamps: `when` (wall-clock text) and `expires` (Unix seconds, or text in the
//! seed version of future.p2p).
//!
//! future.p2p writes `when` with R's `format(Sys.time(), "%FT%T")`: the sender's local time,
//! without a zone. It is informational; nothing may depend on comparing it across peers.
//! Deadlines use `expires`, which future.p2p 0.4.0 writes as Unix seconds. The seed version
//! (2025-07) wrote `expires` in the `when` format too; such a value is read as UTC, the only
//! reading that does not need the sender's zone, and written back unchanged.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Unix time in milliseconds: how the sans-IO cores take the time. A wall clock, because
/// board expiries are Unix seconds shared with peers on other machines.
pub type Millis = u64;

/// A timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid timestamp {value:?}: expected {expected}")]
pub struct TimeError {
    /// The offending input, truncated to 40 characters.
    pub value: String,
    /// The accepted forms.
    pub expected: &'static str,
}

/// A civil date and time without zone: `YYYY-MM-DDTHH:MM:SS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoardTime {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

impl BoardTime {
    /// The UTC civil time of a Unix timestamp (years 0 to 9999; outside, clamped).
    pub fn from_unix(secs: i64) -> Self {
        const MIN: i64 = -62_167_219_200; // 0000-01-01T00:00:00
        const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59
        let secs = secs.clamp(MIN, MAX);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        BoardTime {
            year: year as u16,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// The UTC civil time of a Unix time in milliseconds (the protocol cores' clock).
    pub fn from_unix_ms(ms: u64) -> Self {
        Self::from_unix((ms / 1000) as i64)
    }

    /// Unix seconds, reading this civil time as UTC.
    pub fn to_unix_utc(self) -> i64 {
        days_from_civil(i64::from(self.year), self.month, self.day) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }
}

impl FromStr for BoardTime {
    type Err = TimeError;

    fn from_str(value: &str) -> Result<Self, TimeError> {
        let err = || TimeError {
            value: value.chars().take(40).collect(),
            expected: "YYYY-MM-DDTHH:MM:SS",
        };
        let b = value.as_bytes();
        if b.len() != 19
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(err());
        }
        let num = |range: std::ops::Range<usize>| -> Result<u16, TimeError> {
            let digits = &b[range];
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(err());
            }
            Ok(digits
                .iter()
                .fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
        };
        let year = num(0..4)?;
        let month = num(5..7)? as u8;
        let day = num(8..10)? as u8;
        let hour = num(11..13)? as u8;
        let minute = num(14..16)? as u8;
        let second = num(17..19)? as u8;
        let valid = (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour < 24
            && minute < 60
            && second < 60;
        if !valid {
            return Err(err());
        }
        Ok(BoardTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }
}

impl fmt::Display for BoardTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// When a board message stops being valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expiry {
    /// Unix seconds, as future.p2p 0.4.0 and this project write it.
    Unix(i64),
    /// A civil time, as the seed version wrote it; read as UTC.
    Civil(BoardTime),
}

impl Expiry {
    /// The deadline in Unix seconds.
    pub fn unix_seconds(self) -> i64 {
        match self {
            Expiry::Unix(secs) => secs,
            Expiry::Civil(time) => time.to_unix_utc(),
        }
    }

    /// The expiry written for a deadline in Unix milliseconds, rounded up to the second
    /// (a message never expires earlier than its sender meant).
    pub fn from_unix_ms(ms: u64) -> Self {
        Expiry::Unix(ms.div_ceil(1000) as i64)
    }

    /// The deadline in Unix milliseconds (0 for deadlines before 1970).
    pub fn unix_ms(self) -> u64 {
        (self.unix_seconds().max(0) as u64).saturating_mul(1000)
    }

    /// Whether the message has expired at `now` (Unix seconds).
    pub fn is_expired(self, now: i64) -> bool {
        now > self.unix_seconds()
    }
}

impl FromStr for Expiry {
    type Err = TimeError;

    fn from_str(value: &str) -> Result<Self, TimeError> {
        let digits = value.strip_prefix('-').unwrap_or(value);
        if !digits.is_empty() && digits.len() <= 12 && digits.bytes().all(|b| b.is_ascii_digit()) {
            // At most 12 digits: cannot overflow i64.
            return value.parse().map(Expiry::Unix).map_err(|_| TimeError {
                value: value.chars().take(40).collect(),
                expected: "Unix seconds or YYYY-MM-DDTHH:MM:SS",
            });
        }
        value.parse().map(Expiry::Civil).map_err(|_| TimeError {
            value: value.chars().take(40).collect(),
            expected: "Unix seconds or YYYY-MM-DDTHH:MM:SS",
        })
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expiry::Unix(secs) => write!(f, "{secs}"),
            Expiry::Civil(time) => time.fmt(f),
        }
    }
}

fn is_leap(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil calendar algorithms (public domain), proleptic Gregorian.
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn board_time_known_values() {
        let t: BoardTime = "2025-07-20T14:03:11".parse().unwrap();
        assert_eq!(t.to_unix_utc(), 1_753_020_191);
        assert_eq!(BoardTime::from_unix(1_753_020_191), t);
        assert_eq!(t.to_string(), "2025-07-20T14:03:11");
        assert!("2024-02-29T00:00:00".parse::<BoardTime>().is_ok());
        for bad in [
            "",
            "2025-07-20",
            "2025-07-20 14:03:11",
            "2025-13-01T00:00:00",
            "2025-02-29T00:00:00",
            "2025-07-20T24:00:00",
            "2025-07-20T14:60:00",
            "2025-07-20T14:03:61",
            "2025-07-00T00:00:00",
            "+025-07-20T14:03:11",
            "2025-07-20T14:03:1x",
            "2025-07-20T14:03:111",
        ] {
            assert!(bad.parse::<BoardTime>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn millisecond_conversions_round_deadlines_up() {
        assert_eq!(
            Expiry::from_unix_ms(1_759_312_800_001),
            Expiry::Unix(1_759_312_801)
        );
        assert_eq!(
            Expiry::from_unix_ms(1_759_312_800_000).unix_ms(),
            1_759_312_800_000
        );
        assert_eq!(Expiry::Unix(-5).unix_ms(), 0);
        assert_eq!(
            BoardTime::from_unix_ms(1_753_020_191_999).to_string(),
            "2025-07-20T14:03:11"
        );
    }

    #[test]
    fn expiry_both_generations() {
        assert_eq!(
            "1759312800".parse::<Expiry>(),
            Ok(Expiry::Unix(1_759_312_800))
        );
        let civil: Expiry = "2025-07-20T15:03:11".parse().unwrap();
        assert_eq!(civil.unix_seconds(), 1_753_023_791);
        assert_eq!(civil.to_string(), "2025-07-20T15:03:11");
        assert!(civil.is_expired(1_753_023_792));
        assert!(!civil.is_expired(1_753_023_791));
        for bad in ["", "1e9", "12345678901234567890", "tomorrow", "-"] {
            assert!(bad.parse::<Expiry>().is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn unix_round_trip(secs in -62_167_219_200i64..=253_402_300_799) {
            let t = BoardTime::from_unix(secs);
            prop_assert_eq!(t.to_unix_utc(), secs);
            prop_assert_eq!(t.to_string().parse::<BoardTime>().unwrap(), t);
        }

        #[test]
        fn never_panics(input in "\\PC{0,40}") {
            let _ = input.parse::<BoardTime>();
            let _ = input.parse::<Expiry>();
        }
    }
}
