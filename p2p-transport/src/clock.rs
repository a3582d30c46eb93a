//! The wall clock as the protocol drivers feed it to the sans-IO cores.
//!
//! The cores take time as Unix milliseconds (board expiries are Unix seconds, shared with
//! peers on other machines, so a monotonic clock would not do); the drivers read it here
//! and sleep until the core's next deadline.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest a driver sleeps when its core has no deadline: it wakes to re-check anyway.
const IDLE_WAKE: Duration = Duration::from_secs(60);

/// Now, in Unix milliseconds (0 if the clock is before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// How long to sleep until `deadline` (Unix ms), or [`IDLE_WAKE`] without one.
pub fn sleep_until(deadline: Option<u64>) -> Duration {
    match deadline {
        Some(deadline) => Duration::from_millis(deadline.saturating_sub(unix_ms())),
        None => IDLE_WAKE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_deadlines_do_not_sleep_and_none_wakes_later() {
        assert_eq!(sleep_until(Some(0)), Duration::ZERO);
        assert_eq!(sleep_until(None), IDLE_WAKE);
        let soon = sleep_until(Some(unix_ms() + 5_000));
        assert!(soon > Duration::from_secs(4) && soon <= Duration::from_secs(5));
    }
}
