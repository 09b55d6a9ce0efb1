//! Ring setup: one io_uring per thread with SINGLE_ISSUER / DEFER_TASKRUN / COOP_TASKRUN when the
//! kernel accepts them, degrading one flag at a time when it answers EINVAL; plus small helpers to
//! push SQEs and wait for completions.

use std::{io, time::Duration};

use io_uring::{types, EnterFlags, IoUring};

use crate::ops::Sqe;
use crate::probe::{classify_setup_error, io_uring_disabled_sysctl, Unavailable};

/// What to ask of the kernel when building a ring.
#[derive(Clone, Debug)]
pub struct RingOptions {
    /// Submission queue entries.
    pub sq_entries: u32,
    /// Completion queue entries (0: kernel default of twice `sq_entries`).
    pub cq_entries: u32,
    /// `IORING_SETUP_SINGLE_ISSUER`: only the creating thread submits (true for thread-per-core).
    pub single_issuer: bool,
    /// `IORING_SETUP_DEFER_TASKRUN`: completions are processed only when the owner waits; needs
    /// `single_issuer`, and the ring must be created on the thread that uses it.
    pub defer_taskrun: bool,
    /// `IORING_SETUP_COOP_TASKRUN`: no IPI to interrupt the thread for task work.
    pub coop_taskrun: bool,
    /// `IORING_SETUP_TASKRUN_FLAG`: the kernel sets `IORING_SQ_TASKRUN` in the SQ ring's flags
    /// while it holds completions back as task work (DEFER_TASKRUN, COOP_TASKRUN), so a thread
    /// that polls the completion queue knows when to enter the kernel. Only applied together with
    /// one of those two (the kernel refuses it alone, and with SQPOLL); off by default.
    pub taskrun_flag: bool,
    /// `IORING_SETUP_SQPOLL` with this idle time; off by default.
    pub sqpoll_idle: Option<Duration>,
}

impl Default for RingOptions {
    fn default() -> Self {
        RingOptions {
            sq_entries: 1024,
            cq_entries: 8192,
            single_issuer: true,
            defer_taskrun: true,
            coop_taskrun: true,
            taskrun_flag: false,
            sqpoll_idle: None,
        }
    }
}

/// The setup flags the kernel accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppliedFlags {
    /// `IORING_SETUP_SINGLE_ISSUER` is set.
    pub single_issuer: bool,
    /// `IORING_SETUP_DEFER_TASKRUN` is set.
    pub defer_taskrun: bool,
    /// `IORING_SETUP_COOP_TASKRUN` is set.
    pub coop_taskrun: bool,
    /// `IORING_SETUP_TASKRUN_FLAG` is set.
    pub taskrun_flag: bool,
    /// `IORING_SETUP_SQPOLL` is set.
    pub sqpoll: bool,
}

impl AppliedFlags {
    /// Whether a completion can show up in the completion queue without this thread entering the
    /// kernel, or the kernel says when it must enter (`IORING_SQ_TASKRUN`). False for a ring that
    /// holds completions back as task work (DEFER_TASKRUN, COOP_TASKRUN) without TASKRUN_FLAG:
    /// polling its completion queue from user space alone could miss them for good.
    pub fn completions_pollable(&self) -> bool {
        self.taskrun_flag || !(self.defer_taskrun || self.coop_taskrun)
    }
}

/// Builds a ring with as many of the requested flags as the kernel accepts. The flags are dropped
/// in this order when the kernel answers EINVAL: DEFER_TASKRUN, SINGLE_ISSUER, COOP_TASKRUN,
/// SQPOLL (TASKRUN_FLAG goes when neither DEFER_TASKRUN nor COOP_TASKRUN is left). EPERM/ENOSYS
/// are reported as their [`Unavailable`] cause.
pub fn build_ring(opts: &RingOptions) -> Result<(IoUring, AppliedFlags), Unavailable> {
    let mut want = AppliedFlags {
        single_issuer: opts.single_issuer,
        defer_taskrun: opts.defer_taskrun && opts.single_issuer,
        coop_taskrun: opts.coop_taskrun,
        taskrun_flag: opts.taskrun_flag && opts.sqpoll_idle.is_none(),
        sqpoll: opts.sqpoll_idle.is_some(),
    };
    loop {
        // The kernel accepts TASKRUN_FLAG only beside one of the two task-work modes.
        want.taskrun_flag &= want.defer_taskrun || want.coop_taskrun;
        let mut b = IoUring::builder();
        if opts.cq_entries > 0 {
            b.setup_cqsize(opts.cq_entries);
        }
        if want.single_issuer {
            b.setup_single_issuer();
        }
        if want.defer_taskrun {
            b.setup_defer_taskrun();
        }
        if want.coop_taskrun {
            b.setup_coop_taskrun();
        }
        if want.taskrun_flag {
            b.setup_taskrun_flag();
        }
        if want.sqpoll {
            let idle = opts
                .sqpoll_idle
                .unwrap_or_default()
                .as_millis()
                .min(u32::MAX as u128);
            b.setup_sqpoll(idle as u32);
        }
        match b.build(opts.sq_entries) {
            Ok(ring) => return Ok((ring, want)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                if want.defer_taskrun {
                    want.defer_taskrun = false;
                } else if want.single_issuer {
                    want.single_issuer = false;
                } else if want.coop_taskrun {
                    want.coop_taskrun = false;
                } else if want.sqpoll {
                    want.sqpoll = false;
                } else {
                    return Err(Unavailable::Setup(e));
                }
            }
            Err(e) => return Err(classify_setup_error(e, io_uring_disabled_sysctl())),
        }
    }
}

/// Pushes one SQE, submitting first when the submission queue is full.
pub fn push(ring: &mut IoUring, sqe: &Sqe) -> io::Result<()> {
    loop {
        // SAFETY: an `Sqe` can only be built by the `ops` constructors, whose contracts (safe by
        // construction, or `unsafe fn` with the caller's promise) guarantee that every buffer the
        // entry points at stays valid and owned by the kernel side until its completion.
        if unsafe { ring.submission().push(sqe.entry()) }.is_ok() {
            return Ok(());
        }
        match ring.submit() {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                // CQ overflow backlog: the caller must reap; flush what we can and retry.
                ring.submit_and_wait(0)?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Submits everything queued and, without waiting, has the kernel post the completions it holds
/// back: it runs deferred task work (DEFER_TASKRUN only does so for an enter with GETEVENTS) and
/// flushes a CQ overflow. One `io_uring_enter`; EINTR and EBUSY are not errors.
pub fn submit_and_reap(ring: &mut IoUring) -> io::Result<()> {
    if ring.params().is_setup_sqpoll() {
        // The SQ thread submits and completes by itself; the crate wakes it when it sleeps.
        return ring.submit().map(drop).or_else(ignore_transient);
    }
    let queued = ring.submission().len() as u32;
    // SAFETY: a plain io_uring_enter with no argument (a null sigset and no EXT_ARG); every entry
    // it submits was queued through `push`, whose contract keeps the memory each points at alive
    // until its completion is reaped. `min_complete` 0 makes GETEVENTS return without waiting.
    let r = unsafe {
        ring.submitter()
            .enter::<libc::sigset_t>(queued, 0, EnterFlags::GETEVENTS.bits(), None)
    };
    r.map(drop).or_else(ignore_transient)
}

/// Interrupts, expired timeouts and a full CQ (EBUSY: the caller must reap first) end a wait
/// without being errors.
fn ignore_transient(e: io::Error) -> io::Result<()> {
    match e.raw_os_error() {
        Some(libc::ETIME | libc::EINTR | libc::EBUSY) => Ok(()),
        _ => Err(e),
    }
}

/// Submits everything queued and waits for at least `want` completions or until `timeout`
/// elapses. Timeouts, interrupts and EBUSY are not errors: the caller just reaps what is there.
pub fn submit_and_wait(ring: &IoUring, want: usize, timeout: Option<Duration>) -> io::Result<()> {
    let r = match timeout {
        Some(t) => {
            let ts = types::Timespec::new()
                .sec(t.as_secs())
                .nsec(t.subsec_nanos());
            let args = types::SubmitArgs::new().timespec(&ts);
            ring.submitter().submit_with_args(want, &args)
        }
        None => ring.submitter().submit_and_wait(want),
    };
    r.map(drop).or_else(ignore_transient)
}
