//! Why the `stcp-server` binary stops with an error, each as one line that names the cause and
//! what to do, and the exit status each gives (README lists them).

use std::{io, net::SocketAddr};

use stcp_proto::KeyFileError;
use stcp_server::{
    messages::{self, KeyRole},
    ServerError,
};

/// Exit statuses of `stcp-server`.
pub mod exit {
    /// Stopped by SIGINT/SIGTERM after closing its connections; `keygen` and `genpsk` done.
    pub const OK: u8 = 0;
    /// A worker failed while serving, or a second signal cut the drain short.
    pub const FAILED: u8 = 1;
    /// Bad usage: an unknown option, a malformed value, options that contradict each other.
    pub const USAGE: u8 = 2;
    /// Could not start serving: a key or PSK file, a listen address, io_uring, threads.
    pub const CANNOT_START: u8 = 4;
}

/// Why the binary stops with an error.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Options that parse but contradict each other.
    #[error("{0}")]
    Usage(String),
    /// A key or PSK file cannot be used.
    #[error("{}", messages::key_file(option, *role, source))]
    Key {
        option: &'static str,
        role: KeyRole,
        source: KeyFileError,
    },
    /// `keygen` / `genpsk` could not write its file.
    #[error("{}", messages::key_file(command, *role, source))]
    Write {
        command: &'static str,
        role: KeyRole,
        source: KeyFileError,
    },
    /// The TLS certificate or its key cannot be used (or made).
    #[error("--cert/--cert-key: {0}")]
    Cert(stcp_server::tls::CertFileError),
    /// No randomness for a new key.
    #[error("cannot read the OS random number generator: {0}")]
    Random(getrandom::Error),
    /// The server did not start.
    #[error("{}", start_message(error, listen))]
    Start {
        error: ServerError,
        /// Boxed: four addresses would make every `Result<_, Failure>` large.
        listen: Box<Listeners>,
    },
    /// The signal-handling thread did not start.
    #[error("cannot start the signal-handling thread: {0}")]
    Signals(io::Error),
    /// A worker failed while serving.
    #[error("{0}")]
    Run(ServerError),
}

/// The listen addresses given, to say which option an address that cannot be bound came from.
#[derive(Clone, Copy, Debug)]
pub struct Listeners {
    pub stcp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
}

impl Failure {
    pub fn exit_status(&self) -> u8 {
        match self {
            Failure::Usage(_) => exit::USAGE,
            Failure::Run(_) => exit::FAILED,
            _ => exit::CANNOT_START,
        }
    }

    /// A key file error for `--key` (the server's private key).
    pub fn server_key(source: KeyFileError) -> Failure {
        Failure::Key {
            option: "--key",
            role: KeyRole::ServerKey,
            source,
        }
    }

    /// A key file error for `--psk`.
    pub fn psk(source: KeyFileError) -> Failure {
        Failure::Key {
            option: "--psk",
            role: KeyRole::Psk,
            source,
        }
    }
}

fn start_message(e: &ServerError, listen: &Listeners) -> String {
    match e {
        ServerError::UringUnavailable(cause) => format!(
            "io_uring is unavailable here: {cause}; use --io epoll (or --io auto, which falls back \
             to it), or {}",
            messages::uring_remedy(cause)
        ),
        ServerError::Listen { addr, source } => {
            // The address in the error is the one asked for, so it names its option.
            let option = if Some(*addr) == listen.tcp {
                "--tcp-listen"
            } else if Some(*addr) == listen.tls {
                "--tls-listen"
            } else {
                "--listen"
            };
            listen_message(*addr, option, source)
        }
        ServerError::MetricsListen { addr, source } => listen_message(*addr, "--metrics", source),
        ServerError::Worker { worker, source } => format!(
            "worker {worker} could not start: {source}{}",
            match source.raw_os_error() {
                Some(libc::EMFILE) | Some(libc::ENFILE) =>
                    ": raise the open-file limit (ulimit -n) or lower --cores",
                Some(libc::ENOMEM) =>
                    ": raise the locked-memory limit (ulimit -l), lower --cores, or use --io epoll",
                _ => "",
            }
        ),
        other => other.to_string(),
    }
}

/// Why `addr`, given with `option`, cannot be listened on, and what to do.
fn listen_message(addr: SocketAddr, option: &str, source: &io::Error) -> String {
    match source.kind() {
        io::ErrorKind::AddrInUse => format!(
            "cannot listen on {addr} ({option}): the address is in use, perhaps by another \
             stcp-server: stop that process, or give {option} another port (or none)"
        ),
        io::ErrorKind::AddrNotAvailable => format!(
            "cannot listen on {addr} ({option}): not an address of this machine: give one \
             of its addresses, 0.0.0.0 or [::]"
        ),
        io::ErrorKind::PermissionDenied => format!(
            "cannot listen on {addr} ({option}): permission denied (ports below 1024 need \
             privileges): give {option} a port of 1024 or more"
        ),
        _ => format!("cannot listen on {addr} ({option}): {source}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listeners() -> Listeners {
        Listeners {
            stcp: Some("127.0.0.1:7443".parse().unwrap()),
            tcp: Some("127.0.0.1:7444".parse().unwrap()),
            metrics: Some("127.0.0.1:9464".parse().unwrap()),
            tls: Some("127.0.0.1:7445".parse().unwrap()),
        }
    }

    #[test]
    fn a_port_in_use_names_the_option_and_the_way_out() {
        let e = ServerError::Listen {
            addr: "127.0.0.1:7444".parse().unwrap(),
            source: io::Error::from(io::ErrorKind::AddrInUse),
        };
        let f = Failure::Start {
            error: e,
            listen: Box::new(listeners()),
        };
        assert_eq!(
            f.to_string(),
            "cannot listen on 127.0.0.1:7444 (--tcp-listen): the address is in use, perhaps by \
             another stcp-server: stop that process, or give --tcp-listen another port (or none)"
        );
        assert_eq!(f.exit_status(), exit::CANNOT_START);
    }

    #[test]
    fn a_metrics_port_in_use_names_its_option() {
        let f = Failure::Start {
            error: ServerError::MetricsListen {
                addr: "127.0.0.1:9464".parse().unwrap(),
                source: io::Error::from(io::ErrorKind::AddrInUse),
            },
            listen: Box::new(listeners()),
        };
        assert_eq!(
            f.to_string(),
            "cannot listen on 127.0.0.1:9464 (--metrics): the address is in use, perhaps by \
             another stcp-server: stop that process, or give --metrics another port (or none)"
        );
        assert_eq!(f.exit_status(), exit::CANNOT_START);
    }

    #[test]
    fn the_tls_port_in_use_names_its_option() {
        let f = Failure::Start {
            error: ServerError::Listen {
                addr: "127.0.0.1:7445".parse().unwrap(),
                source: io::Error::from(io::ErrorKind::AddrInUse),
            },
            listen: Box::new(listeners()),
        };
        assert!(f.to_string().contains("(--tls-listen)"), "{f}");
    }

    #[test]
    fn io_uring_refused_says_how_to_fall_back() {
        let f = Failure::Start {
            error: ServerError::UringUnavailable(stcp_engine::Unavailable::PermissionDenied),
            listen: Box::new(listeners()),
        };
        let m = f.to_string();
        assert!(m.contains("seccomp") && m.contains("--io epoll"), "{m}");
        assert!(!m.contains('\n'));
    }

    #[test]
    fn statuses_follow_the_class() {
        assert_eq!(Failure::Usage("x".into()).exit_status(), exit::USAGE);
        assert_eq!(
            Failure::Run(ServerError::WorkerPanicked(0)).exit_status(),
            exit::FAILED
        );
        assert_eq!(
            Failure::psk(KeyFileError::AlreadyExists { path: "p".into() }).exit_status(),
            exit::CANNOT_START
        );
    }
}
