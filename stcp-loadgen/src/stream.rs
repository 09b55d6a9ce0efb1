//! `stcp-loadgen stream`: one-way bulk TCP over loopback, a physical limit for the echo rows. One
//! thread writes `--chunk`-sized buffers into a connection as fast as the kernel takes them,
//! another reads and discards them (a sink in this process); bytes the sink received during the
//! measured interval, per second, are the result. Plain write(2)/read(2) on blocking sockets, as
//! iperf3 does by default; each thread pinned to its own core.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use crate::run::exit;
use crate::server_under_test::allowed_cores;
use crate::values::{parse_duration, parse_size};
use crate::{environment, interrupt};

/// Longest a write or read may block before the stream is declared stuck.
const STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What a stream measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamResult {
    pub tool: &'static str,
    /// Bytes the sink received during the measured interval.
    pub bytes: u64,
    pub seconds: f64,
    pub bytes_per_second: f64,
    /// Each second's bytes/s (the last may be shorter).
    pub series_bytes_per_second: Vec<f64>,
    pub chunk_bytes: usize,
    pub sender_core: Option<usize>,
    pub receiver_core: Option<usize>,
    /// True when Ctrl-C cut the measured interval short.
    pub partial: bool,
    pub cpu_model: String,
    pub kernel: String,
    pub started_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("--chunk must be at least 1 byte")]
    EmptyChunk,
    #[error("--duration must be longer than zero")]
    NoDuration,
    #[error("cannot set up the loopback connection: {0}")]
    Setup(std::io::Error),
    #[error("the stream stopped: {0}")]
    Stream(String),
}

/// `stream`: one-way bulk TCP over loopback.
#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    /// Measured interval.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub duration: Duration,
    /// Streaming before the measured interval, not counted.
    #[arg(long, value_parser = parse_duration, default_value = "1s", value_name = "DURATION")]
    pub warmup: Duration,
    /// Bytes per write(2) and read(2) (iperf3's default is 128k).
    #[arg(long, value_parser = parse_size, default_value = "128k", value_name = "SIZE")]
    pub chunk: usize,
    /// Core for the receiving thread (default: the first core allowed).
    #[arg(long)]
    pub receiver_core: Option<usize>,
    /// Core for the sending thread (default: the last core allowed).
    #[arg(long)]
    pub sender_core: Option<usize>,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Do not print a line every second.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `stcp-loadgen stream`; returns the exit status.
pub fn command(args: &StreamArgs) -> i32 {
    interrupt::install();
    let cores = allowed_cores();
    for (option, core) in [
        ("--receiver-core", args.receiver_core),
        ("--sender-core", args.sender_core),
    ] {
        if let Some(core) = core.filter(|c| !cores.contains(c)) {
            crate::stderr_line!(
                "stcp-loadgen stream: {option} {core}: not a core this process may run on; give \
                 one of {cores:?}"
            );
            return exit::USAGE;
        }
    }
    let receiver_core = args.receiver_core.or(cores.first().copied());
    let sender_core = args.sender_core.or(cores.last().copied());
    let quiet = args.quiet;
    let mut live = |second: u32, bytes_per_second: f64| {
        if !quiet {
            crate::stderr_line!(
                "[{:>4}s] {:>9.1} MB/s  {:>7.2} Gbit/s",
                second,
                bytes_per_second / 1e6,
                bytes_per_second * 8.0 / 1e9
            );
        }
    };
    let result = match measure(
        args.warmup,
        args.duration,
        args.chunk,
        (sender_core, receiver_core),
        &mut live,
    ) {
        Ok(r) => r,
        Err(e @ (StreamError::EmptyChunk | StreamError::NoDuration)) => {
            crate::stderr_line!("stcp-loadgen stream: {e}");
            return exit::USAGE;
        }
        Err(e) => {
            crate::stderr_line!("stcp-loadgen stream: {e}");
            return exit::CANNOT_START;
        }
    };
    if args.json {
        let _ = serde_json::to_writer_pretty(std::io::stdout().lock(), &result);
        crate::stdout_line!();
    } else {
        crate::stdout_line!(
            "loopback TCP, one way, {}-byte writes: {:.0} bytes/s = {:.1} MB/s = {:.2} Gbit/s over {:.2} s \
             (sender on core {}, sink on core {})",
            result.chunk_bytes,
            result.bytes_per_second,
            result.bytes_per_second / 1e6,
            result.bytes_per_second * 8.0 / 1e9,
            result.seconds,
            core_name(result.sender_core),
            core_name(result.receiver_core)
        );
    }
    if result.partial {
        exit::PARTIAL
    } else {
        exit::OK
    }
}

fn core_name(core: Option<usize>) -> String {
    core.map_or("unpinned".into(), |c| c.to_string())
}

fn pin(core: Option<usize>) {
    if let Some(id) = core {
        core_affinity::set_for_current(core_affinity::CoreId { id });
    }
}

/// The one connection the sender makes, or an error after `limit` (never blocks longer).
fn accept_within(listener: &TcpListener, limit: Duration) -> Result<TcpStream, String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + limit;
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).map_err(|e| e.to_string())?;
                return Ok(conn);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    }
}

/// Streams for `warmup` then `duration`, calling `live` once a second of the measured interval.
pub fn measure(
    warmup: Duration,
    duration: Duration,
    chunk: usize,
    (sender_core, receiver_core): (Option<usize>, Option<usize>),
    live: &mut dyn FnMut(u32, f64),
) -> Result<StreamResult, StreamError> {
    if chunk == 0 {
        return Err(StreamError::EmptyChunk);
    }
    if duration.is_zero() {
        return Err(StreamError::NoDuration);
    }
    let (started_secs, started_nanos) = environment::now_unix();
    let listener = TcpListener::bind("127.0.0.1:0").map_err(StreamError::Setup)?;
    let addr = listener.local_addr().map_err(StreamError::Setup)?;
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let sink_count = received.clone();
    let sink = std::thread::Builder::new()
        .name("stream-sink".into())
        .spawn(move || -> Result<(), String> {
            pin(receiver_core);
            let mut conn = accept_within(&listener, STALL_TIMEOUT)?;
            conn.set_read_timeout(Some(STALL_TIMEOUT))
                .map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; chunk];
            loop {
                match conn.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => {
                        sink_count.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("sink read: {e}")),
                }
            }
        })
        .map_err(StreamError::Setup)?;

    let sender_stop = stop.clone();
    let sender = std::thread::Builder::new()
        .name("stream-sender".into())
        .spawn(move || -> Result<(), String> {
            pin(sender_core);
            let mut conn = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
            conn.set_write_timeout(Some(STALL_TIMEOUT))
                .map_err(|e| e.to_string())?;
            let buf: Vec<u8> = (0..chunk).map(|i| (i % 251) as u8).collect();
            while !sender_stop.load(Ordering::Relaxed) {
                match conn.write(&buf) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("send: {e}")),
                }
            }
            let _ = conn.shutdown(Shutdown::Write);
            Ok(())
        })
        .map_err(StreamError::Setup)?;

    // Warm-up, then one sample a second; Ctrl-C ends the measured interval early.
    let load_start = Instant::now();
    let measure_start = load_start + warmup;
    let mut partial = false;
    while Instant::now() < measure_start && !interrupt::interrupted() && !sender.is_finished() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let first = received.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let end = t0 + duration;
    let (mut last_bytes, mut last_at) = (first, t0);
    let mut series = Vec::new();
    let mut second = 1u32;
    loop {
        let next = (t0 + Duration::from_secs(u64::from(second))).min(end);
        while Instant::now() < next && !interrupt::interrupted() && !sender.is_finished() {
            std::thread::sleep(
                next.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(2)),
            );
        }
        let now = Instant::now();
        let bytes = received.load(Ordering::Relaxed);
        let secs = now.duration_since(last_at).as_secs_f64();
        if secs > 0.0 {
            let rate = (bytes - last_bytes) as f64 / secs;
            series.push(rate);
            live(second, rate);
        }
        (last_bytes, last_at) = (bytes, now);
        if interrupt::interrupted() {
            partial = true;
            break;
        }
        if sender.is_finished() || now >= end {
            break;
        }
        second += 1;
    }
    let bytes = last_bytes - first;
    let seconds = last_at.duration_since(t0).as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let sent = sender
        .join()
        .map_err(|_| StreamError::Stream("the sender panicked".into()))?;
    let sunk = sink
        .join()
        .map_err(|_| StreamError::Stream("the sink panicked".into()))?;
    sent.and(sunk).map_err(StreamError::Stream)?;
    let uname = environment::uname();
    Ok(StreamResult {
        tool: "stcp-loadgen-stream",
        bytes,
        seconds,
        bytes_per_second: if seconds > 0.0 {
            bytes as f64 / seconds
        } else {
            0.0
        },
        series_bytes_per_second: series,
        chunk_bytes: chunk,
        sender_core,
        receiver_core,
        partial,
        cpu_model: environment::cpu_model(),
        kernel: uname.kernel,
        started_at: environment::rfc3339(started_secs, started_nanos),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_stream_moves_bytes_and_counts_them_per_second() {
        let mut seconds = 0;
        let r = measure(
            Duration::from_millis(50),
            Duration::from_millis(1500),
            64 * 1024,
            (None, None),
            &mut |_, _| seconds += 1,
        )
        .unwrap();
        assert!(r.bytes > 0);
        assert!((r.seconds - 1.5).abs() < 0.5, "{}", r.seconds);
        assert_eq!(r.series_bytes_per_second.len(), 2);
        assert_eq!(seconds, 2);
        assert!(!r.partial);
        assert!((r.bytes_per_second - r.bytes as f64 / r.seconds).abs() < 1.0);
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(matches!(
            measure(
                Duration::ZERO,
                Duration::from_secs(1),
                0,
                (None, None),
                &mut |_, _| {}
            ),
            Err(StreamError::EmptyChunk)
        ));
        assert!(matches!(
            measure(
                Duration::ZERO,
                Duration::ZERO,
                1,
                (None, None),
                &mut |_, _| {}
            ),
            Err(StreamError::NoDuration)
        ));
    }
}
