//! SQE constructors tagged with a [`Token`]. Constructors whose SQE makes the kernel read or write
//! caller memory are `unsafe fn`s stating how long that memory must live; the others are safe.
//! The result is an [`Sqe`], which [`crate::push`] submits without further `unsafe`.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use crate::{BufRing, Token};

/// A submission entry whose memory contract has been discharged when it was built.
pub struct Sqe(squeue::Entry);

impl Sqe {
    /// The raw entry.
    pub fn entry(&self) -> &squeue::Entry {
        &self.0
    }
}

fn tag(e: squeue::Entry, token: Token) -> Sqe {
    Sqe(e.user_data(token.to_user_data()))
}

/// Multishot accept on listener `fd`: one CQE per accepted connection (result = new fd), with
/// `IORING_CQE_F_MORE` set while the request stays armed.
pub fn accept_multi(fd: RawFd, token: Token) -> Sqe {
    tag(
        opcode::AcceptMulti::new(types::Fd(fd))
            .flags(libc::SOCK_CLOEXEC)
            .build(),
        token,
    )
}

/// Multishot receive on `fd` into buffers of `ring`: each CQE carries a buffer id
/// (take it with [`BufRing::take`]); ENOBUFS (result `-105`, no MORE flag) means the ring ran dry
/// and the request must be re-armed once buffers are given back.
pub fn recv_multi(fd: RawFd, ring: &BufRing, token: Token) -> Sqe {
    tag(
        opcode::RecvMulti::new(types::Fd(fd), ring.bgid()).build(),
        token,
    )
}

/// Multishot receive on `fd` into buffers of `ring` that ends (a CQE without
/// `IORING_CQE_F_MORE`) as soon as it has delivered at least `total` bytes in all
/// (`sqe->optlen`, Linux 6.17); its last completion may carry up to one buffer beyond `total`.
/// Older kernels refuse it with `-EINVAL`; [`crate::Driver`] probes for it and falls back to
/// [`recv_once`].
pub fn recv_multi_capped(fd: RawFd, ring: &BufRing, token: Token, total: u32) -> Sqe {
    let mut entry = opcode::RecvMulti::new(types::Fd(fd), ring.bgid()).build();
    // SAFETY: `squeue::Entry` is `#[repr(C)]` around the kernel's 64-byte `io_uring_sqe`, in which
    // bytes 44..48 are the `file_index`/`optlen` union (include/uapi/linux/io_uring.h); the
    // crate's RecvMulti builder leaves them zero and has no setter for them. Only plain bytes of
    // the entry are written; no pointer or buffer lifetime is involved.
    unsafe {
        let raw = (&mut entry as *mut squeue::Entry).cast::<u8>();
        raw.add(SQE_OPTLEN_OFFSET)
            .cast::<u32>()
            .write_unaligned(total);
    }
    tag(entry, token)
}

/// Offset of `optlen` in `struct io_uring_sqe`.
const SQE_OPTLEN_OFFSET: usize = 44;
const _: () = assert!(std::mem::size_of::<squeue::Entry>() == 64);

/// One receive on `fd` into one buffer of `ring` (at most `ring.buf_size()` bytes): a single
/// CQE carrying a buffer id, or ENOBUFS when the ring is dry. Unlike [`recv_multi`], it can
/// never deliver more than one buffer, so a caller that arms one only while it can afford a
/// buffer holds a strict bound.
pub fn recv_once(fd: RawFd, ring: &BufRing, token: Token) -> Sqe {
    tag(
        opcode::Recv::new(types::Fd(fd), std::ptr::null_mut(), ring.buf_size() as u32)
            .buf_group(ring.bgid())
            .build()
            .flags(squeue::Flags::BUFFER_SELECT),
        token,
    )
}

/// Copying send of `len` bytes at `buf`.
///
/// # Safety
/// `buf..buf+len` must stay valid and unmodified until this SQE's completion is reaped.
pub unsafe fn send(fd: RawFd, buf: *const u8, len: u32, token: Token) -> Sqe {
    tag(
        opcode::Send::new(types::Fd(fd), buf, len)
            .flags(libc::MSG_NOSIGNAL)
            .build(),
        token,
    )
}

/// Gathering send (`sendmsg`): sends the buffers `msg`'s iovecs point at, in order.
///
/// # Safety
/// `msg`, its iovec array and every buffer those iovecs point at must stay valid and unmodified
/// until this SQE's completion is reaped.
pub unsafe fn sendmsg(fd: RawFd, msg: *const libc::msghdr, token: Token) -> Sqe {
    tag(
        opcode::SendMsg::new(types::Fd(fd), msg)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build(),
        token,
    )
}

/// Connect `fd` to `addr`.
///
/// # Safety
/// `addr` (of length `len`) must stay valid until this SQE's completion is reaped.
pub unsafe fn connect(
    fd: RawFd,
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
    token: Token,
) -> Sqe {
    tag(
        opcode::Connect::new(types::Fd(fd), addr, len).build(),
        token,
    )
}

/// Cancels every request whose user_data equals `target` (e.g. a multishot recv). The cancelled
/// requests complete with `-ECANCELED` under their own tokens; this SQE completes under `token`.
pub fn cancel(target: Token, token: Token) -> Sqe {
    tag(
        opcode::AsyncCancel2::new(types::CancelBuilder::user_data(target.to_user_data()).all())
            .build(),
        token,
    )
}

/// Cancels every request of this ring (used when shutting down).
pub fn cancel_all(token: Token) -> Sqe {
    tag(
        opcode::AsyncCancel2::new(types::CancelBuilder::any()).build(),
        token,
    )
}

/// Cancels every request on file descriptor `fd`.
pub fn cancel_fd(fd: RawFd, token: Token) -> Sqe {
    tag(
        opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all()).build(),
        token,
    )
}
