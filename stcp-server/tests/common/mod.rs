//! Test helpers: start a server on ephemeral loopback ports, and simple blocking clients (raw TCP
//! frames over std::net, STCP through stcp_proto::Connection over a std TcpStream).
#![allow(dead_code)]

use std::{
    io::{self, Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use stcp_proto::{ClientConfig, Connection, CryptoBackend, Event, Mode, StaticKeypair};
use stcp_server::{Config, IoBackend, Server, ServerHandle};

/// Generous: the machine is small and shared.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Frame sizes every echo test covers.
pub const SIZES: [usize; 8] = [0, 1, 255, 256, 4095, 4096, 65536, 1 << 20];

/// Whether a test on `io` can run here: io_uring tests are skipped, loudly, where io_uring is
/// unavailable (see [`uring_available`]).
pub fn uring_ok(io: IoBackend) -> bool {
    io != IoBackend::Uring || uring_available()
}

/// Whether this io_uring test can run here. Where io_uring is unavailable it says so on stderr
/// (`SKIPPED: <test>: io_uring unavailable here: <cause>`) and returns false, or panics when
/// `STCP_REQUIRE_IO_URING=1` (CI, which has io_uring, must not skip).
pub fn uring_available() -> bool {
    let thread = std::thread::current();
    stcp_engine::io_uring_or_skip(thread.name().unwrap_or("<unnamed test>"))
}

pub fn keypair(seed: u8) -> StaticKeypair {
    StaticKeypair::generate([seed; 32])
}

/// Starts a server with 2 workers on ephemeral ports.
pub fn start(
    io: IoBackend,
    crypto: CryptoBackend,
    tweak: impl FnOnce(&mut Config),
) -> ServerHandle {
    let mut cfg = Config::ephemeral(keypair(42));
    cfg.io = io;
    cfg.crypto = crypto;
    cfg.cores = 2;
    cfg.ring_bufs = 256;
    tweak(&mut cfg);
    let server = Server::start(cfg).expect("server starts");
    let want = match io {
        IoBackend::Epoll => stcp_server::Backend::Epoll,
        _ => stcp_server::Backend::Uring,
    };
    assert_eq!(server.backend(), want);
    server
}

/// Deterministic, size-dependent payload.
pub fn payload(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_be_bytes()[0] ^ salt)
        .collect()
}

pub fn frame(p: &[u8]) -> Vec<u8> {
    let mut f = (p.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(p);
    f
}

pub fn tcp_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads one raw frame (header + payload).
pub fn read_tcp_frame(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h)?;
    let mut p = vec![0u8; u32::from_be_bytes(h) as usize];
    s.read_exact(&mut p)?;
    Ok(p)
}

/// True when the peer closed (EOF or reset) within the timeout.
pub fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1024];
    loop {
        match s.read(&mut b) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

pub fn client_config(
    server_public: [u8; 32],
    psk: Option<[u8; 32]>,
    crypto: CryptoBackend,
) -> ClientConfig {
    let mut c = ClientConfig::new(server_public);
    c.psk = psk;
    c.crypto = crypto.provider();
    c
}

/// A blocking STCP client: stcp_proto::Connection over a std TcpStream.
pub struct StcpClient {
    pub stream: TcpStream,
    pub conn: Connection,
    pub closed: bool,
}

#[derive(Debug)]
pub enum ClientError {
    Proto(stcp_proto::Error),
    Io(io::Error),
    Eof,
}

impl StcpClient {
    /// Connects and completes the handshake.
    pub fn connect(addr: SocketAddr, config: &ClientConfig) -> Result<StcpClient, ClientError> {
        let stream = tcp_connect(addr);
        let conn = Connection::client(config, Mode::Stcp, Instant::now(), [9; 32], IO_TIMEOUT)
            .map_err(ClientError::Proto)?;
        let mut c = StcpClient {
            stream,
            conn,
            closed: false,
        };
        c.flush()?;
        loop {
            match c.conn.poll_event() {
                Some(Event::Connected) => return Ok(c),
                Some(other) => panic!("unexpected event before Connected: {other:?}"),
                None => c.read_some()?,
            }
        }
    }

    pub fn flush(&mut self) -> Result<(), ClientError> {
        while !self.conn.poll_transmit().is_empty() {
            let n = match self.stream.write(self.conn.poll_transmit()) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => r.map_err(ClientError::Io)?,
            };
            self.conn.advance_transmit(n);
        }
        Ok(())
    }

    fn read_some(&mut self) -> Result<(), ClientError> {
        let mut buf = vec![0u8; 256 * 1024];
        let n = loop {
            match self.stream.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r.map_err(ClientError::Io)?,
            }
        };
        if n == 0 {
            return Err(match self.conn.handle_eof() {
                Err(e) => ClientError::Proto(e),
                Ok(()) => ClientError::Eof,
            });
        }
        self.conn
            .handle_input(Instant::now(), &buf[..n])
            .map_err(ClientError::Proto)
    }

    /// Queues one frame (call `flush` to send).
    pub fn queue(&mut self, payload: &[u8]) {
        self.conn.send_frame(payload).expect("send_frame");
    }

    pub fn send(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        self.queue(payload);
        self.flush()
    }

    /// The next event: a frame, or Closed.
    pub fn next_event(&mut self) -> Result<Event, ClientError> {
        loop {
            if let Some(e) = self.conn.poll_event() {
                if e == Event::Closed {
                    self.closed = true;
                }
                return Ok(e);
            }
            self.read_some()?;
        }
    }

    pub fn recv_frame(&mut self) -> Result<Vec<u8>, ClientError> {
        match self.next_event()? {
            Event::Frame(f) => Ok(f),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// Sends an authenticated close and expects the server's close (echoed) then EOF.
    pub fn close_cleanly(mut self) {
        self.conn.close().expect("close");
        self.flush().expect("flush close");
        match self.next_event() {
            Ok(Event::Closed) => {}
            other => panic!("expected the server's close record, got {other:?}"),
        }
        assert!(
            closed_by_peer(&mut self.stream),
            "server did not close the stream"
        );
    }
}
