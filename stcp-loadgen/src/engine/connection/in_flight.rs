//! The requests a connection has in flight, oldest first, in a ring fixed at creation.

use std::time::Instant;

/// One request in flight: its sequence number (which fixes its payload), when it was meant to be
/// sent (open loop) and when its first byte was handed to the kernel (until then: `intended`).
#[derive(Clone, Copy)]
pub(in crate::engine) struct InFlight {
    pub seq: u64,
    pub intended: Instant,
    pub sent: Instant,
}

/// Requests in flight, oldest first; capacity --depth, fixed at creation.
pub(in crate::engine) struct InFlightQueue {
    entries: Box<[InFlight]>,
    head: usize,
    len: usize,
    /// The oldest `stamped` entries have their send time.
    stamped: usize,
}

impl InFlightQueue {
    pub(super) fn new(depth: usize, now: Instant) -> InFlightQueue {
        let blank = InFlight {
            seq: 0,
            intended: now,
            sent: now,
        };
        InFlightQueue {
            entries: vec![blank; depth].into_boxed_slice(),
            head: 0,
            len: 0,
            stamped: 0,
        }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_full(&self) -> bool {
        self.len == self.entries.len()
    }
    pub fn front(&self) -> Option<&InFlight> {
        (self.len > 0).then(|| &self.entries[self.head])
    }
    pub(super) fn push(&mut self, entry: InFlight) {
        debug_assert!(!self.is_full());
        let at = (self.head + self.len) % self.entries.len();
        self.entries[at] = entry;
        self.len += 1;
    }
    pub(super) fn pop(&mut self) -> Option<InFlight> {
        let entry = *self.front()?;
        self.head = (self.head + 1) % self.entries.len();
        self.len -= 1;
        self.stamped = self.stamped.saturating_sub(1);
        Some(entry)
    }
    /// Sets the send time of the next `n` entries not stamped yet, oldest first: requests start
    /// going out in order, so these are the ones whose first byte was just handed to the kernel.
    pub(super) fn stamp_next(&mut self, n: usize, sent: Instant) {
        let end = (self.stamped + n).min(self.len);
        for k in self.stamped..end {
            let at = (self.head + k) % self.entries.len();
            self.entries[at].sent = sent;
        }
        self.stamped = end;
    }
}
