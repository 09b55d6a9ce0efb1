//! One io_uring client thread: connects and handshakes its share of the connections, waits for the
//! others at the start line, drives the load (closed loop or open loop), then drains and closes.
//!
//! Every turn: wait for completions, dispatch each by its token, open every whole record that
//! turn delivered in one batch, verify the echoes, queue the next requests, seal them all in one
//! batch, and hand the sends to the kernel with the next wait. Buffers are allocated before the
//! load starts; nothing on the way allocates or locks.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stcp_proto::{ClientConfig, ClientHandshake, FRAME_HEADER_LEN};
use stcp_server::uring::{self, io_uring, ops, BufRing, Op, RingOptions, Token};

use super::connection::{Connection, State};
use super::settings::Settings;
use super::socket::{errno_name, set_nodelay, sockaddr};
use super::start_line::StartLine;
use super::tally::{Tally, ThreadMessage, ThreadSummary};
use crate::cpu_time::ThreadCpu;
use crate::errors::{ErrorCounts, ErrorKind};
use crate::interrupt;
use crate::stats::{self, LatencyHistogram};
use stcp_proto::Mode;

/// One client thread's share of the run.
pub(super) struct ThreadPlan {
    /// Run-wide numbers of this thread's connections.
    pub conn_ids: Vec<u32>,
    pub core: Option<core_affinity::CoreId>,
    pub settings: Settings,
    pub target: SocketAddr,
    pub client_config: Option<Arc<ClientConfig>>,
    /// Connection number `g` starts connecting at `connect_epoch + g × connect_spacing`.
    pub connect_epoch: Instant,
    pub connect_spacing: Duration,
    pub warmup: Duration,
    pub duration: Duration,
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
        Ok(mut thread) => {
            let summary = thread.run(&plan, &start, &tx);
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

/// A completion copied out of the ring: (user_data, result, flags).
type Completion = (u64, i32, u32);

struct ClientThread {
    // Field order is drop order: the ring goes first, so the kernel lets go of `bufs` and of every
    // connection's buffers before they are freed.
    ring: io_uring::IoUring,
    bufs: BufRing,
    conns: Vec<Connection>,
    settings: Settings,
    /// The server address in kernel form; connect SQEs point at it (the kernel copies it when the
    /// SQE is prepared, and it lives as long as the ring anyway).
    target: Box<(libc::sockaddr_storage, libc::socklen_t)>,
    client_config: Option<Arc<ClientConfig>>,
    completions: Vec<Completion>,
    /// Slots of this turn's seal jobs, and the jobs that failed (reused every turn).
    batch_slots: Vec<u32>,
    batch_failures: Vec<usize>,
    /// Operations the kernel still holds (multishot receive counts once until its last CQE).
    outstanding: usize,
    errors: ErrorCounts,
    handshake: LatencyHistogram,
    established: u64,
    lost: u64,
    /// Established connections the server ended with its authenticated Close (not errors).
    closed_by_server: u64,
    /// Requests in flight on those connections when the server closed them (no echo came).
    unanswered: u64,
    tally: Option<Tally>,
    /// When every connection has finished with connecting (set up or failed) or the run stops.
    closing: bool,
    next_timeout_check: Instant,
    timeout_check_every: Duration,
}

impl ClientThread {
    fn new(plan: &ThreadPlan) -> Result<ClientThread, String> {
        let s = &plan.settings;
        let (ring, _flags) = uring::build_ring(&RingOptions::default())
            .map_err(|e| format!("io_uring is not available: {e}"))?;
        let buf_size = s.record_len.next_power_of_two().clamp(4096, 65536);
        let in_flight_bytes = plan.conn_ids.len() * s.depth as usize * s.record_len;
        let count = (2 * in_flight_bytes / buf_size)
            .next_power_of_two()
            .clamp(64, (64 << 20) / buf_size);
        let mut bufs = BufRing::new(count as u16, buf_size as u32, 0)
            .map_err(|e| format!("buffer ring: {e}"))?;
        // SAFETY: `bufs` is a field declared after `ring` in `ClientThread`, so it is dropped after
        // the ring; every receive selecting from it is reaped or cancelled before that.
        unsafe { bufs.register(&ring.submitter()) }
            .map_err(|e| format!("registering the buffer ring: {e}"))?;
        let now = Instant::now();
        let conns = plan
            .conn_ids
            .iter()
            .enumerate()
            .map(|(slot, &id)| Connection::new(id, slot as u64, s, now))
            .collect::<Vec<_>>();
        let completions = Vec::with_capacity(16384);
        let n = conns.len();
        Ok(ClientThread {
            ring,
            bufs,
            conns,
            settings: s.clone(),
            target: Box::new(sockaddr(plan.target)),
            client_config: plan.client_config.clone(),
            completions,
            batch_slots: Vec::with_capacity(n),
            batch_failures: Vec::with_capacity(n),
            outstanding: 0,
            errors: ErrorCounts::default(),
            handshake: stats::new_histogram(),
            established: 0,
            lost: 0,
            closed_by_server: 0,
            unanswered: 0,
            tally: None,
            closing: false,
            next_timeout_check: now,
            timeout_check_every: (s.timeout / 8)
                .clamp(Duration::from_millis(1), Duration::from_millis(100)),
        })
    }

    fn stop_requested(start: &StartLine) -> bool {
        interrupt::interrupted() || start.stop.load(Ordering::Relaxed)
    }

    fn run(
        &mut self,
        plan: &ThreadPlan,
        start: &StartLine,
        tx: &Sender<ThreadMessage>,
    ) -> ThreadSummary {
        // 1. Connect and handshake every connection (ramped by --connect-rate).
        self.connect_all(plan, start);
        // 2. The start line: all threads have set up; then the load start time is published.
        let load_start = match start.wait_for_start() {
            Some(at) => at,
            None => {
                self.close_all();
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
            let s = self.settings.clone();
            for conn in self.conns.iter_mut().filter(|c| c.is_established()) {
                for _ in 0..s.depth {
                    conn.queue_request(&s, load_start);
                }
            }
        }
        while !self.tally().done() {
            if Self::stop_requested(start) || self.alive() == 0 {
                self.tally_mut().stop();
                break;
            }
            if self.turn().is_err() {
                self.tally_mut().stop();
                break;
            }
        }
        // 4. Drain: wait for the echoes in flight (not counted, but checked), then close.
        let drain_until = Instant::now()
            + if Self::stop_requested(start) {
                INTERRUPT_DRAIN
            } else {
                self.settings.timeout
            };
        while self
            .conns
            .iter()
            .any(|c| c.is_established() && c.in_flight.len() > 0)
            && Instant::now() < drain_until
        {
            if self.turn().is_err() {
                break;
            }
        }
        self.close_all();
        self.summary()
    }

    fn summary(&mut self) -> ThreadSummary {
        ThreadSummary {
            handshake: std::mem::replace(&mut self.handshake, stats::new_histogram()),
            errors: self.errors,
            requested: self.conns.len() as u64,
            established: self.established,
            lost: self.lost,
            closed_by_server: self.closed_by_server,
            unanswered: self.unanswered,
            cpu: self.tally.as_ref().map_or(ThreadCpu::default(), |t| t.cpu),
            setup_error: None,
        }
    }

    fn tally(&self) -> &Tally {
        self.tally.as_ref().expect("tally exists during the load")
    }

    fn tally_mut(&mut self) -> &mut Tally {
        self.tally.as_mut().expect("tally exists during the load")
    }

    /// Established connections that have not failed or been closed by the server since.
    fn alive(&self) -> u64 {
        self.established - self.lost - self.closed_by_server
    }

    /// Issues the connects as the ramp allows and turns until every connection is set up or failed.
    fn connect_all(&mut self, plan: &ThreadPlan, start: &StartLine) {
        let mut next = 0;
        loop {
            let now = Instant::now();
            while next < self.conns.len() {
                let at = plan.connect_epoch + plan.connect_spacing * self.conns[next].id;
                if at > now {
                    break;
                }
                self.start_connect(next, now);
                next += 1;
            }
            let settled = self.conns[..next]
                .iter()
                .all(|c| c.is_established() || c.has_ended());
            if (settled && next == self.conns.len()) || Self::stop_requested(start) {
                break;
            }
            if self.turn().is_err() {
                break;
            }
        }
        // Stopped early (Ctrl-C): connections not set up yet are abandoned, not counted as errors.
        for slot in 0..self.conns.len() {
            if !(self.conns[slot].is_established() || self.conns[slot].has_ended()) {
                self.abandon(slot);
            }
        }
    }

    fn start_connect(&mut self, slot: usize, now: Instant) {
        let family = if self.settings_target_is_v6() {
            libc::AF_INET6
        } else {
            libc::AF_INET
        };
        // SAFETY: plain socket(2); the returned descriptor is owned by the OwnedFd below.
        let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            self.fail(slot, ErrorKind::Connect, "socket() failed");
            return;
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        set_nodelay(&fd);
        let raw = fd.as_raw_fd();
        let conn = &mut self.conns[slot];
        conn.fd = Some(fd);
        conn.state = State::Connecting;
        conn.started = now;
        conn.setup_deadline = now + self.settings.timeout;
        let (addr, len) = &*self.target;
        // SAFETY: `self.target` is boxed and lives as long as this thread's ring (it is dropped
        // after the ring), so the address outlives the connect SQE.
        let sqe = unsafe {
            ops::connect(
                raw,
                (addr as *const libc::sockaddr_storage).cast(),
                *len,
                token(Op::Connect, slot),
            )
        };
        self.push(&sqe);
    }

    fn settings_target_is_v6(&self) -> bool {
        i32::from(self.target.0.ss_family) == libc::AF_INET6
    }

    fn push(&mut self, sqe: &ops::Sqe) {
        // A full submission queue is submitted by `push`; an error here means the ring is broken,
        // which the next wait reports.
        if uring::push(&mut self.ring, sqe).is_ok() {
            self.outstanding += 1;
        }
    }

    /// One turn of the event loop.
    fn turn(&mut self) -> std::io::Result<()> {
        let wait = self.wait_time(Instant::now());
        uring::submit_and_wait(&self.ring, 1, Some(wait))?;
        let now = Instant::now();
        if let Some(t) = self.tally.as_mut() {
            t.advance(now);
        }
        self.completions.clear();
        self.completions.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for i in 0..self.completions.len() {
            let (user_data, result, flags) = self.completions[i];
            self.dispatch(user_data, result, flags, now);
        }
        self.bufs.commit();
        if self.settings.mode == Mode::Stcp {
            self.open_records(now);
        }
        if self.settings.open_loop {
            self.schedule_open_loop(now);
        }
        self.seal_and_send();
        if now >= self.next_timeout_check {
            self.next_timeout_check = now + self.timeout_check_every;
            self.check_timeouts(now);
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

    fn dispatch(&mut self, user_data: u64, result: i32, flags: u32, now: Instant) {
        let more = io_uring::cqueue::more(flags);
        if !more {
            self.outstanding = self.outstanding.saturating_sub(1);
        }
        let Some(token) = Token::from_user_data(user_data) else {
            return;
        };
        let slot = token.slot as usize;
        if slot >= self.conns.len() {
            return;
        }
        match token.op {
            Op::Connect => self.on_connect(slot, result, now),
            Op::Recv => self.on_recv(slot, result, flags, more, now),
            Op::Send => self.on_send(slot, result),
            // Cancellations and closes need no action; their targets complete on their own.
            _ => {}
        }
    }

    fn on_connect(&mut self, slot: usize, result: i32, now: Instant) {
        if !matches!(self.conns[slot].state, State::Connecting) {
            return;
        }
        if result < 0 {
            self.fail(slot, ErrorKind::Connect, errno_name(-result));
            return;
        }
        self.arm_recv(slot);
        match self.settings.mode {
            Mode::Tcp => self.established(slot, now),
            Mode::Stcp => {
                let config = self
                    .client_config
                    .as_ref()
                    .expect("STCP runs have a client config");
                let started = ClientHandshake::start(config, crate::entropy::random_seed());
                let conn = &mut self.conns[slot];
                match started {
                    Ok((handshake, first_frame)) => {
                        if conn.queue_bytes(&first_frame).is_err() {
                            self.fail(
                                slot,
                                ErrorKind::Handshake,
                                "first handshake frame does not fit",
                            );
                            return;
                        }
                        conn.state = State::Handshaking(Box::new(handshake));
                        conn.setup_deadline = now + self.settings.timeout;
                    }
                    Err(_) => self.fail(slot, ErrorKind::Handshake, "handshake could not start"),
                }
            }
        }
    }

    fn established(&mut self, slot: usize, now: Instant) {
        let conn = &mut self.conns[slot];
        conn.state = State::Established;
        stats::record_ns(
            &mut self.handshake,
            now.saturating_duration_since(conn.started).as_nanos() as u64,
        );
        self.established += 1;
    }

    fn arm_recv(&mut self, slot: usize) {
        let Some(fd) = self.conns[slot].fd.as_ref().map(|f| f.as_raw_fd()) else {
            return;
        };
        let sqe = ops::recv_multi(fd, &self.bufs, token(Op::Recv, slot));
        self.conns[slot].recv_armed = true;
        self.push(&sqe);
    }

    fn on_recv(&mut self, slot: usize, result: i32, flags: u32, more: bool, now: Instant) {
        if !more {
            self.conns[slot].recv_armed = false;
        }
        let outcome = if result > 0 {
            match self.bufs.take(flags, result as u32) {
                Some(buf) => {
                    let data = self.bufs.bytes(&buf);
                    let outcome = absorb(
                        &mut self.conns[slot],
                        data,
                        now,
                        &self.settings,
                        self.tally.as_mut(),
                        &mut self.handshake,
                        &mut self.established,
                    );
                    self.bufs.give_back(buf);
                    outcome
                }
                None => Err((ErrorKind::Io, "receive completion without a buffer")),
            }
        } else if result == 0 {
            let conn = &mut self.conns[slot];
            if conn.in_complete > 0 && conn.is_established() {
                // Records of this turn wait to be opened; if the server's Close is among them
                // this is a clean end. Judged in `open_records`; no re-arm.
                conn.peer_eof = true;
                return;
            }
            Err((ErrorKind::Io, "server closed the connection"))
        } else if result == -libc::ENOBUFS || result == -libc::ECANCELED {
            Ok(())
        } else {
            Err((ErrorKind::Io, errno_name(-result)))
        };
        if let Err((kind, why)) = outcome {
            // Whatever ends a connection during its handshake is a handshake failure (a server
            // that cannot authenticate us just closes).
            let (kind, why) = if matches!(self.conns[slot].state, State::Handshaking(_)) {
                let why = if result == 0 {
                    "the server closed the connection during the handshake: wrong --server-key, \
                     or the server requires a --psk (or another one)"
                } else {
                    why
                };
                (ErrorKind::Handshake, why)
            } else {
                (kind, why)
            };
            self.fail(slot, kind, why);
        } else if !more
            && result != -libc::ECANCELED
            && !self.closing
            && !self.conns[slot].has_ended()
        {
            // The multishot receive ended (ring ran dry, or the kernel stopped it): re-arm.
            self.arm_recv(slot);
        }
    }

    fn on_send(&mut self, slot: usize, result: i32) {
        if self.conns[slot].has_ended() {
            return;
        }
        if result <= 0 {
            let why = if result == 0 {
                "send took no bytes"
            } else {
                errno_name(-result)
            };
            self.fail(slot, ErrorKind::Io, why);
            return;
        }
        if let Some(t) = self.tally.as_mut() {
            t.bytes_sent(result as usize);
        }
        if let Some((ptr, len)) = self.conns[slot].sent(result as usize) {
            self.push_send(slot, ptr, len);
        }
    }

    fn push_send(&mut self, slot: usize, ptr: *const u8, len: u32) {
        let Some(fd) = self.conns[slot].fd.as_ref().map(|f| f.as_raw_fd()) else {
            return;
        };
        // SAFETY: `ptr..ptr+len` lies in one of the connection's two `out` buffers (boxed,
        // allocated once, never resized). That buffer is marked as sending (`Connection::sending`)
        // and is neither written nor cleared until this send's completion is reaped in `on_send`;
        // the ring is dropped before the connections.
        let sqe = unsafe { ops::send(fd, ptr, len, token(Op::Send, slot)) };
        self.push(&sqe);
    }

    /// Opens, in one batch, every whole record this turn delivered, then checks the echoes.
    fn open_records(&mut self, now: Instant) {
        let slots = &mut self.batch_slots;
        let failures = &mut self.batch_failures;
        slots.clear();
        failures.clear();
        stcp_proto::open_batch(
            self.conns
                .iter_mut()
                .enumerate()
                .filter(|(_, c)| c.wants_open)
                .filter_map(|(slot, c)| {
                    c.wants_open = false;
                    let job = c.open_job()?;
                    slots.push(slot as u32);
                    Some(job)
                }),
            |job, result| {
                if result.is_err() {
                    failures.push(job);
                }
            },
        );
        for j in 0..self.batch_slots.len() {
            let slot = self.batch_slots[j] as usize;
            if self.batch_failures.contains(&j) {
                // A record that does not authenticate was altered on the way: the echo differs.
                self.fail(slot, ErrorKind::Verify, "echo record failed authentication");
                continue;
            }
            let tally = self
                .tally
                .as_mut()
                .expect("records arrive only during the load");
            if let Err(kind) = self.conns[slot].consume_opened(now, &self.settings, tally) {
                self.fail(slot, kind, "echo differs from the request");
            } else if self.conns[slot].server_closed {
                self.closed_by_server(slot);
            } else if self.conns[slot].peer_eof {
                self.fail(slot, ErrorKind::Io, "server closed the connection");
            }
        }
    }

    /// The server ended the connection with its authenticated Close record: a clean end, not an
    /// error (a stopping server closes this way). Requests still in flight will get no echo;
    /// they are counted as unanswered. During our own close this is just the server's reply.
    fn closed_by_server(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        if conn.has_ended() {
            return;
        }
        conn.state = State::Closed;
        if !self.closing {
            self.closed_by_server += 1;
            self.unanswered += conn.in_flight.len() as u64;
            if self.closed_by_server == 1 {
                tracing::info!(
                    connection = conn.id,
                    "the server closed the connection (authenticated close): it is stopping"
                );
            }
        }
        if let Some(fd) = conn.fd.as_ref().map(|f| f.as_raw_fd()) {
            self.push(&ops::cancel_fd(fd, token(Op::Cancel, slot)));
        }
    }

    /// Open loop: queues every request whose intended send time has come, as depth allows.
    fn schedule_open_loop(&mut self, now: Instant) {
        let Some(t) = self.tally.as_ref() else { return };
        if !t.accepting_requests() {
            return;
        }
        let (load_start, end) = (t.load_start, t.end());
        let s = &self.settings;
        for conn in self.conns.iter_mut().filter(|c| c.is_established()) {
            while !conn.in_flight.is_full() {
                let intended = conn.next_intended(s, load_start);
                if intended > now || intended >= end {
                    break;
                }
                conn.queue_request(s, intended);
                conn.scheduled += 1;
            }
        }
    }

    /// Seals, in one batch, every record queued this turn, stamps the requests and starts sends.
    fn seal_and_send(&mut self) {
        if self.settings.mode == Mode::Stcp {
            let slots = &mut self.batch_slots;
            let failures = &mut self.batch_failures;
            slots.clear();
            failures.clear();
            stcp_proto::seal_batch(
                self.conns
                    .iter_mut()
                    .enumerate()
                    .filter(|(_, c)| c.wants_send)
                    .filter_map(|(slot, c)| {
                        let job = c.seal_job()?;
                        slots.push(slot as u32);
                        Some(job)
                    }),
                |job, result| {
                    if result.is_err() {
                        failures.push(job);
                    }
                },
            );
            for j in 0..self.batch_slots.len() {
                let slot = self.batch_slots[j] as usize;
                if self.batch_failures.contains(&j) {
                    self.fail(slot, ErrorKind::Io, "sealing a request failed");
                } else {
                    self.conns[slot].sealed_all();
                }
            }
        }
        let handed_over = Instant::now();
        for slot in 0..self.conns.len() {
            let conn = &mut self.conns[slot];
            if !conn.wants_send {
                continue;
            }
            conn.wants_send = false;
            if conn.has_ended() {
                continue;
            }
            conn.stamp(handed_over);
            if let Some((ptr, len)) = conn.start_send() {
                self.push_send(slot, ptr, len);
            }
        }
    }

    fn check_timeouts(&mut self, now: Instant) {
        let timeout = self.settings.timeout;
        for slot in 0..self.conns.len() {
            let conn = &self.conns[slot];
            let failure = match &conn.state {
                State::Connecting if now > conn.setup_deadline => {
                    Some((ErrorKind::Connect, "connect timed out"))
                }
                State::Handshaking(_) if now > conn.setup_deadline => {
                    Some((ErrorKind::Handshake, "handshake timed out"))
                }
                State::Established => conn
                    .in_flight
                    .front()
                    .filter(|f| now.saturating_duration_since(f.sent) > timeout)
                    .map(|_| (ErrorKind::Timeout, "echo did not come back in time")),
                _ => None,
            };
            if let Some((kind, why)) = failure {
                self.fail(slot, kind, why);
            }
        }
    }

    /// Ends a connection without counting an error (the run was stopped before it was set up).
    fn abandon(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        conn.state = State::Failed;
        if let Some(fd) = conn.fd.as_ref().map(|f| f.as_raw_fd()) {
            self.push(&ops::cancel_fd(fd, token(Op::Cancel, slot)));
        }
    }

    /// Counts a connection's failure once, logs the first few of each kind, and cancels its
    /// operations; the connection takes no further part in the run.
    fn fail(&mut self, slot: usize, kind: ErrorKind, why: &str) {
        let conn = &mut self.conns[slot];
        if conn.has_ended() {
            return;
        }
        if self.closing {
            // Errors while closing (the server closing first, a cancelled send) are not failures.
            conn.state = State::Failed;
            return;
        }
        if conn.is_established() {
            self.lost += 1;
        }
        conn.state = State::Failed;
        self.errors.count(kind);
        if let Some(t) = self.tally.as_mut() {
            t.error();
        }
        let count = match kind {
            ErrorKind::Connect => self.errors.connect,
            ErrorKind::Handshake => self.errors.handshake,
            ErrorKind::Io => self.errors.io,
            ErrorKind::Timeout => self.errors.timeout,
            ErrorKind::Verify => self.errors.verify,
        };
        if count <= LOGGED_FAILURES_PER_KIND {
            tracing::warn!(connection = conn.id, kind = kind.name(), "{why}");
            if count == LOGGED_FAILURES_PER_KIND {
                tracing::warn!(
                    kind = kind.name(),
                    "further {} errors on this thread are counted, not logged",
                    kind.name()
                );
            }
        }
        if let Some(fd) = conn.fd.as_ref().map(|f| f.as_raw_fd()) {
            self.push(&ops::cancel_fd(fd, token(Op::Cancel, slot)));
        }
    }

    /// Sends an authenticated close on every live STCP connection and waits for the server's
    /// close (so neither side resets a connection with unread bytes), cancels everything, and
    /// reaps until the kernel holds nothing of ours; bounded by [`CLOSE_GRACE`] twice.
    fn close_all(&mut self) {
        for conn in self.conns.iter_mut().filter(|c| c.is_established()) {
            conn.queue_close();
        }
        self.seal_and_send();
        // From here on a peer close or a failed operation just ends the connection (see `fail`).
        self.closing = true;
        let until = Instant::now() + CLOSE_GRACE;
        while self.settings.mode == Mode::Stcp
            && self.conns.iter().any(|c| c.is_established())
            && Instant::now() < until
        {
            if self.turn().is_err() {
                break;
            }
        }
        for slot in 0..self.conns.len() {
            if let Some(fd) = self.conns[slot].fd.as_ref().map(|f| f.as_raw_fd()) {
                self.push(&ops::cancel_fd(fd, token(Op::Cancel, slot)));
            }
        }
        while self.outstanding > 0 && Instant::now() < until + CLOSE_GRACE {
            if self.turn().is_err() {
                break;
            }
        }
    }
}

/// Feeds received bytes to a connection, whatever stage it is in.
fn absorb(
    conn: &mut Connection,
    data: &[u8],
    now: Instant,
    s: &Settings,
    tally: Option<&mut Tally>,
    handshake: &mut LatencyHistogram,
    established: &mut u64,
) -> Result<(), (ErrorKind, &'static str)> {
    match &conn.state {
        State::Handshaking(_) => {
            let Some(len) = conn
                .absorb_handshake(data)
                .map_err(|k| (k, "bad handshake reply"))?
            else {
                return Ok(());
            };
            let State::Handshaking(hs) = std::mem::replace(&mut conn.state, State::Established)
            else {
                unreachable!("matched above")
            };
            let session = hs
                .finish(&conn.inbuf[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len])
                .map_err(|_| {
                    (
                        ErrorKind::Handshake,
                        "server failed the handshake (wrong key or PSK?)",
                    )
                })?;
            conn.sealer = Some(session.sealer);
            conn.opener = Some(session.opener);
            conn.in_len = 0;
            stats::record_ns(
                handshake,
                now.saturating_duration_since(conn.started).as_nanos() as u64,
            );
            *established += 1;
            Ok(())
        }
        State::Established => {
            let Some(tally) = tally else {
                return Err((ErrorKind::Verify, "server sent data before any request"));
            };
            tally.bytes_received(data.len());
            match s.mode {
                Mode::Stcp => conn
                    .absorb_records(data, s)
                    .map_err(|k| (k, "bad echo record")),
                Mode::Tcp => conn
                    .absorb_frames(data, now, s, tally)
                    .map_err(|k| (k, "echo differs from the request")),
            }
        }
        State::Failed | State::Closed => Ok(()),
        State::NotStarted | State::Connecting => {
            Err((ErrorKind::Io, "data before the connection was set up"))
        }
    }
}

fn token(op: Op, slot: usize) -> Token {
    Token::new(op, slot as u32, 0)
}
