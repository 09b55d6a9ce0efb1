//! The rate search of one mode, and the capacity it finds. Offered rates climb geometrically from
//! `--start-rate` (× `--step-factor` a step) while the load generator keeps the schedule and p99
//! stays under the ceiling; then the gap between the highest step within the SLO and the lowest
//! step above it that is not is halved (geometrically) `--refine` times. The search only decides
//! rates and reads results: the steps themselves are real runs, made by the caller.
//!
//! A step is **within the SLO** when it kept its schedule (achieved at least 99 % of the target),
//! its p99 is at most `--slo-p99`, it had no error and ran whole. The **capacity** of a mode is
//! the highest achieved rate among its steps within the SLO.

use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::values::parse_duration;

/// How the offered rate is searched, and what a good step is: shared by `sweep` and
/// `suite --sweep`.
#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// The latency objective: a step is within it when its p99 is at most this (and it kept its
    /// schedule, with no error). Capacity is the highest achieved rate of such a step.
    #[arg(long, value_parser = parse_duration, default_value = "1ms", value_name = "DURATION")]
    pub slo_p99: Duration,
    /// A mode stops climbing once a step's p99 passes this (default: 10 x --slo-p99).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub p99_ceiling: Option<Duration>,
    /// Offered rate of the first step, requests/s in total.
    #[arg(long, default_value_t = 1000.0, value_name = "R")]
    pub start_rate: f64,
    /// Each climbing step offers this many times the rate of the one before.
    #[arg(long, default_value_t = 2.0, value_name = "F")]
    pub step_factor: f64,
    /// Bisection steps between the last rate within the SLO and the first one past it.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=20))]
    pub refine: u32,
    /// Most steps of one mode (climbing and refining).
    #[arg(long, default_value_t = 24, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=200))]
    pub max_steps: u32,
    /// Highest offered rate tried, requests/s.
    #[arg(long, default_value_t = 10_000_000.0, value_name = "R")]
    pub max_rate: f64,
    /// Measured interval of every step.
    #[arg(long, value_parser = parse_duration, default_value = "2s", value_name = "DURATION")]
    pub step_duration: Duration,
    /// Load applied before each step's measured interval (after its connections are set up).
    #[arg(long, value_parser = parse_duration, default_value = "500ms", value_name = "DURATION")]
    pub step_warmup: Duration,
}

impl SearchArgs {
    /// The plan these options describe, or a message naming the option at fault.
    pub fn plan(&self) -> Result<SearchPlan, String> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(format!("{name} {v}: give a positive number"))
            }
        };
        let start = positive("--start-rate", self.start_rate)?;
        let max_rate = positive("--max-rate", self.max_rate)?;
        let factor = positive("--step-factor", self.step_factor)?;
        if factor <= 1.05 {
            return Err(format!(
                "--step-factor {factor}: give more than 1.05, or the climb never gets anywhere"
            ));
        }
        if start > max_rate {
            return Err(format!(
                "--start-rate {start} is above --max-rate {max_rate}"
            ));
        }
        if self.slo_p99.is_zero() {
            return Err("--slo-p99 must be longer than zero".into());
        }
        if self.step_duration.is_zero() {
            return Err("--step-duration must be longer than zero".into());
        }
        let slo_us = self.slo_p99.as_secs_f64() * 1e6;
        let ceiling_us = self
            .p99_ceiling
            .map_or(slo_us * 10.0, |c| c.as_secs_f64() * 1e6);
        if ceiling_us < slo_us {
            return Err("--p99-ceiling must be at least --slo-p99".into());
        }
        Ok(SearchPlan {
            start_rate: start,
            step_factor: factor,
            refine_steps: self.refine,
            max_steps: self.max_steps,
            max_rate,
            slo_p99_us: slo_us,
            p99_ceiling_us: ceiling_us,
        })
    }
}

/// What the search does, in numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchPlan {
    pub start_rate: f64,
    pub step_factor: f64,
    pub refine_steps: u32,
    pub max_steps: u32,
    pub max_rate: f64,
    pub slo_p99_us: f64,
    pub p99_ceiling_us: f64,
}

/// Refinement stops once the bracket is this narrow (highest ÷ lowest rate).
pub const NARROWEST_BRACKET: f64 = 1.02;

/// Whether a step was part of the climb or of the refinement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Climb,
    Refine,
}

/// What the search reads of a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepResult {
    pub target_per_second: f64,
    pub achieved_per_second: f64,
    /// Achieved at least 99 % of the target.
    pub kept_schedule: bool,
    pub p99_us: f64,
    pub requests: u64,
    pub errors: u64,
    /// Cut short (Ctrl-C, every connection lost).
    pub partial: bool,
}

impl StepResult {
    /// Kept its schedule, p99 at most `slo_p99_us`, no error, whole, and something completed.
    pub fn within_slo(&self, slo_p99_us: f64) -> bool {
        self.kept_schedule
            && self.p99_us <= slo_p99_us
            && self.errors == 0
            && !self.partial
            && self.requests > 0
    }
}

/// Why a mode's search ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// A climbing step did not keep its schedule.
    Schedule { target: f64, fraction: f64 },
    /// A climbing step's p99 passed the ceiling.
    Ceiling { target: f64, p99_us: f64 },
    /// A step had errors.
    Errors { target: f64, errors: u64 },
    /// A step was cut short (see its run report's partial_reason).
    CutShort { target: f64 },
    /// The next climbing step would pass --max-rate.
    MaxRate,
    /// --max-steps steps were run.
    MaxSteps,
}

impl Stop {
    /// Why, in words, for the sweep report and the progress lines.
    pub fn describe(&self, ceiling_us: f64) -> String {
        let latency = crate::summary::latency;
        match self {
            Stop::Schedule { target, fraction } => format!(
                "the schedule was not kept at {target:.0} req/s ({:.1} % achieved)",
                fraction * 100.0
            ),
            Stop::Ceiling { target, p99_us } => format!(
                "p99 {} passed the ceiling {} at {target:.0} req/s",
                latency(*p99_us),
                latency(ceiling_us)
            ),
            Stop::Errors { target, errors } => {
                format!("{errors} error(s) at {target:.0} req/s")
            }
            Stop::CutShort { target } => {
                format!("the step at {target:.0} req/s was cut short (see its run report)")
            }
            Stop::MaxRate => "the next step would pass --max-rate".into(),
            Stop::MaxSteps => "--max-steps steps were run".into(),
        }
    }
}

/// The search of one mode: call [`Search::next`] for the next offered rate, run it, and give
/// the result to [`Search::record`], until `next` gives None.
#[derive(Debug, Clone)]
pub struct Search {
    plan: SearchPlan,
    steps: Vec<(Phase, StepResult)>,
    /// Why climbing stopped; refinement may follow.
    climb_stop: Option<Stop>,
    /// Why the search is over.
    done: Option<Stop>,
    refined: u32,
}

impl Search {
    pub fn new(plan: SearchPlan) -> Search {
        Search {
            plan,
            steps: Vec::new(),
            climb_stop: None,
            done: None,
            refined: 0,
        }
    }

    /// The next step to run (its phase and offered rate), or None when the search is over.
    pub fn next(&self) -> Option<(Phase, f64)> {
        if self.done.is_some() {
            return None;
        }
        if self.climb_stop.is_none() {
            let rate = match self.steps.last() {
                None => self.plan.start_rate,
                Some((_, last)) => last.target_per_second * self.plan.step_factor,
            };
            return Some((Phase::Climb, rate));
        }
        let (lo, hi) = self.bracket()?;
        Some((Phase::Refine, (lo * hi).sqrt()))
    }

    /// Takes the result of the step [`Search::next`] gave.
    pub fn record(&mut self, result: StepResult) {
        let Some((phase, _)) = self.next() else {
            return;
        };
        self.steps.push((phase, result));
        let target = result.target_per_second;
        match phase {
            Phase::Climb => {
                let stop = if result.partial {
                    Some(Stop::CutShort { target })
                } else if result.errors > 0 {
                    Some(Stop::Errors {
                        target,
                        errors: result.errors,
                    })
                } else if !result.kept_schedule {
                    Some(Stop::Schedule {
                        target,
                        fraction: if target > 0.0 {
                            result.achieved_per_second / target
                        } else {
                            0.0
                        },
                    })
                } else if result.p99_us > self.plan.p99_ceiling_us {
                    Some(Stop::Ceiling {
                        target,
                        p99_us: result.p99_us,
                    })
                } else if target * self.plan.step_factor > self.plan.max_rate {
                    Some(Stop::MaxRate)
                } else {
                    None
                };
                if let Some(stop) = stop {
                    self.climb_stop = Some(stop);
                }
            }
            Phase::Refine => self.refined += 1,
        }
        if self.steps.len() as u32 >= self.plan.max_steps {
            self.done = Some(self.climb_stop.clone().unwrap_or(Stop::MaxSteps));
            if self.climb_stop.is_none() {
                self.climb_stop = Some(Stop::MaxSteps);
            }
            return;
        }
        if let Some(stop) = &self.climb_stop {
            let refine_more = self.refined < self.plan.refine_steps
                && self
                    .bracket()
                    .is_some_and(|(lo, hi)| hi / lo > NARROWEST_BRACKET);
            if !refine_more {
                self.done = Some(stop.clone());
            }
        }
    }

    /// The highest offered rate within the SLO and the lowest offered rate above it that is not:
    /// where the knee lies. None when there is no such pair.
    fn bracket(&self) -> Option<(f64, f64)> {
        let slo = self.plan.slo_p99_us;
        let lo = self
            .steps
            .iter()
            .filter(|(_, s)| s.within_slo(slo))
            .map(|(_, s)| s.target_per_second)
            .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))))?;
        let hi = self
            .steps
            .iter()
            .filter(|(_, s)| !s.within_slo(slo) && s.target_per_second > lo)
            .map(|(_, s)| s.target_per_second)
            .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.min(r))))?;
        Some((lo, hi))
    }

    /// Why the search ended; None while it goes on.
    pub fn stopped(&self) -> Option<&Stop> {
        self.done.as_ref()
    }

    pub fn steps(&self) -> usize {
        self.steps.len()
    }
}

/// A mode's capacity read from its steps (in the order run): the highest achieved rate of a step
/// within the SLO (its index), and the knee: that step and the step of the lowest offered rate
/// above it that is not within the SLO (None when no step passed the SLO above it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    pub per_second: f64,
    pub step: usize,
    pub first_past: Option<usize>,
}

/// The capacity of one mode from its steps; None when no step was within the SLO.
pub fn capacity(steps: &[StepResult], slo_p99_us: f64) -> Option<Capacity> {
    let (step, best) = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.within_slo(slo_p99_us))
        .max_by(|a, b| a.1.achieved_per_second.total_cmp(&b.1.achieved_per_second))?;
    let first_past = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.within_slo(slo_p99_us) && s.target_per_second > best.target_per_second)
        .min_by(|a, b| a.1.target_per_second.total_cmp(&b.1.target_per_second))
        .map(|(i, _)| i);
    Some(Capacity {
        per_second: best.achieved_per_second,
        step,
        first_past,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> SearchPlan {
        SearchPlan {
            start_rate: 1000.0,
            step_factor: 2.0,
            refine_steps: 4,
            max_steps: 24,
            max_rate: 10_000_000.0,
            slo_p99_us: 1000.0,
            p99_ceiling_us: 10_000.0,
        }
    }

    /// A synthetic server that carries `capacity` req/s: below it p99 is 100 µs rising to 900 µs
    /// at the capacity; past it the schedule is kept up to 10 % more (p99 over the SLO), then
    /// broken.
    fn server(capacity: f64) -> impl Fn(f64) -> StepResult {
        move |target| {
            let load = target / capacity;
            let achieved = if load <= 1.1 { target } else { capacity * 1.05 };
            StepResult {
                target_per_second: target,
                achieved_per_second: achieved,
                kept_schedule: achieved >= target * 0.99,
                p99_us: if load <= 1.0 {
                    100.0 + 800.0 * load
                } else {
                    5000.0 * load
                },
                requests: (achieved * 2.0) as u64,
                errors: 0,
                partial: false,
            }
        }
    }

    fn drive(plan: SearchPlan, step: impl Fn(f64) -> StepResult) -> (Search, Vec<(Phase, f64)>) {
        let mut search = Search::new(plan);
        let mut asked = Vec::new();
        while let Some((phase, rate)) = search.next() {
            asked.push((phase, rate));
            search.record(step(rate));
            assert!(asked.len() <= plan.max_steps as usize, "unbounded search");
        }
        (search, asked)
    }

    #[test]
    fn the_climb_doubles_then_bisection_closes_on_the_knee() {
        let (search, asked) = drive(plan(), server(100_000.0));
        let climb: Vec<f64> = asked
            .iter()
            .filter(|(p, _)| *p == Phase::Climb)
            .map(|(_, r)| *r)
            .collect();
        // 1k .. 64k are within; 128k is past (p99 6.4 ms, under the ceiling, schedule broken).
        assert_eq!(climb, [1e3, 2e3, 4e3, 8e3, 16e3, 32e3, 64e3, 128e3]);
        assert!(matches!(
            search.stopped(),
            Some(Stop::Schedule { target, .. }) if *target == 128e3
        ));
        let refine: Vec<f64> = asked
            .iter()
            .filter(|(p, _)| *p == Phase::Refine)
            .map(|(_, r)| *r)
            .collect();
        assert_eq!(refine.len(), 4);
        assert!((refine[0] - (64e3f64 * 128e3).sqrt()).abs() < 1e-6);
        // Every refinement lies inside the bracket of the one before.
        let results: Vec<StepResult> = asked.iter().map(|(_, r)| server(100_000.0)(*r)).collect();
        let cap = capacity(&results, 1000.0).unwrap();
        assert!(
            cap.per_second <= 100_000.0 && cap.per_second > 90_000.0,
            "{cap:?}"
        );
        let past = results[cap.first_past.unwrap()];
        assert!(!past.within_slo(1000.0));
        assert!(past.target_per_second > results[cap.step].target_per_second);
    }

    #[test]
    fn climbing_goes_on_past_the_slo_until_the_ceiling_or_the_schedule() {
        // p99 grows smoothly with the rate and the schedule is always kept: the climb stops at
        // the ceiling, not at the SLO, so the chart shows the curve beyond it.
        let step = |target: f64| StepResult {
            target_per_second: target,
            achieved_per_second: target,
            kept_schedule: true,
            p99_us: target / 10.0,
            requests: 100,
            errors: 0,
            partial: false,
        };
        let (search, asked) = drive(plan(), step);
        let last_climb = asked
            .iter()
            .filter(|(p, _)| *p == Phase::Climb)
            .map(|(_, r)| *r)
            .next_back()
            .unwrap();
        assert_eq!(
            last_climb, 128e3,
            "16k is past the SLO, 128k past the ceiling"
        );
        assert!(matches!(search.stopped(), Some(Stop::Ceiling { .. })));
        let results: Vec<StepResult> = asked.iter().map(|(_, r)| step(*r)).collect();
        let cap = capacity(&results, 1000.0).unwrap();
        assert!(
            cap.per_second <= 10_000.0 && cap.per_second >= 8_000.0,
            "{cap:?}"
        );
    }

    #[test]
    fn errors_stop_a_mode_and_a_step_with_errors_is_not_capacity() {
        let step = |target: f64| StepResult {
            target_per_second: target,
            achieved_per_second: target,
            kept_schedule: true,
            p99_us: 50.0,
            requests: 100,
            errors: u64::from(target >= 4000.0),
            partial: false,
        };
        let (search, asked) = drive(plan(), step);
        assert!(matches!(search.stopped(), Some(Stop::Errors { .. })));
        let results: Vec<StepResult> = asked.iter().map(|(_, r)| step(*r)).collect();
        let cap = capacity(&results, 1000.0).unwrap();
        assert!(cap.per_second < 4000.0, "{cap:?}");
    }

    #[test]
    fn no_step_within_the_slo_means_no_capacity() {
        let (search, asked) = drive(plan(), server(500.0));
        assert_eq!(asked.len(), 1, "{asked:?}");
        assert!(search.stopped().is_some());
        assert_eq!(capacity(&[server(500.0)(1000.0)], 1000.0), None);
    }

    #[test]
    fn max_steps_and_max_rate_bound_the_search() {
        let easy = server(1e12);
        let (search, asked) = drive(
            SearchPlan {
                max_steps: 5,
                ..plan()
            },
            &easy,
        );
        assert_eq!(asked.len(), 5);
        assert_eq!(search.stopped(), Some(&Stop::MaxSteps));
        let (search, asked) = drive(
            SearchPlan {
                max_rate: 10_000.0,
                ..plan()
            },
            &easy,
        );
        assert_eq!(asked.last().unwrap().1, 8000.0);
        assert_eq!(search.stopped(), Some(&Stop::MaxRate));
    }

    #[test]
    fn capacity_is_the_highest_achieved_rate_within_the_slo_not_the_last() {
        let s = |target: f64, achieved: f64, p99_us: f64| StepResult {
            target_per_second: target,
            achieved_per_second: achieved,
            kept_schedule: achieved >= target * 0.99,
            p99_us,
            requests: 10,
            errors: 0,
            partial: false,
        };
        let steps = [
            s(1000.0, 1000.0, 100.0),
            s(4000.0, 3990.0, 400.0),
            s(8000.0, 7000.0, 300.0),  // behind schedule: not within
            s(5600.0, 5600.0, 1200.0), // p99 over the SLO
            s(4700.0, 4690.0, 900.0),
            s(5100.0, 5100.0, 950.0),
        ];
        let cap = capacity(&steps, 1000.0).unwrap();
        assert_eq!(cap.step, 5);
        assert_eq!(cap.per_second, 5100.0);
        assert_eq!(cap.first_past, Some(3));
    }

    #[test]
    fn bad_plans_are_refused() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            search: SearchArgs,
        }
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
                .unwrap()
                .search
                .plan()
        };
        let p = parse(&[]).unwrap();
        assert_eq!(p.slo_p99_us, 1000.0);
        assert_eq!(p.p99_ceiling_us, 10_000.0);
        assert!(parse(&["--step-factor", "1"]).is_err());
        assert!(parse(&["--start-rate", "0"]).is_err());
        assert!(parse(&["--slo-p99", "2ms", "--p99-ceiling", "1ms"]).is_err());
        assert!(parse(&["--start-rate", "100", "--max-rate", "50"]).is_err());
    }
}
