//! Stopping a worker: stop accepting, end every connection gracefully (STCP: an authenticated
//! Close record, then FIN), and at the end hand whatever is left to the driver's shutdown, which
//! frees it only once the kernel holds none of it.

use std::{io, time::Duration};

use stcp_engine::{ops, Drained, Driver, Op, Token};
use stcp_proto::{Framing, Mode};

use super::{conn::Chunk, conn::Life, Worker};
use crate::{echo::push_close_record, stats::WorkerCounters};

/// How long the kernel gets to give back operations cancelled at exit before their buffers are
/// leaked instead of freed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

impl Worker {
    /// Stop accepting; close every connection gracefully (STCP: an authenticated close record).
    pub(super) fn begin_stop(&mut self, d: &mut Driver) -> io::Result<()> {
        self.stop_deadline = Some(self.now + self.shared.config.close_grace);
        for i in 0..self.listeners.len() {
            if self.listeners[i].armed {
                let target = Token::new(Op::Accept, i as u32, 0);
                d.push(&ops::cancel(
                    target,
                    Token::new(Op::Cancel, u32::MAX - 1, 0),
                ))?;
            } else {
                self.close_listener(i);
            }
        }
        for slot in 0..self.conns.len() {
            let c = &self.conns[slot];
            if c.fd.is_none() || c.life != Life::Open {
                continue;
            }
            self.close_gracefully(d, slot);
            self.settle(d, slot)?;
        }
        self.flush_sends(d)
    }

    /// Ends an open connection from the server's side (stop, idle timeout): STCP queues an
    /// authenticated Close record after the echoes already queued, then FIN; TLS a close_notify;
    /// TCP mode sends FIN after them; a connection still in its handshake is aborted. In the middle of a frame no
    /// Close can be sealed (the peer would take it as a protocol error), so the stream is cut,
    /// which the peer sees as truncation.
    pub(super) fn close_gracefully(&mut self, d: &mut Driver, slot: usize) {
        let c = &mut self.conns[slot];
        if c.mode == Mode::Tls {
            self.close_tls(d, slot);
            return;
        }
        match c.framing() {
            Framing::Handshake => self.abort(d, slot),
            Framing::Frames => self.drain(d, slot),
            Framing::Records => {
                let mut rec = self.pool.get();
                let sealed = match c.crypto.as_mut() {
                    Some(k) => push_close_record(&mut k.sealer, &mut rec).is_ok(),
                    None => false,
                };
                if sealed {
                    let chunk = Chunk::Heap { buf: rec, sent: 0 };
                    c.held.add(&chunk);
                    c.sendq.push_back(chunk);
                    self.queued(d, slot);
                } else {
                    self.pool.put(rec);
                }
                self.drain(d, slot);
            }
        }
    }

    /// Last step at exit: shut down every socket still open and let the driver cancel and reap
    /// what is in flight. The connection slab (sockets, send buffers, gather headers) goes to the
    /// driver's shutdown, which frees it only when nothing of it is in the kernel any more.
    pub(super) fn finish(&mut self, d: &mut Driver) {
        for c in &self.conns {
            if let Some(fd) = c.raw_fd() {
                // SAFETY: plain syscall on a descriptor this connection owns.
                unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            }
        }
        let open = self.conns.iter().filter(|c| c.fd.is_some()).count();
        for i in 0..self.listeners.len() {
            self.close_listener(i);
        }
        let conns = std::mem::take(&mut self.conns);
        if d.shutdown(conns, EXIT_GRACE) != Drained::Complete {
            tracing::warn!(
                worker = self.index,
                "some io_uring operations did not finish at exit"
            );
        }
        for _ in 0..open {
            self.shared.release();
        }
        WorkerCounters::add(&self.counters().closed, open as u64);
        self.open = 0;
        self.publish_buffer_gauges();
    }
}
