//! `--start-at TIME`: a wall-clock instant, the same on every load host, at which the measured
//! interval begins. The run connects and handshakes at once, then waits so that its warm-up ends
//! exactly at TIME; the report records the intended start, the real one and the skew between
//! them ([`crate::report::StartTiming`]).
//!
//! TIME is RFC 3339 (`2026-12-02T16:00:00Z`, `2026-12-02T17:00:00.250+01:00`), parsed by the
//! `time` crate (full RFC 3339: offsets and fractional seconds, which `humantime` does not
//! take), or Unix milliseconds (`1796227200000`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::environment;

/// Smallest Unix-milliseconds value taken (1973-03-03): a smaller number is almost surely Unix
/// seconds given by mistake.
const MIN_UNIX_MS: u64 = 100_000_000_000;

/// `--start-at`: RFC 3339, or Unix milliseconds.
pub fn parse(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = text
            .parse()
            .map_err(|_| format!("{text:?} is too large for Unix milliseconds"))?;
        if ms < MIN_UNIX_MS {
            return Err(format!(
                "{text} is not Unix milliseconds (it would be {}): give milliseconds \
                 (date +%s%3N) or RFC 3339 (2026-12-02T16:00:00Z)",
                label(UNIX_EPOCH + Duration::from_millis(ms))
            ));
        }
        return Ok(UNIX_EPOCH + Duration::from_millis(ms));
    }
    let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
        format!(
            "{text:?} is not a time: give RFC 3339 (2026-12-02T16:00:00Z, \
             2026-12-02T17:00:00.5+01:00) or Unix milliseconds ({e})"
        )
    })?;
    let nanos = at.unix_timestamp_nanos();
    let nanos = u64::try_from(nanos).map_err(|_| format!("{text} is before 1970"))?;
    Ok(UNIX_EPOCH + Duration::from_nanos(nanos))
}

/// RFC 3339 UTC with milliseconds, as reports write times.
pub fn label(at: SystemTime) -> String {
    let d = unix(at);
    environment::rfc3339(d.as_secs(), d.subsec_nanos())
}

/// Time since the Unix epoch (zero before it).
pub fn unix(at: SystemTime) -> Duration {
    at.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Nanoseconds since the Unix epoch, as reports write them.
pub fn unix_ns(at: SystemTime) -> u64 {
    u64::try_from(unix(at).as_nanos()).unwrap_or(u64::MAX)
}

/// Signed `a - b` in microseconds.
pub fn micros_between(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(d) => d.as_secs_f64() * 1e6,
        Err(e) => -e.duration().as_secs_f64() * 1e6,
    }
}

/// Why a run with `--start-at` did not start. No load was sent in any case.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StartAtError {
    #[error(
        "--start-at {at} is already past (by {by}; the clock here reads {now}): give a time in \
         the future, the same on every load host",
        at = label(*.at), by = seconds(*.by), now = label(*.now)
    )]
    Past {
        at: SystemTime,
        now: SystemTime,
        by: Duration,
    },
    #[error(
        "--start-at {at} is too soon: it is {ahead} away, but the warm-up alone needs {warmup} \
         (--warmup) and connecting comes first: give a time at least {warmup} plus the time to \
         connect ahead (a few seconds)",
        at = label(*.at), ahead = seconds(*.ahead), warmup = seconds(*.warmup)
    )]
    TooSoon {
        at: SystemTime,
        ahead: Duration,
        warmup: Duration,
    },
    #[error(
        "--start-at {at} was missed: connecting and handshaking took {connecting}, so the {warmup} \
         warm-up would have had to begin {late} ago; no load was sent: give a time at least \
         {needed} after the start of stcp-loadgen (or connect fewer --clients)",
        at = label(*.at), connecting = seconds(*.connecting), warmup = seconds(*.warmup),
        late = seconds(*.late), needed = seconds(*.connecting + *.warmup)
    )]
    Missed {
        at: SystemTime,
        connecting: Duration,
        warmup: Duration,
        late: Duration,
    },
}

fn seconds(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// Refuses, before anything connects, a start time already past at `now` or nearer than the
/// warm-up; returns how far ahead it is.
pub fn check_ahead(
    at: SystemTime,
    now: SystemTime,
    warmup: Duration,
) -> Result<Duration, StartAtError> {
    let ahead = match at.duration_since(now) {
        Ok(ahead) if !ahead.is_zero() => ahead,
        Ok(_) => {
            return Err(StartAtError::Past {
                at,
                now,
                by: Duration::ZERO,
            })
        }
        Err(e) => {
            return Err(StartAtError::Past {
                at,
                now,
                by: e.duration(),
            })
        }
    };
    if ahead <= warmup {
        return Err(StartAtError::TooSoon { at, ahead, warmup });
    }
    Ok(ahead)
}

/// Once every connection is set up (`connecting` after the engine began): how long to wait
/// before the warm-up begins so that the measured interval begins at `at`, or why it cannot.
pub fn wait_before_load(
    at: SystemTime,
    now: SystemTime,
    warmup: Duration,
    connecting: Duration,
) -> Result<Duration, StartAtError> {
    let load_at = at.checked_sub(warmup).unwrap_or(UNIX_EPOCH);
    load_at
        .duration_since(now)
        .map_err(|e| StartAtError::Missed {
            at,
            connecting,
            warmup,
            late: e.duration(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_unix_milliseconds_name_the_same_instant() {
        let a = parse("2026-12-02T16:00:00Z").unwrap();
        let b = parse("2026-12-02T17:00:00+01:00").unwrap();
        let c = parse("1796227200000").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(label(a), "2026-12-02T16:00:00.000Z");
        let d = parse("2026-12-02T16:00:00.250Z").unwrap();
        assert_eq!(d.duration_since(a).unwrap(), Duration::from_millis(250));
        assert_eq!(unix_ns(d), 1_796_227_200_250_000_000);
    }

    #[test]
    fn malformed_times_are_refused_with_the_accepted_forms() {
        for bad in [
            "",
            "soon",
            "2026-12-02 16:00",
            "2026-13-02T16:00:00Z",
            "1796227200",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
        assert!(parse("1969-12-31T23:59:59Z").is_err());
    }

    #[test]
    fn a_past_or_too_near_start_is_refused_with_the_numbers() {
        let now = parse("2026-12-02T16:00:00Z").unwrap();
        let warmup = Duration::from_secs(2);
        let e = check_ahead(now - Duration::from_secs(3), now, warmup).unwrap_err();
        assert!(e.to_string().contains("already past (by 3.000 s"), "{e}");
        assert!(matches!(
            check_ahead(now, now, warmup),
            Err(StartAtError::Past { .. })
        ));
        let e = check_ahead(now + Duration::from_secs(1), now, warmup).unwrap_err();
        assert!(e.to_string().contains("warm-up alone needs 2.000 s"), "{e}");
        assert_eq!(
            check_ahead(now + Duration::from_secs(5), now, warmup),
            Ok(Duration::from_secs(5))
        );
    }

    #[test]
    fn the_warmup_begins_its_length_before_the_start() {
        let at = parse("2026-12-02T16:00:10Z").unwrap();
        let warmup = Duration::from_secs(2);
        let connecting = Duration::from_millis(300);
        let now = at - Duration::from_secs(5);
        assert_eq!(
            wait_before_load(at, now, warmup, connecting),
            Ok(Duration::from_secs(3))
        );
        let late = wait_before_load(at, at - Duration::from_secs(1), warmup, connecting);
        let e = late.unwrap_err();
        assert_eq!(
            e,
            StartAtError::Missed {
                at,
                connecting,
                warmup,
                late: Duration::from_secs(1)
            }
        );
        assert!(e.to_string().contains("at least 2.300 s"), "{e}");
    }
}
