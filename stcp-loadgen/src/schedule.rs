//! Whether an open loop kept its schedule: the rate asked for (`--rate`), the rate achieved, and,
//! for a run that fell behind, which side was busy: the load generator's client threads, the
//! embedded server's workers, other work on the machine (the threads were ready but waited for a
//! CPU), or none of these: then the requests allowed in flight (connections × depth) were the
//! limit. Reports carry it as `results.schedule`; the summary and the live line print it.

use serde::{Deserialize, Serialize};

/// An open loop that achieved less than `1 - SCHEDULE_TOLERANCE` of its target fell behind.
pub const SCHEDULE_TOLERANCE: f64 = 0.01;

/// A side whose threads kept at least this share of their cores busy was the busy side; a side
/// that was busy or waiting for a CPU this share of the time was held back by other work.
pub const BUSY_CORE_SHARE: f64 = 0.85;

/// How one side used its cores over the measured interval, as shares of (cores × seconds).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CoreShare {
    /// Running (user + system).
    pub busy: f64,
    /// Ready to run but waiting for a CPU.
    pub waiting: f64,
}

/// Which side held an open loop back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusySide {
    /// The load generator's client threads kept their cores busy.
    LoadGenerator,
    /// The embedded server's workers kept their cores busy.
    Server,
    /// Neither side kept its cores busy, but its threads were ready to run and waited for a CPU:
    /// other work on the machine held them back.
    OtherWork,
    /// Neither side's cores were full: every request allowed in flight (connections × depth) was
    /// waiting for its echo.
    InFlightLimit,
    /// The load generator's cores were not full and the server's CPU is not known (--target).
    Unknown,
}

/// The open loop's schedule against what was achieved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// `--rate`: requests/s asked for (a merge: the sum over its sources).
    pub target_per_second: f64,
    /// Requests completed per second of the measured interval.
    pub achieved_per_second: f64,
    /// achieved ÷ target.
    pub fraction: f64,
    /// `fraction >= 1 - tolerance`.
    pub kept: bool,
    /// `0.01`.
    pub tolerance: f64,
    /// The load generator's cores_busy ÷ the cores its client threads ran on.
    pub loadgen_core_share: f64,
    /// The embedded server's cores_busy ÷ its workers' cores; null with --target.
    pub server_core_share: Option<f64>,
    /// The share of its cores' time the load generator's threads were ready but waited for a CPU
    /// (0 in reports written before this field existed).
    #[serde(default)]
    pub loadgen_wait_share: f64,
    /// The same for the embedded server's workers; null with --target.
    #[serde(default)]
    pub server_wait_share: Option<f64>,
    /// Connections established × depth: the most requests ever in flight at once.
    pub in_flight_limit: u64,
    /// Which side held the run back; null when the schedule was kept.
    pub busy_side: Option<BusySide>,
}

impl Schedule {
    /// The schedule of an open loop at `target` requests/s that achieved `achieved`; the core
    /// shares are each side's busy cores over the cores it had.
    pub fn of(
        target: f64,
        achieved: f64,
        loadgen: CoreShare,
        server: Option<CoreShare>,
        in_flight_limit: u64,
    ) -> Schedule {
        let fraction = if target > 0.0 { achieved / target } else { 0.0 };
        let kept = fraction >= 1.0 - SCHEDULE_TOLERANCE;
        let held_back = |s: CoreShare| s.busy + s.waiting >= BUSY_CORE_SHARE;
        let side = match server {
            Some(server) if server.busy >= BUSY_CORE_SHARE && server.busy >= loadgen.busy => {
                BusySide::Server
            }
            _ if loadgen.busy >= BUSY_CORE_SHARE => BusySide::LoadGenerator,
            _ if held_back(loadgen) || server.is_some_and(held_back) => BusySide::OtherWork,
            Some(_) => BusySide::InFlightLimit,
            None => BusySide::Unknown,
        };
        let busy_side = (!kept).then_some(side);
        Schedule {
            target_per_second: target,
            achieved_per_second: achieved,
            fraction,
            kept,
            tolerance: SCHEDULE_TOLERANCE,
            loadgen_core_share: loadgen.busy,
            server_core_share: server.map(|s| s.busy),
            loadgen_wait_share: loadgen.waiting,
            server_wait_share: server.map(|s| s.waiting),
            in_flight_limit,
            busy_side,
        }
    }

    /// `open loop: target 500000 req/s, achieved 319000 req/s (63.8 %)`.
    pub fn line(&self) -> String {
        format!(
            "open loop: target {:.0} req/s, achieved {:.0} req/s ({:.1} %)",
            self.target_per_second,
            self.achieved_per_second,
            self.fraction * 100.0
        )
    }

    /// One plain line for a run that fell behind its schedule, naming the busy side; None when the
    /// schedule was kept.
    pub fn behind_line(&self) -> Option<String> {
        let side = self.busy_side?;
        let pct = |x: f64| x * 100.0;
        let shares = match (self.server_core_share, self.server_wait_share) {
            (Some(busy), waiting) => format!(
                "of their cores' time, the load generator was busy {:.0} % and waited for a CPU \
                 {:.0} %, the embedded server busy {:.0} % and waiting {:.0} %",
                pct(self.loadgen_core_share),
                pct(self.loadgen_wait_share),
                pct(busy),
                pct(waiting.unwrap_or(0.0))
            ),
            (None, _) => format!(
                "of its cores' time, the load generator was busy {:.0} % and waited for a CPU \
                 {:.0} %",
                pct(self.loadgen_core_share),
                pct(self.loadgen_wait_share)
            ),
        };
        let why = match side {
            BusySide::Server => "the server was the busy side: it carries no more",
            BusySide::LoadGenerator => {
                "the load generator was the busy side: it could not send faster (give it more \
                 cores, --threads, or more load hosts)"
            }
            BusySide::OtherWork => {
                "other work on this machine held it back: the threads were ready to run but waited \
                 for a CPU (measure on a quieter machine, or give the run cores of its own)"
            }
            BusySide::InFlightLimit => {
                "neither side kept its cores busy: every request allowed in flight (connections × \
                 depth) was waiting for its echo, so the round trip set the rate (raise --clients \
                 or --depth)"
            }
            BusySide::Unknown => {
                "the load generator's cores were not full, so the server (not measured here) or \
                 the requests allowed in flight (connections × depth) held it back"
            }
        };
        Some(format!(
            "BEHIND SCHEDULE: achieved {:.0} of the {:.0} req/s asked ({:.1} %); {why} ({shares})",
            self.achieved_per_second,
            self.target_per_second,
            self.fraction * 100.0
        ))
    }
}

/// `  target 500000 (63.8 %)`: what the live line adds in an open loop.
pub fn live_suffix(target: f64, achieved: f64) -> String {
    let percent = if target > 0.0 {
        achieved / target * 100.0
    } else {
        0.0
    };
    format!("  target {target:.0} ({percent:.1} %)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(busy: f64, waiting: f64) -> CoreShare {
        CoreShare { busy, waiting }
    }

    #[test]
    fn a_run_within_one_percent_kept_its_schedule() {
        let s = Schedule::of(3000.0, 2975.0, share(0.2, 0.0), Some(share(0.1, 0.0)), 32);
        assert!(s.kept);
        assert_eq!(s.busy_side, None);
        assert_eq!(s.behind_line(), None);
        assert!((s.fraction - 2975.0 / 3000.0).abs() < 1e-12);
        assert!(!Schedule::of(3000.0, 2960.0, share(0.2, 0.0), None, 32).kept);
    }

    #[test]
    fn the_busiest_full_side_is_named() {
        let server = Schedule::of(
            500_000.0,
            319_000.0,
            share(0.7, 0.1),
            Some(share(0.99, 0.0)),
            50,
        );
        assert_eq!(server.busy_side, Some(BusySide::Server));
        let line = server.behind_line().unwrap();
        assert!(
            line.starts_with("BEHIND SCHEDULE: achieved 319000 of the 500000 req/s asked (63.8 %)")
                && line.contains("the server was the busy side")
                && line.contains(
                    "the load generator was busy 70 % and waited for a CPU 10 %, the embedded \
                     server busy 99 % and waiting 0 %"
                ),
            "{line}"
        );
        let loadgen = Schedule::of(
            500_000.0,
            319_000.0,
            share(0.98, 0.0),
            Some(share(0.6, 0.0)),
            50,
        );
        assert_eq!(loadgen.busy_side, Some(BusySide::LoadGenerator));
        // Both full: the fuller one.
        let both = Schedule::of(
            500_000.0,
            319_000.0,
            share(0.99, 0.0),
            Some(share(0.9, 0.0)),
            50,
        );
        assert_eq!(both.busy_side, Some(BusySide::LoadGenerator));
        let neither = Schedule::of(
            500_000.0,
            319_000.0,
            share(0.3, 0.05),
            Some(share(0.4, 0.1)),
            50,
        );
        assert_eq!(neither.busy_side, Some(BusySide::InFlightLimit));
        assert!(neither.behind_line().unwrap().contains("--depth"));
        let external = Schedule::of(500_000.0, 319_000.0, share(0.3, 0.0), None, 50);
        assert_eq!(external.busy_side, Some(BusySide::Unknown));
        assert!(!external.behind_line().unwrap().contains("embedded"));
    }

    #[test]
    fn threads_that_waited_for_a_cpu_blame_other_work() {
        // Busy 13 % but ready and waiting 80 % of the time: the machine was busy elsewhere.
        let starved = Schedule::of(2000.0, 1970.0, share(0.13, 0.8), Some(share(0.08, 0.3)), 50);
        assert_eq!(starved.busy_side, Some(BusySide::OtherWork));
        assert!(starved
            .behind_line()
            .unwrap()
            .contains("other work on this machine held it back"));
        // A side that is busy itself is named first.
        let busy = Schedule::of(2000.0, 1000.0, share(0.9, 0.1), Some(share(0.1, 0.8)), 50);
        assert_eq!(busy.busy_side, Some(BusySide::LoadGenerator));
    }

    #[test]
    fn the_live_suffix_gives_target_and_share() {
        assert_eq!(
            live_suffix(500_000.0, 319_000.0),
            "  target 500000 (63.8 %)"
        );
    }
}
