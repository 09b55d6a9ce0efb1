//! The suite's matrix: which backend combinations (crypto × io, or crypto alone against an
//! external server) run, in which order, and the server each one runs against.

use std::time::Duration;

use stcp_proto::{CryptoBackend, Mode};
use stcp_server::IoBackend;

use super::SuiteArgs;
use crate::embedded::EmbeddedOptions;
use crate::run::{self, StartError};
use crate::server_under_test::{ExternalServer, ServerUnderTest};

/// One backend combination: a server to start (or the external one) and the client crypto.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Combination {
    Embedded {
        crypto: CryptoBackend,
        io: IoBackend,
    },
    External {
        crypto: CryptoBackend,
    },
}

impl Combination {
    pub(crate) fn crypto(self) -> CryptoBackend {
        match self {
            Combination::Embedded { crypto, .. } | Combination::External { crypto } => crypto,
        }
    }
}

/// The combinations in order: crypto outer, io inner; one per crypto against an external server.
pub(super) fn combinations(args: &SuiteArgs) -> Vec<Combination> {
    let mut out = Vec::new();
    for &crypto in &dedup(&args.crypto) {
        if args.server.target.is_some() {
            out.push(Combination::External { crypto });
        } else {
            for io in io_choices(args) {
                out.push(Combination::Embedded { crypto, io });
            }
        }
    }
    out
}

pub(super) fn io_choices(args: &SuiteArgs) -> Vec<IoBackend> {
    if args.io.is_empty() {
        vec![IoBackend::Auto]
    } else {
        dedup(&args.io)
    }
}

pub(crate) fn dedup<T: PartialEq + Copy>(items: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for item in items {
        if !out.contains(item) {
            out.push(*item);
        }
    }
    out
}

pub(crate) fn start_server(
    combination: Combination,
    external: Option<&ExternalServer>,
    psk: Option<[u8; 32]>,
    max_frame: usize,
    busy_poll: Duration,
) -> Result<ServerUnderTest, StartError> {
    match (combination, external) {
        (Combination::Embedded { crypto, io }, _) => Ok(ServerUnderTest::Embedded(Box::new(
            run::start_embedded(&EmbeddedOptions {
                psk,
                max_frame: max_frame.max(stcp_proto::DEFAULT_MAX_FRAME),
                busy_poll,
                ..EmbeddedOptions::new(crypto, io)
            })?,
        ))),
        (Combination::External { .. }, Some(e)) => Ok(ServerUnderTest::External(e.clone())),
        (Combination::External { .. }, None) => Err(StartError::Usage(
            "--target needs --tcp-target (and the other way round)".into(),
        )),
    }
}

pub(super) fn describe_server(server: &ServerUnderTest, (crypto, io): &(String, String)) {
    match server {
        ServerUnderTest::Embedded(s) => crate::stderr_line!(
            "stcp-loadgen suite: {crypto} / {io}: embedded stcp-server{}, STCP on {}, TCP on {}, \
             server on core(s) {:?}, client threads on core(s) {:?}",
            run::busy_poll_label(s.busy_poll_in_force()),
            s.addr(Mode::Stcp),
            s.addr(Mode::Tcp),
            s.cores,
            s.client_cores
        ),
        ServerUnderTest::External(s) => {
            let show = |a: &[std::net::SocketAddr]| match a {
                [] => "-".to_string(),
                a => a
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            crate::stderr_line!(
                "stcp-loadgen suite: {crypto} (client) against the server at STCP {}, TCP {}, \
                 client threads on core(s) {:?}",
                show(&s.stcp),
                show(&s.tcp),
                server.client_cores()
            )
        }
    }
}
