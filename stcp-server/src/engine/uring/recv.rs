//! Receive completions: bytes into records or cut-through TCP bytes ([`super::ingest`]), the
//! client's FIN and how the stream ended (clean, or cut).

use std::io;

use stcp_engine::{Completion, Driver, Receive, RingBuf, Token};

use super::{
    conn::{Chunk, Conn, Life, Recv},
    ingest::ingest,
    Worker,
};
use stcp_proto::{Framing, Mode};

use crate::{errors::ErrorKind, ratelog, stats::WorkerCounters};

/// How a connection with room for at least one ring buffer's worth of bytes receives: a
/// multishot receive that delivers at most the bytes it still has room for under
/// `conn_buffer_limit` ([`Receive::Capped`]), so however the client writes the kernel never
/// hands it more, with one submission for many arrivals (a single receive per arrival measured
/// about a microsecond more server CPU per request at small frames). On a kernel without the
/// cap the driver arms a single receive: one buffer, the same bound. What a connection holds
/// in ring buffers is counted in bytes received; a short read pins a whole buffer for a few
/// bytes, which the ring's own size bounds and [`Worker::compact`] returns under pressure.
pub(super) fn receive(c: &Conn, limit: usize) -> Receive {
    let room = limit.saturating_sub(c.held_bytes());
    Receive::Capped {
        bytes: u32::try_from(room).unwrap_or(u32::MAX),
    }
}

impl Worker {
    /// Arms the connection's receive if it has room for one more ring buffer under
    /// `conn_buffer_limit`; otherwise reading pauses until sends free enough.
    pub(super) fn arm_recv(&mut self, d: &mut Driver, slot: usize) -> io::Result<()> {
        let limit = self.shared.config.conn_buffer_limit;
        let ring_buf_size = d.buffers().buf_size();
        let c = &mut self.conns[slot];
        let Some(fd) = c.raw_fd() else {
            return Ok(());
        };
        if c.recv.in_kernel() {
            return Ok(());
        }
        if !c.may_receive(ring_buf_size, limit) {
            c.recv = Recv::Paused { armed: false };
            return Ok(());
        }
        let receive = receive(c, limit);
        c.recv = Recv::Armed;
        let token = Token::new(stcp_engine::Op::Recv, slot as u32, c.gen);
        d.arm_receive(fd, token, receive)
    }

    pub(super) fn on_recv(
        &mut self,
        d: &mut Driver,
        slot: usize,
        cqe: Completion,
    ) -> io::Result<()> {
        let res = cqe.result;
        if !cqe.more() {
            let c = &mut self.conns[slot];
            c.recv = match c.recv {
                Recv::Paused { .. } => Recv::Paused { armed: false },
                Recv::Armed => Recv::Idle,
                other => other,
            };
        }
        if res > 0 {
            let Some(buf) = cqe.buf else {
                // A completion without a valid buffer: the kernel broke the protocol.
                self.fail(
                    d,
                    slot,
                    ErrorKind::Io,
                    &"receive completion without a buffer",
                );
                return Ok(());
            };
            WorkerCounters::add(&self.counters().bytes_in, res as u64);
            self.conns[slot].last_active = self.now;
            if self.conns[slot].life == Life::Open {
                if self.conns[slot].mode == Mode::Tls {
                    self.on_tls_data(d, slot, buf);
                } else {
                    self.on_data(d, slot, buf);
                }
            } else {
                d.give_back(buf);
            }
        } else if res == 0 {
            self.on_eof(slot);
        } else if cqe.starved() {
            // The driver queued it; it offers the receive back once buffers return.
            WorkerCounters::add(&self.counters().ring_starved, 1);
            let c = &mut self.conns[slot];
            if c.recv == Recv::Idle {
                c.recv = Recv::Starved;
            }
            return Ok(());
        } else if res != -libc::ECANCELED {
            match self.conns[slot].life {
                Life::Open => {
                    self.fail(d, slot, ErrorKind::Io, &io::Error::from_raw_os_error(-res))
                }
                // Already ending (and counted, if that was a failure): not a second failure.
                Life::Draining => self.abort(d, slot),
                Life::Aborting => {}
            }
        }
        let c = &self.conns[slot];
        if c.recv == Recv::Idle && c.life != Life::Aborting {
            self.arm_recv(d, slot)?;
        }
        Ok(())
    }

    fn on_data(&mut self, d: &mut Driver, slot: usize, buf: RingBuf) {
        let Worker {
            conns,
            pool,
            shared,
            ..
        } = self;
        let c = &mut conns[slot];
        let result = ingest(c, d.buffers().bytes(&buf), pool, &shared.proto);
        match result {
            Ok(r) => {
                if r.hello {
                    self.hellos
                        .push_back((slot as u32, self.conns[slot].gen, false));
                }
                if r.frames > 0 {
                    WorkerCounters::add(&self.counters().frames, r.frames);
                }
                let c = &mut self.conns[slot];
                if r.end > r.start {
                    let chunk = Chunk::Ring {
                        buf,
                        start: r.start as u32,
                        end: r.end as u32,
                        sent: 0,
                    };
                    c.held.add(&chunk);
                    match c.framing() {
                        Framing::Records => c.fresh.push_back(chunk),
                        _ => c.sendq.push_back(chunk),
                    }
                } else {
                    // Nothing to echo in place: the bytes worth keeping were copied.
                    d.give_back(buf);
                }
                let c = &mut self.conns[slot];
                if !c.fresh.is_empty() && !c.in_batch {
                    c.in_batch = true;
                    self.batch.push(slot as u32);
                }
                self.queued(d, slot);
            }
            Err(e) => {
                d.give_back(buf);
                self.fail(d, slot, ErrorKind::of(&e), &e);
            }
        }
    }

    /// The client's FIN arrived. Judged after this iteration's batch, which may still hold the
    /// client's close record.
    fn on_eof(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        c.recv = Recv::Eof;
        if c.life == Life::Open {
            self.eofs.push((slot as u32, c.gen));
        }
    }

    /// Clean end (TCP: between frames; STCP: after the client's close record) or truncation.
    pub(super) fn handle_eofs(&mut self, d: &mut Driver) -> io::Result<()> {
        for i in 0..self.eofs.len() {
            let (slot, gen) = self.eofs[i];
            let slot = slot as usize;
            if !self.conns[slot].is(gen) {
                continue;
            }
            self.judge_eof(d, slot);
            self.settle(d, slot)?;
        }
        self.eofs.clear();
        Ok(())
    }

    fn judge_eof(&mut self, d: &mut Driver, slot: usize) {
        let c = &mut self.conns[slot];
        if c.life != Life::Open {
            return;
        }
        // TLS: a clean end is the client's close_notify, which drains the connection when it
        // arrives; a FIN while still open is a cut stream.
        let tls = c.mode == Mode::Tls;
        let handshaking = if tls {
            !c.tls_established()
        } else {
            c.framing() == Framing::Handshake
        };
        let clean = match c.framing() {
            _ if tls => false,
            Framing::Frames => c.stream.at_boundary(),
            Framing::Records => {
                c.crypto.as_ref().is_some_and(|k| k.opener.peer_closed())
                    && c.decoder.buffered() == 0
            }
            Framing::Handshake => false,
        };
        if !clean {
            let what = if handshaking {
                "closed before the handshake"
            } else {
                "stream cut"
            };
            self.counters().error(ErrorKind::Truncated);
            ratelog::connection_failed(ErrorKind::Truncated, &what);
        }
        self.drain(d, slot);
    }
}
