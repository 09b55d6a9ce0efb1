//! What a run measured, as histograms and counters that add up exactly: the engine produces one,
//! a report is built from one, and `merge` decodes reports back into measurements and adds them.

use crate::errors::ErrorCounts;
use crate::stats::{self, LatencyHistogram};

/// CPU time the load generator's own client threads used during the measured interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime {
    pub user_seconds: f64,
    pub system_seconds: f64,
    /// Time the threads were ready to run but waited for a CPU (summed over threads).
    pub waited_seconds: f64,
}

impl CpuTime {
    pub fn total_seconds(&self) -> f64 {
        self.user_seconds + self.system_seconds
    }
}

/// Connection counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Connections {
    /// Connections asked for (--clients).
    pub requested: u64,
    /// Connections whose connect (and STCP handshake) completed.
    pub established: u64,
    /// Established connections that later failed (io, timeout or verify error).
    pub lost: u64,
    /// Churn: connections that did their requests and closed cleanly (0 without churn, and in
    /// reports written before this field existed).
    #[serde(default)]
    pub closed: u64,
}

/// One second (the last one may be shorter) of the measured interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    /// Length of this interval in seconds (1.0 except maybe the last).
    pub seconds: f64,
    /// Latencies of the requests completed in this interval.
    pub latency: LatencyHistogram,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub errors: u64,
    /// Connections set up (connect, and in STCP the handshake) in this interval.
    pub handshakes: u64,
    /// Requests completed per second; for a merge, the sum over the merged runs.
    pub requests_per_second: f64,
}

impl Interval {
    pub fn new(seconds: f64) -> Interval {
        Interval {
            seconds,
            latency: stats::new_histogram(),
            bytes_sent: 0,
            bytes_received: 0,
            errors: 0,
            handshakes: 0,
            requests_per_second: 0.0,
        }
    }

    pub fn requests(&self) -> u64 {
        self.latency.len()
    }

    /// Adds an interval of the same run (another thread's share of the same second).
    pub fn add_same_run(&mut self, other: &Interval) {
        self.add_counts(other);
        self.requests_per_second = if self.seconds > 0.0 {
            self.requests() as f64 / self.seconds
        } else {
            0.0
        };
    }

    /// Adds the same second of another run that ran at the same time: rates add up.
    pub fn add_concurrent_run(&mut self, other: &Interval) {
        self.add_counts(other);
        self.seconds = self.seconds.max(other.seconds);
        self.requests_per_second += other.requests_per_second;
    }

    fn add_counts(&mut self, other: &Interval) {
        self.latency
            .add(&other.latency)
            .expect("latency histograms share bounds");
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.errors += other.errors;
        self.handshakes += other.handshakes;
    }
}

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Length of the measured interval in seconds (shorter than --duration for a partial run).
    pub measured_seconds: f64,
    /// Latency of every request completed within the measured interval.
    pub latency: LatencyHistogram,
    /// Handshake latency (connect start to session established) of every connection; in TCP mode,
    /// the connect latency.
    pub handshake: LatencyHistogram,
    /// Connect latency (connect issued, or meant to be in an open loop, to connect completed) of
    /// every connection.
    pub connect: LatencyHistogram,
    /// Connections set up within the measured interval (churn: its handshakes).
    pub handshakes: u64,
    pub requests_per_second: f64,
    /// Raw bytes on the wire (headers, tags and payload) during the measured interval.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Errors over the whole run, connecting and warm-up included.
    pub errors: ErrorCounts,
    pub connections: Connections,
    pub cpu: CpuTime,
    /// CPU time of the embedded server's workers over the measured interval; None with --target.
    pub server_cpu: Option<CpuTime>,
    pub series: Vec<Interval>,
}

impl Measurement {
    pub fn empty() -> Measurement {
        Measurement {
            measured_seconds: 0.0,
            latency: stats::new_histogram(),
            handshake: stats::new_histogram(),
            connect: stats::new_histogram(),
            handshakes: 0,
            requests_per_second: 0.0,
            bytes_sent: 0,
            bytes_received: 0,
            errors: ErrorCounts::default(),
            connections: Connections::default(),
            cpu: CpuTime::default(),
            server_cpu: None,
            series: Vec::new(),
        }
    }

    pub fn requests(&self) -> u64 {
        self.latency.len()
    }

    /// Connections set up per second over the measured interval (churn: handshakes per second).
    pub fn handshakes_per_second(&self) -> f64 {
        if self.measured_seconds > 0.0 {
            self.handshakes as f64 / self.measured_seconds
        } else {
            0.0
        }
    }

    /// Adds a run made at the same time from another machine (or process): counts and histograms
    /// add, rates add, the measured interval is the longest of the two.
    pub fn add_concurrent_run(&mut self, other: &Measurement) {
        self.measured_seconds = self.measured_seconds.max(other.measured_seconds);
        self.latency
            .add(&other.latency)
            .expect("latency histograms share bounds");
        self.handshake
            .add(&other.handshake)
            .expect("latency histograms share bounds");
        self.connect
            .add(&other.connect)
            .expect("latency histograms share bounds");
        self.handshakes += other.handshakes;
        self.requests_per_second += other.requests_per_second;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.errors.add(&other.errors);
        self.connections.requested += other.connections.requested;
        self.connections.established += other.connections.established;
        self.connections.lost += other.connections.lost;
        self.connections.closed += other.connections.closed;
        self.cpu.user_seconds += other.cpu.user_seconds;
        self.cpu.system_seconds += other.cpu.system_seconds;
        self.cpu.waited_seconds += other.cpu.waited_seconds;
        self.server_cpu = match (self.server_cpu, other.server_cpu) {
            (Some(a), Some(b)) => Some(CpuTime {
                user_seconds: a.user_seconds + b.user_seconds,
                system_seconds: a.system_seconds + b.system_seconds,
                waited_seconds: a.waited_seconds + b.waited_seconds,
            }),
            (a, b) => a.or(b),
        };
        for (i, interval) in other.series.iter().enumerate() {
            match self.series.get_mut(i) {
                Some(mine) => mine.add_concurrent_run(interval),
                None => self.series.push(interval.clone()),
            }
        }
    }
}
