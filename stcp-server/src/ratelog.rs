//! Rate-limited logging of connection failures: at most one line per error kind per second per
//! worker thread, with a count of the lines suppressed in between.

use std::{cell::RefCell, fmt::Display, time::Duration, time::Instant};

use crate::errors::ErrorKind;

/// One line per kind per this interval (per worker thread).
const INTERVAL: Duration = Duration::from_secs(1);

struct Limiter {
    last: [Option<Instant>; ErrorKind::COUNT],
    suppressed: [u64; ErrorKind::COUNT],
}

impl Limiter {
    const fn new() -> Limiter {
        Limiter {
            last: [None; ErrorKind::COUNT],
            suppressed: [0; ErrorKind::COUNT],
        }
    }

    /// Whether a failure of `kind` at `now` is logged: `Some(n)` with the `n` failures of that
    /// kind suppressed since the last line, or `None` (suppressed, and counted).
    fn admit(&mut self, kind: ErrorKind, now: Instant) -> Option<u64> {
        let i = kind as usize;
        match self.last[i] {
            Some(t) if now.duration_since(t) < INTERVAL => {
                self.suppressed[i] += 1;
                None
            }
            _ => {
                self.last[i] = Some(now);
                Some(std::mem::take(&mut self.suppressed[i]))
            }
        }
    }
}

thread_local! {
    static LIMITER: RefCell<Limiter> = const { RefCell::new(Limiter::new()) };
}

/// Logs a connection failure of `kind` unless one of that kind was logged less than a second ago
/// on this thread.
pub fn connection_failed(kind: ErrorKind, detail: &dyn Display) {
    let now = Instant::now();
    match LIMITER.with(|l| l.borrow_mut().admit(kind, now)) {
        None => {}
        Some(0) => tracing::warn!(kind = kind.label(), "connection failed: {detail}"),
        Some(suppressed) => tracing::warn!(
            kind = kind.label(),
            "connection failed: {detail} (+{suppressed} more of this kind)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_per_second_with_the_suppressed_count() {
        let mut l = Limiter::new();
        let t0 = Instant::now();
        assert_eq!(l.admit(ErrorKind::BadTag, t0), Some(0));
        // A flood of the same kind within the second: suppressed, counted.
        for ms in 1..1000 {
            assert_eq!(
                l.admit(ErrorKind::BadTag, t0 + Duration::from_millis(ms)),
                None
            );
        }
        // Another kind is not held back by the first.
        assert_eq!(
            l.admit(ErrorKind::Io, t0 + Duration::from_millis(5)),
            Some(0)
        );
        // A second later: one line, carrying the count of what was suppressed.
        assert_eq!(l.admit(ErrorKind::BadTag, t0 + INTERVAL), Some(999));
        assert_eq!(
            l.admit(ErrorKind::BadTag, t0 + INTERVAL + Duration::from_millis(1)),
            None
        );
    }
}
