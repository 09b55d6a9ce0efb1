//! Failures the load generator counts, by kind. Every failure closes its connection only and is
//! counted here; none stops the run (the run ends early only when no connection is left).

use serde::{Deserialize, Serialize};

/// What went wrong with one connection or one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The TCP connect failed or timed out.
    Connect,
    /// The STCP handshake failed (bad reply, wrong key, missing PSK, peer closed) or timed out.
    Handshake,
    /// A send or receive failed, the peer closed, or a record failed to authenticate.
    Io,
    /// An echo did not come back within --timeout.
    Timeout,
    /// An echo came back different from what was sent.
    Verify,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Handshake => "handshake",
            ErrorKind::Io => "io",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Verify => "verify",
        }
    }
}

/// Error counters, one per [`ErrorKind`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    pub connect: u64,
    pub handshake: u64,
    pub io: u64,
    pub timeout: u64,
    pub verify: u64,
}

impl ErrorCounts {
    #[inline]
    pub fn count(&mut self, kind: ErrorKind) {
        *self.slot(kind) += 1;
    }

    fn slot(&mut self, kind: ErrorKind) -> &mut u64 {
        match kind {
            ErrorKind::Connect => &mut self.connect,
            ErrorKind::Handshake => &mut self.handshake,
            ErrorKind::Io => &mut self.io,
            ErrorKind::Timeout => &mut self.timeout,
            ErrorKind::Verify => &mut self.verify,
        }
    }

    pub fn total(&self) -> u64 {
        self.connect + self.handshake + self.io + self.timeout + self.verify
    }

    pub fn add(&mut self, other: &ErrorCounts) {
        self.connect += other.connect;
        self.handshake += other.handshake;
        self.io += other.io;
        self.timeout += other.timeout;
        self.verify += other.verify;
    }
}

/// Connections that could not be set up for one cause (a connect or handshake failure), and how
/// many: the run prints each cause once instead of a line per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupFailure {
    /// [`ErrorKind::Connect`] or [`ErrorKind::Handshake`].
    pub kind: ErrorKind,
    /// The OS error of a failed `socket()` or connect, or ETIMEDOUT for a deadline missed.
    pub errno: Option<i32>,
    /// What the log would have said.
    pub why: String,
    /// Connections that failed so.
    pub count: u64,
}

/// Every distinct setup failure of a thread or a run, most frequent first once [`sorted`].
///
/// [`sorted`]: SetupFailures::sorted
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetupFailures(Vec<SetupFailure>);

impl SetupFailures {
    /// Counts one connection that failed for this cause.
    pub fn record(&mut self, kind: ErrorKind, errno: Option<i32>, why: &str) {
        self.add_count(kind, errno, why, 1);
    }

    fn add_count(&mut self, kind: ErrorKind, errno: Option<i32>, why: &str, count: u64) {
        match self
            .0
            .iter_mut()
            .find(|f| f.kind == kind && f.errno == errno && f.why == why)
        {
            Some(f) => f.count += count,
            None => self.0.push(SetupFailure {
                kind,
                errno,
                why: why.to_string(),
                count,
            }),
        }
    }

    /// Adds another thread's failures.
    pub fn add(&mut self, other: &SetupFailures) {
        for f in &other.0 {
            self.add_count(f.kind, f.errno, &f.why, f.count);
        }
    }

    /// The causes, most frequent first.
    pub fn sorted(&self) -> Vec<&SetupFailure> {
        let mut all: Vec<&SetupFailure> = self.0.iter().collect();
        all.sort_by_key(|f| std::cmp::Reverse(f.count));
        all
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every failure is a connect failure (nothing reached a server).
    pub fn only_connect(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|f| f.kind == ErrorKind::Connect)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_failures_count_each_cause_once_and_merge() {
        let mut a = SetupFailures::default();
        a.record(
            ErrorKind::Connect,
            Some(libc::ECONNREFUSED),
            "connection refused",
        );
        a.record(
            ErrorKind::Connect,
            Some(libc::ECONNREFUSED),
            "connection refused",
        );
        let mut b = SetupFailures::default();
        b.record(
            ErrorKind::Connect,
            Some(libc::EMFILE),
            "too many open files",
        );
        b.record(
            ErrorKind::Connect,
            Some(libc::ECONNREFUSED),
            "connection refused",
        );
        a.add(&b);
        let sorted = a.sorted();
        assert_eq!(sorted.len(), 2);
        assert_eq!(
            (sorted[0].errno, sorted[0].count),
            (Some(libc::ECONNREFUSED), 3)
        );
        assert_eq!((sorted[1].errno, sorted[1].count), (Some(libc::EMFILE), 1));
        assert!(a.only_connect());
        a.record(ErrorKind::Handshake, None, "handshake timed out");
        assert!(!a.only_connect());
        assert!(!SetupFailures::default().only_connect());
    }

    #[test]
    fn counts_by_kind_and_adds() {
        let mut a = ErrorCounts::default();
        a.count(ErrorKind::Verify);
        a.count(ErrorKind::Verify);
        a.count(ErrorKind::Connect);
        let mut b = ErrorCounts::default();
        b.count(ErrorKind::Timeout);
        b.add(&a);
        assert_eq!(
            (b.verify, b.connect, b.timeout, b.io, b.handshake),
            (2, 1, 1, 0, 0)
        );
        assert_eq!(b.total(), 4);
    }
}
