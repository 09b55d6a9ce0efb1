//! What machine a run happened on: kernel (uname), CPU model (/proc/cpuinfo), cores, hostname, and
//! UTC timestamps for the report and its file name.

use std::ffi::CStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Kernel and host names from uname(2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uname {
    pub hostname: String,
    /// "Linux 6.18.44 #1 SMP ... x86_64"
    pub kernel: String,
}

pub fn uname() -> Uname {
    // SAFETY: `utsname` is plain data; uname(2) fills it completely or fails, and each field is a
    // NUL-terminated array that lives on this stack frame while we read it.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return Uname {
                hostname: "unknown".into(),
                kernel: "unknown".into(),
            };
        }
        let s = |field: &[libc::c_char]| {
            CStr::from_ptr(field.as_ptr())
                .to_string_lossy()
                .into_owned()
        };
        Uname {
            hostname: s(&u.nodename),
            kernel: format!(
                "{} {} {} {}",
                s(&u.sysname),
                s(&u.release),
                s(&u.version),
                s(&u.machine)
            ),
        }
    }
}

/// The CPU model name from /proc/cpuinfo ("model name", or "Hardware"/"cpu model" on other architectures).
pub fn cpu_model() -> String {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpu_model_from(&text).unwrap_or_else(|| "unknown".into())
}

fn cpu_model_from(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        matches!(
            key.trim(),
            "model name" | "Hardware" | "cpu model" | "Model"
        )
        .then(|| value.trim().to_string())
        .filter(|v| !v.is_empty())
    })
}

/// Cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Seconds and nanoseconds since the Unix epoch, now.
pub fn now_unix() -> (u64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_nanos())
}

/// Civil date and time (UTC) of a Unix time: (year, month, day, hour, minute, second).
fn civil_utc(unix_secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    // Howard Hinnant's days-from-civil, inverted.
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem / 60 % 60) as u32,
        (rem % 60) as u32,
    )
}

/// RFC 3339 UTC timestamp with milliseconds: 2026-11-26T13:26:00.123Z.
pub fn rfc3339(unix_secs: u64, nanos: u32) -> String {
    let (y, mo, d, h, mi, s) = civil_utc(unix_secs);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        nanos / 1_000_000
    )
}

/// Compact UTC timestamp for file names: 20261126T132600Z.
pub fn compact_utc(unix_secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil_utc(unix_secs);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        // 2026-11-26T13:26:00Z
        assert_eq!(compact_utc(1_795_699_560), "20261126T132600Z");
        assert_eq!(rfc3339(951_782_400, 5_000_000), "2000-02-29T00:00:00.005Z");
    }

    #[test]
    fn cpu_model_is_read_from_cpuinfo_text() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model_from(text).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model_from("processor : 0\n"), None);
    }

    #[test]
    fn uname_names_this_kernel() {
        let u = uname();
        assert!(u.kernel.starts_with("Linux "), "{u:?}");
        assert!(!u.hostname.is_empty());
    }
}
