//! A connection's life: accepted into a slot, failed (counted, logged, aborted), drained (FIN
//! after the last echo), settled and freed once the kernel holds nothing of it; the periodic
//! deadline tick; the buffer gauges.

use std::{
    io,
    os::fd::{FromRawFd, OwnedFd, RawFd},
};

use stcp_engine::{next_gen, ops, Driver, Op, Token};
use stcp_proto::Mode;

use super::{
    conn::{Chunk, Conn, Held, Life, Recv, Send, TlsState},
    pool::BufPool,
    Worker,
};
use crate::{errors::ErrorKind, ratelog, stats::WorkerCounters};

/// Draining connections watch for the client's FIN only while at least this fraction (1/N) of
/// the receive buffers is free; otherwise the drain deadline bounds the wait.
const DRAIN_RECV_FRACTION: usize = 8;
/// Under ring pressure (fewer than 1/N of the buffers free), queued ring chunks are copied out.
const PRESSURE_FRACTION: usize = 4;

impl Worker {
    pub(super) fn arm_accept(&mut self, d: &mut Driver, i: usize) -> io::Result<()> {
        let l = &mut self.listeners[i];
        if l.armed || l.closed {
            return Ok(());
        }
        l.armed = true;
        d.push(&ops::accept_multi(
            l.fd,
            Token::new(Op::Accept, i as u32, 0),
        ))
    }

    pub(super) fn on_accept(
        &mut self,
        d: &mut Driver,
        i: usize,
        res: i32,
        more: bool,
    ) -> io::Result<()> {
        if !more {
            self.listeners[i].armed = false;
        }
        if res >= 0 {
            // SAFETY: a successful accept's result is a new descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(res) };
            if self.stop_deadline.is_some() {
                drop(fd);
            } else if !self.shared.admit() {
                WorkerCounters::add(&self.counters().refused, 1);
                drop(fd);
            } else {
                self.open_conn(d, fd, self.listeners[i].mode)?;
            }
        } else if res != -libc::ECANCELED {
            self.counters().error(ErrorKind::Accept);
            ratelog::connection_failed(ErrorKind::Accept, &io::Error::from_raw_os_error(-res));
        }
        if !self.listeners[i].armed {
            if self.stop_deadline.is_some() {
                self.close_listener(i);
            } else if res >= 0 || res == -libc::ECANCELED {
                self.arm_accept(d, i)?;
            } // else: re-armed by the next tick, so a persistent error cannot spin
        }
        Ok(())
    }

    pub(super) fn close_listener(&mut self, i: usize) {
        let l = &mut self.listeners[i];
        if !l.closed {
            l.closed = true;
            // SAFETY: the listener's descriptor is owned by this worker and never used again.
            unsafe { libc::close(l.fd) };
        }
    }

    fn open_conn(&mut self, d: &mut Driver, fd: OwnedFd, mode: Mode) -> io::Result<()> {
        // Accepted sockets inherit TCP_NODELAY from the listener on Linux; set it anyway.
        set_nodelay(std::os::fd::AsRawFd::as_raw_fd(&fd));
        let slot = match self.free.pop() {
            Some(s) => s as usize,
            None => {
                self.conns.push(Conn::vacant(self.now));
                self.conns.len() - 1
            }
        };
        let deadline = self.now + self.shared.config.handshake_timeout;
        self.conns[slot].open(fd, mode, self.shared.config.max_frame, self.now, deadline);
        self.open += 1;
        WorkerCounters::add(&self.counters().accepted, 1);
        self.arm_recv(d, slot)
    }

    /// Counts and logs a failure and aborts the connection.
    pub(super) fn fail(
        &mut self,
        d: &mut Driver,
        slot: usize,
        kind: ErrorKind,
        detail: &dyn std::fmt::Display,
    ) {
        self.counters().error(kind);
        ratelog::connection_failed(kind, detail);
        self.abort(d, slot);
    }

    /// Stops echoing: queued echoes are flushed, then FIN, then the client's FIN is awaited.
    pub(super) fn drain(&mut self, d: &mut Driver, slot: usize) {
        let grace = self.shared.config.close_grace;
        let c = &mut self.conns[slot];
        if c.life != Life::Open {
            return;
        }
        c.life = Life::Draining;
        c.deadline = Some(self.now + grace);
        c.tls = TlsState::None;
        if let Some(hello) = c.hello.take() {
            self.pool.put(hello);
        }
        self.pool.put(c.decoder.clear());
        while let Some(ch) = c.fresh.pop_front() {
            release(ch, d, &mut self.pool, &mut c.held);
        }
    }

    /// Shuts the socket down both ways and drops everything not in the kernel's hands.
    pub(super) fn abort(&mut self, d: &mut Driver, slot: usize) {
        let c = &mut self.conns[slot];
        let Some(fd) = c.raw_fd() else {
            return;
        };
        if c.life == Life::Aborting {
            return;
        }
        c.life = Life::Aborting;
        c.tls = TlsState::None;
        // SAFETY: plain syscall on a descriptor this connection owns.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        if let Some(hello) = c.hello.take() {
            self.pool.put(hello);
        }
        self.pool.put(c.decoder.clear());
        while let Some(ch) = c.fresh.pop_front() {
            release(ch, d, &mut self.pool, &mut c.held);
        }
        let keep_front = c.chunks_in_flight();
        while c.sendq.len() > keep_front {
            if let Some(ch) = c.sendq.pop_back() {
                release(ch, d, &mut self.pool, &mut c.held);
            }
        }
        if c.recv.in_kernel() || matches!(c.send, Send::InFlight { .. }) {
            c.cancels_inflight += 1;
            let _ = d.push(&ops::cancel_fd(
                fd,
                Token::new(Op::Cancel, slot as u32, c.gen),
            ));
        }
    }

    /// Moves a draining or aborting connection on, and frees it when nothing is left in flight.
    pub(super) fn settle(&mut self, d: &mut Driver, slot: usize) -> io::Result<()> {
        let c = &mut self.conns[slot];
        let Some(fd) = c.raw_fd() else {
            return Ok(());
        };
        match c.life {
            Life::Open => return Ok(()),
            Life::Draining => {
                if !c.sendq.is_empty() || matches!(c.send, Send::InFlight { .. }) {
                    return Ok(());
                }
                if c.send == Send::Idle {
                    c.send = Send::Shut;
                    // SAFETY: plain syscall on a descriptor this connection owns.
                    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
                }
                match c.recv {
                    Recv::Eof => {}
                    Recv::Idle | Recv::Paused { armed: false } => {
                        // Watch for the client's FIN; with the ring nearly dry the driver's
                        // starved queue re-arms instead, and the drain deadline bounds the wait.
                        if !d.buffers_below(DRAIN_RECV_FRACTION) {
                            c.recv = Recv::Idle;
                            self.arm_recv(d, slot)?;
                        }
                        return Ok(());
                    }
                    Recv::Armed | Recv::Paused { armed: true } | Recv::Starved => return Ok(()),
                }
                if !c.idle_in_kernel() {
                    return Ok(());
                }
            }
            Life::Aborting => {
                if !c.idle_in_kernel() {
                    return Ok(());
                }
            }
        }
        self.free_conn(d, slot);
        Ok(())
    }

    fn free_conn(&mut self, d: &mut Driver, slot: usize) {
        let c = &mut self.conns[slot];
        if c.fd.take().is_none() {
            return;
        }
        c.gen = next_gen(c.gen);
        c.crypto = None;
        c.tls = TlsState::None;
        if let Some(hello) = c.hello.take() {
            self.pool.put(hello);
        }
        self.pool.put(c.decoder.clear());
        while let Some(ch) = c.fresh.pop_front() {
            release(ch, d, &mut self.pool, &mut c.held);
        }
        while let Some(ch) = c.sendq.pop_front() {
            release(ch, d, &mut self.pool, &mut c.held);
        }
        self.free.push(slot as u32);
        self.open -= 1;
        self.shared.release();
        WorkerCounters::add(&self.counters().closed, 1);
    }

    /// Handshake, idle and drain deadlines; accept re-arming after errors; ring pressure.
    pub(super) fn tick(&mut self, d: &mut Driver) -> io::Result<()> {
        let idle = self.shared.config.idle_timeout;
        let pressure = d.buffers_below(PRESSURE_FRACTION);
        self.publish_buffer_gauges();
        for slot in 0..self.conns.len() {
            let c = &self.conns[slot];
            if c.fd.is_none() {
                continue;
            }
            if pressure && c.held.ring > 0 && c.life != Life::Aborting {
                self.compact(d, slot);
            }
            let c = &self.conns[slot];
            match c.life {
                Life::Open => {
                    if c.deadline.is_some_and(|t| self.now >= t) {
                        self.fail(
                            d,
                            slot,
                            ErrorKind::HandshakeTimeout,
                            &"no handshake within the timeout",
                        );
                    } else if idle.is_some_and(|t| self.now.duration_since(c.last_active) >= t) {
                        // Counted and logged like a failure, but closed as the server's own end:
                        // with a Close record (STCP), so the client sees a clean end.
                        self.counters().error(ErrorKind::IdleTimeout);
                        ratelog::connection_failed(ErrorKind::IdleTimeout, &"idle for too long");
                        self.close_gracefully(d, slot);
                    }
                }
                Life::Draining => {
                    if c.deadline.is_some_and(|t| self.now >= t) {
                        self.abort(d, slot);
                    }
                }
                Life::Aborting => {}
            }
            self.settle(d, slot)?;
        }
        if self.stop_deadline.is_none() {
            for i in 0..self.listeners.len() {
                self.arm_accept(d, i)?;
            }
        }
        Ok(())
    }

    /// Stores the buffer gauges: memory held by open connections, and idle pooled capacity.
    pub(super) fn publish_buffer_gauges(&self) {
        let held: usize = self
            .conns
            .iter()
            .filter(|c| c.fd.is_some())
            .map(|c| c.held_bytes())
            .sum();
        let counters = self.counters();
        WorkerCounters::set(&counters.conn_buffer_bytes, held as u64);
        WorkerCounters::set(&counters.pool_idle_bytes, self.pool.idle_bytes() as u64);
    }
}

/// Returns a chunk's memory: a ring buffer to the kernel, a heap buffer to the pool.
pub(super) fn release(chunk: Chunk, d: &mut Driver, pool: &mut BufPool, held: &mut Held) {
    held.remove(&chunk);
    match chunk {
        Chunk::Ring { buf, .. } => d.give_back(buf),
        Chunk::Heap { buf, .. } => pool.put(buf),
    }
}

fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: `one` outlives the call; the option value is a c_int as TCP_NODELAY expects.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
