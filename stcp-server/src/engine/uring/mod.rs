//! The io_uring backend: one worker thread per core, each a [`Handler`] of its own
//! [`stcp_engine::Driver`] (ring + provided buffers), with its own SO_REUSEPORT listeners,
//! connection slab and ciphers. Nothing is shared between workers on the hot path.
//!
//! Per loop iteration ([`run_worker`]): the driver submits everything queued, waits, and hands
//! each completion to the worker (accept, receive, send, cancel: [`Worker::on_completion`]); the
//! worker then opens and reseals every STCP chunk the iteration produced in one batch
//! (`batch.rs`), judges end-of-stream, checks deadlines every 100 ms (after the completions, so they
//! see fresh activity), and queues one send per connection with pending echoes (`send.rs`);
//! then answers at most a few hellos (`hello.rs`: handshakes after established traffic);
//! the driver ends the turn by re-arming receives that ran out of buffers and publishing the
//! buffers given back. The next turn's submit sends the rest with one `io_uring_enter`.
//!
//! Files: `conn.rs` (a connection's state), `ingest.rs` (bytes to units), `hello.rs` (the
//! bounded handshake step), `recv.rs` (receives and end of stream), `batch.rs` (crypto),
//! `send.rs` (sends and backpressure), `lifecycle.rs` (accept, deadlines, close),
//! `shutdown.rs` (stopping), `tls.rs` (TLS connections: rustls fed from the receives, drained
//! into the sends).

mod batch;
mod conn;
mod hello;
mod ingest;
mod lifecycle;
mod pool;
mod recv;
mod send;
mod shutdown;
mod tls;

use std::{
    collections::VecDeque,
    io,
    os::fd::{IntoRawFd, RawFd},
    sync::Arc,
    time::{Duration, Instant},
};

use stcp_engine::{Completion, Driver, DriverOptions, Handler, Op, Receive, Token};
use stcp_proto::Mode;

use self::{
    batch::Job,
    conn::{Conn, Life, Recv},
    pool::BufPool,
};
use super::{Ready, Shared, WorkerListeners};
use crate::{handshake_limit::HandshakeLimiter, stats::WorkerCounters};

/// Timeouts are checked this often.
const TICK: Duration = Duration::from_millis(100);

struct Listener {
    fd: RawFd,
    mode: Mode,
    armed: bool,
    closed: bool,
}

/// One worker's state: everything but the driver, which is passed to each method that submits.
struct Worker {
    shared: Arc<Shared>,
    index: usize,
    listeners: Vec<Listener>,
    conns: Vec<Conn>,
    free: Vec<u32>,
    open: usize,
    pool: BufPool,
    /// Connections with fresh chunks for this iteration's crypto batch.
    batch: Vec<u32>,
    /// Connections with echoes to send.
    flush: Vec<u32>,
    /// Connections whose client sent FIN this iteration.
    eofs: Vec<(u32, u32)>,
    /// Connections holding a complete hello, in arrival order (slot, generation, already
    /// counted as deferred): answered by the bounded handshake step (`hello.rs`).
    hellos: VecDeque<(u32, u32, bool)>,
    /// `--handshake-rate-per-ip`: this worker's buckets.
    limiter: Option<HandshakeLimiter>,
    jobs: Vec<Job>,
    /// TLS: plaintext read out of rustls and written straight back (one record's worth).
    scratch: Box<[u8]>,
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
    ready: Ready,
) -> io::Result<()> {
    let (mut driver, mut worker) = match setup(index, shared, listeners) {
        Ok(pair) => {
            ready.send(Ok(()));
            pair
        }
        Err(e) => {
            ready.send(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(e);
        }
    };
    let result = worker.run(&mut driver);
    tracing::debug!(worker = index, waits = ?driver.wait_counts(), "io_uring worker done");
    worker.finish(&mut driver);
    result
}

fn setup(
    index: usize,
    shared: Arc<Shared>,
    listeners: WorkerListeners,
) -> io::Result<(Driver, Worker)> {
    let cfg = &shared.config;
    let options = DriverOptions {
        buffers: cfg.ring_bufs.clamp(1, 32768),
        buffer_size: u32::try_from(cfg.ring_buf_size.clamp(64, 1 << 24)).unwrap_or(1 << 16),
        busy_poll: cfg.busy_poll,
        ..DriverOptions::default()
    };
    let mut driver = Driver::new(&options).map_err(io::Error::other)?;
    tracing::debug!(
        worker = index,
        flags = ?driver.flags(),
        busy_poll = ?driver.busy_poll(),
        "io_uring ready"
    );
    let now = Instant::now();
    let limiter = cfg
        .handshake_rate_per_ip
        .map(|rate| HandshakeLimiter::new(rate, now));
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
        shared,
        index,
        listeners,
        conns: Vec::new(),
        free: Vec::new(),
        open: 0,
        pool: BufPool::default(),
        batch: Vec::with_capacity(1024),
        flush: Vec::with_capacity(1024),
        eofs: Vec::new(),
        hellos: VecDeque::with_capacity(256),
        limiter,
        jobs: Vec::with_capacity(1024),
        scratch: vec![0; crate::tls::SCRATCH_LEN].into_boxed_slice(),
        now,
        next_tick: now + TICK,
        stop_deadline: None,
    };
    for i in 0..w.listeners.len() {
        w.arm_accept(&mut driver, i)?;
    }
    Ok((driver, w))
}

impl Worker {
    fn counters(&self) -> &WorkerCounters {
        self.shared.stats.worker(self.index)
    }

    /// The event loop.
    fn run(&mut self, d: &mut Driver) -> io::Result<()> {
        loop {
            self.now = Instant::now();
            if self.stop_deadline.is_none() && self.shared.stopping() {
                self.begin_stop(d)?;
            }
            if let Some(deadline) = self.stop_deadline {
                let listeners_done = self.listeners.iter().all(|l| l.closed);
                if (self.open == 0 && listeners_done)
                    || self.now >= deadline + Duration::from_millis(300)
                {
                    return Ok(());
                }
            }
            // Hellos still waiting for the bounded handshake step: look for completions
            // without sleeping.
            let wait = if self.hellos.is_empty() {
                TICK
            } else {
                Duration::ZERO
            };
            d.turn(self, wait)?;
            self.now = Instant::now();
            self.crypto_batch(d)?;
            self.handle_eofs(d)?;
            // Deadlines are judged after this batch's completions, never on activity the kernel
            // has delivered but the worker has not looked at yet (after a scheduling stall).
            if self.now >= self.next_tick {
                self.tick(d)?;
                self.next_tick = self.now + TICK;
            }
            self.flush_sends(d)?;
            // Established connections' echoes are queued: now a bounded number of handshakes,
            // whose replies go out with this turn's submissions.
            if !self.hellos.is_empty() {
                self.answer_hellos(d)?;
                self.flush_sends(d)?;
            }
            d.end_turn(self)?;
        }
    }
}

impl Handler for Worker {
    fn on_completion(&mut self, d: &mut Driver, c: Completion) -> io::Result<()> {
        match c.token.op {
            Op::Accept => self.on_accept(d, c.token.slot as usize, c.result, c.more()),
            Op::Recv | Op::Send | Op::Cancel => {
                let slot = c.token.slot as usize;
                if !self.conns.get(slot).is_some_and(|s| s.is(c.token.gen)) {
                    // A stale completion: only a buffer it carries needs handling.
                    if let Some(b) = c.buf {
                        d.give_back(b);
                    }
                    return Ok(());
                }
                match c.token.op {
                    Op::Recv => self.on_recv(d, slot, c)?,
                    Op::Send => self.on_send(d, slot, c.result)?,
                    _ => self.conns[slot].cancels_inflight -= 1,
                }
                self.settle(d, slot)
            }
            Op::Connect => Ok(()),
        }
    }

    fn resume_receive(&mut self, token: Token) -> Option<(RawFd, Receive)> {
        let c = self.conns.get_mut(token.slot as usize)?;
        if !c.is(token.gen) || c.recv != Recv::Starved || c.life == Life::Aborting {
            return None;
        }
        let receive = recv::receive(c, self.shared.config.conn_buffer_limit);
        c.recv = Recv::Armed;
        c.raw_fd().map(|fd| (fd, receive))
    }
}
