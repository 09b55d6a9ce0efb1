//! The fixed keys, seeds and configurations every target uses. With them a
//! handshake comes out the same in every run, so a session recorded in a
//! corpus file (a client hello followed by records) replays against the
//! target and lets the fuzzer start from deep inside the state machine.

use stcp_proto::{
    ClientConfig, ClientHandshake, Connection, CryptoProvider, Event, Mode, ServerConfig,
    ServerHandshake, Session, StaticKeypair, AWS_LC, DEFAULT_MAX_FRAME, FRAME_HEADER_LEN,
    RUSTCRYPTO,
};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Seeds the server's static keypair.
pub const SERVER_KEY_SEED: [u8; 32] = [1; 32];
/// Seeds the client's ephemeral key.
pub const CLIENT_RNG_SEED: [u8; 32] = [2; 32];
/// Seeds the server's ephemeral key.
pub const SERVER_RNG_SEED: [u8; 32] = [3; 32];
/// The pre-shared key of PSK sessions.
pub const PSK: [u8; 32] = [7; 32];
/// The handshake deadline, from [`start`].
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's static keypair (computed once per process).
pub fn server_keypair() -> &'static StaticKeypair {
    static KEYPAIR: OnceLock<StaticKeypair> = OnceLock::new();
    KEYPAIR.get_or_init(|| StaticKeypair::generate(SERVER_KEY_SEED))
}

/// The instant every connection is created at (fixed per process).
pub fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// A crypto backend chosen by one bit.
pub fn provider(rustcrypto: bool) -> &'static CryptoProvider {
    if rustcrypto {
        &RUSTCRYPTO
    } else {
        &AWS_LC
    }
}

/// What both sides of a fixture session agree on.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// Whether the session is NKpsk2 with [`PSK`] (else NK).
    pub psk: bool,
    /// Largest frame payload each side accepts.
    pub max_frame: usize,
    /// The record layer's AES-GCM implementation.
    pub crypto: &'static CryptoProvider,
}

impl Setup {
    /// Reads the common option bits of a flags byte: bit 0 PSK, bit 1
    /// RustCrypto, bits 2-3 the frame limit (default, 0, 100, 1024).
    pub fn from_flags(flags: u8) -> Self {
        Setup {
            psk: flags & 1 != 0,
            crypto: provider(flags & 2 != 0),
            max_frame: match (flags >> 2) & 3 {
                0 => DEFAULT_MAX_FRAME,
                1 => 0,
                2 => 100,
                _ => 1024,
            },
        }
    }

    /// The server's configuration.
    pub fn server_config(&self) -> ServerConfig {
        let mut config = ServerConfig::new(server_keypair().clone());
        config.psk = self.psk.then_some(PSK);
        config.crypto = self.crypto;
        config.max_frame = self.max_frame;
        config
    }

    /// The client's configuration, pinning the fixture server's key.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(server_keypair().public);
        config.psk = self.psk.then_some(PSK);
        config.crypto = self.crypto;
        config.max_frame = self.max_frame;
        config
    }

    /// A fresh client connection in `mode` (STCP: its hello is queued).
    pub fn client(&self, mode: Mode) -> Connection {
        Connection::client(
            &self.client_config(),
            mode,
            start(),
            CLIENT_RNG_SEED,
            HANDSHAKE_TIMEOUT,
        )
        .expect("the fixture client configuration is valid")
    }

    /// A fresh server connection in `mode`.
    pub fn server(&self, mode: Mode) -> Connection {
        Connection::server(
            Arc::new(self.server_config()),
            mode,
            start(),
            SERVER_RNG_SEED,
            HANDSHAKE_TIMEOUT,
        )
    }

    /// The client hello frame (header included) this setup's client sends
    /// (computed once per process: it depends only on the PSK choice).
    pub fn hello(&self) -> &'static [u8] {
        static HELLO: [OnceLock<Vec<u8>>; 2] = [OnceLock::new(), OnceLock::new()];
        HELLO[self.psk as usize].get_or_init(|| {
            ClientHandshake::start(&self.client_config(), CLIENT_RNG_SEED)
                .expect("the fixture client configuration is valid")
                .1
        })
    }

    /// The server reply frame (header included) to [`Setup::hello`]
    /// (computed once per process).
    pub fn reply(&self) -> &'static [u8] {
        static REPLY: [OnceLock<Vec<u8>>; 2] = [OnceLock::new(), OnceLock::new()];
        REPLY[self.psk as usize].get_or_init(|| {
            let mut reply = Vec::new();
            ServerHandshake::accept(
                &self.server_config(),
                SERVER_RNG_SEED,
                &self.hello()[FRAME_HEADER_LEN..],
                &mut reply,
            )
            .expect("the fixture handshake succeeds");
            reply
        })
    }

    /// A (client, server) session pair from a handshake in memory.
    pub fn session_pair(&self) -> (Session, Session) {
        let (client, hello) = ClientHandshake::start(&self.client_config(), CLIENT_RNG_SEED)
            .expect("the fixture client configuration is valid");
        let mut reply = Vec::new();
        let server = ServerHandshake::accept(
            &self.server_config(),
            SERVER_RNG_SEED,
            &hello[FRAME_HEADER_LEN..],
            &mut reply,
        )
        .expect("the fixture handshake succeeds");
        let client = client
            .finish(&reply[FRAME_HEADER_LEN..])
            .expect("the fixture handshake succeeds");
        (client, server)
    }

    /// A (client, server) pair of STCP connections with the handshake done
    /// and their `Connected` events taken.
    pub fn established_pair(&self) -> (Connection, Connection) {
        let mut client = self.client(Mode::Stcp);
        let mut server = self.server(Mode::Stcp);
        pump(&mut client, &mut server);
        pump(&mut server, &mut client);
        for conn in [&mut client, &mut server] {
            assert!(conn.is_established(), "the fixture handshake succeeds");
            assert_eq!(conn.poll_event(), Some(Event::Connected));
            assert_eq!(conn.poll_event(), None);
        }
        (client, server)
    }
}

/// Moves everything `from` has to send into `to`.
pub fn pump(from: &mut Connection, to: &mut Connection) {
    let bytes = from.poll_transmit().to_vec();
    from.advance_transmit(bytes.len());
    to.handle_input(start(), &bytes)
        .expect("fixture bytes are accepted");
}
