//! Sockets for the client threads: the target address in kernel form, TCP_NODELAY, and short
//! names for the errno values a connection can fail with.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

/// Disables Nagle: every request leaves at once (the loop measures latency, not batching).
pub(super) fn set_nodelay(fd: &OwnedFd) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads `one` (a c_int on this stack frame) for the given length.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The kernel form of `addr` and its length, for connect(2).
pub(super) fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data, large and aligned enough for either family.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_in fits in sockaddr_storage, which is suitably aligned.
            let sin = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_in6 fits in sockaddr_storage, which is suitably aligned.
            let sin6 = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

/// A short name for an errno, for the log.
pub(super) fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::ECONNREFUSED => "connection refused",
        libc::ECONNRESET => "connection reset by the server",
        libc::EPIPE => "broken pipe",
        libc::ETIMEDOUT => "timed out",
        libc::EHOSTUNREACH | libc::ENETUNREACH => "unreachable",
        libc::ECANCELED => "cancelled",
        libc::EMFILE | libc::ENFILE => "too many open files",
        libc::EADDRNOTAVAIL => "no local address or port left",
        libc::EAFNOSUPPORT => "address family not supported",
        libc::ENOBUFS | libc::ENOMEM => "out of kernel memory for sockets",
        _ => "socket error",
    }
}
