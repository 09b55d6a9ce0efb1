//! Sending echoes and backpressure: one send (or gathering sendmsg) per connection in flight,
//! reading paused while too much waits to be sent, and ring buffers copied out of slow readers'
//! queues when the buffer ring runs low.

use std::io;

use stcp_engine::{ops, Driver, Op, Token};

use super::{
    conn::{Chunk, Life, Recv, Send, MAX_IOV},
    lifecycle::release,
    Worker,
};
use crate::{errors::ErrorKind, stats::WorkerCounters};

impl Worker {
    /// After chunks were queued on `slot`: schedule a send, apply backpressure (reading stops
    /// while the connection holds more than `conn_buffer_limit` bytes of buffers).
    pub(super) fn queued(&mut self, d: &mut Driver, slot: usize) {
        let limit = self.shared.config.conn_buffer_limit;
        let c = &mut self.conns[slot];
        if !c.sendq.is_empty() && !c.in_flush {
            c.in_flush = true;
            self.flush.push(slot as u32);
        }
        if c.life != Life::Open || c.held_bytes() <= limit {
            return;
        }
        match c.recv {
            Recv::Armed => {
                c.recv = Recv::Paused { armed: true };
                c.cancels_inflight += 1;
                let target = Token::new(Op::Recv, slot as u32, c.gen);
                let sqe = ops::cancel(target, Token::new(Op::Cancel, slot as u32, c.gen));
                // A full SQ is submitted by push; a failing ring is reported by the next wait.
                let _ = d.push(&sqe);
            }
            Recv::Idle | Recv::Starved => c.recv = Recv::Paused { armed: false },
            Recv::Paused { .. } | Recv::Eof => {}
        }
    }

    /// Queues one send per connection that has echoes waiting and none in flight: a plain send
    /// for one chunk, a gathering sendmsg for several.
    pub(super) fn flush_sends(&mut self, d: &mut Driver) -> io::Result<()> {
        for i in 0..self.flush.len() {
            let slot = self.flush[i] as usize;
            let c = &mut self.conns[slot];
            c.in_flush = false;
            let Some(fd) = c.raw_fd() else {
                continue;
            };
            if c.send != Send::Idle || c.life == Life::Aborting || c.sendq.is_empty() {
                continue;
            }
            let token = Token::new(Op::Send, slot as u32, c.gen);
            let g = &mut *c.gather;
            let mut chunks = 0;
            for chunk in c.sendq.iter().take(MAX_IOV) {
                let (ptr, len) = chunk.unsent_ptr(d.buffers());
                g.iov[chunks] = libc::iovec {
                    iov_base: ptr as *mut libc::c_void,
                    iov_len: len,
                };
                chunks += 1;
            }
            c.send = Send::InFlight { chunks };
            let sqe = if chunks == 1 {
                let len = g.iov[0].iov_len.min(u32::MAX as usize) as u32;
                // SAFETY: the chunk stays at the front of `sendq`, unmodified, until this send's
                // completion is handled in `on_send` (aborts keep in-flight chunks too, and a
                // shutdown with sends still in the kernel leaks the slab instead of freeing it).
                // A heap chunk's bytes do not move when its Vec value moves; a ring chunk's buffer
                // is owned by the connection (not given back) and the driver keeps the ring memory
                // until nothing is in flight.
                unsafe { ops::send(fd, g.iov[0].iov_base as *const u8, len, token) }
            } else {
                g.msg.msg_iov = g.iov.as_mut_ptr();
                g.msg.msg_iovlen = chunks as _;
                // SAFETY: as for the plain send, for each of the first `chunks` chunks; the
                // msghdr and iovecs live in the connection's boxed `Gather`, which is neither
                // moved nor rewritten while the send is in flight.
                unsafe { ops::sendmsg(fd, &g.msg, token) }
            };
            d.push(&sqe)?;
        }
        self.flush.clear();
        Ok(())
    }

    pub(super) fn on_send(&mut self, d: &mut Driver, slot: usize, res: i32) -> io::Result<()> {
        let c = &mut self.conns[slot];
        c.send = Send::Idle;
        if res < 0 {
            match c.life {
                Life::Open => {
                    self.fail(d, slot, ErrorKind::Io, &io::Error::from_raw_os_error(-res))
                }
                // The connection's end was already decided (and counted, if it was a failure
                // such as an idle timeout): a peer that resets it now is not a second failure.
                Life::Draining => self.abort(d, slot),
                Life::Aborting => {}
            }
            return Ok(());
        }
        let n = res as usize;
        WorkerCounters::add(&self.counters().bytes_out, n as u64);
        let c = &mut self.conns[slot];
        c.last_active = self.now;
        let mut left = n;
        while left > 0 {
            let Some(front) = c.sendq.front_mut() else {
                break;
            };
            let take = left.min(front.unsent());
            front.advance(take);
            left -= take;
            if front.unsent() == 0 {
                if let Some(done) = c.sendq.pop_front() {
                    release(done, d, &mut self.pool, &mut c.held);
                }
            }
        }
        if !c.sendq.is_empty() && !c.in_flush && c.life != Life::Aborting {
            c.in_flush = true;
            self.flush.push(slot as u32);
        }
        let limit = self.shared.config.conn_buffer_limit;
        let ring_buf_size = d.buffers().buf_size();
        if let Recv::Paused { armed } = c.recv {
            if c.may_receive(ring_buf_size, limit) {
                c.recv = if armed { Recv::Armed } else { Recv::Idle };
                if c.life == Life::Open && c.recv == Recv::Idle {
                    self.arm_recv(d, slot)?;
                }
            }
        }
        Ok(())
    }

    /// Copies queued ring chunks that are not in flight to heap buffers, returning their ring
    /// buffers: under ring pressure, connections whose echoes wait (slow readers) must not hold
    /// the buffers every other connection receives into.
    pub(super) fn compact(&mut self, d: &mut Driver, slot: usize) {
        let c = &mut self.conns[slot];
        for i in c.chunks_in_flight()..c.sendq.len() {
            if !c.sendq[i].is_ring() {
                continue;
            }
            let mut copy = self.pool.get();
            copy.extend_from_slice(c.sendq[i].unsent_bytes(d.buffers()));
            let copy = Chunk::Heap { buf: copy, sent: 0 };
            c.held.add(&copy);
            let old = std::mem::replace(&mut c.sendq[i], copy);
            release(old, d, &mut self.pool, &mut c.held);
        }
    }
}
