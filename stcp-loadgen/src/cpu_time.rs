//! CPU time of the calling thread (getrusage RUSAGE_THREAD), to report what the load generator
//! itself costs per request; and the time threads were ready to run but waited for a CPU (the
//! scheduler's run delay, /proc/.../schedstat), which says when other work on the machine held
//! them back.

use std::time::Duration;

/// User and system CPU time a thread has used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadCpu {
    pub user: Duration,
    pub system: Duration,
    /// Time the thread was runnable but waiting for a CPU (zero where schedstat is missing).
    pub waited: Duration,
}

impl ThreadCpu {
    /// CPU time of the calling thread; zero if the kernel refuses (it does not on Linux).
    pub fn now() -> ThreadCpu {
        // SAFETY: `rusage` is plain data that getrusage(2) fills; it lives on this stack frame.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            if libc::getrusage(libc::RUSAGE_THREAD, &mut usage) != 0 {
                return ThreadCpu::default();
            }
            usage
        };
        let tv = |t: libc::timeval| {
            Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1_000)
        };
        ThreadCpu {
            user: tv(usage.ru_utime),
            system: tv(usage.ru_stime),
            waited: std::fs::read_to_string("/proc/thread-self/schedstat")
                .ok()
                .and_then(|s| parse_schedstat_wait(&s))
                .map_or(Duration::ZERO, Duration::from_nanos),
        }
    }

    /// CPU time used between `earlier` and `self`.
    pub fn since(self, earlier: ThreadCpu) -> ThreadCpu {
        ThreadCpu {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
            waited: self.waited.saturating_sub(earlier.waited),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spinning_shows_up_as_user_time() {
        // Spin until this thread has been charged 20 ms, however busy the machine is (a fixed
        // wall-clock spin can get almost no CPU on a loaded machine); a clock that never
        // advances fails after 20 s.
        let before = ThreadCpu::now();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        let mut used = ThreadCpu::default();
        while t.elapsed() < Duration::from_secs(20) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            used = ThreadCpu::now().since(before);
            if used.user >= Duration::from_millis(20) {
                break;
            }
        }
        assert!(used.user >= Duration::from_millis(20), "{used:?}");
    }
}

/// CPU time of this process's threads whose name starts with `prefix` (from
/// /proc/self/task/*/stat, clock-tick resolution), e.g. the embedded server's workers.
pub fn threads_named(prefix: &str) -> ThreadCpu {
    // SAFETY: sysconf has no memory arguments.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut total = ThreadCpu::default();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return total;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        if let Some((name, user, system)) = parse_task_stat(&stat) {
            if name.starts_with(prefix) {
                total.user += Duration::from_nanos(user * 1_000_000_000 / ticks);
                total.system += Duration::from_nanos(system * 1_000_000_000 / ticks);
                if let Some(waited) = std::fs::read_to_string(task.path().join("schedstat"))
                    .ok()
                    .and_then(|s| parse_schedstat_wait(&s))
                {
                    total.waited += Duration::from_nanos(waited);
                }
            }
        }
    }
    total
}

/// The run delay (nanoseconds runnable but waiting for a CPU) of a schedstat line: its second
/// field (`<on cpu ns> <waiting ns> <timeslices>`).
fn parse_schedstat_wait(line: &str) -> Option<u64> {
    line.split_whitespace().nth(1)?.parse().ok()
}

/// (comm, utime, stime) of a /proc/<pid>/task/<tid>/stat line; comm may contain spaces and
/// parentheses, so the fields are counted from the last ')'.
fn parse_task_stat(stat: &str) -> Option<(&str, u64, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let mut fields = stat.get(close + 2..)?.split_whitespace();
    // After the name: state(3) ... utime is field 14, stime field 15 (1-based, name = field 2).
    let utime = fields.nth(11)?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some((name, utime, stime))
}

#[cfg(test)]
mod stat_tests {
    use super::*;

    #[test]
    fn task_stat_fields_are_found_after_the_name() {
        let line = "4242 (stcp-worker-0) S 1 2 3 4 5 6 7 8 9 10 1234 567 0 0 20 0 1 0 99";
        assert_eq!(parse_task_stat(line), Some(("stcp-worker-0", 1234, 567)));
        let odd = "7 (a) b) R 1 2 3 4 5 6 7 8 9 10 11 12 0";
        assert_eq!(parse_task_stat(odd), Some(("a) b", 11, 12)));
    }

    #[test]
    fn the_run_delay_is_the_second_schedstat_field() {
        assert_eq!(parse_schedstat_wait("1043108 1056904 5\n"), Some(1_056_904));
        assert_eq!(parse_schedstat_wait("12"), None);
    }

    #[test]
    fn this_test_thread_is_seen_by_name() {
        let name = std::thread::current().name().unwrap_or("").to_string();
        let prefix: String = name.chars().take(15).collect();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        if !prefix.is_empty() {
            let seen = threads_named(&prefix);
            assert!(
                seen.user + seen.system >= Duration::from_millis(10),
                "{seen:?}"
            );
        }
    }
}
