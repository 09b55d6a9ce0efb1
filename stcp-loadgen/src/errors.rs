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

#[cfg(test)]
mod tests {
    use super::*;

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
