//! The crypto batch: every STCP chunk received in one loop iteration, over all connections, is
//! opened and then resealed in place in one pass each ([`stcp_proto::open_batch`],
//! [`stcp_proto::seal_batch`]), in rounds of at most one chunk per connection (a connection's
//! ciphers are used in order).

use std::io;

use stcp_engine::Driver;
use stcp_proto::{open_batch, seal_batch, Error};

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
            if self.jobs.is_empty() {
                continue;
            }
            self.results.clear();
            self.results.resize(self.jobs.len(), Ok(0));
            let bufs = d.buffers();
            let results = &mut self.results;
            open_batch(
                self.jobs
                    .iter_mut()
                    .map(|j| (&mut j.crypto.opener, j.chunk.bytes_mut(bufs))),
                |i, r| results[i] = r,
            );
            // Reseal in place what opened: each echo reuses its record's buffer and header.
            self.opened.clear();
            self.opened.extend(
                results
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.is_ok())
                    .map(|(i, _)| i),
            );
            self.seal_errors.clear();
            let (opened, seal_errors) = (&self.opened, &mut self.seal_errors);
            seal_batch(
                self.jobs
                    .iter_mut()
                    .zip(results.iter())
                    .filter(|(_, r)| r.is_ok())
                    .map(|(j, _)| (&mut j.crypto.sealer, j.chunk.bytes_mut(bufs))),
                |k, r| {
                    if let Err(e) = r {
                        seal_errors.push((opened[k], e));
                    }
                },
            );
            for (i, e) in self.seal_errors.drain(..) {
                self.results[i] = Err(e);
            }
            let mut jobs = std::mem::take(&mut self.jobs);
            let mut results = std::mem::take(&mut self.results);
            for (job, result) in jobs.drain(..).zip(results.drain(..)) {
                self.finish_job(d, job, result);
            }
            self.jobs = jobs;
            self.results = results;
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
                c.unsent += job.chunk.unsent();
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
