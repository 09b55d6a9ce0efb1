//! The crypto batch: every STCP chunk received in one loop iteration, over all connections, is
//! opened and resealed in place, in rounds of at most one chunk per connection (a connection's
//! ciphers are used in order). The replies go to the kernel together after the batch: handing
//! them over every 32 KiB while the rest was crypted measured 0.85-0.95 of the requests/s and
//! up to a fifth more server CPU per request (more, smaller sends), so the server does not.

use std::io;

use stcp_engine::{BufRing, Driver};
use stcp_proto::Error;

use super::{
    conn::{Chunk, Life},
    lifecycle::release,
    Worker,
};
use crate::{echo::Crypto, errors::ErrorKind, stats::WorkerCounters};

/// Ciphers and one chunk of one connection, moved out of the slab for the batch.
pub(super) struct Job {
    slot: u32,
    crypto: Box<Crypto>,
    chunk: Chunk,
    /// Frames the connection had completed before this chunk.
    frames_before: u64,
}

impl Job {
    /// Opens the chunk's records in place, then reseals them as the echo (same headers, the
    /// server's key). Returns how many records there were.
    fn crypt(&mut self, bufs: &BufRing) -> Result<usize, Error> {
        let records = self.chunk.bytes_mut(bufs);
        let n = self.crypto.opener.open_all(records)?;
        self.crypto.sealer.seal_all(records)?;
        Ok(n)
    }
}

impl Worker {
    /// Opens and reseals every fresh STCP chunk of this iteration.
    pub(super) fn crypto_batch(&mut self, d: &mut Driver) -> io::Result<()> {
        while !self.batch.is_empty() {
            self.jobs.clear();
            for &slot in &self.batch {
                let c = &mut self.conns[slot as usize];
                if c.life != Life::Open {
                    continue;
                }
                let Some(chunk) = c.fresh.pop_front() else {
                    continue;
                };
                let Some(crypto) = c.crypto.take() else {
                    c.fresh.push_front(chunk);
                    continue;
                };
                self.jobs.push(Job {
                    slot,
                    frames_before: crypto.opener.frames(),
                    crypto,
                    chunk,
                });
            }
            let conns = &mut self.conns;
            self.batch.retain(|&s| {
                let c = &mut conns[s as usize];
                let keep = c.life == Life::Open && !c.fresh.is_empty();
                c.in_batch = keep;
                keep
            });
            let mut jobs = std::mem::take(&mut self.jobs);
            for mut job in jobs.drain(..) {
                let result = job.crypt(d.buffers());
                self.finish_job(d, job, result);
            }
            self.jobs = jobs;
        }
        Ok(())
    }

    fn finish_job(&mut self, d: &mut Driver, job: Job, result: Result<usize, Error>) {
        let slot = job.slot as usize;
        let frames = job.crypto.opener.frames() - job.frames_before;
        let c = &mut self.conns[slot];
        c.crypto = Some(job.crypto);
        match result {
            Ok(_records) => {
                WorkerCounters::add(&self.counters().frames, frames);
                let c = &mut self.conns[slot];
                c.sendq.push_back(job.chunk);
                let peer_closed = c.crypto.as_ref().is_some_and(|k| k.opener.peer_closed());
                self.queued(d, slot);
                if peer_closed {
                    self.drain(d, slot);
                }
            }
            Err(e) => {
                release(job.chunk, d, &mut self.pool, &mut self.conns[slot].held);
                self.fail(d, slot, ErrorKind::of(&e), &e);
            }
        }
    }
}
