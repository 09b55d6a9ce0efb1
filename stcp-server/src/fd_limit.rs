//! The open-file limit (`RLIMIT_NOFILE`): every connection is a descriptor, so a server that
//! may hold `--max-conns` connections, or a load generator with `--clients` connections (twice
//! that with the server embedded in the same process), needs a limit that holds them. The
//! binaries raise the soft limit to the hard one at start (what a user could do with
//! `ulimit -n`), then compare it with what they need and warn or refuse before any connection
//! fails with "too many open files".

use std::io;

/// Descriptors a process uses besides its connections and rings: stdio, the files it reads and
/// writes (keys, reports, `/proc`), the io_uring probe, with room to spare.
pub const BASE_FDS: u64 = 32;

/// Descriptors of one server worker besides its connections: its ring and its listeners (STCP,
/// TCP and, with `--tls-listen`, TLS). On epoll (the epoll descriptor and its waker instead of
/// the ring) with all three listeners it is one more, which `BASE_FDS`'s spare room covers.
pub const FDS_PER_WORKER: u64 = 4;

/// The open-file limit of this process. `u64::MAX` stands for "unlimited".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdLimit {
    /// What the process may open now.
    pub soft: u64,
    /// How far an unprivileged process may raise `soft`.
    pub hard: u64,
}

impl FdLimit {
    /// Whether `needed` descriptors fit under the soft limit.
    pub fn holds(&self, needed: u64) -> bool {
        needed <= self.soft
    }
}

// rlim_t is u64 here but narrower on some 32-bit targets: the conversions are kept.
#[allow(clippy::useless_conversion)]
fn from_rlim(v: libc::rlim_t) -> u64 {
    if v == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        u64::from(v)
    }
}

/// The current limit.
pub fn current() -> io::Result<FdLimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the `rlimit` on this stack frame and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(FdLimit {
        soft: from_rlim(limit.rlim_cur),
        hard: from_rlim(limit.rlim_max),
    })
}

/// Raises the soft limit to the hard limit (to `fs.nr_open` when the hard limit is unlimited:
/// the kernel refuses more) and returns the limit now in force. A refusal leaves the limit as it
/// was and returns it.
pub fn raise_to_hard() -> io::Result<FdLimit> {
    let before = current()?;
    let target = if before.hard == u64::MAX {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(1 << 20)
    } else {
        before.hard
    };
    if before.soft >= target {
        return Ok(before);
    }
    let to_rlim = |v: u64| libc::rlim_t::try_from(v).unwrap_or(libc::RLIM_INFINITY);
    let limit = libc::rlimit {
        rlim_cur: to_rlim(target),
        rlim_max: if before.hard == u64::MAX {
            libc::RLIM_INFINITY
        } else {
            to_rlim(before.hard)
        },
    };
    // SAFETY: setrlimit reads the `rlimit` on this stack frame and nothing else.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Ok(before);
    }
    current()
}

/// Descriptors a server with `workers` workers needs to hold `max_conns` connections.
pub fn server_needs(max_conns: usize, workers: usize) -> u64 {
    max_conns as u64 + workers as u64 * FDS_PER_WORKER + BASE_FDS
}

/// The server's warning when `limit` cannot hold `max_conns` connections, or None when it can.
pub fn server_warning(max_conns: usize, workers: usize, limit: FdLimit) -> Option<String> {
    let needed = server_needs(max_conns, workers);
    if limit.holds(needed) {
        return None;
    }
    let fit = limit.soft.saturating_sub(needed - max_conns as u64);
    Some(format!(
        "--max-conns {max_conns} needs about {needed} open files but the limit is {} (hard limit \
         {}): beyond about {fit} connections accepts will fail with \"too many open files\"; \
         raise it (ulimit -n {needed}) or lower --max-conns",
        show(limit.soft),
        show(limit.hard)
    ))
}

/// A limit as a user reads it.
pub fn show(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_never_lowers_and_reaches_the_hard_limit() {
        let before = current().unwrap();
        let after = raise_to_hard().unwrap();
        assert!(after.soft >= before.soft);
        assert_eq!(after.hard, before.hard);
        if before.hard != u64::MAX {
            assert_eq!(after.soft, after.hard);
        }
    }

    #[test]
    fn the_server_warns_only_when_the_limit_cannot_hold_max_conns() {
        let roomy = FdLimit {
            soft: 20_000,
            hard: 20_000,
        };
        assert_eq!(server_warning(10_000, 2, roomy), None);
        let tight = FdLimit {
            soft: 1024,
            hard: 4096,
        };
        let warning = server_warning(10_000, 2, tight).unwrap();
        assert!(
            warning.contains("--max-conns 10000 needs about 10040 open files")
                && warning.contains("the limit is 1024 (hard limit 4096)")
                && warning.contains("beyond about 984 connections")
                && warning.contains("ulimit -n 10040"),
            "{warning}"
        );
        assert!(!warning.contains('\n'));
    }
}
