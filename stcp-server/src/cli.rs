//! Command line of the `stcp-server` binary.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};
use stcp_proto::CryptoBackend;
use stcp_server::{units, IoBackend};

const EXAMPLES: &str = "\
Examples:
  stcp-server                                  STCP on 127.0.0.1:7443, raw TCP on 127.0.0.1:7444, every core
  stcp-server --cores 2 --stats                two pinned workers, a stats line every second
  stcp-server --listen 0.0.0.0:7443 --tcp-listen none --key /etc/stcp/server.key
  stcp-server --listen [::1]:7443 --tcp-listen [::1]:7444   the IPv6 loopback
  stcp-server --psk ./stcp.psk --max-frame 1m --idle-timeout 2m
  stcp-server --tls-listen 127.0.0.1:7445     TLS 1.3 beside STCP and TCP (certificate created in ./stcp-server.crt)
  stcp-server --io epoll --crypto rustcrypto   force the epoll backend and the RustCrypto AES-GCM
  stcp-server --cores 1 --busy-poll 50us       spin up to 50 µs for completions before sleeping
  stcp-server --handshake-rate-per-ip 50       at most 50 handshakes/s per client address and worker
  stcp-server --metrics 127.0.0.1:9464         Prometheus metrics at http://127.0.0.1:9464/metrics
  stcp-server keygen ./server.key              new keypair (0600) + ./server.key.pub; prints the public key
  stcp-server genpsk ./stcp.psk                new pre-shared key file (0600)

The public key is printed at start and written to <key>.pub, so a local client can pin it
with the file instead of the hex. SIGINT/SIGTERM: stop accepting, send an authenticated close
on every STCP connection, exit 0. Every connection is an open file: the soft limit is raised to
the hard one at start, with a warning when it cannot hold --max-conns. RUST_LOG sets the log
level (default info); logs are coloured only on a terminal, never with NO_COLOR set.

Exit status: 0 after SIGINT/SIGTERM (and for keygen, genpsk), 1 when a worker fails while
serving or a second signal cuts the drain short, 2 on bad usage, 4 when it cannot start (key,
PSK or certificate file, listen address, io_uring with --io uring, --ktls without a TLS ULP).";

/// Thread-per-core io_uring echo server for STCP and raw framed TCP.
#[derive(Parser, Debug)]
#[command(name = "stcp-server", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// STCP listen address IP:PORT ([::1]:7443 for IPv6), or `none`.
    #[arg(long, value_name = "ADDR|none", default_value = "127.0.0.1:7443", value_parser = parse_listen)]
    pub listen: Listen,
    /// Raw framed TCP listen address IP:PORT, or `none`.
    #[arg(long, value_name = "ADDR|none", default_value = "127.0.0.1:7444", value_parser = parse_listen)]
    pub tcp_listen: Listen,
    /// TLS 1.3 listen address IP:PORT (rustls: AES-256-GCM, X25519, the same echo frames inside),
    /// or `none` (the default).
    #[arg(long, value_name = "ADDR|none", default_value = "none", value_parser = parse_listen)]
    pub tls_listen: Listen,
    /// TLS certificate (PEM). With --tls-listen, when neither it nor --cert-key exists, both are
    /// created: a self-signed ECDSA P-256 certificate for localhost, 127.0.0.1 and ::1.
    #[arg(long, value_name = "FILE", default_value = stcp_server::tls::DEFAULT_CERT_PATH)]
    pub cert: PathBuf,
    /// The certificate's private key (PEM PKCS#8, mode 0600).
    #[arg(long, value_name = "FILE", default_value = stcp_server::tls::DEFAULT_CERT_KEY_PATH)]
    pub cert_key: PathBuf,
    /// TLS: ask for kTLS (the kernel's TCP_ULP "tls"). The key hand-over is not built yet: the
    /// server probes the kernel at start and refuses to start, naming the cause (no TLS ULP, or
    /// the hand-over not built).
    #[arg(long)]
    pub ktls: bool,
    /// Worker threads, one pinned per core (default: every core; more than the cores available
    /// share them, with a warning).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub cores: Option<u16>,
    /// Private key file; created (mode 0600) with `<key>.pub` beside it when absent.
    #[arg(long, value_name = "FILE", default_value = "./stcp-server.key")]
    pub key: PathBuf,
    /// Pre-shared key file: only clients with the same PSK complete the handshake.
    #[arg(long, value_name = "FILE")]
    pub psk: Option<PathBuf>,
    /// Most connections open at once; more are accepted, closed at once and counted. Each is
    /// an open file (see `ulimit -n`).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_conns: usize,
    /// Largest frame payload a client may send (64k, 1m, ...).
    #[arg(long, value_name = "SIZE", default_value = "16m", value_parser = parse_size)]
    pub max_frame: usize,
    /// Time a client has to complete its handshake (500ms, 10s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,
    /// Close connections without traffic for this long (`off` to never).
    #[arg(long, value_name = "DURATION|off", default_value = "300s", value_parser = parse_optional_duration)]
    pub idle_timeout: OptionalDuration,
    /// AES-GCM implementation.
    #[arg(long, value_name = "aws-lc|rustcrypto", default_value = "aws-lc")]
    pub crypto: CryptoBackend,
    /// io backend: auto falls back to epoll (with a warning) when io_uring is unavailable.
    #[arg(long, value_name = "auto|uring|epoll", default_value = "auto")]
    pub io: IoBackend,
    /// io_uring: before sleeping for completions, each worker spins on its completion queue for
    /// up to this long (50us, 200us). It burns idle CPU (a worker's core stays busy) to skip the
    /// wake-up of a sleeping thread, so it changes what a benchmark measures. The epoll backend
    /// ignores it.
    #[arg(long, value_name = "DURATION|off", default_value = "off", value_parser = parse_busy_poll)]
    pub busy_poll: Duration,
    /// Most handshakes per second each worker computes for one client address (IPv6: one /64),
    /// in bursts of up to the same number; a hello over it closes its connection unanswered,
    /// counted as handshake_rate_limited (default: no limit).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub handshake_rate_per_ip: Option<u32>,
    /// Serve Prometheus metrics (text format) at http://ADDR/metrics, from a thread of its own,
    /// one request at a time (default: none).
    #[arg(long, value_name = "ADDR|none", default_value = "none", value_parser = parse_listen)]
    pub metrics: Listen,
    /// Print a stats line every second (default: when stderr is a terminal).
    #[arg(long, overrides_with = "no_stats")]
    pub stats: bool,
    /// Do not print stats lines.
    #[arg(long, overrides_with = "stats")]
    pub no_stats: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a new keypair (private key mode 0600, public key in `<path>.pub`) and print the
    /// public key. Refuses to overwrite.
    Keygen {
        /// Where to write the private key.
        #[arg(default_value = "./stcp-server.key")]
        path: PathBuf,
    },
    /// Write a new pre-shared key file (mode 0600). Refuses to overwrite.
    Genpsk {
        /// Where to write the PSK.
        path: PathBuf,
    },
}

/// A listen address, or `none`.
#[derive(Clone, Copy, Debug)]
pub struct Listen(pub Option<SocketAddr>);

/// A duration, or `off`.
#[derive(Clone, Copy, Debug)]
pub struct OptionalDuration(pub Option<Duration>);

fn parse_listen(s: &str) -> Result<Listen, String> {
    if s.eq_ignore_ascii_case("none") || s.eq_ignore_ascii_case("off") {
        return Ok(Listen(None));
    }
    s.parse()
        .map(|a| Listen(Some(a)))
        .map_err(|e| format!("{e} (expected IP:PORT or none)"))
}

fn parse_size(s: &str) -> Result<usize, String> {
    units::parse_size(s).map_err(|e| e.to_string())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    units::parse_duration(s).map_err(|e| e.to_string())
}

/// A busy poll: a duration, `0` or `off` (no busy poll, `Duration::ZERO`).
fn parse_busy_poll(s: &str) -> Result<Duration, String> {
    units::parse_optional_duration(s)
        .map(Option::unwrap_or_default)
        .map_err(|e| e.to_string())
}

fn parse_optional_duration(s: &str) -> Result<OptionalDuration, String> {
    units::parse_optional_duration(s)
        .map(OptionalDuration)
        .map_err(|e| format!("{e}, or off"))
}

/// The warning for `--cores` above the cores this process may run on: the workers are pinned
/// round-robin, so some share a core. None when every worker has a core of its own (or the
/// cores cannot be counted).
pub fn cores_warning(workers: usize, available: usize) -> Option<String> {
    if available == 0 || workers <= available {
        return None;
    }
    let per_core = workers.div_ceil(available);
    Some(format!(
        "--cores {workers} but only {available} core(s) are available: starting {workers} workers, \
         up to {per_core} pinned to each core (workers beyond {available} add no throughput)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent_and_parses_units() {
        Cli::command().debug_assert();
        let c = Cli::parse_from([
            "stcp-server",
            "--listen",
            "none",
            "--tcp-listen",
            "127.0.0.1:0",
            "--max-frame",
            "64k",
            "--idle-timeout",
            "off",
            "--handshake-timeout",
            "500ms",
            "--io",
            "epoll",
            "--crypto",
            "rustcrypto",
            "--busy-poll",
            "50us",
            "--handshake-rate-per-ip",
            "20",
            "--metrics",
            "127.0.0.1:9464",
            "--tls-listen",
            "[::1]:0",
            "--cert",
            "a.crt",
            "--cert-key",
            "a.key",
            "--ktls",
        ]);
        assert_eq!(c.tls_listen.0.unwrap().port(), 0);
        assert_eq!(c.cert, PathBuf::from("a.crt"));
        assert_eq!(c.cert_key, PathBuf::from("a.key"));
        assert!(c.ktls);
        let d = Cli::parse_from(["stcp-server"]);
        assert!(d.tls_listen.0.is_none() && !d.ktls);
        assert_eq!(d.cert, PathBuf::from("./stcp-server.crt"));
        assert!(c.listen.0.is_none());
        assert_eq!(c.tcp_listen.0.unwrap().port(), 0);
        assert_eq!(c.max_frame, 65536);
        assert!(c.idle_timeout.0.is_none());
        assert_eq!(c.handshake_timeout, Duration::from_millis(500));
        assert_eq!(c.io, IoBackend::Epoll);
        assert_eq!(c.crypto, CryptoBackend::RustCrypto);
        assert_eq!(c.busy_poll, Duration::from_micros(50));
        assert_eq!(c.handshake_rate_per_ip, Some(20));
        assert_eq!(c.metrics.0.unwrap().port(), 9464);
        assert!(Cli::parse_from(["stcp-server"]).metrics.0.is_none());
        assert!(Cli::parse_from(["stcp-server", "--metrics", "none"])
            .metrics
            .0
            .is_none());
        assert!(Cli::try_parse_from(["stcp-server", "--metrics", "9464"]).is_err());
        assert_eq!(Cli::parse_from(["stcp-server"]).handshake_rate_per_ip, None);
        assert!(Cli::try_parse_from(["stcp-server", "--handshake-rate-per-ip", "0"]).is_err());
        for off in ["off", "0"] {
            let c = Cli::parse_from(["stcp-server", "--busy-poll", off]);
            assert_eq!(c.busy_poll, Duration::ZERO);
        }
        assert_eq!(Cli::parse_from(["stcp-server"]).busy_poll, Duration::ZERO);
        assert!(Cli::try_parse_from(["stcp-server", "--busy-poll", "soon"]).is_err());
        assert!(Cli::try_parse_from(["stcp-server", "--io", "kqueue"]).is_err());
        assert!(Cli::try_parse_from(["stcp-server", "--cores", "0"]).is_err());
    }

    #[test]
    fn more_workers_than_cores_is_one_warning_line() {
        assert_eq!(cores_warning(2, 2), None);
        assert_eq!(cores_warning(1, 8), None);
        assert_eq!(cores_warning(4, 0), None);
        assert_eq!(
            cores_warning(4, 2).as_deref(),
            Some(
                "--cores 4 but only 2 core(s) are available: starting 4 workers, up to 2 pinned \
                 to each core (workers beyond 2 add no throughput)"
            )
        );
        assert!(cores_warning(5, 2).unwrap().contains("up to 3 pinned"));
    }
}
