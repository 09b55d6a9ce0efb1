//! Server CPU per full handshake, STCP (Noise NK) against TLS 1.3 (ECDSA P-256 certificate,
//! X25519, AES-256-GCM, no resumption), on one io_uring worker: a bounded loop of blocking
//! clients in this process, each connecting, completing its handshake, echoing one 256 B frame
//! and closing cleanly (STCP's Close record, TLS's close_notify), one at a time. The worker's
//! CPU time is read from /proc/self/task/*/stat (clock ticks) before and after each mode's loop.
//!
//! `cargo run --release -p stcp-server --example handshake_cost -- [N]` (default N = 2000 per
//! mode). It measures; it asserts nothing.

use std::{
    io::{Read, Write},
    net::TcpStream,
    sync::Arc,
    time::{Duration, Instant},
};

use rustls::{pki_types::ServerName, ClientConnection, StreamOwned};
use stcp_proto::{ClientConfig, Connection, Event, Mode, StaticKeypair};
use stcp_server::{tls::pinned_client_config, Config, IoBackend, Server};

/// CPU seconds used so far by this process's threads whose name starts with `prefix`.
fn cpu_of_threads(prefix: &str) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = task.expect("task").path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name and state.
        let utime: u64 = fields[11].parse().unwrap_or(0);
        let stime: u64 = fields[12].parse().unwrap_or(0);
        total += utime + stime;
    }
    total as f64 / ticks
}

fn frame(p: &[u8]) -> Vec<u8> {
    let mut f = (p.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(p);
    f
}

fn stcp_once(addr: std::net::SocketAddr, cfg: &ClientConfig, seed: u64, payload: &[u8]) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    let mut rng = [0u8; 32];
    rng[..8].copy_from_slice(&seed.to_le_bytes());
    rng[8] = 0x5c;
    let mut c = Connection::client(
        cfg,
        Mode::Stcp,
        Instant::now(),
        rng,
        Duration::from_secs(10),
    )
    .expect("client");
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent_frame = false;
    let mut closing = false;
    loop {
        while !c.poll_transmit().is_empty() {
            let n = s.write(c.poll_transmit()).expect("write");
            c.advance_transmit(n);
        }
        match c.poll_event() {
            Some(Event::Connected) if !sent_frame => {
                c.send_frame(payload).expect("send");
                sent_frame = true;
                continue;
            }
            Some(Event::Frame(f)) => {
                assert_eq!(f, payload);
                c.close().expect("close");
                closing = true;
                continue;
            }
            Some(Event::Closed) if closing => return,
            Some(e) => panic!("unexpected {e:?}"),
            None => {}
        }
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "the server closed early");
        c.handle_input(Instant::now(), &buf[..n]).expect("input");
    }
}

fn tls_once(addr: std::net::SocketAddr, cfg: &Arc<rustls::ClientConfig>, payload: &[u8]) {
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_nodelay(true).unwrap();
    let conn = ClientConnection::new(cfg.clone(), ServerName::try_from("localhost").unwrap())
        .expect("client");
    let mut s = StreamOwned::new(conn, sock);
    let f = frame(payload);
    s.write_all(&f).expect("write");
    let mut echo = vec![0u8; f.len()];
    s.read_exact(&mut echo).expect("echo");
    assert_eq!(echo, f);
    s.conn.send_close_notify();
    s.flush().expect("close_notify");
    let mut rest = [0u8; 64];
    assert_eq!(
        s.read(&mut rest).expect("end"),
        0,
        "the server's close_notify"
    );
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N"))
        .unwrap_or(2000);
    let keypair = StaticKeypair::generate([7; 32]);
    let public = keypair.public;
    let mut config = Config::ephemeral(keypair)
        .with_ephemeral_tls()
        .expect("certificate");
    config.cores = 1;
    config.io = IoBackend::Uring;
    let server = Server::start(config).expect("server");
    let stcp_cfg = ClientConfig::new(public);
    let tls_cfg = Arc::new(pinned_client_config(server.tls_cert_pem().unwrap()).unwrap());
    let payload = vec![0xa5u8; 256];
    let (stcp, tls) = (server.stcp_addr().unwrap(), server.tls_addr().unwrap());
    // Warm up both paths.
    for i in 0..50 {
        stcp_once(stcp, &stcp_cfg, i, &payload);
        tls_once(tls, &tls_cfg, &payload);
    }
    let mut results = Vec::new();
    for mode in ["stcp", "tls"] {
        let cpu0 = cpu_of_threads("stcp-worker");
        let t0 = Instant::now();
        for i in 0..n {
            match mode {
                "stcp" => stcp_once(stcp, &stcp_cfg, 1000 + i, &payload),
                _ => tls_once(tls, &tls_cfg, &payload),
            }
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_of_threads("stcp-worker") - cpu0;
        results.push((mode, cpu / n as f64 * 1e6, n as f64 / wall));
    }
    let totals = server.shutdown().expect("shutdown");
    for (mode, us, rate) in &results {
        println!(
            "{mode}: {n} connections, server CPU {us:.1} us per connection (handshake + one 256 B echo + close), {rate:.0} connections/s from one blocking client"
        );
    }
    println!(
        "server: stcp handshakes {}, tls handshakes {}, errors {}",
        totals.handshakes,
        totals.tls_handshakes,
        totals.errors_total()
    );
    if results.len() == 2 && results[1].1 > 0.0 {
        println!(
            "STCP / TLS server CPU per connection: {:.2} (TLS costs {:.2}x STCP)",
            results[0].1 / results[1].1,
            results[1].1 / results[0].1
        );
    }
}
