//! A target whose name resolves to several addresses (localhost: ::1 and 127.0.0.1) is tried
//! address by address until one accepts: here the first has nothing listening and the server
//! listens on the IPv6 loopback only.

use std::net::{SocketAddr, TcpListener};

use clap::Parser;
use stcp_loadgen::cli::Cli;
use stcp_loadgen::run::measure;
use stcp_loadgen::server_under_test::{ExternalServer, ServerUnderTest};
use stcp_server::{Config, IoBackend, Server};

/// Whether this machine has an IPv6 loopback; says why the test skips when it has not.
fn ipv6_loopback(test: &str) -> bool {
    match TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIPPED: {test}: no IPv6 loopback here: cannot bind [::1]: {e}");
            false
        }
    }
}

/// An address on `ip` that refuses connections for as long as the returned socket lives: bound,
/// so no other test's listener or connection can take the port, but not listening, so a SYN to
/// it is answered with a reset. (A port bound and closed again could be reused before the run.)
fn refusing(ip: &str) -> (socket2::Socket, SocketAddr) {
    let addr: SocketAddr = format!("{ip}:0").parse().unwrap();
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    s.bind(&addr.into()).unwrap();
    let local = s.local_addr().unwrap().as_socket().unwrap();
    (s, local)
}

fn tcp_run(clients: &str) -> stcp_loadgen::run::RunArgs {
    Cli::try_parse_from([
        "stcp-loadgen",
        "--mode",
        "tcp",
        "--clients",
        clients,
        "--threads",
        "1",
        "--duration",
        "500ms",
        "--warmup",
        "0s",
        "--timeout",
        "2s",
        "--quiet",
    ])
    .unwrap()
    .run
}

#[test]
fn each_address_is_tried_in_turn_until_one_accepts() {
    if !ipv6_loopback("each_address_is_tried_in_turn_until_one_accepts")
        || !stcp_engine::io_uring_or_skip("each_address_is_tried_in_turn_until_one_accepts")
    {
        return;
    }
    let mut config = Config::ephemeral(stcp_proto::StaticKeypair::generate([3; 32]));
    config.stcp_listen = None;
    config.tcp_listen = Some("[::1]:0".parse().unwrap());
    config.cores = 1;
    config.pin_cores = false;
    config.io = IoBackend::Epoll;
    let server = Server::start(config).unwrap();
    let v6 = server.tcp_addr().unwrap();
    let (_refusing_v4, refused) = refusing("127.0.0.1");
    let (_refusing_v6, refused_v6) = refusing("[::1]");

    let target = ServerUnderTest::External(ExternalServer {
        stcp: Vec::new(),
        tcp: vec![refused, v6],
        tls: Vec::new(),
        public_key: None,
    });
    let measured = measure(&tcp_run("3"), &target, None, None).unwrap();
    let report = measured.report;
    assert_eq!(report.configuration.target, v6.to_string());
    assert_eq!(report.results.connections.established, 3);
    assert_eq!(
        report.results.errors_total, 0,
        "{:?}",
        report.results.errors
    );
    assert!(report.results.requests > 0);
    assert!(!report.partial, "{:?}", report.partial_reason);

    // Every address refused: the run ends with the last one, partial, and nothing hangs.
    let target = ServerUnderTest::External(ExternalServer {
        stcp: Vec::new(),
        tcp: vec![refused_v6, refused],
        tls: Vec::new(),
        public_key: None,
    });
    let report = measure(&tcp_run("2"), &target, None, None).unwrap().report;
    assert_eq!(report.configuration.target, refused.to_string());
    assert_eq!(report.results.errors.connect, 2);
    assert_eq!(
        report.partial_reason.as_deref(),
        Some("no connection could be set up")
    );
    server.shutdown().unwrap();
}
