//! The bounded handshake step: hellos received this iteration are answered after the
//! established connections' records (the crypto batch) and their sends, at most
//! [`HANDSHAKES_PER_TURN`] per iteration. The rest wait, in arrival order, for the next
//! iterations, which then do not sleep. A flood of hellos thus adds at most
//! `HANDSHAKES_PER_TURN` handshakes (about 90 us each) to any iteration's work instead of
//! all of them.

use std::io;

use stcp_engine::Driver;

use super::{conn::Life, ingest::answer_hello, Worker};
use crate::{errors::ErrorKind, stats::WorkerCounters};

/// Most server handshake halves computed per loop iteration.
pub(super) const HANDSHAKES_PER_TURN: usize = 4;

impl Worker {
    /// Answers up to [`HANDSHAKES_PER_TURN`] held hellos, oldest first, and queues the replies.
    /// Hellos left for later are counted once as deferred.
    pub(super) fn answer_hellos(&mut self, d: &mut Driver) -> io::Result<()> {
        let mut done = 0;
        while done < HANDSHAKES_PER_TURN {
            let Some((slot, gen, _)) = self.hellos.pop_front() else {
                break;
            };
            let slot = slot as usize;
            let c = &mut self.conns[slot];
            if !c.is(gen) || c.life != Life::Open || c.hello.is_none() {
                continue;
            }
            done += 1;
            match answer_hello(c, &mut self.pool, &self.shared.proto) {
                Ok(()) => {
                    WorkerCounters::add(&self.counters().handshakes, 1);
                    self.queued(d, slot);
                }
                Err(e) => self.fail(d, slot, ErrorKind::of(&e), &e),
            }
            self.settle(d, slot)?;
        }
        let mut newly_deferred = 0;
        for entry in self.hellos.iter_mut().filter(|e| !e.2) {
            entry.2 = true;
            newly_deferred += 1;
        }
        if newly_deferred > 0 {
            WorkerCounters::add(&self.counters().handshakes_deferred, newly_deferred);
        }
        Ok(())
    }
}
