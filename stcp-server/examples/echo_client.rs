//! A small, time-bounded echo benchmark: STCP against raw TCP, side by side in one run, at each
//! frame size given. By default it starts the server in-process (one worker pinned to core 0) and
//! pins its own client threads to core 1, so each side has one core and the CPU figures say which
//! side bounds the rate.
//!
//! ```text
//! cargo run --release -p stcp-server --example echo_client -- --sizes 256,64k --seconds 3
//! ```
//!
//! Every echo is checked byte for byte. Each connection has a writer thread (sealing and writing
//! as many frames as its window allows in one write) and a reader thread (opening and checking).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc, Arc,
    },
    thread,
    time::{Duration, Instant},
};

use clap::Parser;
use stcp_proto::{
    write_record_header, ClientConfig, ClientHandshake, CryptoBackend, RecordOpener, RecordSealer,
    RecordType, StaticKeypair, RECORD_HEADER_LEN, RECORD_OVERHEAD,
};
use stcp_server::{units, Config, IoBackend, Server};

/// STCP vs raw TCP echo rate, side by side.
#[derive(Parser, Debug)]
struct Args {
    /// Frame payload sizes.
    #[arg(long, value_delimiter = ',', default_value = "256,64k", value_parser = units::parse_size)]
    sizes: Vec<usize>,
    /// Modes to run, in order (each size runs every mode).
    #[arg(long, value_delimiter = ',', default_value = "tcp,stcp")]
    modes: Vec<stcp_proto::Mode>,
    /// Measured seconds per case (after a 0.5 s warm-up).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Connections per case.
    #[arg(long, default_value_t = 2)]
    conns: usize,
    /// Bytes in flight per connection (the window), rounded to whole frames (at least 1).
    #[arg(long, default_value = "256k", value_parser = units::parse_size)]
    window: usize,
    /// io backend of the in-process server.
    #[arg(long, default_value = "uring")]
    io: IoBackend,
    /// AES-GCM backend (server and client).
    #[arg(long, default_value = "aws-lc")]
    crypto: CryptoBackend,
    /// Server worker threads (pinned to cores 0..N); the client is pinned to the remaining cores.
    #[arg(long, default_value_t = 1)]
    server_cores: usize,
}

struct Case {
    stcp: bool,
    size: usize,
}

struct Outcome {
    frames: u64,
    elapsed: Duration,
    server_cpu: f64,
    client_cpu: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let keypair = StaticKeypair::generate(seed());
    let mut cfg = Config::ephemeral(keypair.clone());
    cfg.cores = args.server_cores;
    cfg.io = args.io;
    cfg.crypto = args.crypto;
    let server = Server::start(cfg)?;
    let client_cores: Vec<_> = cores.iter().skip(args.server_cores).copied().collect();
    println!(
        "server: {} worker(s) on {} ({}), client: {} connection(s) pinned to {:?}, window {} per connection, {} s per case",
        args.server_cores,
        server.backend().name(),
        args.crypto.name(),
        args.conns,
        client_cores.iter().map(|c| c.id).collect::<Vec<_>>(),
        units::format_size(args.window as u64),
        args.seconds
    );
    println!(
        "{:<5} {:>9} {:>12} {:>12} {:>11} {:>11} {:>14} {:>14}",
        "mode",
        "size",
        "frames/s",
        "MB/s (1 way)",
        "server CPU",
        "client CPU",
        "server ns/echo",
        "client ns/echo"
    );
    let mut results = Vec::new();
    for &size in &args.sizes {
        for stcp in args.modes.iter().map(|m| *m == stcp_proto::Mode::Stcp) {
            let case = Case { stcp, size };
            let addr = if stcp {
                server.stcp_addr()
            } else {
                server.tcp_addr()
            }
            .expect("listener");
            let o = run_case(&args, &case, addr, keypair.public, &client_cores)?;
            let secs = o.elapsed.as_secs_f64();
            // CPU time per echo holds even when other processes share the cores.
            let per_echo = |cpu: f64| cpu * secs / o.frames.max(1) as f64 * 1e9;
            println!(
                "{:<5} {:>9} {:>12.0} {:>12.1} {:>10.0}% {:>10.0}% {:>14.0} {:>14.0}",
                if stcp { "stcp" } else { "tcp" },
                units::format_size(size as u64),
                o.frames as f64 / secs,
                o.frames as f64 * size as f64 / secs / 1e6,
                o.server_cpu * 100.0,
                o.client_cpu * 100.0,
                per_echo(o.server_cpu),
                per_echo(o.client_cpu),
            );
            results.push((stcp, size, o.frames as f64 / secs));
        }
    }
    for &size in &args.sizes {
        let rate = |s| {
            results
                .iter()
                .find(|r| r.0 == s && r.1 == size)
                .map_or(0.0, |r| r.2)
        };
        println!(
            "size {}: STCP/TCP = {:.2}",
            units::format_size(size as u64),
            rate(true) / rate(false)
        );
    }
    let totals = server.shutdown()?;
    println!(
        "server {}",
        totals
            .summary(Duration::from_secs(1))
            .split(" | ")
            .last()
            .unwrap_or("")
    );
    Ok(())
}

fn seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    getrandom::getrandom(&mut s).expect("OS randomness");
    s
}

/// Payloads are windows of one pattern, shifted per frame: no per-frame allocation.
const SHIFTS: usize = 251;

fn pattern(size: usize) -> Vec<u8> {
    (0..size + SHIFTS)
        .map(|i| (i as u64).wrapping_mul(0x9e37_79b9).rotate_right(13) as u8)
        .collect()
}

fn payload(pattern: &[u8], size: usize, seq: u64) -> &[u8] {
    let at = (seq % SHIFTS as u64) as usize;
    &pattern[at..at + size]
}

/// CPU seconds used so far by this process's threads, split into (server workers, others).
fn cpu_split() -> (f64, f64) {
    let tick = 100.0; // USER_HZ
    let (mut server, mut other) = (0.0, 0.0);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0.0, 0.0);
    };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let cpu = fields
            .get(11)
            .and_then(|u| u.parse::<f64>().ok())
            .unwrap_or(0.0)
            + fields
                .get(12)
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(0.0);
        if name.starts_with("stcp-worker") {
            server += cpu / tick;
        } else {
            other += cpu / tick;
        }
    }
    (server, other)
}

fn run_case(
    args: &Args,
    case: &Case,
    addr: SocketAddr,
    server_public: [u8; 32],
    client_cores: &[core_affinity::CoreId],
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let frames = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for i in 0..args.conns {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let (sealer, opener) = if case.stcp {
            let (s, o) = handshake(&stream, server_public, args.crypto)?;
            (Some(s), Some(o))
        } else {
            (None, None)
        };
        let unit = case.size + if case.stcp { RECORD_OVERHEAD } else { 4 };
        let window = (args.window / unit).max(1);
        let (credit_tx, credit_rx) = mpsc::sync_channel::<()>(window);
        for _ in 0..window {
            credit_tx.send(())?;
        }
        let core = (!client_cores.is_empty()).then(|| client_cores[i % client_cores.len()]);
        let w = stream.try_clone()?;
        let (size, stop_w) = (case.size, stop.clone());
        threads.push(thread::spawn(move || {
            if let Some(c) = core {
                core_affinity::set_for_current(c);
            }
            writer(w, sealer, size, window, credit_rx, stop_w)
        }));
        let (frames_r, stop_r) = (frames.clone(), stop.clone());
        threads.push(thread::spawn(move || {
            if let Some(c) = core {
                core_affinity::set_for_current(c);
            }
            reader(stream, opener, size, credit_tx, frames_r, stop_r)
        }));
    }
    thread::sleep(Duration::from_millis(500));
    let (s0, c0) = cpu_split();
    let f0 = frames.load(Ordering::Relaxed);
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs_f64(args.seconds));
    let f1 = frames.load(Ordering::Relaxed);
    let elapsed = t0.elapsed();
    let (s1, c1) = cpu_split();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join()
            .map_err(|_| "client thread panicked")?
            .map_err(|e| e.to_string())?;
    }
    let secs = elapsed.as_secs_f64();
    Ok(Outcome {
        frames: f1 - f0,
        elapsed,
        server_cpu: (s1 - s0) / secs,
        client_cpu: (c1 - c0) / secs,
    })
}

fn handshake(
    stream: &TcpStream,
    server_public: [u8; 32],
    crypto: CryptoBackend,
) -> Result<(RecordSealer, RecordOpener), Box<dyn std::error::Error>> {
    let mut cfg = ClientConfig::new(server_public);
    cfg.crypto = crypto.provider();
    let (hs, hello) = ClientHandshake::start(&cfg, seed())?;
    (&*stream).write_all(&hello)?;
    let mut h = [0u8; 4];
    (&*stream).read_exact(&mut h)?;
    let len = stcp_proto::handshake::handshake_frame_len(h)?;
    let mut reply = vec![0u8; len];
    (&*stream).read_exact(&mut reply)?;
    let s = hs.finish(&reply)?;
    Ok((s.sealer, s.opener))
}

type Res = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn writer(
    mut stream: TcpStream,
    mut sealer: Option<RecordSealer>,
    size: usize,
    window: usize,
    credits: mpsc::Receiver<()>,
    stop: Arc<AtomicBool>,
) -> Res {
    let unit = size + if sealer.is_some() { RECORD_OVERHEAD } else { 4 };
    let mut batch = vec![0u8; unit * window];
    let pattern = pattern(size);
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if credits.recv_timeout(Duration::from_millis(50)).is_err() {
            continue;
        }
        let mut n = 1;
        while n < window && credits.try_recv().is_ok() {
            n += 1;
        }
        for k in 0..n {
            let rec = &mut batch[k * unit..(k + 1) * unit];
            let p = payload(&pattern, size, seq);
            seq += 1;
            match sealer.as_mut() {
                Some(s) => {
                    write_record_header(rec, RecordType::Data, size);
                    rec[RECORD_HEADER_LEN..RECORD_HEADER_LEN + size].copy_from_slice(p);
                    s.seal(rec)?;
                }
                None => {
                    rec[..4].copy_from_slice(&(size as u32).to_be_bytes());
                    rec[4..].copy_from_slice(p);
                }
            }
        }
        stream.write_all(&batch[..n * unit])?;
    }
    if let Some(s) = sealer.as_mut() {
        // End the session properly: an authenticated close (the server echoes its own).
        let mut close = [0u8; RECORD_OVERHEAD];
        write_record_header(&mut close, RecordType::Close, 0);
        s.seal(&mut close)?;
        stream.write_all(&close)?;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    Ok(())
}

fn reader(
    mut stream: TcpStream,
    mut opener: Option<RecordOpener>,
    size: usize,
    credits: mpsc::SyncSender<()>,
    frames: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Res {
    let unit = size + if opener.is_some() { RECORD_OVERHEAD } else { 4 };
    let mut buf = vec![0u8; unit.max(256 * 1024)];
    let pattern = pattern(size);
    let (mut filled, mut seq) = (0usize, 0u64);
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    loop {
        let n = match stream.read(&mut buf[filled..]) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(_) if stop.load(Ordering::Relaxed) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        filled += n;
        let mut pos = 0;
        let mut got = 0;
        while filled - pos >= unit {
            let rec = &mut buf[pos..pos + unit];
            let body = match opener.as_mut() {
                Some(o) => {
                    o.open(rec)?;
                    &rec[RECORD_HEADER_LEN..RECORD_HEADER_LEN + size]
                }
                None => &rec[4..],
            };
            if body != payload(&pattern, size, seq) {
                return Err(format!("echo {seq} differs").into());
            }
            seq += 1;
            pos += unit;
            got += 1;
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
        frames.fetch_add(got, Ordering::Relaxed);
        for _ in 0..got {
            let _ = credits.try_send(());
        }
    }
}
