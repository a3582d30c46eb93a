//! Sizes and durations as users type them (sans-IO): `500M`, `2G`, `90s`, `5m`, `1h`.

use std::time::Duration;

/// Bytes from `N`, `NK`, `NM`, `NG` (binary multiples, case-insensitive, optional `B`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let upper = trimmed.to_ascii_uppercase();
    let number = upper.strip_suffix('B').unwrap_or(&upper);
    let (digits, shift) = match number.chars().last() {
        Some('K') => (&number[..number.len() - 1], 10),
        Some('M') => (&number[..number.len() - 1], 20),
        Some('G') => (&number[..number.len() - 1], 30),
        Some('T') => (&number[..number.len() - 1], 40),
        _ => (number, 0),
    };
    let value: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{trimmed:?} is not a size like 1048576, 500M or 2G"))?;
    value
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{trimmed:?} is too large"))
}

/// A duration from `N` (seconds), `Ns`, `Nm`, `Nh`, `Nd`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let (digits, unit) = match trimmed.chars().last() {
        Some('s') => (&trimmed[..trimmed.len() - 1], 1),
        Some('m') => (&trimmed[..trimmed.len() - 1], 60),
        Some('h') => (&trimmed[..trimmed.len() - 1], 3600),
        Some('d') => (&trimmed[..trimmed.len() - 1], 86_400),
        _ => (trimmed, 1),
    };
    let value: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{trimmed:?} is not a duration like 90, 90s, 5m or 2h"))?;
    value
        .checked_mul(unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{trimmed:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("2gb"), Ok(2 << 30));
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("soon").is_err());
    }

    proptest! {
        #[test]
        fn never_panic(text in ".{0,12}") {
            let _ = parse_size(&text);
            let _ = parse_duration(&text);
        }
    }
}
