//! What a client thread counts, and when: the load timeline (warm-up, measured interval, done),
//! the current second's histogram and counters, errors over the whole run, and the thread's CPU
//! time over the measured interval. Finished seconds go to the coordinating thread as messages.

use std::sync::mpsc::Sender;
use std::time::{Duration, Instant, SystemTime};

use crate::cpu_time::ThreadCpu;
use crate::errors::{ErrorCounts, SetupFailures};
use crate::measurement::Interval;
use crate::stats::{self, LatencyHistogram};

/// Which part of the load a second belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadPhase {
    Warmup,
    Measured,
}

/// What a client thread tells the coordinating thread.
pub enum ThreadMessage {
    /// One second (the last may be shorter) of warm-up or measurement, this thread's share.
    Second {
        phase: LoadPhase,
        index: u32,
        interval: Interval,
    },
    /// The thread is done; nothing follows.
    Finished { summary: Box<ThreadSummary> },
}

/// A client thread's totals.
pub struct ThreadSummary {
    pub handshake: LatencyHistogram,
    pub connect: LatencyHistogram,
    pub errors: ErrorCounts,
    pub requested: u64,
    pub established: u64,
    pub lost: u64,
    /// Churn: connections closed cleanly after their requests.
    pub closed: u64,
    /// Established connections the server ended with its authenticated Close.
    pub closed_by_server: u64,
    /// Requests in flight on those connections when the server closed them.
    pub unanswered: u64,
    /// CPU time over the measured interval.
    pub cpu: ThreadCpu,
    /// Why the thread could not run at all (io_uring unavailable, ...).
    pub setup_error: Option<super::SetupError>,
    /// Why connections could not be set up, by cause.
    pub setup_failures: SetupFailures,
    /// The wall clock when this thread entered the measured interval (its first turn at or after
    /// the measured start); None when it never did.
    pub measured_from: Option<SystemTime>,
}

impl ThreadSummary {
    pub fn failed(requested: u64, why: super::SetupError) -> ThreadSummary {
        ThreadSummary {
            handshake: stats::new_histogram(),
            connect: stats::new_histogram(),
            errors: ErrorCounts::default(),
            requested,
            established: 0,
            lost: 0,
            closed: 0,
            closed_by_server: 0,
            unanswered: 0,
            cpu: ThreadCpu::default(),
            setup_error: Some(why),
            setup_failures: SetupFailures::default(),
            measured_from: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Warmup,
    Measured,
    Done,
}

pub(super) struct Tally {
    tx: Sender<ThreadMessage>,
    pub load_start: Instant,
    measure_start: Instant,
    end: Instant,
    stage: Stage,
    index: u32,
    interval: Interval,
    accepting: bool,
    cpu_at_measure: Option<ThreadCpu>,
    pub cpu: ThreadCpu,
    /// The wall clock when the measured interval began on this thread (read once, on entry).
    pub measured_from: Option<SystemTime>,
}

impl Tally {
    pub fn new(
        tx: Sender<ThreadMessage>,
        load_start: Instant,
        warmup: Duration,
        duration: Duration,
    ) -> Tally {
        Tally {
            tx,
            load_start,
            measure_start: load_start + warmup,
            end: load_start + warmup + duration,
            stage: Stage::Warmup,
            index: 0,
            interval: Interval::new(1.0),
            accepting: true,
            cpu_at_measure: None,
            cpu: ThreadCpu::default(),
            measured_from: None,
        }
    }

    /// Moves the timeline to `now` (called once per turn, before the turn's completions count):
    /// sends every second that has ended, enters the measured interval, ends it.
    pub fn advance(&mut self, now: Instant) {
        if self.stage == Stage::Warmup {
            if now < self.measure_start {
                self.flush_until(
                    ((now - self.load_start).as_secs()) as u32,
                    LoadPhase::Warmup,
                );
                return;
            }
            if self.measure_start > self.load_start {
                let last = (self.measure_start - self.load_start).as_secs_f64().ceil() as u32;
                self.flush_until(last, LoadPhase::Warmup);
            }
            self.stage = Stage::Measured;
            self.index = 0;
            self.interval = Interval::new(1.0);
            self.cpu_at_measure = Some(ThreadCpu::now());
            self.measured_from = Some(SystemTime::now());
        }
        if self.stage == Stage::Measured {
            if now < self.end {
                self.flush_until(
                    ((now - self.measure_start).as_secs()) as u32,
                    LoadPhase::Measured,
                );
            } else {
                self.end_measurement();
            }
        }
    }

    /// Sends the seconds before `index` (empty ones too, so the series has no holes).
    fn flush_until(&mut self, index: u32, phase: LoadPhase) {
        while self.index < index {
            let interval = std::mem::replace(&mut self.interval, Interval::new(1.0));
            let _ = self.tx.send(ThreadMessage::Second {
                phase,
                index: self.index,
                interval,
            });
            self.index += 1;
        }
    }

    fn end_measurement(&mut self) {
        let last = (self.end - self.measure_start).as_secs_f64().ceil() as u32;
        self.flush_until(last.max(self.index + 1), LoadPhase::Measured);
        self.finish_cpu();
        self.stage = Stage::Done;
        self.accepting = false;
    }

    /// Stops the load early (Ctrl-C): the current second is sent as the last one.
    pub fn stop(&mut self) {
        self.accepting = false;
        match self.stage {
            Stage::Warmup => self.stage = Stage::Done,
            Stage::Measured => {
                self.flush_until(self.index + 1, LoadPhase::Measured);
                self.finish_cpu();
                self.stage = Stage::Done;
            }
            Stage::Done => {}
        }
    }

    fn finish_cpu(&mut self) {
        if let Some(start) = self.cpu_at_measure.take() {
            self.cpu = ThreadCpu::now().since(start);
        }
    }

    /// New requests may be sent (warm-up or measured interval, not stopped).
    #[inline]
    pub fn accepting_requests(&self) -> bool {
        self.accepting
    }

    /// True once the measured interval is over (or was cut short).
    pub fn done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// When the timeline next needs attention (a second ends, the interval starts or ends).
    pub fn next_boundary(&self) -> Option<Instant> {
        match self.stage {
            Stage::Warmup => Some(
                (self.load_start + Duration::from_secs(u64::from(self.index) + 1))
                    .min(self.measure_start),
            ),
            Stage::Measured => Some(
                (self.measure_start + Duration::from_secs(u64::from(self.index) + 1)).min(self.end),
            ),
            Stage::Done => None,
        }
    }

    /// The end of the measured interval.
    pub fn end(&self) -> Instant {
        self.end
    }

    /// A request completed (at this turn's time) after `latency`.
    #[inline]
    pub fn complete(&mut self, latency: Duration) {
        if self.stage != Stage::Done {
            stats::record_ns(
                &mut self.interval.latency,
                latency.as_nanos().min(u128::from(u64::MAX)) as u64,
            );
        }
    }

    /// A connection was set up (connect, and in STCP its handshake) this turn.
    #[inline]
    pub fn handshake(&mut self) {
        if self.stage != Stage::Done {
            self.interval.handshakes += 1;
        }
    }

    /// A failure happened this turn (the thread counts it by kind; this counts it per second).
    #[inline]
    pub fn error(&mut self) {
        if self.stage != Stage::Done {
            self.interval.errors += 1;
        }
    }

    #[inline]
    pub fn bytes_sent(&mut self, n: usize) {
        if self.stage != Stage::Done {
            self.interval.bytes_sent += n as u64;
        }
    }

    #[inline]
    pub fn bytes_received(&mut self, n: usize) {
        if self.stage != Stage::Done {
            self.interval.bytes_received += n as u64;
        }
    }
}
