//! Two connection state machines wired together in memory (quinn-proto's
//! `Pair`): a full handshake and frames both ways with no socket, in both
//! modes and with both backends; handshake failures and timeouts.

use stcp_proto::{
    ClientConfig, Connection, CryptoBackend, Error, Event, Mode, ServerConfig, StaticKeypair,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Pair {
    client: Connection,
    server: Connection,
    now: Instant,
}

impl Pair {
    fn new(
        mode: Mode,
        backend: CryptoBackend,
        client_psk: Option<[u8; 32]>,
        server_psk: Option<[u8; 32]>,
        pin: Option<[u8; 32]>,
    ) -> Pair {
        let kp = StaticKeypair::generate([9; 32]);
        let mut sc = ServerConfig::new(kp.clone());
        sc.crypto = backend.provider();
        sc.psk = server_psk;
        let mut cc = ClientConfig::new(pin.unwrap_or(kp.public));
        cc.crypto = backend.provider();
        cc.psk = client_psk;
        let now = Instant::now();
        let t = Duration::from_secs(10);
        Pair {
            client: Connection::client(&cc, mode, now, [1; 32], t).unwrap(),
            server: Connection::server(Arc::new(sc), mode, now, [2; 32], t),
            now,
        }
    }

    /// Moves bytes both ways until neither side has anything to send.
    fn drive(&mut self) -> (Result<(), Error>, Result<(), Error>) {
        let mut results = (Ok(()), Ok(()));
        for _ in 0..10 {
            let c2s = self.client.poll_transmit().to_vec();
            self.client.advance_transmit(c2s.len());
            if !c2s.is_empty() {
                results.1 = self.server.handle_input(self.now, &c2s);
            }
            let s2c = self.server.poll_transmit().to_vec();
            self.server.advance_transmit(s2c.len());
            if !s2c.is_empty() {
                results.0 = self.client.handle_input(self.now, &s2c);
            }
            if c2s.is_empty() && s2c.is_empty() {
                break;
            }
        }
        results
    }
}

fn frames(conn: &mut Connection) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(e) = conn.poll_event() {
        if let Event::Frame(f) = e {
            out.push(f);
        }
    }
    out
}

#[test]
fn handshake_and_echo_in_memory() {
    for mode in [Mode::Stcp, Mode::Tcp] {
        for backend in CryptoBackend::ALL {
            let mut p = Pair::new(mode, backend, None, None, None);
            let (c, s) = p.drive();
            c.unwrap();
            s.unwrap();
            assert!(p.client.is_established() && p.server.is_established());
            let sent: Vec<Vec<u8>> = [0usize, 1, 255, 256, 4096, 16384, 16385, 70000]
                .iter()
                .map(|&n| (0..n).map(|i| (i % 251) as u8).collect())
                .collect();
            for f in &sent {
                p.client.send_frame(f).unwrap();
            }
            let (c, s) = p.drive();
            assert!(c.is_ok() && s.is_ok());
            let got = frames(&mut p.server);
            assert_eq!(got, sent, "{mode} {backend}");
            for f in &got {
                p.server.send_frame(f).unwrap();
            }
            let (c, s) = p.drive();
            assert!(c.is_ok() && s.is_ok());
            assert_eq!(frames(&mut p.client), sent);
            p.client.close().unwrap();
            let (c, s) = p.drive();
            assert!(c.is_ok() && s.is_ok());
            if mode == Mode::Stcp {
                assert_eq!(p.server.poll_event(), Some(Event::Closed));
            }
            assert_eq!(p.server.handle_eof(), Ok(()));
        }
    }
}

#[test]
fn psk_must_match() {
    let psk = Some([5u8; 32]);
    let mut ok = Pair::new(Mode::Stcp, CryptoBackend::AwsLc, psk, psk, None);
    let (c, s) = ok.drive();
    assert!(c.is_ok() && s.is_ok() && ok.client.is_established());

    let mut missing = Pair::new(Mode::Stcp, CryptoBackend::AwsLc, None, psk, None);
    assert_eq!(missing.drive().1, Err(Error::PskRequired));

    let mut wrong = Pair::new(Mode::Stcp, CryptoBackend::AwsLc, Some([6; 32]), psk, None);
    assert_eq!(wrong.drive().0, Err(Error::HandshakeAuthFailed));
    assert!(!wrong.client.is_established());

    let mut unexpected = Pair::new(Mode::Stcp, CryptoBackend::AwsLc, psk, None, None);
    assert_eq!(unexpected.drive().1, Err(Error::PskNotConfigured));
}

#[test]
fn wrong_pinned_key_fails() {
    let other = StaticKeypair::generate([77; 32]).public;
    let mut p = Pair::new(Mode::Stcp, CryptoBackend::AwsLc, None, None, Some(other));
    assert_eq!(p.drive().1, Err(Error::HandshakeAuthFailed));
    assert!(!p.server.is_established());
}

#[test]
fn handshake_deadline_is_enforced() {
    let mut p = Pair::new(Mode::Stcp, CryptoBackend::AwsLc, None, None, None);
    let deadline = p.server.poll_timeout().unwrap();
    assert_eq!(
        p.server.handle_timeout(deadline - Duration::from_millis(1)),
        Ok(())
    );
    assert_eq!(
        p.server.handle_timeout(deadline),
        Err(Error::HandshakeTimeout)
    );
    assert_eq!(
        p.server.handle_input(deadline, b"late"),
        Err(Error::HandshakeTimeout)
    );
}

#[test]
fn garbage_instead_of_a_hello_is_refused() {
    let kp = StaticKeypair::generate([3; 32]);
    let now = Instant::now();
    let t = Duration::from_secs(1);
    let cases: [(&[u8], Error); 5] = [
        (
            b"GET / HTTP/1.1\r\n\r\n",
            Error::HandshakeTooLarge {
                len: 0x47455420,
                max: 256,
            },
        ),
        (
            &[0x16, 0x03, 0x01, 0x00, 0xc4],
            Error::HandshakeTooLarge {
                len: 0x1603_0100,
                max: 256,
            },
        ),
        (
            &[0, 0, 0, 8, b'X', b'T', b'C', b'P', 2, 0, 0, 0],
            Error::NotStcp,
        ),
        (
            // A version 1 client (whole frames in one record) is refused at its hello.
            &[0, 0, 0, 8, b'S', b'T', b'C', b'P', 1, 0, 0, 0],
            Error::VersionMismatch { got: 1, ours: 2 },
        ),
        (
            &[0, 0, 0, 8, b'S', b'T', b'C', b'P', 3, 0, 0, 0],
            Error::VersionMismatch { got: 3, ours: 2 },
        ),
    ];
    for (input, expected) in cases {
        let mut s = Connection::server(
            Arc::new(ServerConfig::new(kp.clone())),
            Mode::Stcp,
            now,
            [0; 32],
            t,
        );
        assert_eq!(s.handle_input(now, input), Err(expected));
    }
}
