//! Rate-limited logging of connection failures: at most one line per error kind per second per
//! worker thread, with a count of the lines suppressed in between.

use std::{cell::RefCell, fmt::Display, time::Instant};

use crate::errors::ErrorKind;

struct Limiter {
    last: [Option<Instant>; ErrorKind::COUNT],
    suppressed: [u64; ErrorKind::COUNT],
}

thread_local! {
    static LIMITER: RefCell<Limiter> = const {
        RefCell::new(Limiter { last: [None; ErrorKind::COUNT], suppressed: [0; ErrorKind::COUNT] })
    };
}

/// Logs a connection failure of `kind` unless one of that kind was logged less than a second ago
/// on this thread.
pub fn connection_failed(kind: ErrorKind, detail: &dyn Display) {
    let now = Instant::now();
    LIMITER.with(|l| {
        let mut l = l.borrow_mut();
        let i = kind as usize;
        match l.last[i] {
            Some(t) if now.duration_since(t).as_secs() < 1 => l.suppressed[i] += 1,
            _ => {
                let suppressed = std::mem::take(&mut l.suppressed[i]);
                l.last[i] = Some(now);
                if suppressed > 0 {
                    tracing::warn!(
                        kind = kind.label(),
                        "connection failed: {detail} (+{suppressed} more of this kind)"
                    );
                } else {
                    tracing::warn!(kind = kind.label(), "connection failed: {detail}");
                }
            }
        }
    });
}
