//! Parsers for option values shared by the commands' options: human sizes and durations, and
//! the protocol mode and backends, which parse into their one declaration
//! ([`stcp_proto::Mode`], [`stcp_proto::CryptoBackend`], [`stcp_server::IoBackend`]) while --help
//! and the errors list every value.

use std::time::Duration;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use stcp_proto::{CryptoBackend, Mode};
use stcp_server::{units, IoBackend};

/// `--mode`: parses into [`stcp_proto::Mode`], listing its values (with their meaning) in --help.
pub(crate) fn mode_parser() -> impl TypedValueParser<Value = Mode> {
    choice([
        PossibleValue::new(Mode::Stcp.name()).help("Noise handshake, then encrypted records"),
        PossibleValue::new(Mode::Tcp.name())
            .help("Plain length-prefixed frames (4-byte big-endian length + payload)"),
        PossibleValue::new(Mode::Tls.name())
            .help("TLS 1.3 (rustls: AES-256-GCM, X25519) carrying the plain frames"),
    ])
}

/// `--crypto`: parses into [`stcp_proto::CryptoBackend`], listing every backend in --help.
pub(crate) fn crypto_parser() -> impl TypedValueParser<Value = CryptoBackend> {
    choice(CryptoBackend::ALL.map(|b| PossibleValue::new(b.name())))
}

/// `--io`: parses into [`stcp_server::IoBackend`], listing its values (with their meaning) in
/// --help.
pub(crate) fn io_parser() -> impl TypedValueParser<Value = IoBackend> {
    choice(IoBackend::ALL.map(|io| {
        PossibleValue::new(io.name()).help(match io {
            IoBackend::Auto => "io_uring where it works, else epoll with a warning",
            IoBackend::Uring => "io_uring, or fail naming the cause",
            IoBackend::Epoll => "epoll (tokio), a current-thread runtime per core",
        })
    }))
}

/// A value among `values` (shown by --help and in errors), parsed with the type's `FromStr`.
fn choice<T>(values: impl IntoIterator<Item = PossibleValue>) -> impl TypedValueParser<Value = T>
where
    T: std::str::FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(values).try_map(|name| name.parse::<T>())
}

/// `--listen`: an IP address, IPv6 with or without brackets (`::1`, `[::1]`).
pub(crate) fn parse_listen_ip(text: &str) -> Result<std::net::IpAddr, String> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse().map_err(|_| {
        format!("{text:?} is not an IP address: give one of this machine's, e.g. 127.0.0.1 or ::1")
    })
}

pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    units::parse_size(text).map_err(|e| e.to_string())
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    units::parse_duration(text).map_err(|e| e.to_string())
}

/// `--busy-poll`: a duration, or `0`/`off` for none (`Duration::ZERO`).
pub(crate) fn parse_busy_poll(text: &str) -> Result<Duration, String> {
    units::parse_optional_duration(text)
        .map(Option::unwrap_or_default)
        .map_err(|e| e.to_string())
}
