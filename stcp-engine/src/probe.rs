//! Can io_uring be used here at all? A probe that answers with a typed cause when it cannot.

use std::io;

use io_uring::{opcode, register::Probe, IoUring};

/// Why io_uring cannot be used in this process.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// `kernel.io_uring_disabled` is 1 (this process is not allowed) or 2 (disabled for everyone).
    #[error("io_uring is disabled by sysctl kernel.io_uring_disabled={0}")]
    DisabledBySysctl(u32),
    /// `io_uring_setup` answered EPERM while the sysctl allows it: a seccomp profile (typically a
    /// container runtime's default) blocks the io_uring syscalls.
    #[error("io_uring_setup was refused with EPERM (a seccomp profile, e.g. a container's, blocks io_uring)")]
    PermissionDenied,
    /// `io_uring_setup` answered ENOSYS: a kernel without io_uring, or a seccomp profile answering
    /// ENOSYS.
    #[error("io_uring_setup is not available (ENOSYS: kernel without io_uring or a seccomp profile hiding it)")]
    NotSupported,
    /// io_uring works but lacks something this crate relies on (kernel too old).
    #[error("the kernel's io_uring lacks {0} (kernel 6.1 or newer is needed)")]
    MissingFeature(&'static str),
    /// Any other setup failure (e.g. ENOMEM from RLIMIT_MEMLOCK on old kernels).
    #[error("io_uring setup failed: {0}")]
    Setup(io::Error),
}

/// What the probe found usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Support {
    /// `IORING_OP_SEND_ZC` is available.
    pub send_zc: bool,
    /// Provided buffer rings (`IORING_REGISTER_PBUF_RING`) can be registered.
    pub buf_ring: bool,
}

/// Reads `kernel.io_uring_disabled` (0 when the file does not exist: older kernels have no such knob).
pub fn io_uring_disabled_sysctl() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Maps an `io_uring_setup` failure to its cause, given the value of `kernel.io_uring_disabled`.
pub fn classify_setup_error(err: io::Error, sysctl_disabled: u32) -> Unavailable {
    match err.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) if sysctl_disabled != 0 => {
            Unavailable::DisabledBySysctl(sysctl_disabled)
        }
        Some(libc::EPERM) | Some(libc::EACCES) => Unavailable::PermissionDenied,
        Some(libc::ENOSYS) => Unavailable::NotSupported,
        _ => Unavailable::Setup(err),
    }
}

/// Checks that io_uring can be set up and offers what the server and load generator use:
/// multishot accept/recv (kernel >= 6.0; `SENDMSG_ZC`, added in 6.1, is the marker tested),
/// async cancel, and provided buffer rings. Cheap (one small ring, a few syscalls).
///
/// The probe ring is created on a short-lived thread of its own: when a ring is destroyed the
/// kernel queues signal-like task work (TWA_SIGNAL) on the thread that created it, which makes a
/// blocking socket call with a timeout (SO_RCVTIMEO) in that thread fail once with EINTR. The
/// same holds for any ring: create rings on the threads that own them for their whole life.
pub fn probe() -> Result<Support, Unavailable> {
    std::thread::scope(|s| {
        s.spawn(probe_on_this_thread).join().unwrap_or_else(|_| {
            Err(Unavailable::Setup(io::Error::other(
                "io_uring probe panicked",
            )))
        })
    })
}

fn probe_on_this_thread() -> Result<Support, Unavailable> {
    let ring = IoUring::new(8).map_err(|e| classify_setup_error(e, io_uring_disabled_sysctl()))?;
    let mut p = Probe::new();
    ring.submitter()
        .register_probe(&mut p)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EINVAL) => Unavailable::MissingFeature("IORING_REGISTER_PROBE"),
            _ => Unavailable::Setup(e),
        })?;
    for (code, name) in [
        (opcode::AcceptMulti::CODE, "IORING_OP_ACCEPT"),
        (opcode::RecvMulti::CODE, "IORING_OP_RECV"),
        (opcode::Send::CODE, "IORING_OP_SEND"),
        (opcode::AsyncCancel::CODE, "IORING_OP_ASYNC_CANCEL"),
        (opcode::Connect::CODE, "IORING_OP_CONNECT"),
        (
            opcode::SendMsgZc::CODE,
            "IORING_OP_SENDMSG_ZC (multishot recv)",
        ),
    ] {
        if !p.is_supported(code) {
            return Err(Unavailable::MissingFeature(name));
        }
    }
    // A provided buffer ring needs 5.19; register a tiny one to be sure.
    let mut ring_mem = crate::BufRing::new(1, 64, u16::MAX).map_err(Unavailable::Setup)?;
    // SAFETY: `ring_mem` outlives `ring` only until the end of this function: it is unregistered
    // just below, before either is dropped, and no operation using it is ever submitted.
    let registered = unsafe { ring_mem.register(&ring.submitter()) };
    match registered {
        Ok(()) => {
            let _ = ring_mem.unregister(&ring.submitter());
        }
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            return Err(Unavailable::MissingFeature("IORING_REGISTER_PBUF_RING"))
        }
        Err(e) => return Err(Unavailable::Setup(e)),
    }
    drop(ring);
    Ok(Support {
        send_zc: p.is_supported(opcode::SendZc::CODE),
        buf_ring: true,
    })
}

/// For tests that need io_uring: `true` when it works here. Otherwise says so loudly on stderr
/// (`SKIPPED: <test>: ...`) and returns `false` so the test can return early, unless
/// `STCP_REQUIRE_IO_URING=1` is set (as in CI, which has io_uring): then a skip is a failure.
pub fn io_uring_or_skip(test: &str) -> bool {
    match probe() {
        Ok(_) => true,
        Err(e) => {
            if std::env::var_os("STCP_REQUIRE_IO_URING").is_some_and(|v| v == "1") {
                panic!("{test}: io_uring is required here (STCP_REQUIRE_IO_URING=1) but: {e}");
            }
            eprintln!("SKIPPED: {test}: io_uring unavailable here: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_setup_errors_by_cause() {
        let e = |n| io::Error::from_raw_os_error(n);
        assert!(matches!(
            classify_setup_error(e(libc::EPERM), 2),
            Unavailable::DisabledBySysctl(2)
        ));
        assert!(matches!(
            classify_setup_error(e(libc::EPERM), 0),
            Unavailable::PermissionDenied
        ));
        assert!(matches!(
            classify_setup_error(e(libc::ENOSYS), 0),
            Unavailable::NotSupported
        ));
        assert!(matches!(
            classify_setup_error(e(libc::ENOMEM), 0),
            Unavailable::Setup(_)
        ));
    }

    #[test]
    fn messages_name_the_cause() {
        assert!(Unavailable::DisabledBySysctl(2)
            .to_string()
            .contains("io_uring_disabled=2"));
        assert!(Unavailable::PermissionDenied
            .to_string()
            .contains("seccomp"));
        assert!(Unavailable::NotSupported.to_string().contains("ENOSYS"));
    }
}
