//! Counters: one cache-line-aligned block of atomics per worker, written only by that worker
//! (relaxed adds, no locks, no sharing between workers) and read by others: summed for the
//! once-a-second stats line, the exit summary and tests, per worker for the metrics endpoint.

use std::{
    fmt::Write as _,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use crate::errors::ErrorKind;

/// One worker's counters. Only its worker writes them.
#[repr(align(128))]
#[derive(Default)]
pub struct WorkerCounters {
    /// Connections admitted.
    pub accepted: AtomicU64,
    /// Connections refused because `max_conns` were open.
    pub refused: AtomicU64,
    /// Admitted connections closed (for any reason).
    pub closed: AtomicU64,
    /// STCP handshakes completed.
    pub handshakes: AtomicU64,
    /// TLS handshakes completed (the client's Finished verified).
    pub tls_handshakes: AtomicU64,
    /// Hellos that waited for a later loop iteration's bounded handshake step.
    pub handshakes_deferred: AtomicU64,
    /// Frames echoed.
    pub frames: AtomicU64,
    /// Bytes received (wire bytes: headers, tags and payload).
    pub bytes_in: AtomicU64,
    /// Bytes sent (wire bytes).
    pub bytes_out: AtomicU64,
    /// Times a multishot receive stopped because the provided buffer ring was empty.
    pub ring_starved: AtomicU64,
    /// Gauge: bytes of buffer memory the worker's connections hold now (see
    /// [`StatsSnapshot::conn_buffer_bytes`]).
    pub conn_buffer_bytes: AtomicU64,
    /// Gauge: capacity of the free heap buffers the worker keeps for reuse.
    pub pool_idle_bytes: AtomicU64,
    /// Connection failures by [`ErrorKind`].
    pub errors: [AtomicU64; ErrorKind::COUNT],
}

impl WorkerCounters {
    /// Adds `n` to `counter` (single writer: a relaxed add is enough).
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Sets a gauge (single writer: a relaxed store is enough).
    #[inline]
    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Relaxed);
    }

    /// Lowers a gauge by `n` (the writer raised it by at least `n` before).
    #[inline]
    pub fn sub(gauge: &AtomicU64, n: u64) {
        gauge.fetch_sub(n, Relaxed);
    }

    /// Counts one failure of `kind`.
    #[inline]
    pub fn error(&self, kind: ErrorKind) {
        self.errors[kind as usize].fetch_add(1, Relaxed);
    }

    /// This worker's counters now (relaxed loads: each value is one the worker wrote, read
    /// without stopping it; `closed` is read before `accepted`, so `open()` never goes below 0).
    pub fn snapshot(&self) -> StatsSnapshot {
        let closed = self.closed.load(Relaxed);
        let mut s = StatsSnapshot {
            accepted: self.accepted.load(Relaxed),
            refused: self.refused.load(Relaxed),
            closed,
            handshakes: self.handshakes.load(Relaxed),
            tls_handshakes: self.tls_handshakes.load(Relaxed),
            handshakes_deferred: self.handshakes_deferred.load(Relaxed),
            frames: self.frames.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            ring_starved: self.ring_starved.load(Relaxed),
            conn_buffer_bytes: self.conn_buffer_bytes.load(Relaxed),
            pool_idle_bytes: self.pool_idle_bytes.load(Relaxed),
            errors: [0; ErrorKind::COUNT],
        };
        for (acc, e) in s.errors.iter_mut().zip(&self.errors) {
            *acc = e.load(Relaxed);
        }
        s
    }
}

/// Every worker's counters.
#[derive(Default)]
pub struct Stats {
    workers: Vec<WorkerCounters>,
}

impl Stats {
    /// Counters for `n` workers.
    pub fn new(n: usize) -> Stats {
        Stats {
            workers: (0..n).map(|_| WorkerCounters::default()).collect(),
        }
    }

    /// Worker `i`'s counters.
    pub fn worker(&self, i: usize) -> &WorkerCounters {
        &self.workers[i]
    }

    /// How many workers there are.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Each worker's counters now, in worker order (what the metrics endpoint exports).
    pub fn per_worker(&self) -> impl Iterator<Item = StatsSnapshot> + '_ {
        self.workers.iter().map(WorkerCounters::snapshot)
    }

    /// Sums every worker's counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut s = StatsSnapshot::default();
        for w in self.per_worker() {
            s.accepted += w.accepted;
            s.refused += w.refused;
            s.closed += w.closed;
            s.handshakes += w.handshakes;
            s.tls_handshakes += w.tls_handshakes;
            s.handshakes_deferred += w.handshakes_deferred;
            s.frames += w.frames;
            s.bytes_in += w.bytes_in;
            s.bytes_out += w.bytes_out;
            s.ring_starved += w.ring_starved;
            s.conn_buffer_bytes += w.conn_buffer_bytes;
            s.pool_idle_bytes += w.pool_idle_bytes;
            for (acc, e) in s.errors.iter_mut().zip(&w.errors) {
                *acc += e;
            }
        }
        s
    }
}

/// Summed counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Connections admitted.
    pub accepted: u64,
    /// Connections refused (max-conns).
    pub refused: u64,
    /// Admitted connections closed.
    pub closed: u64,
    /// STCP handshakes completed.
    pub handshakes: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// Hellos that waited for a later loop iteration's bounded handshake step (io_uring).
    pub handshakes_deferred: u64,
    /// Frames echoed.
    pub frames: u64,
    /// Wire bytes received.
    pub bytes_in: u64,
    /// Wire bytes sent.
    pub bytes_out: u64,
    /// Receive-buffer-ring exhaustion events.
    pub ring_starved: u64,
    /// Gauge: bytes of buffer memory held by open connections now. io_uring: the provided ring
    /// buffers connections hold (whole buffers: echoes not yet sent in place), plus the capacity
    /// of their heap buffers (partial-frame reassembly, reassembled frames, handshake replies,
    /// close records, echoes compacted out of the ring). epoll: each connection's read buffer
    /// (echoes are written from it in place). 0 when no connection is open. io_uring updates it
    /// every 100 ms, epoll whenever a buffer's capacity changes.
    pub conn_buffer_bytes: u64,
    /// Gauge: capacity of the free heap buffers workers keep for reuse (io_uring; bounded per
    /// worker). Not part of `conn_buffer_bytes`.
    pub pool_idle_bytes: u64,
    /// Failures by [`ErrorKind`] (index = `kind as usize`).
    pub errors: [u64; ErrorKind::COUNT],
}

impl StatsSnapshot {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.accepted.saturating_sub(self.closed)
    }

    /// Failures of `kind`.
    pub fn error(&self, kind: ErrorKind) -> u64 {
        self.errors[kind as usize]
    }

    /// All failures.
    pub fn errors_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    fn errors_text(&self, prev: Option<&StatsSnapshot>) -> String {
        let mut out = String::new();
        for k in ErrorKind::ALL {
            let n = self.error(k) - prev.map_or(0, |p| p.error(k));
            if n > 0 {
                let _ = write!(out, " {}={n}", k.label());
            }
        }
        if out.is_empty() {
            out.push_str(" none");
        }
        out
    }

    /// One stats line for the interval since `prev`.
    pub fn line(&self, prev: &StatsSnapshot, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let rate = |now: u64, before: u64| (now - before) as f64 / secs;
        format!(
            "conns {} (+{} -{} refused {}) | {:.0} frames/s | in {:.1} MB/s out {:.1} MB/s | buffers {} | errors:{}",
            self.open(),
            self.accepted - prev.accepted,
            self.closed - prev.closed,
            self.refused - prev.refused,
            rate(self.frames, prev.frames),
            rate(self.bytes_in, prev.bytes_in) / 1e6,
            rate(self.bytes_out, prev.bytes_out) / 1e6,
            crate::units::format_size(self.conn_buffer_bytes),
            self.errors_text(Some(prev)),
        )
    }

    /// The exit summary over a run of `elapsed`.
    pub fn summary(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(1e-9);
        format!(
            "summary: {:.1} s | connections {} (refused {}, handshakes {}, tls handshakes {}, deferred {}) | frames {} ({:.0}/s) | \
             in {} out {} ({:.1} MB/s out) | ring starved {} | errors:{}",
            secs,
            self.accepted,
            self.refused,
            self.handshakes,
            self.tls_handshakes,
            self.handshakes_deferred,
            self.frames,
            self.frames as f64 / secs,
            crate::units::format_size(self.bytes_in),
            crate::units::format_size(self.bytes_out),
            self.bytes_out as f64 / secs / 1e6,
            self.ring_starved,
            self.errors_text(None),
        )
    }
}

/// Prints one line to stderr every `interval` until `stop` is set.
pub fn spawn_reporter(
    stats: Arc<Stats>,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("stcp-stats".into())
        .spawn(move || {
            let mut prev = stats.snapshot();
            let mut last = Instant::now();
            while !stop.load(Relaxed) {
                thread::sleep(Duration::from_millis(50).min(interval));
                if last.elapsed() < interval {
                    continue;
                }
                let now = stats.snapshot();
                // A closed stderr (the operator's pipe went away) must not panic this thread:
                // the line is lost, the server goes on.
                crate::stderr_line!("stcp-server: {}", now.line(&prev, last.elapsed()));
                prev = now;
                last = Instant::now();
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_workers_and_formats_deltas() {
        let s = Stats::new(2);
        WorkerCounters::add(&s.worker(0).accepted, 3);
        WorkerCounters::add(&s.worker(1).accepted, 2);
        WorkerCounters::add(&s.worker(1).closed, 1);
        WorkerCounters::add(&s.worker(0).frames, 10);
        s.worker(1).error(ErrorKind::BadTag);
        WorkerCounters::set(&s.worker(0).conn_buffer_bytes, 4096);
        WorkerCounters::add(&s.worker(1).conn_buffer_bytes, 3 * 1024);
        WorkerCounters::sub(&s.worker(1).conn_buffer_bytes, 1024);
        let snap = s.snapshot();
        assert_eq!(snap.conn_buffer_bytes, 6144);
        assert_eq!(snap.open(), 4);
        assert_eq!(snap.error(ErrorKind::BadTag), 1);
        let line = snap.line(&StatsSnapshot::default(), Duration::from_secs(2));
        assert!(line.contains("conns 4"), "{line}");
        assert!(line.contains("5 frames/s"), "{line}");
        assert!(line.contains("bad_tag=1"), "{line}");
        assert!(snap.summary(Duration::from_secs(1)).contains("frames 10"));
    }
}
