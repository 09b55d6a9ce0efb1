//! The bounded handshake step: hellos received this iteration are answered after the
//! established connections' records (the crypto batch) and their sends, at most
//! [`HANDSHAKES_PER_TURN`] per iteration. The rest wait, in arrival order, for the next
//! iterations, which then do not sleep. A flood of hellos thus adds at most
//! `HANDSHAKES_PER_TURN` handshakes (about 90 us each) to any iteration's work instead of
//! all of them.
//!
//! TLS connections share the list and the budget: a whole ClientHello (parsed by rustls's
//! `Acceptor`, no cryptography) waits here, and the step runs the server's half of the TLS 1.3
//! handshake for it (`tls.rs`, `answer_tls_hello`: X25519 and the ECDSA signature).
//!
//! With `--handshake-rate-per-ip`, each hello's source address must have a token in the
//! worker's [`HandshakeLimiter`] first; one without is closed unanswered, counted as
//! `handshake_rate_limited`, and costs the budget nothing (no handshake was computed).

use std::io;

use stcp_engine::Driver;
use stcp_proto::Mode;

use super::{conn::Life, ingest::answer_hello, Worker};
use crate::{
    engine::HANDSHAKES_PER_TURN, errors::ErrorKind, handshake_limit::HandshakeLimiter,
    stats::WorkerCounters,
};

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
            if !c.is(gen) || c.life != Life::Open || !c.hello_ready() {
                continue;
            }
            if let Some(limiter) = self.limiter.as_mut() {
                if let Err((kind, why)) = admit(limiter, c, self.now) {
                    self.fail(d, slot, kind, &why);
                    self.settle(d, slot)?;
                    continue;
                }
            }
            done += 1;
            if c.mode == Mode::Tls {
                self.answer_tls_hello(d, slot)?;
                self.settle(d, slot)?;
                continue;
            }
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

/// Whether the hello on `c` may be answered under the per-address limit: a source without a
/// token is refused, and so is a socket whose peer address is gone (it could not receive the
/// reply, and answering it would let a client dodge the limit by resetting).
fn admit(
    limiter: &mut HandshakeLimiter,
    c: &super::conn::Conn,
    now: std::time::Instant,
) -> Result<(), (ErrorKind, &'static str)> {
    let peer =
        c.fd.as_ref()
            .and_then(|fd| socket2::SockRef::from(fd).peer_addr().ok())
            .and_then(|a| a.as_socket());
    match peer {
        Some(addr) if limiter.allow(addr.ip(), now) => Ok(()),
        Some(_) => Err((
            ErrorKind::HandshakeRateLimited,
            "source address over --handshake-rate-per-ip",
        )),
        None => Err((
            ErrorKind::Io,
            "peer address unavailable before the handshake",
        )),
    }
}
