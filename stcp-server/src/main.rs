//! The `stcp-server` binary: parse the command line, load keys, start the server, stop it on
//! SIGINT/SIGTERM, print a summary. Every error ends it with one line on stderr and the exit
//! status of its class ([`failure::exit`]).

mod cli;
mod failure;

use std::{
    io::{IsTerminal, Write},
    process::ExitCode,
    time::Duration,
};

use clap::Parser;
use stcp_proto::{keys, load_or_create_keypair, load_psk, public_key_path};
use stcp_server::{fd_limit, messages, Backend, Config, Server, TlsIdentity};

use crate::cli::{Cli, Command};
use crate::failure::{exit, Failure, Listeners};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            stcp_server::stderr_line!("{}", messages::usage_error("stcp-server", &e));
            return ExitCode::from(exit::USAGE);
        }
    };
    messages::init_logging("info");
    match run(cli) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            stcp_server::stderr_line!("stcp-server: error: {e}");
            ExitCode::from(e.exit_status())
        }
    }
}

fn seed() -> Result<[u8; 32], Failure> {
    let mut s = [0u8; 32];
    getrandom::getrandom(&mut s).map_err(Failure::Random)?;
    Ok(s)
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Some(Command::Keygen { path }) => {
            let kp = keys::write_new_keypair(&path, seed()?).map_err(|source| Failure::Write {
                command: "keygen",
                role: messages::KeyRole::ServerKey,
                source,
            })?;
            stcp_server::stdout_line!("{}", kp.public_hex());
            stcp_server::stderr_line!(
                "wrote {} (0600) and {}",
                path.display(),
                public_key_path(&path).display()
            );
            return Ok(());
        }
        Some(Command::Genpsk { path }) => {
            keys::write_new_psk(&path, seed()?).map_err(|source| Failure::Write {
                command: "genpsk",
                role: messages::KeyRole::Psk,
                source,
            })?;
            stcp_server::stderr_line!("wrote {} (0600)", path.display());
            return Ok(());
        }
        None => {}
    }
    let listen = Listeners {
        stcp: cli.listen.0,
        tcp: cli.tcp_listen.0,
        metrics: cli.metrics.0,
        tls: cli.tls_listen.0,
    };
    check_listeners(listen)?;

    let (keypair, created) = load_or_create_keypair(&cli.key).map_err(Failure::server_key)?;
    let psk = match &cli.psk {
        Some(p) => Some(load_psk(p).map_err(Failure::psk)?),
        None => None,
    };
    stcp_server::stderr_line!(
        "stcp-server: public key {} ({} {}, public key in {})",
        keypair.public_hex(),
        if created { "created" } else { "loaded" },
        cli.key.display(),
        public_key_path(&cli.key).display()
    );
    let tls_identity = match listen.tls {
        Some(_) => {
            let (id, created) =
                TlsIdentity::load_or_create(&cli.cert, &cli.cert_key).map_err(Failure::Cert)?;
            stcp_server::stderr_line!(
                "stcp-server: TLS certificate {} ({}; key in {})",
                cli.cert.display(),
                if created { "created" } else { "loaded" },
                cli.cert_key.display()
            );
            Some(id)
        }
        None if cli.ktls => {
            return Err(Failure::Usage(
                "--ktls needs a TLS listener: give --tls-listen ADDR".into(),
            ))
        }
        None => None,
    };
    let workers = worker_count(cli.cores);
    if let Some(n) = cli.cores {
        let available = core_affinity::get_core_ids().map_or(0, |ids| ids.len());
        if let Some(warning) = cli::cores_warning(usize::from(n), available) {
            stcp_server::stderr_line!("stcp-server: warning: {warning}");
        }
    }
    // Every connection is a descriptor: raise the soft limit as far as allowed, and say so if
    // it still cannot hold --max-conns.
    if let Ok(limit) = fd_limit::raise_to_hard() {
        if let Some(warning) = fd_limit::server_warning(cli.max_conns, workers, limit) {
            stcp_server::stderr_line!("stcp-server: warning: {warning}");
        }
    }
    let stats = if cli.no_stats {
        false
    } else {
        cli.stats || std::io::stderr().is_terminal()
    };
    let config = Config {
        stcp_listen: listen.stcp,
        tcp_listen: listen.tcp,
        tls_listen: listen.tls,
        tls_identity,
        ktls: cli.ktls,
        cores: cli.cores.map_or(0, usize::from),
        psk,
        crypto: cli.crypto,
        io: cli.io,
        max_conns: cli.max_conns,
        max_frame: cli.max_frame,
        handshake_timeout: cli.handshake_timeout,
        idle_timeout: cli.idle_timeout.0,
        stats_interval: stats.then_some(Duration::from_secs(1)),
        busy_poll: cli.busy_poll,
        handshake_rate_per_ip: cli.handshake_rate_per_ip,
        metrics_listen: listen.metrics,
        ..Config::new(keypair)
    };

    // Block SIGINT/SIGTERM before any thread starts (threads inherit the mask); one thread
    // waits for them and asks the server to stop.
    let set = signal_set();
    // SAFETY: `set` is a valid, initialised sigset_t; blocking signals is per-thread state.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };

    let server = Server::start(config).map_err(|error| Failure::Start {
        error,
        listen: Box::new(listen),
    })?;
    let busy_poll = match (cli.busy_poll.is_zero(), server.backend()) {
        (true, _) => String::new(),
        (false, Backend::Uring) => format!(", busy poll {:?}", cli.busy_poll),
        (false, Backend::Epoll) => " (--busy-poll is ignored by epoll)".into(),
    };
    stcp_server::stderr_line!(
        "stcp-server: {} workers on {}{busy_poll}: STCP {} | TCP {} | TLS {}{}{}",
        workers,
        server.backend().name(),
        server.stcp_addr().map_or("off".into(), |a| a.to_string()),
        server.tcp_addr().map_or("off".into(), |a| a.to_string()),
        server.tls_addr().map_or("off".into(), |a| a.to_string()),
        if cli.ktls { " (kTLS)" } else { "" },
        server
            .metrics_addr()
            .map_or(String::new(), |a| format!(" | metrics http://{a}/metrics")),
    );
    let stopper = server.stopper();
    std::thread::Builder::new()
        .name("stcp-signals".into())
        .spawn(move || {
            let mut stopping = false;
            loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: `set` and `sig` are valid for the call; sigwait only reads/writes them.
                if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                    continue;
                }
                // Not eprintln!: with stderr gone (a closed pipe) it would panic and end this
                // thread, and the signals, still blocked, would never stop the server.
                let mut stderr = std::io::stderr();
                if stopping {
                    let _ = writeln!(stderr, "stcp-server: second signal, exiting now");
                    std::process::exit(i32::from(exit::FAILED));
                }
                stopping = true;
                let _ = writeln!(stderr, "stcp-server: signal {sig}: closing connections");
                stopper.stop();
            }
        })
        .map_err(Failure::Signals)?;
    let uptime = server.uptime();
    let started = std::time::Instant::now() - uptime;
    let totals = server.join().map_err(Failure::Run)?;
    // A closed stderr loses the summary, not the exit status.
    stcp_server::stderr_line!("stcp-server: {}", totals.summary(started.elapsed()));
    Ok(())
}

/// Listener options that parse but cannot work together.
fn check_listeners(listen: Listeners) -> Result<(), Failure> {
    if listen.stcp.is_none() && listen.tcp.is_none() && listen.tls.is_none() {
        return Err(Failure::Usage(
            "--listen, --tcp-listen and --tls-listen are all none: nothing to serve; give at least \
             one address"
                .into(),
        ));
    }
    let named = [
        ("--listen", listen.stcp),
        ("--tcp-listen", listen.tcp),
        ("--tls-listen", listen.tls),
        ("--metrics", listen.metrics),
    ];
    for (i, (first, a)) in named.iter().enumerate() {
        for (second, b) in &named[i + 1..] {
            if let (Some(a), Some(b)) = (a, b) {
                if a == b && a.port() != 0 {
                    return Err(Failure::Usage(format!(
                        "{first} and {second} are both {a}: give each its own port"
                    )));
                }
            }
        }
    }
    Ok(())
}

fn worker_count(cores: Option<u16>) -> usize {
    cores.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    )
}

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset uses it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}
