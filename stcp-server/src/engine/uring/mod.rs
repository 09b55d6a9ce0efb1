//! The io_uring backend: one worker thread per core, each with its own ring, SO_REUSEPORT
//! listeners, provided-buffer ring, connection slab and ciphers. Nothing is shared between
//! workers on the hot path.
//!
//! Per loop iteration: submit everything queued and wait for completions; handle each
//! completion (accept, receive, send, cancel); open and reseal every STCP chunk the iteration
//! produced in one batch ([`stcp_proto::open_batch`] / [`stcp_proto::seal_batch`], in place);
//! every 100 ms, check deadlines (after the completions, so they see fresh activity); queue one
//! send per connection with pending echoes; re-arm receives that ran out of buffers.
//! The next iteration's submit sends all of those replies with one `io_uring_enter`.

mod conn;
mod ingest;
mod pool;

use std::{
    collections::VecDeque,
    io,
    os::fd::{IntoRawFd, RawFd},
    sync::{mpsc, Arc},
    time::{Duration, Instant},
};

use io_uring::{cqueue, IoUring};
use stcp_proto::{open_batch, seal_batch, Error, Mode};

use self::{
    conn::{Chunk, Conn, Life, MAX_IOV},
    ingest::ingest,
    pool::BufPool,
};
use super::{Shared, WorkerListeners};
use crate::{
    echo::{push_close_record, Crypto, Phase},
    errors::ErrorKind,
    ratelog,
    stats::WorkerCounters,
    uring::{self, next_gen, ops, BufRing, Op, RingBuf, RingOptions, Token},
};

/// A connection holding this many ring buffers in unsent echoes stops reading until they drain,
/// so one connection cannot take the whole buffer ring.
const RING_HOLD_CAP: usize = 32;
/// Timeouts are checked this often.
const TICK: Duration = Duration::from_millis(100);
/// Buffer group id of the worker's receive ring.
const BGID: u16 = 0;

struct Listener {
    fd: RawFd,
    mode: Mode,
    armed: bool,
    closed: bool,
}

/// Ciphers and one chunk of one connection, moved out of the slab for the batch.
struct Job {
    slot: u32,
    crypto: Box<Crypto>,
    chunk: Chunk,
}

/// One worker. Field order matters: the ring is dropped before the buffer ring it uses.
struct Worker {
    ring: IoUring,
    bufs: BufRing,
    shared: Arc<Shared>,
    index: usize,
    listeners: Vec<Listener>,
    conns: Vec<Conn>,
    free: Vec<u32>,
    open: usize,
    pool: BufPool,
    dirty: Vec<u32>,
    kicks: Vec<u32>,
    starved: VecDeque<(u32, u32)>,
    eofs: Vec<(u32, u32)>,
    cqes: Vec<(u64, i32, u32)>,
    jobs: Vec<Job>,
    results: Vec<Result<usize, Error>>,
    opened: Vec<usize>,
    seal_errors: Vec<(usize, Error)>,
    now: Instant,
    next_tick: Instant,
    stop_deadline: Option<Instant>,
}

/// Sets up worker `index` on the calling thread (which it then becomes), reports readiness on
/// `ready`, and runs until the server stops.
pub fn run_worker(
    index: usize,
    shared: Arc<Shared>,
    listeners: WorkerListeners,
    ready: mpsc::Sender<io::Result<()>>,
) -> io::Result<()> {
    let mut worker = match Worker::new(index, shared, listeners) {
        Ok(w) => {
            let _ = ready.send(Ok(()));
            w
        }
        Err(e) => {
            let _ = ready.send(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(e);
        }
    };
    worker.run()
}

impl Worker {
    fn new(index: usize, shared: Arc<Shared>, listeners: WorkerListeners) -> io::Result<Worker> {
        let cfg = &shared.config;
        let (ring, flags) = uring::build_ring(&RingOptions::default()).map_err(io::Error::other)?;
        tracing::debug!(worker = index, ?flags, "io_uring ready");
        let ring_bufs = cfg.ring_bufs.clamp(1, 32768);
        let buf_size = u32::try_from(cfg.ring_buf_size.clamp(64, 1 << 24)).unwrap_or(1 << 16);
        let mut bufs = BufRing::new(ring_bufs, buf_size, BGID)?;
        // SAFETY: `bufs` is a field declared after `ring` in `Worker`, so it is dropped after the
        // ring; the worker reaps or shuts down every operation before returning.
        unsafe { bufs.register(&ring.submitter())? };
        let now = Instant::now();
        let listeners = listeners
            .into_vec()
            .into_iter()
            .map(|(mode, l)| Listener {
                fd: l.into_raw_fd(),
                mode,
                armed: false,
                closed: false,
            })
            .collect();
        let mut w = Worker {
            ring,
            bufs,
            shared,
            index,
            listeners,
            conns: Vec::new(),
            free: Vec::new(),
            open: 0,
            pool: BufPool::default(),
            dirty: Vec::with_capacity(1024),
            kicks: Vec::with_capacity(1024),
            starved: VecDeque::new(),
            eofs: Vec::new(),
            cqes: Vec::with_capacity(1024),
            jobs: Vec::with_capacity(1024),
            results: Vec::with_capacity(1024),
            opened: Vec::with_capacity(1024),
            seal_errors: Vec::new(),
            now,
            next_tick: now + TICK,
            stop_deadline: None,
        };
        for i in 0..w.listeners.len() {
            w.arm_accept(i)?;
        }
        Ok(w)
    }

    fn counters(&self) -> &WorkerCounters {
        self.shared.stats.worker(self.index)
    }

    /// The event loop.
    fn run(&mut self) -> io::Result<()> {
        loop {
            self.now = Instant::now();
            if self.stop_deadline.is_none() && self.shared.stopping() {
                self.begin_stop()?;
            }
            if let Some(deadline) = self.stop_deadline {
                let listeners_done = self.listeners.iter().all(|l| l.closed);
                if (self.open == 0 && listeners_done)
                    || self.now >= deadline + Duration::from_millis(300)
                {
                    break;
                }
            }
            uring::submit_and_wait(&self.ring, 1, Some(TICK))?;
            self.now = Instant::now();
            self.cqes.clear();
            self.cqes.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            for i in 0..self.cqes.len() {
                let (ud, res, flags) = self.cqes[i];
                self.on_completion(ud, res, flags)?;
            }
            self.crypto_batch()?;
            self.handle_eofs()?;
            // Deadlines are judged after this batch's completions, never on activity the kernel
            // has delivered but the worker has not looked at yet (after a scheduling stall).
            if self.now >= self.next_tick {
                self.tick()?;
                self.next_tick = self.now + TICK;
            }
            self.flush_sends()?;
            self.rearm_starved()?;
            self.bufs.commit();
        }
        self.force_close_all();
        self.publish_buffer_gauges();
        Ok(())
    }

    fn on_completion(&mut self, user_data: u64, res: i32, flags: u32) -> io::Result<()> {
        let Some(t) = Token::from_user_data(user_data) else {
            return Ok(());
        };
        match t.op {
            Op::Accept => self.on_accept(t.slot as usize, res, flags),
            Op::Recv | Op::Send | Op::Cancel => {
                let slot = t.slot as usize;
                let live = self
                    .conns
                    .get(slot)
                    .is_some_and(|c| c.fd >= 0 && c.gen == t.gen);
                if !live {
                    // A stale completion: only a buffer it carries needs handling.
                    if let Some(b) = self.bufs.take(flags, res.max(0) as u32) {
                        self.bufs.give_back(b);
                    }
                    return Ok(());
                }
                match t.op {
                    Op::Recv => self.on_recv(slot, res, flags)?,
                    Op::Send => self.on_send(slot, res)?,
                    _ => self.conns[slot].cancels_inflight -= 1,
                }
                self.settle(slot)
            }
            _ => Ok(()),
        }
    }

    fn arm_accept(&mut self, i: usize) -> io::Result<()> {
        let l = &mut self.listeners[i];
        if l.armed || l.closed {
            return Ok(());
        }
        l.armed = true;
        let sqe = ops::accept_multi(l.fd, Token::new(Op::Accept, i as u32, 0));
        uring::push(&mut self.ring, &sqe)
    }

    fn on_accept(&mut self, i: usize, res: i32, flags: u32) -> io::Result<()> {
        if !cqueue::more(flags) {
            self.listeners[i].armed = false;
        }
        if res >= 0 {
            let fd = res;
            if self.stop_deadline.is_some() {
                close_fd(fd);
            } else if !self.shared.admit() {
                WorkerCounters::add(&self.counters().refused, 1);
                close_fd(fd);
            } else {
                self.open_conn(fd, self.listeners[i].mode)?;
            }
        } else if res != -libc::ECANCELED {
            self.counters().error(ErrorKind::Accept);
            ratelog::connection_failed(ErrorKind::Accept, &io::Error::from_raw_os_error(-res));
        }
        if !self.listeners[i].armed {
            if self.stop_deadline.is_some() {
                self.close_listener(i);
            } else if res >= 0 || res == -libc::ECANCELED {
                self.arm_accept(i)?;
            } // else: re-armed by the next tick, so a persistent error cannot spin
        }
        Ok(())
    }

    fn close_listener(&mut self, i: usize) {
        let l = &mut self.listeners[i];
        if !l.closed {
            l.closed = true;
            close_fd(l.fd);
        }
    }

    fn open_conn(&mut self, fd: RawFd, mode: Mode) -> io::Result<()> {
        // Accepted sockets inherit TCP_NODELAY from the listener on Linux; set it anyway.
        set_nodelay(fd);
        let slot = match self.free.pop() {
            Some(s) => s as usize,
            None => {
                self.conns.push(Conn::vacant(self.now));
                self.conns.len() - 1
            }
        };
        let deadline = self.now + self.shared.config.handshake_timeout;
        self.conns[slot].open(fd, mode, self.now, deadline);
        self.open += 1;
        WorkerCounters::add(&self.counters().accepted, 1);
        self.arm_recv(slot)
    }

    fn arm_recv(&mut self, slot: usize) -> io::Result<()> {
        let c = &mut self.conns[slot];
        if c.recv_armed || c.fd < 0 {
            return Ok(());
        }
        c.recv_armed = true;
        let sqe = ops::recv_multi(c.fd, &self.bufs, Token::new(Op::Recv, slot as u32, c.gen));
        uring::push(&mut self.ring, &sqe)
    }

    fn on_recv(&mut self, slot: usize, res: i32, flags: u32) -> io::Result<()> {
        let more = cqueue::more(flags);
        if !more {
            self.conns[slot].recv_armed = false;
        }
        if res > 0 {
            let Some(buf) = self.bufs.take(flags, res as u32) else {
                // A completion without a valid buffer: the kernel broke the protocol.
                self.fail(slot, ErrorKind::Io, &"receive completion without a buffer");
                return Ok(());
            };
            WorkerCounters::add(&self.counters().bytes_in, res as u64);
            self.conns[slot].last_active = self.now;
            if self.conns[slot].life == Life::Open {
                self.on_data(slot, buf);
            } else {
                self.bufs.give_back(buf);
            }
        } else if res == 0 {
            self.on_eof(slot);
        } else if res == -libc::ENOBUFS {
            WorkerCounters::add(&self.counters().ring_starved, 1);
            let c = &mut self.conns[slot];
            if !c.starved {
                c.starved = true;
                self.starved.push_back((slot as u32, c.gen));
            }
            return Ok(());
        } else if res != -libc::ECANCELED && self.conns[slot].life != Life::Aborting {
            self.fail(slot, ErrorKind::Io, &io::Error::from_raw_os_error(-res));
        }
        let c = &self.conns[slot];
        if !c.recv_armed && !c.paused && !c.eof && c.life != Life::Aborting {
            self.arm_recv(slot)?;
        }
        Ok(())
    }

    fn on_data(&mut self, slot: usize, buf: RingBuf) {
        let Worker {
            bufs,
            conns,
            pool,
            shared,
            ..
        } = self;
        let c = &mut conns[slot];
        let result = ingest(
            c,
            bufs.bytes(&buf),
            pool,
            &shared.proto,
            shared.config.max_frame,
        );
        match result {
            Ok(r) => {
                if r.handshake {
                    WorkerCounters::add(&self.counters().handshakes, 1);
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
                    c.ring_held += 1;
                    match c.phase {
                        Phase::Records => c.fresh.push_back(chunk),
                        _ => {
                            c.unsent += chunk.unsent();
                            c.sendq.push_back(chunk);
                        }
                    }
                } else {
                    // Nothing to echo in place: the bytes worth keeping were copied.
                    self.bufs.give_back(buf);
                }
                let c = &mut self.conns[slot];
                if !c.fresh.is_empty() && !c.dirty {
                    c.dirty = true;
                    self.dirty.push(slot as u32);
                }
                self.queued(slot);
            }
            Err(e) => {
                self.bufs.give_back(buf);
                self.fail(slot, ErrorKind::of(&e), &e);
            }
        }
    }

    /// After chunks were queued on `slot`: schedule a send, apply backpressure.
    fn queued(&mut self, slot: usize) {
        let max_unsent = self.shared.config.max_unsent;
        let c = &mut self.conns[slot];
        if !c.sendq.is_empty() && !c.kick {
            c.kick = true;
            self.kicks.push(slot as u32);
        }
        if c.life == Life::Open
            && !c.paused
            && (c.unsent > max_unsent || c.ring_held >= RING_HOLD_CAP)
        {
            c.paused = true;
            if c.recv_armed {
                c.cancels_inflight += 1;
                let target = Token::new(Op::Recv, slot as u32, c.gen);
                let sqe = ops::cancel(target, Token::new(Op::Cancel, slot as u32, c.gen));
                // A full SQ is submitted by push; a failing ring is reported by the next wait.
                let _ = uring::push(&mut self.ring, &sqe);
            }
        }
    }

    /// The client's FIN arrived. Judged after this iteration's batch, which may still hold the
    /// client's close record.
    fn on_eof(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        c.eof = true;
        if c.life == Life::Open {
            self.eofs.push((slot as u32, c.gen));
        }
    }

    /// Clean end (TCP: between frames; STCP: after the client's close record) or truncation.
    fn handle_eofs(&mut self) -> io::Result<()> {
        for i in 0..self.eofs.len() {
            let (slot, gen) = self.eofs[i];
            let slot = slot as usize;
            if self.conns[slot].fd < 0 || self.conns[slot].gen != gen {
                continue;
            }
            self.judge_eof(slot);
            self.settle(slot)?;
        }
        self.eofs.clear();
        Ok(())
    }

    fn judge_eof(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        if c.life != Life::Open {
            return;
        }
        let clean = match c.phase {
            Phase::Frames => c.partial.is_none(),
            Phase::Records => {
                c.crypto.as_ref().is_some_and(|k| k.opener.peer_closed()) && c.partial.is_none()
            }
            Phase::Handshake => false,
        };
        if !clean {
            let what = if c.phase == Phase::Handshake {
                "closed before the handshake"
            } else {
                "stream cut"
            };
            self.counters().error(ErrorKind::Truncated);
            ratelog::connection_failed(ErrorKind::Truncated, &what);
        }
        self.drain(slot);
    }

    fn on_send(&mut self, slot: usize, res: i32) -> io::Result<()> {
        let c = &mut self.conns[slot];
        c.send_inflight = false;
        if res < 0 {
            c.gather.chunks = 0;
            if c.life != Life::Aborting {
                self.fail(slot, ErrorKind::Io, &io::Error::from_raw_os_error(-res));
            }
            return Ok(());
        }
        let n = res as usize;
        WorkerCounters::add(&self.counters().bytes_out, n as u64);
        let c = &mut self.conns[slot];
        c.last_active = self.now;
        c.unsent -= n.min(c.unsent);
        c.gather.chunks = 0;
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
                    release(done, &mut self.bufs, &mut self.pool, &mut c.ring_held);
                }
            }
        }
        if !c.sendq.is_empty() && !c.kick && c.life != Life::Aborting {
            c.kick = true;
            self.kicks.push(slot as u32);
        }
        let max_unsent = self.shared.config.max_unsent;
        if c.paused && c.unsent <= max_unsent / 2 && c.ring_held < RING_HOLD_CAP / 2 {
            c.paused = false;
            if c.life == Life::Open && !c.eof && !c.recv_armed {
                self.arm_recv(slot)?;
            }
        }
        Ok(())
    }

    /// Opens and reseals every fresh STCP chunk of this iteration, in rounds of at most one chunk
    /// per connection (a connection's ciphers are used in order).
    fn crypto_batch(&mut self) -> io::Result<()> {
        while !self.dirty.is_empty() {
            self.jobs.clear();
            for &slot in &self.dirty {
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
                    crypto,
                    chunk,
                });
            }
            let conns = &mut self.conns;
            self.dirty.retain(|&s| {
                let c = &mut conns[s as usize];
                let keep = c.life == Life::Open && !c.fresh.is_empty();
                c.dirty = keep;
                keep
            });
            if self.jobs.is_empty() {
                continue;
            }
            self.results.clear();
            self.results.resize(self.jobs.len(), Ok(0));
            let bufs = &self.bufs;
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
                self.finish_job(job, result);
            }
            self.jobs = jobs;
            self.results = results;
        }
        Ok(())
    }

    fn finish_job(&mut self, job: Job, result: Result<usize, Error>) {
        let slot = job.slot as usize;
        let c = &mut self.conns[slot];
        c.crypto = Some(job.crypto);
        match result {
            Ok(n) => {
                WorkerCounters::add(&self.counters().frames, n as u64);
                let c = &mut self.conns[slot];
                c.unsent += job.chunk.unsent();
                c.sendq.push_back(job.chunk);
                let peer_closed = c.crypto.as_ref().is_some_and(|k| k.opener.peer_closed());
                self.queued(slot);
                if peer_closed {
                    self.drain(slot);
                }
            }
            Err(e) => {
                release(
                    job.chunk,
                    &mut self.bufs,
                    &mut self.pool,
                    &mut self.conns[slot].ring_held,
                );
                self.fail(slot, ErrorKind::of(&e), &e);
            }
        }
    }

    /// Queues one send per connection that has echoes waiting and none in flight: a plain send
    /// for one chunk, a gathering sendmsg for several.
    fn flush_sends(&mut self) -> io::Result<()> {
        for i in 0..self.kicks.len() {
            let slot = self.kicks[i] as usize;
            let c = &mut self.conns[slot];
            c.kick = false;
            if c.fd < 0 || c.send_inflight || c.life == Life::Aborting || c.sendq.is_empty() {
                continue;
            }
            let token = Token::new(Op::Send, slot as u32, c.gen);
            let g = &mut *c.gather;
            g.chunks = 0;
            for chunk in c.sendq.iter().take(MAX_IOV) {
                let (ptr, len) = chunk.unsent_ptr(&self.bufs);
                g.iov[g.chunks] = libc::iovec {
                    iov_base: ptr as *mut libc::c_void,
                    iov_len: len,
                };
                g.chunks += 1;
            }
            c.send_inflight = true;
            let sqe = if g.chunks == 1 {
                let len = g.iov[0].iov_len.min(u32::MAX as usize) as u32;
                // SAFETY: the chunk stays at the front of `sendq`, unmodified, until this send's
                // completion is handled in `on_send` (aborts keep in-flight chunks too). A heap
                // chunk's bytes do not move when its Vec value moves; a ring chunk's buffer is
                // owned by the connection (not given back) and the ring memory outlives the ring.
                unsafe { ops::send(c.fd, g.iov[0].iov_base as *const u8, len, token) }
            } else {
                g.msg.msg_iov = g.iov.as_mut_ptr();
                g.msg.msg_iovlen = g.chunks as _;
                // SAFETY: as for the plain send, for each of the first `g.chunks` chunks; the
                // msghdr and iovecs live in the connection's boxed `Gather`, which is neither
                // moved nor rewritten while `send_inflight` is set.
                unsafe { ops::sendmsg(c.fd, &g.msg, token) }
            };
            uring::push(&mut self.ring, &sqe)?;
        }
        self.kicks.clear();
        Ok(())
    }

    fn rearm_starved(&mut self) -> io::Result<()> {
        while let Some(&(slot, gen)) = self.starved.front() {
            if self.bufs.available() < self.bufs.count() / 8 {
                break;
            }
            self.starved.pop_front();
            let Some(c) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            if c.gen == gen {
                c.starved = false;
            }
            if c.fd >= 0
                && c.gen == gen
                && !c.recv_armed
                && !c.paused
                && !c.eof
                && c.life != Life::Aborting
            {
                self.arm_recv(slot as usize)?;
            }
        }
        Ok(())
    }

    /// Fewer than a quarter of the receive buffers are left for the kernel.
    fn ring_pressure(&self) -> bool {
        self.bufs.available() < self.bufs.count() / 4
    }

    /// Copies queued ring chunks that are not in flight to heap buffers, returning their ring
    /// buffers: under ring pressure, connections whose echoes wait (slow readers) must not hold
    /// the buffers every other connection receives into.
    fn compact(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        let skip = if c.send_inflight { c.gather.chunks } else { 0 };
        for i in skip..c.sendq.len() {
            if !c.sendq[i].is_ring() {
                continue;
            }
            let mut copy = self.pool.get();
            copy.extend_from_slice(c.sendq[i].unsent_bytes(&self.bufs));
            let old = std::mem::replace(&mut c.sendq[i], Chunk::Heap { buf: copy, sent: 0 });
            release(old, &mut self.bufs, &mut self.pool, &mut c.ring_held);
        }
    }

    /// Counts and logs a failure and aborts the connection.
    fn fail(&mut self, slot: usize, kind: ErrorKind, detail: &dyn std::fmt::Display) {
        self.counters().error(kind);
        ratelog::connection_failed(kind, detail);
        self.abort(slot);
    }

    /// Stops echoing: queued echoes are flushed, then FIN, then the client's FIN is awaited.
    fn drain(&mut self, slot: usize) {
        let grace = self.shared.config.close_grace;
        let c = &mut self.conns[slot];
        if c.life != Life::Open {
            return;
        }
        c.life = Life::Draining;
        c.deadline = Some(self.now + grace);
        if let Some(p) = c.partial.take() {
            self.pool.put(p);
        }
        while let Some(ch) = c.fresh.pop_front() {
            release(ch, &mut self.bufs, &mut self.pool, &mut c.ring_held);
        }
    }

    /// Shuts the socket down both ways and drops everything not in the kernel's hands.
    fn abort(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        if c.life == Life::Aborting || c.fd < 0 {
            return;
        }
        c.life = Life::Aborting;
        // SAFETY: plain syscall on a descriptor this connection owns.
        unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
        if let Some(p) = c.partial.take() {
            self.pool.put(p);
        }
        while let Some(ch) = c.fresh.pop_front() {
            release(ch, &mut self.bufs, &mut self.pool, &mut c.ring_held);
        }
        let keep_front = if c.send_inflight { c.gather.chunks } else { 0 };
        while c.sendq.len() > keep_front {
            if let Some(ch) = c.sendq.pop_back() {
                release(ch, &mut self.bufs, &mut self.pool, &mut c.ring_held);
            }
        }
        if c.recv_armed || c.send_inflight {
            c.cancels_inflight += 1;
            let sqe = ops::cancel_fd(c.fd, Token::new(Op::Cancel, slot as u32, c.gen));
            let _ = uring::push(&mut self.ring, &sqe);
        }
    }

    /// Moves a draining or aborting connection on, and frees it when nothing is left in flight.
    fn settle(&mut self, slot: usize) -> io::Result<()> {
        let c = &mut self.conns[slot];
        match c.life {
            Life::Open => return Ok(()),
            Life::Draining => {
                if !c.sendq.is_empty() || c.send_inflight {
                    return Ok(());
                }
                if !c.shut_wr {
                    c.shut_wr = true;
                    // SAFETY: plain syscall on a descriptor this connection owns.
                    unsafe { libc::shutdown(c.fd, libc::SHUT_WR) };
                }
                if !c.eof {
                    // Watch for the client's FIN; with the ring nearly dry the starved queue
                    // re-arms instead, and the drain deadline bounds the wait.
                    if !c.recv_armed && self.bufs.available() >= self.bufs.count() / 8 {
                        c.paused = false;
                        self.arm_recv(slot)?;
                    }
                    return Ok(());
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
        self.free_conn(slot);
        Ok(())
    }

    fn free_conn(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        if c.fd < 0 {
            return;
        }
        close_fd(c.fd);
        c.fd = -1;
        c.gen = next_gen(c.gen);
        c.crypto = None;
        if let Some(p) = c.partial.take() {
            self.pool.put(p);
        }
        while let Some(ch) = c.fresh.pop_front() {
            release(ch, &mut self.bufs, &mut self.pool, &mut c.ring_held);
        }
        while let Some(ch) = c.sendq.pop_front() {
            release(ch, &mut self.bufs, &mut self.pool, &mut c.ring_held);
        }
        self.free.push(slot as u32);
        self.open -= 1;
        self.shared.release();
        WorkerCounters::add(&self.counters().closed, 1);
    }

    /// Handshake, idle and drain deadlines; accept re-arming after errors; stop progress.
    fn tick(&mut self) -> io::Result<()> {
        let idle = self.shared.config.idle_timeout;
        let pressure = self.ring_pressure();
        self.publish_buffer_gauges();
        for slot in 0..self.conns.len() {
            let c = &self.conns[slot];
            if c.fd < 0 {
                continue;
            }
            if pressure && c.ring_held > 0 && c.life != Life::Aborting {
                self.compact(slot);
            }
            let c = &self.conns[slot];
            match c.life {
                Life::Open => {
                    if c.deadline.is_some_and(|d| self.now >= d) {
                        self.fail(
                            slot,
                            ErrorKind::HandshakeTimeout,
                            &"no handshake within the timeout",
                        );
                    } else if idle.is_some_and(|t| self.now.duration_since(c.last_active) >= t) {
                        self.fail(slot, ErrorKind::IdleTimeout, &"idle for too long");
                    }
                }
                Life::Draining => {
                    if c.deadline.is_some_and(|d| self.now >= d) {
                        self.abort(slot);
                    }
                }
                Life::Aborting => {}
            }
            self.settle(slot)?;
        }
        if self.stop_deadline.is_none() {
            for i in 0..self.listeners.len() {
                self.arm_accept(i)?;
            }
        }
        Ok(())
    }

    /// Stores the buffer gauges: memory held by open connections, and idle pooled capacity.
    fn publish_buffer_gauges(&self) {
        let ring_buf_size = self.bufs.buf_size();
        let held: usize = self
            .conns
            .iter()
            .filter(|c| c.fd >= 0)
            .map(|c| c.held_bytes(ring_buf_size))
            .sum();
        let counters = self.counters();
        WorkerCounters::set(&counters.conn_buffer_bytes, held as u64);
        WorkerCounters::set(&counters.pool_idle_bytes, self.pool.idle_bytes() as u64);
    }

    /// Stop accepting; close every connection gracefully (STCP: an authenticated close record).
    fn begin_stop(&mut self) -> io::Result<()> {
        self.stop_deadline = Some(self.now + self.shared.config.close_grace);
        for i in 0..self.listeners.len() {
            if self.listeners[i].armed {
                let target = Token::new(Op::Accept, i as u32, 0);
                let sqe = ops::cancel(target, Token::new(Op::Cancel, u32::MAX, 0));
                uring::push(&mut self.ring, &sqe)?;
            } else {
                self.close_listener(i);
            }
        }
        for slot in 0..self.conns.len() {
            let c = &mut self.conns[slot];
            if c.fd < 0 || c.life != Life::Open {
                continue;
            }
            match c.phase {
                Phase::Handshake => self.abort(slot),
                Phase::Frames => self.drain(slot),
                Phase::Records => {
                    let mut rec = self.pool.get();
                    let sealed = match c.crypto.as_mut() {
                        Some(k) => push_close_record(&mut k.sealer, &mut rec).is_ok(),
                        None => false,
                    };
                    if sealed {
                        c.unsent += rec.len();
                        c.sendq.push_back(Chunk::Heap { buf: rec, sent: 0 });
                        self.queued(slot);
                    } else {
                        self.pool.put(rec);
                    }
                    self.drain(slot);
                }
            }
            self.settle(slot)?;
        }
        self.flush_sends()
    }

    /// Last resort at exit: close whatever is still open.
    fn force_close_all(&mut self) {
        for slot in 0..self.conns.len() {
            if self.conns[slot].fd >= 0 {
                // SAFETY: plain syscall on a descriptor this connection owns.
                unsafe { libc::shutdown(self.conns[slot].fd, libc::SHUT_RDWR) };
            }
        }
        // Give in-flight operations a moment to complete before the ring and buffers go away.
        let deadline = Instant::now() + Duration::from_millis(200);
        while self.conns.iter().any(|c| c.fd >= 0 && !c.idle_in_kernel())
            && Instant::now() < deadline
        {
            if uring::submit_and_wait(&self.ring, 1, Some(Duration::from_millis(20))).is_err() {
                break;
            }
            let done: Vec<_> = self
                .ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags()))
                .collect();
            for (ud, res, flags) in done {
                if let Some(t) = Token::from_user_data(ud) {
                    if let Some(b) = self.bufs.take(flags, res.max(0) as u32) {
                        self.bufs.give_back(b);
                    }
                    if let Some(c) = self.conns.get_mut(t.slot as usize) {
                        if c.gen == t.gen && c.fd >= 0 {
                            match t.op {
                                Op::Recv if !cqueue::more(flags) => c.recv_armed = false,
                                Op::Send => c.send_inflight = false,
                                Op::Cancel => {
                                    c.cancels_inflight = c.cancels_inflight.saturating_sub(1)
                                }
                                _ => {}
                            }
                        }
                    }
                }
            }
        }
        for slot in 0..self.conns.len() {
            self.free_conn(slot);
        }
        for i in 0..self.listeners.len() {
            self.close_listener(i);
        }
    }
}

fn release(chunk: Chunk, bufs: &mut BufRing, pool: &mut BufPool, ring_held: &mut usize) {
    match chunk {
        Chunk::Ring { buf, .. } => {
            bufs.give_back(buf);
            *ring_held -= 1;
        }
        Chunk::Heap { buf, .. } => pool.put(buf),
    }
}

fn close_fd(fd: RawFd) {
    // SAFETY: the caller owns `fd` and never uses it again.
    unsafe { libc::close(fd) };
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
