//! The io_uring engine shared by the server and the load generator: everything between a socket
//! and a handler of completions, written once.
//!
//! The server's worker and the load generator's client thread are both [`Handler`]s of a
//! [`Driver`]: the driver owns the ring and the provided buffers, counts the operations the kernel
//! holds, hands every completion to the handler, applies the ENOBUFS rule, and at shutdown cancels
//! and drains, leaking rather than freeing memory the kernel may still hold. Neither event loop
//! touches a raw SQE or CQE.
//!
//! # Pieces
//! - [`probe()`]: can io_uring be used at all? `Err(`[`Unavailable`]`)` names the cause
//!   (`DisabledBySysctl`, `PermissionDenied` = EPERM from seccomp, `NotSupported` = ENOSYS,
//!   `MissingFeature` for too-old kernels).
//! - [`build_ring`]`(&`[`RingOptions`]`)`: one ring per thread, with SINGLE_ISSUER, DEFER_TASKRUN
//!   and COOP_TASKRUN when accepted (dropped one at a time on EINVAL); returns the
//!   [`AppliedFlags`]. With DEFER_TASKRUN the ring must be created on the thread that uses it, and
//!   completions only appear while that thread enters the kernel with GETEVENTS, so always reap
//!   through [`submit_and_wait`] or [`submit_and_reap`] (which does not wait). Asked for
//!   (`RingOptions::taskrun_flag`, which busy poll sets), TASKRUN_FLAG makes the kernel flag
//!   completions it holds back, so a thread polling the completion queue knows when to enter.
//! - [`Token`]: the typed `user_data` ([`Op`] kind + slab slot + 24-bit generation).
//! - [`ops`]: SQE constructors taking a [`Token`] and returning an [`Sqe`]; the ones pointing the
//!   kernel at caller memory are `unsafe fn` with the lifetime contract written down. [`push`]
//!   queues an [`Sqe`] (submitting when the SQ is full).
//! - [`BufRing`]: a provided-buffer ring (`IORING_REGISTER_PBUF_RING`) in its own mmap'ed memory;
//!   [`BufRing::take`] turns a CQE's buffer id into an owned [`RingBuf`], [`BufRing::give_back`] +
//!   [`BufRing::commit`] return it.
//! - [`Driver`] + [`Handler`]: the completion loop (see [`driver`]).
//!
//! # Thread rule
//! Create a ring on the thread that uses it, and keep that thread for the ring's life. Destroying
//! a ring queues signal-like task work on its creating thread; a blocking socket call with a
//! timeout running there at that moment fails once with EINTR (std's `read_exact`/`write_all`
//! retry it, plain `read`/`write` do not). [`probe()`] runs on a thread of its own for this reason.
//!
//! # Memory rule
//! A [`BufRing`] must outlive the ring it is registered with, and memory a send points at must
//! live until that send's completion is reaped. [`Driver`] keeps the first rule by itself and the
//! second at shutdown ([`Driver::shutdown`] frees the caller's memory only once nothing is in
//! flight); between the two, a handler keeps each send's buffer until its completion arrives.
//!

pub mod driver;

mod buf_ring;
mod mmap;
pub mod ops;
mod probe;
mod ring;
mod token;

pub use buf_ring::{BufRing, RingBuf};
pub use driver::{
    Completion, Drained, Driver, DriverError, DriverOptions, Handler, Receive, WaitCounts,
};
pub use ops::Sqe;
pub use probe::{
    classify_setup_error, io_uring_disabled_sysctl, io_uring_or_skip, probe, Support, Unavailable,
};
pub use ring::{build_ring, push, submit_and_reap, submit_and_wait, AppliedFlags, RingOptions};
pub use token::{next_gen, Op, Token, GEN_MASK};

/// The io-uring crate this engine is built on, re-exported so users name the same version.
pub use io_uring;
