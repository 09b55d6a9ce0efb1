//! The completion driver: one io_uring and its provided-buffer ring, owned together, and the
//! rules every event loop on them follows.
//!
//! A [`Driver`] lives on the thread that created it (see the thread rule in the crate docs). Its
//! user pushes operations through it (so it knows how many the kernel holds), calls
//! [`Driver::turn`] to wait and have every completion handed to its [`Handler`], and ends each
//! turn with [`Driver::end_turn`], which re-arms receives that an empty buffer ring stopped and
//! publishes the buffers given back. [`Driver::shutdown`] cancels whatever is left, reaps until the
//! kernel holds nothing, and only then frees the memory operations pointed at; if the kernel still
//! holds some after the grace period, that memory is leaked instead of freed.
//!
//! The ENOBUFS rule: a multishot receive that finds the buffer ring empty ends with `-ENOBUFS`.
//! The driver queues its token; once at least an eighth of the buffers are back, it asks the
//! handler, oldest first, whether each connection still wants to receive
//! ([`Handler::resume_receive`]) and re-arms those that do. Re-arming at once would only spin.
//!
//! Busy poll ([`DriverOptions::busy_poll`], off by default): before blocking in the kernel,
//! [`Driver::wait`] submits, then spins on the completion queue in user space for up to that long
//! and returns as soon as a completion is there. The ring is then built with TASKRUN_FLAG, so the
//! kernel says (`IORING_SQ_TASKRUN`) when it holds completions back as deferred task work; only
//! then does the spin enter the kernel, to run that work. It trades a core's idle time for the
//! wake-up of a sleeping thread; [`Driver::wait_counts`] tells which waits it ended.

use std::{
    collections::VecDeque,
    io,
    mem::ManuallyDrop,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    time::{Duration, Instant},
};

use io_uring::{cqueue, IoUring};

use crate::{
    build_ring, ops, push, submit_and_reap, submit_and_wait, AppliedFlags, BufRing, Op, RingBuf,
    RingOptions, Sqe, Token, Unavailable,
};

/// Receives re-armed after ENOBUFS only once this fraction (1/N) of the buffers is back.
const RESUME_FRACTION: usize = 8;
/// Longest single wait while draining at shutdown.
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// Grace used when a driver is dropped with operations still in the kernel.
const DROP_GRACE: Duration = Duration::from_secs(2);
/// Slot of the driver's own cancel-everything request.
const DRIVER_SLOT: u32 = u32::MAX;
/// Longest wait for the capped-receive probe's completions.
const PROBE_WAIT: Duration = Duration::from_secs(1);
/// A busy-polling wait reads the clock once per this many spins.
const SPINS_PER_CLOCK_READ: u32 = 64;

/// What a driver is built with.
#[derive(Clone, Debug)]
pub struct DriverOptions {
    /// The ring's setup flags and sizes.
    pub ring: RingOptions,
    /// Buffers in the provided-buffer ring (rounded up to a power of two, at most 32768).
    pub buffers: u16,
    /// Bytes in each of them.
    pub buffer_size: u32,
    /// Buffer group id of the ring.
    pub buffer_group: u16,
    /// Busy poll: spin on the completion queue for up to this long before blocking in the kernel
    /// in [`Driver::wait`] (and so [`Driver::turn`]). Zero (the default) is off. It keeps the
    /// thread's core busy while there is nothing to do, so a completion is picked up without the
    /// wake-up of a sleeping thread; the ring then gets `IORING_SETUP_TASKRUN_FLAG` as well.
    pub busy_poll: Duration,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            ring: RingOptions::default(),
            buffers: 1024,
            buffer_size: 16 * 1024,
            buffer_group: 0,
            busy_poll: Duration::ZERO,
        }
    }
}

/// How the waits of a driver ended, counted by [`Driver::wait`] (see [`Driver::wait_counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaitCounts {
    /// Busy poll on: a completion was there right after submitting (no spin, no sleep).
    pub ready: u64,
    /// Busy poll on: a completion arrived while spinning; the thread did not sleep.
    pub spun: u64,
    /// Waits that went to the kernel's blocking wait: every wait with busy poll off (or with
    /// nothing in flight), and those whose spin ended with no completion. Such a wait sleeps
    /// unless a completion arrives before it does.
    pub blocked: u64,
}

/// Why a driver could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The ring could not be created.
    #[error("{0}")]
    Ring(#[from] Unavailable),
    /// The provided-buffer ring could not be mapped or registered.
    #[error("provided-buffer ring: {0}")]
    Buffers(io::Error),
}

/// One completion, as the handler sees it.
#[derive(Debug)]
pub struct Completion {
    /// The token the operation was pushed with.
    pub token: Token,
    /// The kernel's result (bytes, a new fd, or `-errno`).
    pub result: i32,
    /// The CQE flags.
    pub flags: u32,
    /// For a receive that delivered bytes: the ring buffer holding them, now the handler's. It
    /// must go back with [`Driver::give_back`] (or be kept, e.g. to send from, and given back
    /// later).
    pub buf: Option<RingBuf>,
}

impl Completion {
    /// Whether a multishot operation stays armed after this completion.
    pub fn more(&self) -> bool {
        cqueue::more(self.flags)
    }

    /// A receive that stopped because the buffer ring was empty; the driver has queued it and
    /// will offer it back through [`Handler::resume_receive`].
    pub fn starved(&self) -> bool {
        self.token.op == Op::Recv && self.result == -libc::ENOBUFS
    }
}

/// How a receive is armed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receive {
    /// Stays armed, one completion (and one buffer) per arrival, until it ends without
    /// `IORING_CQE_F_MORE` or is cancelled: fewest submissions.
    Multishot,
    /// One completion, at most one buffer: bounds what a connection can be handed.
    Once,
    /// Multishot that delivers at most `bytes` in all (never less than one buffer's worth) and
    /// then ends (no `IORING_CQE_F_MORE`): a connection is never handed more than it has room
    /// for, with one submission for many arrivals. The kernel's cap ends the request once it has
    /// delivered *at least* its value, and each completion takes up to one buffer, so the driver
    /// asks it for `bytes - buffer_size + 1`. Where the kernel lacks the cap (before Linux 6.17),
    /// the driver arms [`Receive::Once`] instead ([`Driver::capped_receive`] says which).
    Capped {
        /// Most bytes the receive may deliver.
        bytes: u32,
    },
}

/// What an event loop on a [`Driver`] does with completions.
pub trait Handler {
    /// One completion of an operation this handler pushed (tokens it did not make are filtered
    /// out by the driver). An error ends the turn and is returned by [`Driver::turn`]: it means
    /// the ring itself failed.
    fn on_completion(&mut self, driver: &mut Driver, completion: Completion) -> io::Result<()>;

    /// A receive of `token` stopped by an empty buffer ring can be re-armed now. Return the socket
    /// and how to receive when that connection (at that generation) still wants to, after
    /// marking it armed.
    fn resume_receive(&mut self, token: Token) -> Option<(RawFd, Receive)>;
}

/// How a shutdown ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drained {
    /// Every operation was reaped; memory was freed.
    Complete,
    /// The kernel still held this many operations after the grace period: the buffer ring and
    /// the caller's buffers were leaked, not freed.
    Leaked {
        /// Operations still in the kernel.
        operations: usize,
    },
}

/// One ring, its provided buffers, and the count of operations the kernel holds.
pub struct Driver {
    // The ring is declared before the memory it uses. The buffer ring is only ever freed by hand,
    // after the kernel has let go of it (see `Drop`).
    ring: IoUring,
    bufs: ManuallyDrop<BufRing>,
    flags: AppliedFlags,
    /// Operations pushed and not yet finished (a multishot one finishes with its last CQE).
    in_flight: usize,
    completions: Vec<Completion>,
    starved: VecDeque<Token>,
    /// Longest spin of a wait before blocking (zero: no busy poll).
    busy_poll: Duration,
    /// The kernel honours a multishot receive's byte cap ([`Receive::Capped`]).
    capped_receive: bool,
    waits: WaitCounts,
    /// The memory is leaked on drop (a shutdown could not reap everything).
    leak: bool,
}

impl Driver {
    /// Builds a ring (with as many of the requested flags as the kernel accepts) and registers a
    /// provided-buffer ring with it. Call on the thread that will use it. With busy poll, the ring
    /// also gets TASKRUN_FLAG; if the kernel left the ring unable to tell a poller about
    /// completions held back, busy poll stays off ([`Driver::busy_poll`] says).
    pub fn new(options: &DriverOptions) -> Result<Driver, DriverError> {
        let busy = !options.busy_poll.is_zero();
        let (ring, flags) = build_ring(&RingOptions {
            taskrun_flag: options.ring.taskrun_flag || busy,
            ..options.ring.clone()
        })?;
        let busy_poll = if busy && !flags.completions_pollable() {
            tracing::warn!(
                ?flags,
                "busy poll is off: this ring holds completions back without telling a poller"
            );
            Duration::ZERO
        } else {
            options.busy_poll
        };
        let mut bufs = BufRing::new(options.buffers, options.buffer_size, options.buffer_group)
            .map_err(DriverError::Buffers)?;
        // SAFETY: the buffer ring is owned by this driver and only freed in `Drop`, after it was
        // unregistered with no operation left in the kernel (or never, if some are left).
        unsafe { bufs.register(&ring.submitter()) }.map_err(DriverError::Buffers)?;
        let mut driver = Driver {
            ring,
            bufs: ManuallyDrop::new(bufs),
            flags,
            in_flight: 0,
            completions: Vec::with_capacity(1024),
            starved: VecDeque::new(),
            busy_poll,
            capped_receive: false,
            waits: WaitCounts::default(),
            leak: false,
        };
        driver.capped_receive = driver.probe_capped_receive();
        Ok(driver)
    }

    /// Whether [`Receive::Capped`] arms a capped multishot receive (true) or, on a kernel without
    /// the cap, a single receive.
    pub fn capped_receive(&self) -> bool {
        self.capped_receive
    }

    /// Tries a multishot receive capped at 1 byte on a socket pair holding 2: a kernel with the
    /// cap delivers what is there in one completion and ends the request; one without refuses
    /// it (`-EINVAL`). Anything else counts as no cap; the last completion decides. Runs before
    /// the driver is handed out, so every completion it reaps is its own.
    fn probe_capped_receive(&mut self) -> bool {
        let mut fds = [0; 2];
        // SAFETY: socketpair writes two descriptors into `fds`, which we own from then on.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        } != 0
        {
            return false;
        }
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: writes 2 bytes from a live 2-byte array to a socket we own.
        if unsafe { libc::write(a.as_raw_fd(), b"ok".as_ptr().cast(), 2) } != 2 {
            return false;
        }
        let token = Token::new(Op::Recv, DRIVER_SLOT, 0);
        if self
            .push(&ops::recv_multi_capped(b.as_raw_fd(), &self.bufs, token, 1))
            .is_err()
        {
            return false;
        }
        let mut capped = false;
        let deadline = Instant::now() + PROBE_WAIT;
        let mut shut = false;
        while self.in_flight > 0 && Instant::now() < deadline {
            if submit_and_wait(&self.ring, 1, Some(DRAIN_POLL)).is_err() {
                break;
            }
            for cqe in self.ring.completion() {
                let (result, flags) = (cqe.result(), cqe.flags());
                if !cqueue::more(flags) {
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
                if result > 0 {
                    if let Some(buf) = self.bufs.take(flags, result as u32) {
                        self.bufs.give_back(buf);
                    }
                }
                capped = result > 0 && !cqueue::more(flags);
            }
            self.bufs.commit();
            if self.in_flight > 0 && !shut {
                // Still armed: the cap was not honoured. End it by ending the stream.
                // SAFETY: shuts down a socket we own; the armed receive then ends with 0.
                unsafe { libc::shutdown(a.as_raw_fd(), libc::SHUT_RDWR) };
                shut = true;
            }
        }
        if self.in_flight > 0 {
            // The probe's receive is still in the kernel: the sockets stay open for it.
            std::mem::forget((a, b));
            return false;
        }
        capped
    }

    /// The busy poll in force (zero: off).
    pub fn busy_poll(&self) -> Duration {
        self.busy_poll
    }

    /// How the waits so far ended: found a completion at once, by spinning, or went to block.
    pub fn wait_counts(&self) -> WaitCounts {
        self.waits
    }

    /// The setup flags the kernel accepted.
    pub fn flags(&self) -> AppliedFlags {
        self.flags
    }

    /// The provided-buffer ring (to read or write buffers the handler owns).
    pub fn buffers(&self) -> &BufRing {
        &self.bufs
    }

    /// Hands a ring buffer back to the kernel (published at the end of the turn).
    pub fn give_back(&mut self, buf: RingBuf) {
        self.bufs.give_back(buf);
    }

    /// Operations the kernel holds.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Queues one operation (submitting first when the submission queue is full).
    pub fn push(&mut self, sqe: &Sqe) -> io::Result<()> {
        push(&mut self.ring, sqe)?;
        self.in_flight += 1;
        Ok(())
    }

    /// Arms a multishot receive on `fd` into the provided buffers.
    pub fn arm_recv(&mut self, fd: RawFd, token: Token) -> io::Result<()> {
        self.arm_receive(fd, token, Receive::Multishot)
    }

    /// Arms a receive of `kind` on `fd` into the provided buffers.
    pub fn arm_receive(&mut self, fd: RawFd, token: Token, kind: Receive) -> io::Result<()> {
        let sqe = match kind {
            Receive::Multishot => ops::recv_multi(fd, &self.bufs, token),
            Receive::Once => ops::recv_once(fd, &self.bufs, token),
            Receive::Capped { bytes } if self.capped_receive => {
                let cap = bytes.saturating_sub(self.bufs.buf_size() as u32) + 1;
                ops::recv_multi_capped(fd, &self.bufs, token, cap)
            }
            Receive::Capped { .. } => ops::recv_once(fd, &self.bufs, token),
        };
        self.push(&sqe)
    }

    /// Submits what is queued without waiting, so the kernel starts on it now (e.g. replies
    /// ready while more work remains before the next wait). Returns how many entries went in.
    pub fn submit(&mut self) -> io::Result<usize> {
        self.ring.submit()
    }

    /// Submits what is queued, waits for at least one completion or `timeout`, and hands every
    /// completion to `handler`. Returns how many there were.
    pub fn turn<H: Handler>(&mut self, handler: &mut H, timeout: Duration) -> io::Result<usize> {
        self.wait(timeout)?;
        self.dispatch(handler)
    }

    /// The first half of [`Driver::turn`]: submits what is queued and waits for at least one
    /// completion or `timeout` (for a handler that reads the clock between waiting and handling).
    /// With busy poll, it spins for up to the busy poll (never past `timeout`) before blocking.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        // With nothing in flight no completion can come: spinning would only burn the core.
        if self.busy_poll.is_zero() || self.in_flight == 0 {
            self.waits.blocked += 1;
            return submit_and_wait(&self.ring, 1, Some(timeout));
        }
        self.busy_wait(timeout)
    }

    /// [`Driver::wait`] with busy poll: submit and reap without waiting, spin on the completion
    /// queue, and block for what is left of `timeout` only when the spin saw nothing.
    fn busy_wait(&mut self, timeout: Duration) -> io::Result<()> {
        let start = Instant::now();
        submit_and_reap(&mut self.ring)?;
        if self.completion_ready()? {
            self.waits.ready += 1;
            return Ok(());
        }
        let spin = self.busy_poll.min(timeout);
        let mut spins: u32 = 0;
        loop {
            std::hint::spin_loop();
            if self.completion_ready()? {
                self.waits.spun += 1;
                return Ok(());
            }
            spins = spins.wrapping_add(1);
            if spins % SPINS_PER_CLOCK_READ == 0 && start.elapsed() >= spin {
                break;
            }
        }
        self.waits.blocked += 1;
        match timeout.checked_sub(start.elapsed()) {
            Some(left) if !left.is_zero() => submit_and_wait(&self.ring, 1, Some(left)),
            _ => Ok(()),
        }
    }

    /// Whether a completion is in the completion queue, after having the kernel run the task
    /// work it flagged (`IORING_SQ_TASKRUN`) or flush an overflow. No system call otherwise, only
    /// a few loads of the rings' heads, tail and flags.
    fn completion_ready(&mut self) -> io::Result<bool> {
        if !self.ring.completion().is_empty() {
            return Ok(true);
        }
        let sq = self.ring.submission();
        if !(sq.taskrun() || sq.cq_overflow()) {
            return Ok(false);
        }
        drop(sq);
        submit_and_reap(&mut self.ring)?;
        Ok(!self.ring.completion().is_empty())
    }

    /// The second half of [`Driver::turn`]: hands every completion waiting to `handler`.
    pub fn dispatch<H: Handler>(&mut self, handler: &mut H) -> io::Result<usize> {
        let mut batch = std::mem::take(&mut self.completions);
        batch.clear();
        for cqe in self.ring.completion() {
            let (user_data, result, flags) = (cqe.user_data(), cqe.result(), cqe.flags());
            if !cqueue::more(flags) {
                self.in_flight = self.in_flight.saturating_sub(1);
            }
            let Some(token) = Token::from_user_data(user_data) else {
                continue;
            };
            let buf = if result > 0 {
                self.bufs.take(flags, result as u32)
            } else {
                None
            };
            if token.slot == DRIVER_SLOT && token.op == Op::Cancel {
                continue;
            }
            batch.push(Completion {
                token,
                result,
                flags,
                buf,
            });
        }
        let n = batch.len();
        let mut result = Ok(n);
        for completion in batch.drain(..) {
            if completion.starved() {
                self.starved.push_back(completion.token);
            }
            if result.is_ok() {
                if let Err(e) = handler.on_completion(self, completion) {
                    result = Err(e);
                }
            } else if let Some(buf) = completion.buf {
                self.bufs.give_back(buf);
            }
        }
        self.completions = batch;
        result
    }

    /// Receives stopped by an empty buffer ring and not yet re-armed.
    pub fn starved(&self) -> usize {
        self.starved.len()
    }

    /// Ends a turn: re-arms starved receives the handler still wants, oldest first, as far as
    /// the buffers given back allow (the ENOBUFS rule), and publishes the buffers given back.
    pub fn end_turn<H: Handler>(&mut self, handler: &mut H) -> io::Result<()> {
        while let Some(&token) = self.starved.front() {
            if self.bufs.available() < self.bufs.count() / RESUME_FRACTION {
                break;
            }
            self.starved.pop_front();
            if let Some((fd, kind)) = handler.resume_receive(token) {
                self.arm_receive(fd, token, kind)?;
            }
        }
        self.bufs.commit();
        Ok(())
    }

    /// Whether fewer than `1/fraction` of the receive buffers are left for the kernel.
    pub fn buffers_below(&self, fraction: usize) -> bool {
        self.bufs.available() < self.bufs.count() / fraction.max(1)
    }

    /// Cancels every operation and reaps completions (giving their buffers back) until the
    /// kernel holds none or `grace` has passed. Then drops `owned`, the memory operations may
    /// point at (send buffers, sockets, connection state), or leaks it, together with the
    /// buffer ring, when the kernel may still use it: a leak is safe, a free is not.
    pub fn shutdown<T>(&mut self, owned: T, grace: Duration) -> Drained {
        let drained = self.drain(grace);
        match drained {
            Drained::Complete => drop(owned),
            Drained::Leaked { operations } => {
                tracing::warn!(
                    operations,
                    "io_uring operations still in the kernel after {grace:?}: their buffers are \
                     leaked rather than freed"
                );
                std::mem::forget(owned);
                self.leak = true;
            }
        }
        drained
    }

    fn drain(&mut self, grace: Duration) -> Drained {
        if self.in_flight == 0 {
            return Drained::Complete;
        }
        let until = Instant::now() + grace;
        let cancel = ops::cancel_all(Token::new(Op::Cancel, DRIVER_SLOT, 0));
        let mut cancelled = self.push(&cancel).is_ok();
        while self.in_flight > 0 && Instant::now() < until {
            if submit_and_wait(&self.ring, 1, Some(DRAIN_POLL)).is_err() {
                break;
            }
            let mut any = false;
            for cqe in self.ring.completion() {
                any = true;
                if !cqueue::more(cqe.flags()) {
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
                if cqe.result() > 0 {
                    if let Some(b) = self.bufs.take(cqe.flags(), cqe.result() as u32) {
                        self.bufs.give_back(b);
                    }
                }
            }
            self.bufs.commit();
            if !any && !cancelled {
                cancelled = self.push(&cancel).is_ok();
            }
        }
        match self.in_flight {
            0 => Drained::Complete,
            operations => Drained::Leaked { operations },
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.leak && self.drain(DROP_GRACE) != Drained::Complete {
            self.leak = true;
        }
        if self.leak {
            return;
        }
        // Nothing is in the kernel: the buffer ring can be unregistered and freed. The ring itself
        // is dropped after this, as a field.
        let _ = self.bufs.unregister(&self.ring.submitter());
        // SAFETY: `bufs` is dropped exactly once, here, and no operation that could select from it
        // is in flight (the drain above reaped them all).
        unsafe { ManuallyDrop::drop(&mut self.bufs) };
    }
}
