//! The `stcp-server` binary: parse the command line, load keys, start the server, stop it on
//! SIGINT/SIGTERM, print a summary.

mod cli;

use std::{io::IsTerminal, process::ExitCode, time::Duration};

use clap::Parser;
use stcp_proto::{keys, load_or_create_keypair, load_psk, public_key_path};
use stcp_server::{Backend, Config, Server};

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stcp-server: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn seed() -> Result<[u8; 32], String> {
    let mut s = [0u8; 32];
    getrandom::getrandom(&mut s).map_err(|e| format!("OS random number generator: {e}"))?;
    Ok(s)
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Some(Command::Keygen { path }) => {
            let kp = keys::write_new_keypair(&path, seed()?).map_err(|e| e.to_string())?;
            println!("{}", kp.public_hex());
            eprintln!(
                "wrote {} (0600) and {}",
                path.display(),
                public_key_path(&path).display()
            );
            return Ok(());
        }
        Some(Command::Genpsk { path }) => {
            keys::write_new_psk(&path, seed()?).map_err(|e| e.to_string())?;
            eprintln!("wrote {} (0600)", path.display());
            return Ok(());
        }
        None => {}
    }

    let (keypair, created) = load_or_create_keypair(&cli.key).map_err(|e| e.to_string())?;
    let psk = match &cli.psk {
        Some(p) => Some(load_psk(p).map_err(|e| e.to_string())?),
        None => None,
    };
    eprintln!(
        "stcp-server: public key {} ({} {}, public key in {})",
        keypair.public_hex(),
        if created { "created" } else { "loaded" },
        cli.key.display(),
        public_key_path(&cli.key).display()
    );
    let stats = if cli.no_stats {
        false
    } else {
        cli.stats || std::io::stderr().is_terminal()
    };
    let config = Config {
        stcp_listen: cli.listen.0,
        tcp_listen: cli.tcp_listen.0,
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
        ..Config::new(keypair)
    };

    // Block SIGINT/SIGTERM before any thread starts (threads inherit the mask); one thread
    // waits for them and asks the server to stop.
    let set = signal_set();
    // SAFETY: `set` is a valid, initialised sigset_t; blocking signals is per-thread state.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };

    let server = Server::start(config).map_err(|e| e.to_string())?;
    let busy_poll = match (cli.busy_poll.is_zero(), server.backend()) {
        (true, _) => String::new(),
        (false, Backend::Uring) => format!(", busy poll {:?}", cli.busy_poll),
        (false, Backend::Epoll) => " (--busy-poll is ignored by epoll)".into(),
    };
    eprintln!(
        "stcp-server: {} workers on {}{busy_poll}: STCP {} | TCP {}",
        worker_count(cli.cores),
        server.backend().name(),
        server.stcp_addr().map_or("off".into(), |a| a.to_string()),
        server.tcp_addr().map_or("off".into(), |a| a.to_string()),
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
                if stopping {
                    eprintln!("stcp-server: second signal, exiting now");
                    std::process::exit(1);
                }
                stopping = true;
                eprintln!("stcp-server: signal {sig}: closing connections");
                stopper.stop();
            }
        })
        .map_err(|e| e.to_string())?;
    let uptime = server.uptime();
    let started = std::time::Instant::now() - uptime;
    let totals = server.join().map_err(|e| e.to_string())?;
    eprintln!("stcp-server: {}", totals.summary(started.elapsed()));
    Ok(())
}

fn worker_count(cores: Option<u16>) -> u64 {
    cores.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        u64::from,
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
