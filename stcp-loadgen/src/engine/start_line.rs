//! The start line: client threads report ready once their connections are set up, and the
//! coordinator publishes one load start time for all of them (so every handshake is done before
//! the measured interval, on every thread). With `--start-at` the load start lies ahead (the
//! warm-up's length before the start time): the threads hold their set-up connections until then.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::StopHandle;

/// What the coordinating thread and all client threads share: the start line and the stop flag.
#[derive(Default)]
pub(super) struct StartLine {
    /// Client threads that have finished setting up their connections.
    pub ready: AtomicUsize,
    /// Published by the coordinator once every thread is ready: when the load starts.
    pub load_start: OnceLock<Instant>,
    /// Set by the coordinator to end the run early (its watchdog).
    pub stop: AtomicBool,
}

impl StartLine {
    /// Marks this thread ready, waits for the load start to be published and then for the load
    /// start itself (None: the run was stopped first).
    pub(super) fn wait_for_start(&self, stop: &StopHandle) -> Option<Instant> {
        self.ready.fetch_add(1, Ordering::SeqCst);
        let stopped = || stop() || self.stop.load(Ordering::Relaxed);
        let at = loop {
            if let Some(at) = self.load_start.get() {
                break *at;
            }
            if stopped() {
                return None;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        // A start ahead: sleep towards it, looking at the stop flags at least every 50 ms.
        loop {
            let now = Instant::now();
            if now >= at {
                return Some(at);
            }
            if stopped() {
                return None;
            }
            std::thread::sleep((at - now).min(Duration::from_millis(50)));
        }
    }
}
