//! What both command lines (`stcp-server`, `stcp-loadgen`) tell a user when something is wrong:
//! one line that names the cause and what to do about it. The libraries' errors name the cause;
//! the remedies here depend on which option the user gave, so the binaries add them.

use std::ffi::OsStr;
use std::io::ErrorKind as IoKind;

use stcp_engine::Unavailable;
use stcp_proto::KeyFileError;

/// Which key a key file was given as: the remedy differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRole {
    /// The server's private key (`stcp-server --key`); created when absent.
    ServerKey,
    /// A pre-shared key file (`--psk` of either binary).
    Psk,
    /// The server public key a client pins (`stcp-loadgen --server-key FILE|HEX`).
    PinnedKey,
}

/// One line for a key file that cannot be used, given as `option` (`--key`, `--psk`, ...).
pub fn key_file(option: &str, role: KeyRole, e: &KeyFileError) -> String {
    let make = match role {
        KeyRole::ServerKey => {
            "give the private key file stcp-server wrote (not its .pub), or make a new one with \
             `stcp-server keygen FILE`"
        }
        KeyRole::Psk => "make one with `stcp-server genpsk FILE` and give the same file to both sides",
        KeyRole::PinnedKey => {
            "give the public key file the server wrote (its <key>.pub) or the 64 hex digits it printed"
        }
    };
    match e {
        KeyFileError::Io { path, source } => {
            let path = path.display();
            match (source.kind(), role) {
                (IoKind::NotFound, KeyRole::ServerKey) => format!(
                    "{option} {path}: its directory does not exist: give a path in an existing \
                     directory (the key is created there when absent)"
                ),
                (IoKind::NotFound, KeyRole::PinnedKey) => {
                    format!("{option} {path}: neither a file nor 64 hex digits: {make}")
                }
                (IoKind::NotFound, KeyRole::Psk) => {
                    format!("{option} {path}: no such file: {make}")
                }
                (IoKind::PermissionDenied, _) => format!(
                    "{option} {path}: permission denied: run as the user who owns it, or give a \
                     file this user can read"
                ),
                _ => format!("{option} {path}: {source}"),
            }
        }
        KeyFileError::TooOpen { path, mode } => {
            let shown = path.display();
            let public = path.extension() == Some(OsStr::new("pub"));
            if public && role != KeyRole::PinnedKey {
                format!(
                    "{option} {shown}: this looks like a public key file (mode {mode:04o}); give \
                     the private key file beside it (without .pub)"
                )
            } else {
                format!(
                    "{option} {shown}: permissions {mode:04o} let others read a secret key: run \
                     `chmod 600 {shown}`"
                )
            }
        }
        KeyFileError::Malformed { path, reason } => {
            if path.as_os_str() == "<hex>" {
                format!("{option}: not a key ({reason}): {make}")
            } else {
                format!(
                    "{option} {}: not a key file ({reason}): {make}",
                    path.display()
                )
            }
        }
        KeyFileError::AlreadyExists { path } => format!(
            "{} already exists and a key is never overwritten: give another path, or remove it \
             first if it is no longer needed",
            path.display()
        ),
    }
}

/// What to do when io_uring is unavailable, for a user who cannot fall back to epoll (the load
/// generator); the server adds its `--io epoll` way out.
pub fn uring_remedy(e: &Unavailable) -> &'static str {
    match e {
        Unavailable::DisabledBySysctl(_) => {
            "allow it with `sysctl kernel.io_uring_disabled=0` (as root)"
        }
        Unavailable::PermissionDenied => {
            "run on the host, or in a container whose seccomp profile allows the io_uring syscalls"
        }
        Unavailable::NotSupported | Unavailable::MissingFeature(_) => {
            "run on a Linux kernel 6.1 or newer with io_uring enabled"
        }
        Unavailable::Setup(_) => {
            "check the locked-memory limit (`ulimit -l`) and the kernel's io_uring support"
        }
    }
}

/// Whether log lines may carry colour: only on a terminal, and never when `NO_COLOR` is set to
/// anything but the empty string (<https://no-color.org>).
pub fn colour_logs(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Sets up logging to stderr for a binary: `RUST_LOG`, else `default_filter`; colour as
/// [`colour_logs`] decides.
pub fn init_logging(default_filter: &str) {
    use std::io::IsTerminal;
    let colour = colour_logs(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
}

/// A command-line error from clap in one line: `bin: <what is wrong>[; tip: ...]; see bin --help`
/// (clap's own rendering spreads it over several lines, with the usage in between).
pub fn usage_error(bin: &str, e: &clap::Error) -> String {
    let text = e.to_string();
    let mut parts: Vec<&str> = Vec::new();
    let mut in_usage = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("Usage:") {
            in_usage = true;
            continue;
        }
        if trimmed.is_empty() {
            in_usage = false;
            continue;
        }
        if in_usage || trimmed.starts_with("For more information") {
            continue;
        }
        parts.push(trimmed.strip_prefix("error: ").unwrap_or(trimmed));
    }
    // A part ending in ':' introduces the next one ("required arguments were not provided:").
    let mut line = String::new();
    for part in parts {
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(part);
    }
    format!("{bin}: {line}; see {bin} --help")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn io(path: &str, kind: IoKind) -> KeyFileError {
        KeyFileError::Io {
            path: PathBuf::from(path),
            source: std::io::Error::from(kind),
        }
    }

    #[test]
    fn key_file_messages_name_the_option_the_cause_and_the_remedy() {
        let m = key_file("--psk", KeyRole::Psk, &io("x.psk", IoKind::NotFound));
        assert_eq!(
            m,
            "--psk x.psk: no such file: make one with `stcp-server genpsk FILE` and give the same \
             file to both sides"
        );
        let m = key_file(
            "--server-key",
            KeyRole::PinnedKey,
            &io("1234", IoKind::NotFound),
        );
        assert!(m.contains("neither a file nor 64 hex digits"), "{m}");
        let m = key_file(
            "--key",
            KeyRole::ServerKey,
            &io("nodir/k", IoKind::NotFound),
        );
        assert!(m.contains("its directory does not exist"), "{m}");
        let too_open = |p: &str| KeyFileError::TooOpen {
            path: PathBuf::from(p),
            mode: 0o644,
        };
        let m = key_file("--psk", KeyRole::Psk, &too_open("a.psk"));
        assert_eq!(
            m,
            "--psk a.psk: permissions 0644 let others read a secret key: run `chmod 600 a.psk`"
        );
        let m = key_file("--key", KeyRole::ServerKey, &too_open("s.key.pub"));
        assert!(m.contains("public key file"), "{m}");
        let bad = KeyFileError::Malformed {
            path: PathBuf::from("k"),
            reason: "expected 64 hex digits".into(),
        };
        let m = key_file("--key", KeyRole::ServerKey, &bad);
        assert!(
            m.starts_with("--key k: not a key file (expected 64 hex digits)")
                && m.contains("stcp-server keygen"),
            "{m}"
        );
        for role in [KeyRole::ServerKey, KeyRole::Psk, KeyRole::PinnedKey] {
            let m = key_file("--x", role, &too_open("f"));
            assert!(!m.contains('\n'), "{m}");
        }
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_logs(true, None));
        assert!(colour_logs(true, Some(OsStr::new(""))));
        assert!(!colour_logs(true, Some(OsStr::new("1"))));
        assert!(!colour_logs(false, None));
    }

    #[test]
    fn every_unavailable_cause_has_a_remedy() {
        for e in [
            Unavailable::DisabledBySysctl(2),
            Unavailable::PermissionDenied,
            Unavailable::NotSupported,
            Unavailable::MissingFeature("X"),
            Unavailable::Setup(std::io::Error::from(IoKind::OutOfMemory)),
        ] {
            assert!(!uring_remedy(&e).is_empty());
        }
        assert!(uring_remedy(&Unavailable::PermissionDenied).contains("seccomp"));
    }

    #[test]
    fn clap_errors_become_one_line() {
        use clap::Parser;
        #[derive(Parser, Debug)]
        #[command(name = "tool")]
        struct Cli {
            #[arg(long)]
            clients: Option<u32>,
        }
        let e = Cli::try_parse_from(["tool", "--clent", "3"]).unwrap_err();
        let line = usage_error("tool", &e);
        assert_eq!(
            line,
            "tool: unexpected argument '--clent' found; tip: a similar argument exists: \
             '--clients'; see tool --help"
        );
        let e = Cli::try_parse_from(["tool", "--clients", "x"]).unwrap_err();
        let line = usage_error("tool", &e);
        assert!(
            line.starts_with("tool: invalid value 'x' for '--clients <CLIENTS>'"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        #[derive(Parser, Debug)]
        #[command(name = "tool")]
        struct Needs {
            #[arg(long)]
            target: String,
        }
        let e = Needs::try_parse_from(["tool"]).unwrap_err();
        assert_eq!(
            usage_error("tool", &e),
            "tool: the following required arguments were not provided: --target <TARGET>; see \
             tool --help"
        );
    }
}
