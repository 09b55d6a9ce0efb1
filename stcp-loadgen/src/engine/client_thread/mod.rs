//! One io_uring client thread: connects and handshakes its share of the connections, waits for the
//! others at the start line, drives the load (closed loop or open loop), then drains and closes.
//!
//! Every turn: wait for completions, dispatch each by its token, open every whole record that
//! turn delivered in one batch, verify the echoes record by record, queue the next requests,
//! write requests into the out buffers as far as they have room, seal the new records in one
//! batch, and hand the sends to the kernel with the next wait. Buffers are allocated before the
//! load starts, sized independently of the payload; nothing on the way allocates or locks.

mod churn;
mod lifecycle;
mod receive;
mod send;

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stcp_engine::{ops, Completion, Driver, DriverOptions, Handler, Op, Receive, Token};
use stcp_proto::{ClientConfig, ClientHandshake, FRAME_HEADER_LEN};

use super::connection::{Connection, State, TlsProgress};
use super::settings::Settings;
use super::socket::{errno_name, set_nodelay, sockaddr};
use super::start_line::StartLine;
use super::tally::{Tally, ThreadMessage, ThreadSummary};
use super::{SetupError, StopHandle};
use crate::cpu_time::ThreadCpu;
use crate::errors::{ErrorCounts, ErrorKind, SetupFailures};
use crate::stats::{self, LatencyHistogram};
use stcp_proto::Mode;

/// One client thread's share of the run.
pub(super) struct ThreadPlan {
    /// Run-wide numbers of this thread's connections.
    pub conn_ids: Vec<u32>,
    pub core: Option<core_affinity::CoreId>,
    pub settings: Settings,
    pub target: SocketAddr,
    /// Spin on the completion queue for up to this long before sleeping (zero: off).
    pub busy_poll: Duration,
    pub client_config: Option<Arc<ClientConfig>>,
    /// TLS: the rustls configuration and the server name every connection uses.
    pub tls: Option<crate::tls::TlsClient>,
    /// Connection number `g` starts connecting at `connect_epoch + g × connect_spacing`.
    pub connect_epoch: Instant,
    pub connect_spacing: Duration,
    pub warmup: Duration,
    pub duration: Duration,
    /// Ends the run early when it answers true (Ctrl-C).
    pub stop: StopHandle,
}

/// Failures logged per kind per thread before the rest are only counted.
const LOGGED_FAILURES_PER_KIND: u64 = 3;
/// Longest wait in one turn, so the stop flag and timeouts are looked at often enough.
const MAX_WAIT: Duration = Duration::from_millis(50);
/// Time allowed for the authenticated closes and the cancellations at the end.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Time allowed for the echoes in flight after Ctrl-C.
const INTERRUPT_DRAIN: Duration = Duration::from_millis(500);

/// Runs one client thread to the end; always reports ready and always sends `Finished`, so the
/// coordinator never waits for a thread that failed.
pub(super) fn run(plan: ThreadPlan, start: Arc<StartLine>, tx: Sender<ThreadMessage>) {
    if let Some(core) = plan.core {
        core_affinity::set_for_current(core);
    }
    let requested = plan.conn_ids.len() as u64;
    match ClientThread::new(&plan) {
        Ok((mut driver, mut thread)) => {
            let summary = thread.run(&mut driver, &plan, &start, &tx);
            tracing::debug!(waits = ?driver.wait_counts(), "client thread done");
            // The connections (sockets, send buffers) are freed only once the kernel holds none of
            // their operations; the driver leaks them otherwise.
            let conns = std::mem::take(&mut thread.conns);
            let target = std::mem::replace(&mut thread.target, Box::new(sockaddr(plan.target)));
            driver.shutdown((conns, target), CLOSE_GRACE);
            let _ = tx.send(ThreadMessage::Finished {
                summary: Box::new(summary),
            });
        }
        Err(why) => {
            start.ready.fetch_add(1, Ordering::SeqCst);
            let summary = ThreadSummary::failed(requested, why);
            let _ = tx.send(ThreadMessage::Finished {
                summary: Box::new(summary),
            });
        }
    }
}

/// One client thread's connections and accounting: the handler of its [`Driver`].
struct ClientThread {
    conns: Vec<Connection>,
    settings: Settings,
    /// The server address in kernel form; connect SQEs point at it. Boxed, and handed to the
    /// driver's shutdown with the connections, so it outlives every connect in flight.
    target: Box<(libc::sockaddr_storage, libc::socklen_t)>,
    client_config: Option<Arc<ClientConfig>>,
    tls: Option<crate::tls::TlsClient>,
    /// Slots of this turn's seal jobs, and the jobs that failed (reused every turn).
    batch_slots: Vec<u32>,
    batch_failures: Vec<usize>,
    errors: ErrorCounts,
    /// Connections that could not be set up, by cause (logged once by the run, not per thread).
    setup_failures: SetupFailures,
    handshake: LatencyHistogram,
    /// Connect latency (connect issued, or meant to be in an open loop, to connect completed)
    /// of every connection.
    connect: LatencyHistogram,
    established: u64,
    lost: u64,
    /// Churn: connections that did their requests and closed cleanly (their slot reused).
    recycled: u64,
    /// Churn in open loop: slots free for the next new connection, and how many new
    /// connections this thread has started so far (the schedule's index).
    free: Vec<usize>,
    next_conn: u64,
    /// Established connections the server ended with its authenticated Close (not errors).
    closed_by_server: u64,
    /// Requests in flight on those connections when the server closed them (no echo came).
    unanswered: u64,
    tally: Option<Tally>,
    /// When every connection has finished with connecting (set up or failed) or the run stops.
    closing: bool,
    /// The time of the turn being dispatched.
    now: Instant,
    next_timeout_check: Instant,
    timeout_check_every: Duration,
    stop: StopHandle,
}

impl ClientThread {
    fn new(plan: &ThreadPlan) -> Result<(Driver, ClientThread), SetupError> {
        let s = &plan.settings;
        // Receive buffers for what the connections have in flight, bounded per connection by
        // the stream window whatever the payload: echoes are consumed a record at a time.
        let buf_size = s.wire_len.next_power_of_two().clamp(4096, 65536);
        let in_flight_bytes = plan.conn_ids.len() * s.receive_window();
        let count = (2 * in_flight_bytes / buf_size)
            .next_power_of_two()
            .clamp(64, (64 << 20) / buf_size);
        let driver = Driver::new(&DriverOptions {
            buffers: count as u16,
            buffer_size: buf_size as u32,
            busy_poll: plan.busy_poll,
            ..DriverOptions::default()
        })?;
        let now = Instant::now();
        let conns = plan
            .conn_ids
            .iter()
            .enumerate()
            .map(|(slot, &id)| Connection::new(id, slot as u64, s, now))
            .collect::<Vec<_>>();
        let n = conns.len();
        let thread = ClientThread {
            conns,
            settings: s.clone(),
            target: Box::new(sockaddr(plan.target)),
            client_config: plan.client_config.clone(),
            tls: plan.tls.clone(),
            batch_slots: Vec::with_capacity(n),
            batch_failures: Vec::with_capacity(n),
            errors: ErrorCounts::default(),
            setup_failures: SetupFailures::default(),
            handshake: stats::new_histogram(),
            connect: stats::new_histogram(),
            established: 0,
            lost: 0,
            recycled: 0,
            free: Vec::with_capacity(n),
            next_conn: 0,
            closed_by_server: 0,
            unanswered: 0,
            tally: None,
            closing: false,
            now,
            next_timeout_check: now,
            timeout_check_every: (s.timeout / 8)
                .clamp(Duration::from_millis(1), Duration::from_millis(100)),
            stop: plan.stop.clone(),
        };
        Ok((driver, thread))
    }

    pub(super) fn stop_requested(&self, start: &StartLine) -> bool {
        (self.stop)() || start.stop.load(Ordering::Relaxed)
    }

    fn run(
        &mut self,
        d: &mut Driver,
        plan: &ThreadPlan,
        start: &StartLine,
        tx: &Sender<ThreadMessage>,
    ) -> ThreadSummary {
        // 1. Connect and handshake every connection (ramped by --connect-rate); churn in open
        //    loop starts with none and opens them on its schedule.
        if self.settings.churn_interval_ns.is_some() {
            self.free.extend((0..self.conns.len()).rev());
        } else {
            self.connect_all(d, plan, start);
        }
        // 2. The start line: all threads have set up; then the load start time is published.
        let load_start = match start.wait_for_start(&self.stop) {
            Some(at) => at,
            None => {
                self.close_all(d);
                return self.summary();
            }
        };
        self.tally = Some(Tally::new(
            tx.clone(),
            load_start,
            plan.warmup,
            plan.duration,
        ));
        // 3. The load: warm-up, then the measured interval.
        if !self.settings.open_loop {
            for slot in 0..self.conns.len() {
                if self.conns[slot].is_established() {
                    self.queue_first_requests(slot, load_start);
                }
            }
        }
        while !self.tally().done() {
            if self.stop_requested(start) || self.all_lost() {
                self.tally_mut().stop();
                break;
            }
            if self.turn(d).is_err() {
                self.tally_mut().stop();
                break;
            }
        }
        // 4. Drain: wait for the echoes in flight (not counted, but checked), then close. With
        //    churn, connections still connecting or handshaking finish first, so that every
        //    connection the server saw ends with a clean close.
        let drain_until = Instant::now()
            + if self.stop_requested(start) {
                INTERRUPT_DRAIN
            } else {
                self.settings.timeout
            };
        let churn = self.settings.churn().is_some();
        while self
            .conns
            .iter()
            .any(|c| (c.is_established() && c.in_flight.len() > 0) || (churn && c.is_setting_up()))
            && Instant::now() < drain_until
        {
            if self.turn(d).is_err() {
                break;
            }
        }
        self.close_all(d);
        self.summary()
    }

    fn summary(&mut self) -> ThreadSummary {
        ThreadSummary {
            handshake: std::mem::replace(&mut self.handshake, stats::new_histogram()),
            connect: std::mem::replace(&mut self.connect, stats::new_histogram()),
            errors: self.errors,
            requested: self.conns.len() as u64,
            established: self.established,
            lost: self.lost,
            closed: self.recycled,
            closed_by_server: self.closed_by_server,
            unanswered: self.unanswered,
            cpu: self.tally.as_ref().map_or(ThreadCpu::default(), |t| t.cpu),
            setup_error: None,
            setup_failures: std::mem::take(&mut self.setup_failures),
            measured_from: self.tally.as_ref().and_then(|t| t.measured_from),
        }
    }

    pub(super) fn tally(&self) -> &Tally {
        self.tally.as_ref().expect("tally exists during the load")
    }

    pub(super) fn tally_mut(&mut self) -> &mut Tally {
        self.tally.as_mut().expect("tally exists during the load")
    }

    /// Established connections that have not failed, closed (churn) or been closed by the
    /// server since.
    pub(super) fn alive(&self) -> u64 {
        self.established - self.lost - self.closed_by_server - self.recycled
    }

    /// No connection can carry load any more: without churn, every established one is gone;
    /// with churn (where a slot is between two connections for a moment), every slot has failed
    /// or been closed by the server.
    fn all_lost(&self) -> bool {
        match self.settings.churn() {
            None => self.alive() == 0,
            Some(_) => self.conns.iter().all(Connection::has_ended),
        }
    }

    /// A connection is ready for the load: its first requests (`depth`, at most its share with
    /// churn) go in flight; with churn and nothing to send it retires at once.
    pub(super) fn queue_first_requests(&mut self, slot: usize, now: Instant) {
        let s = &self.settings;
        let conn = &mut self.conns[slot];
        let first = match s.churn() {
            Some(n) => u64::from(s.depth).min(n),
            None => u64::from(s.depth),
        };
        for _ in 0..first {
            conn.queue_request(now);
        }
        if s.churn() == Some(0) {
            conn.retire_ready = true;
        }
    }

    pub(super) fn token(&self, op: Op, slot: usize) -> Token {
        Token::new(op, slot as u32, self.conns[slot].gen)
    }

    /// One turn of the event loop.
    fn turn(&mut self, d: &mut Driver) -> std::io::Result<()> {
        let wait = self.wait_time(Instant::now());
        d.wait(wait)?;
        self.now = Instant::now();
        if let Some(t) = self.tally.as_mut() {
            t.advance(self.now);
        }
        d.dispatch(self)?;
        d.end_turn(self)?;
        let now = self.now;
        if self.settings.mode == Mode::Stcp {
            self.open_records(d, now);
        }
        if self.settings.open_loop {
            self.schedule_open_loop(now);
        }
        if self.settings.churn().is_some() {
            self.retire_finished(now);
            self.schedule_churn(d, now);
        }
        self.seal_and_send(d);
        if now >= self.next_timeout_check {
            self.next_timeout_check = now + self.timeout_check_every;
            self.check_timeouts(d, now);
        }
        Ok(())
    }

    /// How long the next wait may last: until the next second boundary, open-loop send, or
    /// timeout check, and never longer than [`MAX_WAIT`].
    fn wait_time(&self, now: Instant) -> Duration {
        let mut until = now + MAX_WAIT;
        until = until.min(self.next_timeout_check);
        if let Some(t) = &self.tally {
            if let Some(b) = t.next_boundary() {
                until = until.min(b);
            }
            if let (Some(_), Some(&_)) = (self.settings.churn_interval_ns, self.free.last()) {
                if t.accepting_requests() {
                    until = until.min(self.next_churn_intended(t.load_start));
                }
            }
            if self.settings.open_loop && t.accepting_requests() {
                for c in self
                    .conns
                    .iter()
                    .filter(|c| c.is_established() && !c.in_flight.is_full())
                {
                    until = until.min(c.next_intended(&self.settings, t.load_start));
                }
            }
        }
        until
            .saturating_duration_since(now)
            .max(Duration::from_micros(1))
    }
}

impl Handler for ClientThread {
    fn on_completion(&mut self, d: &mut Driver, c: Completion) -> std::io::Result<()> {
        let slot = c.token.slot as usize;
        if self
            .conns
            .get(slot)
            .is_none_or(|conn| conn.gen != c.token.gen)
        {
            // A completion of a connection that has ended since: only its buffer matters.
            if let Some(buf) = c.buf {
                d.give_back(buf);
            }
            return Ok(());
        }
        let now = self.now;
        match c.token.op {
            Op::Connect => self.on_connect(d, slot, c.result, now),
            Op::Recv => self.on_recv(d, slot, c, now),
            Op::Send => self.on_send(d, slot, c.result, now),
            // Cancellations need no action; their targets complete on their own.
            Op::Accept | Op::Cancel => {}
        }
        Ok(())
    }

    fn resume_receive(&mut self, token: Token) -> Option<(RawFd, Receive)> {
        let conn = self.conns.get_mut(token.slot as usize)?;
        if conn.gen != token.gen || conn.has_ended() || conn.recv_armed || self.closing {
            return None;
        }
        conn.recv_armed = true;
        conn.fd
            .as_ref()
            .map(|f| (f.as_raw_fd(), Receive::Multishot))
    }
}

/// Queues one operation. A full submission queue is submitted first; an error here means the
/// ring is broken, which the next wait reports.
fn push(d: &mut Driver, sqe: &ops::Sqe) {
    let _ = d.push(sqe);
}
