//! Go `time.Duration` parsing and formatting, for the `-t` flag of `pub`
//! (docs/pico-compat.md §3.3, §4.1).
//!
//! The status line `no subs found ... waiting 720h0m0s` and the usage text print durations
//! the way Go's `Duration.String` does, so both directions are implemented exactly.

use std::time::Duration;

use thiserror::Error;

/// A signed Go duration in nanoseconds (`time.Duration` is an `int64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(pub i64);

/// Why a duration string was rejected (texts as Go's `time.ParseDuration`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    /// Syntax error or overflow.
    #[error("time: invalid duration {0:?}")]
    Invalid(String),
    /// A number without a unit (other than a bare `0`).
    #[error("time: missing unit in duration {0:?}")]
    MissingUnit(String),
    /// A unit Go does not know, such as `d`.
    #[error("time: unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The unit as typed.
        unit: String,
        /// The whole input.
        input: String,
    },
}

const NS: u64 = 1;
const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;

impl GoDuration {
    /// Pub's default initial wait: 30 days.
    pub const THIRTY_DAYS: GoDuration = GoDuration(720 * HOUR as i64);

    /// Parses Go duration syntax: `[-+]?([0-9]*(\.[0-9]*)?[a-zµμ]+)+`, or a bare `0`.
    pub fn parse(input: &str) -> Result<GoDuration, DurationError> {
        let invalid = || DurationError::Invalid(input.to_owned());
        let mut s = input;
        let mut negative = false;
        if let Some(rest) = s.strip_prefix('-') {
            negative = true;
            s = rest;
        } else if let Some(rest) = s.strip_prefix('+') {
            s = rest;
        }
        if s == "0" {
            return Ok(GoDuration(0));
        }
        if s.is_empty() {
            return Err(invalid());
        }
        let mut total: u64 = 0;
        while !s.is_empty() {
            let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
            let (int_part, rest) = s.split_at(int_len);
            let (frac_part, rest) = match rest.strip_prefix('.') {
                Some(r) => {
                    let n = r.bytes().take_while(u8::is_ascii_digit).count();
                    r.split_at(n)
                }
                None => ("", rest),
            };
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(invalid());
            }
            let unit_len = rest
                .char_indices()
                .find(|(_, c)| *c == '.' || c.is_ascii_digit())
                .map_or(rest.len(), |(i, _)| i);
            let (unit, rest) = rest.split_at(unit_len);
            if unit.is_empty() {
                return Err(DurationError::MissingUnit(input.to_owned()));
            }
            let scale = match unit {
                "ns" => NS,
                "us" | "µs" | "μs" => US,
                "ms" => MS,
                "s" => SEC,
                "m" => MIN,
                "h" => HOUR,
                _ => {
                    return Err(DurationError::UnknownUnit {
                        unit: unit.to_owned(),
                        input: input.to_owned(),
                    });
                }
            };
            let whole: u64 = if int_part.is_empty() {
                0
            } else {
                int_part.parse().map_err(|_| invalid())?
            };
            let mut value = whole.checked_mul(scale).ok_or_else(invalid)?;
            // Fraction: accumulate digits while they still matter, like Go's leadingFraction.
            let mut frac: u64 = 0;
            let mut frac_scale: u64 = 1;
            for d in frac_part.bytes() {
                if frac_scale > u64::MAX / 100 {
                    break;
                }
                frac = frac * 10 + u64::from(d - b'0');
                frac_scale *= 10;
            }
            let frac_ns = (frac as u128 * scale as u128 / frac_scale as u128) as u64;
            value = value.checked_add(frac_ns).ok_or_else(invalid)?;
            total = total.checked_add(value).ok_or_else(invalid)?;
            s = rest;
        }
        let limit = if negative {
            1u64 << 63
        } else {
            (1u64 << 63) - 1
        };
        if total > limit {
            return Err(invalid());
        }
        let signed = if negative {
            (total as i128).wrapping_neg() as i64
        } else {
            total as i64
        };
        Ok(GoDuration(signed))
    }

    /// The wait as a std duration; `None` for zero or negative values (Go's "no wait").
    pub fn positive(self) -> Option<Duration> {
        u64::try_from(self.0)
            .ok()
            .filter(|n| *n > 0)
            .map(Duration::from_nanos)
    }
}

impl std::fmt::Display for GoDuration {
    /// Go's `Duration.String`: `720h0m0s`, `1.5s`, `500ms`, `0s`, `-2µs`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let negative = self.0 < 0;
        let u = self.0.unsigned_abs();
        let sign = if negative { "-" } else { "" };
        if u < SEC {
            if u == 0 {
                return f.write_str("0s");
            }
            let (scale, unit) = if u < US {
                (NS, "ns")
            } else if u < MS {
                (US, "µs")
            } else {
                (MS, "ms")
            };
            return write!(f, "{sign}{}{unit}", fixed(u, scale));
        }
        let hours = u / HOUR;
        let minutes = (u % HOUR) / MIN;
        let seconds = fixed(u % MIN, SEC);
        if hours > 0 {
            write!(f, "{sign}{hours}h{minutes}m{seconds}s")
        } else if minutes > 0 {
            write!(f, "{sign}{minutes}m{seconds}s")
        } else {
            write!(f, "{sign}{seconds}s")
        }
    }
}

/// `value / scale` with the fraction printed without trailing zeros (Go's `fmtFrac`).
fn fixed(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let mut frac = value % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let mut digits = scale.ilog10() as usize;
    while frac.is_multiple_of(10) {
        frac /= 10;
        digits -= 1;
    }
    format!("{whole}.{frac:0digits$}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_like_go() {
        assert_eq!(GoDuration::THIRTY_DAYS.to_string(), "720h0m0s");
        assert_eq!(GoDuration(0).to_string(), "0s");
        assert_eq!(GoDuration(1_500_000_000).to_string(), "1.5s");
        assert_eq!(GoDuration(500 * MS as i64).to_string(), "500ms");
        assert_eq!(GoDuration(-2000).to_string(), "-2µs");
        assert_eq!(GoDuration(5_400 * SEC as i64).to_string(), "1h30m0s");
        assert_eq!(GoDuration(61_001 * MS as i64).to_string(), "1m1.001s");
    }

    #[test]
    fn parses_like_go() {
        assert_eq!(
            GoDuration::parse("1h30m"),
            Ok(GoDuration(5_400 * SEC as i64))
        );
        assert_eq!(GoDuration::parse("500ms"), Ok(GoDuration(500 * MS as i64)));
        assert_eq!(GoDuration::parse("1.5s"), Ok(GoDuration(1_500 * MS as i64)));
        assert_eq!(GoDuration::parse(".5s"), Ok(GoDuration(500 * MS as i64)));
        assert_eq!(GoDuration::parse("-1s"), Ok(GoDuration(-(SEC as i64))));
        assert_eq!(GoDuration::parse("0"), Ok(GoDuration(0)));
        assert_eq!(GoDuration::parse("3µs"), Ok(GoDuration(3000)));
        assert_eq!(
            GoDuration::parse("1d"),
            Err(DurationError::UnknownUnit {
                unit: "d".into(),
                input: "1d".into()
            })
        );
        assert_eq!(
            GoDuration::parse("1"),
            Err(DurationError::MissingUnit("1".into()))
        );
        assert_eq!(
            GoDuration::parse(""),
            Err(DurationError::Invalid("".into()))
        );
        assert_eq!(
            GoDuration::parse("."),
            Err(DurationError::Invalid(".".into()))
        );
        assert!(GoDuration::parse("9999999999h").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = GoDuration::parse(&s);
        }

        #[test]
        fn display_then_parse_roundtrips(n in any::<i64>()) {
            let d = GoDuration(n);
            prop_assert_eq!(GoDuration::parse(&d.to_string()), Ok(d));
        }
    }
}
