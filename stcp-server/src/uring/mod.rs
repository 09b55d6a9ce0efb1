//! A small safe layer over the raw io_uring pieces, shared by the server and the load generator.
//!
//! # Pieces
//! - [`probe()`]: can io_uring be used at all? `Err(`[`Unavailable`]`)` names the cause
//!   (`DisabledBySysctl`, `PermissionDenied` = EPERM from seccomp, `NotSupported` = ENOSYS,
//!   `MissingFeature` for too-old kernels).
//! - [`build_ring`]`(&`[`RingOptions`]`)`: one ring per thread, with SINGLE_ISSUER, DEFER_TASKRUN
//!   and COOP_TASKRUN when accepted (dropped one at a time on EINVAL); returns the
//!   [`AppliedFlags`]. With DEFER_TASKRUN the ring must be created on the thread that uses it, and
//!   completions only appear while that thread waits, so always reap through [`submit_and_wait`].
//! - [`Token`]: the typed `user_data` ([`Op`] kind + slab slot + 24-bit generation).
//! - [`ops`]: SQE constructors taking a [`Token`] and returning an [`Sqe`]; the ones pointing the
//!   kernel at caller memory are `unsafe fn` with the lifetime contract written down. [`push`]
//!   queues an [`Sqe`] (submitting when the SQ is full).
//! - [`BufRing`]: a provided-buffer ring (`IORING_REGISTER_PBUF_RING`) in its own mmap'ed memory;
//!   [`BufRing::take`] turns a CQE's buffer id into an owned [`RingBuf`], [`BufRing::give_back`] +
//!   [`BufRing::commit`] return it.
//! - [`FixedBuffers`] + [`register_fixed_table`]: registered buffers (`buf_index` for
//!   `send_zc_fixed`/WriteFixed), optionally sharing the table with a buffer ring's memory.
//!
//! # Thread rule
//! Create a ring on the thread that uses it, and keep that thread for the ring's life. Destroying
//! a ring queues signal-like task work on its creating thread; a blocking socket call with a
//! timeout running there at that moment fails once with EINTR (std's `read_exact`/`write_all`
//! retry it, plain `read`/`write` do not). [`probe()`] runs on a thread of its own for this reason.
//!
//! # Memory rule
//! A [`BufRing`] or [`FixedBuffers`] must outlive the ring it is registered with: declare the
//! `IoUring` field *before* them in the owning struct (fields drop in declaration order), and reap
//! every in-flight operation before dropping either.
//!
//! # A client engine in a few lines
//! ```no_run
//! use stcp_server::uring::{self, ops, BufRing, Op, RingOptions, Token};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! uring::probe()?;                                   // or fall back to epoll
//! let (mut ring, _flags) = uring::build_ring(&RingOptions::default())?;
//! let mut bufs = BufRing::new(256, 16 * 1024, 0)?;
//! // SAFETY: `bufs` is dropped after `ring` (declared later / dropped explicitly below).
//! unsafe { bufs.register(&ring.submitter())? };
//!
//! let sock = std::net::TcpStream::connect("127.0.0.1:7444")?; // or ops::connect on a socket2 fd
//! use std::os::fd::AsRawFd;
//! let fd = sock.as_raw_fd();
//! let slot = 0; let gen = 0;
//! uring::push(&mut ring, &ops::recv_multi(fd, &bufs, Token::new(Op::Recv, slot, gen)))?;
//! let msg = b"\0\0\0\x05hello".to_vec();
//! // SAFETY: `msg` lives until the Send completion is reaped below.
//! uring::push(&mut ring, &unsafe { ops::send(fd, msg.as_ptr(), msg.len() as u32, Token::new(Op::Send, slot, gen)) })?;
//! let mut got = 0;
//! while got < msg.len() {
//!     uring::submit_and_wait(&ring, 1, Some(std::time::Duration::from_secs(1)))?;
//!     let cqes: Vec<_> = ring.completion().map(|c| (c.user_data(), c.result(), c.flags())).collect();
//!     for (ud, res, flags) in cqes {
//!         match Token::from_user_data(ud).map(|t| t.op) {
//!             Some(Op::Recv) if res > 0 => {
//!                 let buf = bufs.take(flags, res as u32).expect("buffer");
//!                 got += bufs.bytes(&buf).len();
//!                 bufs.give_back(buf);
//!                 bufs.commit();
//!                 // no MORE flag (io_uring::cqueue::more(flags) == false): re-arm recv_multi
//!             }
//!             _ => {}
//!         }
//!     }
//! }
//! drop(ring);
//! drop(bufs);
//! # Ok(()) }
//! ```

mod buf_ring;
mod fixed;
mod mmap;
pub mod ops;
mod probe;
mod ring;
mod token;

pub use buf_ring::{BufRing, RingBuf};
pub use fixed::{register_fixed_table, FixedBuf, FixedBuffers};
pub use ops::Sqe;
pub use probe::{classify_setup_error, io_uring_disabled_sysctl, probe, Support, Unavailable};
pub use ring::{build_ring, push, submit_and_wait, AppliedFlags, RingOptions};
pub use token::{next_gen, Op, Token, GEN_MASK};

/// The io-uring crate this layer is built on, re-exported so users name the same version.
pub use io_uring;
