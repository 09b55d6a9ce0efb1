//! SQE constructors tagged with a [`Token`]. Constructors whose SQE makes the kernel read or write
//! caller memory are `unsafe fn`s stating how long that memory must live; the others are safe.
//! The result is an [`Sqe`], which [`super::push`] submits without further `unsafe`.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use super::{BufRing, Token};

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

/// Zero-copy send from registered buffer `buf_index`; completes with a result CQE (MORE set) and a
/// later notification CQE (see `io_uring::cqueue::notif`), after which the memory is free again.
///
/// # Safety
/// `buf..buf+len` must lie inside registered buffer `buf_index` and stay valid and unmodified until
/// the notification CQE is reaped.
pub unsafe fn send_zc_fixed(
    fd: RawFd,
    buf: *const u8,
    len: u32,
    buf_index: u16,
    token: Token,
) -> Sqe {
    tag(
        opcode::SendZc::new(types::Fd(fd), buf, len)
            .buf_index(Some(buf_index))
            .flags(libc::MSG_NOSIGNAL)
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

/// Read into `buf` (e.g. 8 bytes of an eventfd).
///
/// # Safety
/// `buf..buf+len` must stay valid and not otherwise accessed until this SQE's completion is reaped.
pub unsafe fn read(fd: RawFd, buf: *mut u8, len: u32, token: Token) -> Sqe {
    tag(opcode::Read::new(types::Fd(fd), buf, len).build(), token)
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

/// Cancels every request on file descriptor `fd`.
pub fn cancel_fd(fd: RawFd, token: Token) -> Sqe {
    tag(
        opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all()).build(),
        token,
    )
}

/// `shutdown(fd, how)`.
pub fn shutdown(fd: RawFd, how: i32, token: Token) -> Sqe {
    tag(opcode::Shutdown::new(types::Fd(fd), how).build(), token)
}

/// Asynchronous `close(fd)`. The caller must not use `fd` again.
pub fn close(fd: RawFd, token: Token) -> Sqe {
    tag(opcode::Close::new(types::Fd(fd)).build(), token)
}

/// A timeout that completes after `ts` (`-ETIME`). `ts` is copied by the kernel at submission
/// when the SQE is submitted before `ts` goes away, so it must live until the next submit.
///
/// # Safety
/// `ts` must stay valid until the SQE has been submitted (the kernel copies it at submission).
pub unsafe fn timeout(ts: *const types::Timespec, token: Token) -> Sqe {
    tag(opcode::Timeout::new(ts).build(), token)
}
