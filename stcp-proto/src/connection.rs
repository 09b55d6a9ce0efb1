//! A whole connection as one buffered sans-IO state machine, in the shape of
//! quinn-proto: feed received bytes with [`Connection::handle_input`], take
//! bytes to send from [`Connection::poll_transmit`], take what happened from
//! [`Connection::poll_event`], drive the handshake deadline with
//! [`Connection::poll_timeout`] / [`Connection::handle_timeout`].
//!
//! It serves tests, fuzzers and simple drivers. Received bytes go through a
//! [`Decoder`] (handshake framing, then records; plain frames in TCP mode),
//! like every other reader of peer bytes; each received frame is assembled
//! from its records into an [`Event::Frame`], so it holds up to `max_frame`
//! bytes per frame. The server and load generator stream records through
//! their own buffers instead, holding no frame.

use crate::codec::{
    frame_header, frame_records, sealed_frame_len, write_record_header, Codec, Decoder, Framing,
    RecordType, FRAME_HEADER_LEN, MAX_FRAME_LEN, RECORD_OVERHEAD, TAG_LEN,
};
use crate::config::{ClientConfig, ServerConfig};
use crate::handshake::{ClientHandshake, ServerHandshake};
use crate::record::{RecordOpener, RecordSealer};
use crate::Error;
use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Noise handshake, then AES-256-GCM records.
    #[default]
    Stcp,
    /// Plain frames: the raw TCP baseline.
    Tcp,
    /// TLS 1.3 (rustls, AES-256-GCM, X25519) carrying the same plain frames: the comparison users face.
    Tls,
}

impl Mode {
    /// The name users type.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Stcp => "stcp",
            Mode::Tcp => "tcp",
            Mode::Tls => "tls",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stcp" => Ok(Mode::Stcp),
            "tcp" => Ok(Mode::Tcp),
            "tls" => Ok(Mode::Tls),
            other => Err(format!("unknown mode '{other}': expected stcp, tcp or tls")),
        }
    }
}

/// Something that happened on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake finished (at once in TCP mode); frames may be sent.
    Connected,
    /// A whole frame arrived.
    Frame(Vec<u8>),
    /// The peer's authenticated close arrived: the stream ended cleanly.
    Closed,
}

enum State {
    /// Client: hello sent, waiting for the server's reply.
    ClientHandshaking(Box<ClientHandshake>),
    /// Server: waiting for the client's hello.
    ServerHandshaking {
        config: Arc<ServerConfig>,
        rng_seed: [u8; 32],
    },
    /// Handshake done (or none, in TCP mode).
    Established,
    /// An error ended the connection; it is repeated to every later call.
    Failed(Error),
    /// Transient placeholder while the state is being replaced.
    Poisoned,
}

/// One STCP or TCP-mode connection, client or server side. In TLS mode it is the plain-frame
/// layer inside the TLS stream (the caller runs the TLS session around it), as in TCP mode.
pub struct Connection {
    mode: Mode,
    state: State,
    sealer: Option<RecordSealer>,
    opener: Option<RecordOpener>,
    /// Reads the peer's bytes: handshake frames, then records (STCP), or
    /// plain frames (TCP). Holds at most one incomplete unit.
    decoder: Decoder,
    /// The payload of the frame whose records are arriving (STCP).
    rx_frame: Vec<u8>,
    tx: Vec<u8>,
    tx_start: usize,
    events: VecDeque<Event>,
    handshake_deadline: Option<Instant>,
    peer_closed: bool,
    local_closed: bool,
}

impl Connection {
    fn new(mode: Mode, state: State, max_frame: usize, deadline: Option<Instant>) -> Self {
        let framing = match mode {
            Mode::Stcp => Framing::Handshake,
            Mode::Tcp | Mode::Tls => Framing::Frames,
        };
        Connection {
            mode,
            state,
            sealer: None,
            opener: None,
            decoder: Decoder::new(Codec::new(framing, max_frame)),
            rx_frame: Vec::new(),
            tx: Vec::new(),
            tx_start: 0,
            events: VecDeque::new(),
            handshake_deadline: deadline,
            peer_closed: false,
            local_closed: false,
        }
    }

    /// A client connection. In STCP mode its hello is queued for sending at
    /// once; `rng_seed` seeds the ephemeral key.
    pub fn client(
        config: &ClientConfig,
        mode: Mode,
        now: Instant,
        rng_seed: [u8; 32],
        handshake_timeout: Duration,
    ) -> Result<Self, Error> {
        match mode {
            Mode::Tcp | Mode::Tls => Ok(Self::established_tcp(config.max_frame)),
            Mode::Stcp => {
                let (handshake, hello) = ClientHandshake::start(config, rng_seed)?;
                let mut conn = Self::new(
                    mode,
                    State::ClientHandshaking(Box::new(handshake)),
                    config.max_frame,
                    Some(now + handshake_timeout),
                );
                conn.tx = hello;
                Ok(conn)
            }
        }
    }

    /// A server connection for a client that just connected.
    pub fn server(
        config: Arc<ServerConfig>,
        mode: Mode,
        now: Instant,
        rng_seed: [u8; 32],
        handshake_timeout: Duration,
    ) -> Self {
        match mode {
            Mode::Tcp | Mode::Tls => Self::established_tcp(config.max_frame),
            Mode::Stcp => {
                let max_frame = config.max_frame;
                Self::new(
                    mode,
                    State::ServerHandshaking { config, rng_seed },
                    max_frame,
                    Some(now + handshake_timeout),
                )
            }
        }
    }

    fn established_tcp(max_frame: usize) -> Self {
        let mut conn = Self::new(Mode::Tcp, State::Established, max_frame, None);
        conn.events.push_back(Event::Connected);
        conn
    }

    /// The protocol this connection speaks.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether frames may be sent.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established)
    }

    /// Whether the peer's authenticated close arrived.
    pub fn is_peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// The error that ended this connection, if any.
    pub fn error(&self) -> Option<&Error> {
        match &self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    fn fail(&mut self, e: Error) -> Error {
        self.state = State::Failed(e.clone());
        self.handshake_deadline = None;
        e
    }

    /// Feeds bytes received from the peer, in any split.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), Error> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        if let Some(deadline) = self.handshake_deadline {
            if now >= deadline {
                return Err(self.fail(Error::HandshakeTimeout));
            }
        }
        self.process(data).map_err(|e| self.fail(e))
    }

    fn process(&mut self, data: &[u8]) -> Result<(), Error> {
        // The decoder leaves `self` while its units are handled, so that a
        // reassembled unit can be read in its buffer as `self` changes.
        let placeholder = Decoder::new(self.decoder.codec());
        let mut decoder = std::mem::replace(&mut self.decoder, placeholder);
        let result = self.decode_with(&mut decoder, data);
        self.decoder = decoder;
        result
    }

    fn decode_with(&mut self, decoder: &mut Decoder, mut data: &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            let out = decoder.decode(data)?;
            if out.reassembled {
                self.handle_unit(decoder.reassembled_mut())?;
            }
            let run = &data[out.run];
            for unit in decoder.codec().units(run) {
                self.handle_unit(&run[unit?])?;
            }
            if self.is_established() && decoder.codec().framing() == Framing::Handshake {
                // The handshake frame just handled was the last one.
                decoder.set_framing(Framing::Records);
            }
            if out.consumed == 0 {
                break;
            }
            data = &data[out.consumed..];
        }
        Ok(())
    }

    /// Handles one whole unit, header included.
    fn handle_unit(&mut self, unit: &[u8]) -> Result<(), Error> {
        match std::mem::replace(&mut self.state, State::Poisoned) {
            State::ClientHandshaking(handshake) => {
                let session = handshake.finish(&unit[FRAME_HEADER_LEN..])?;
                self.start_session(session);
            }
            State::ServerHandshaking { config, rng_seed } => {
                let mut reply = Vec::new();
                let session = ServerHandshake::accept(
                    &config,
                    rng_seed,
                    &unit[FRAME_HEADER_LEN..],
                    &mut reply,
                )?;
                self.tx.extend_from_slice(&reply);
                self.start_session(session);
            }
            State::Established => {
                self.state = State::Established;
                match (self.mode, self.opener.as_mut()) {
                    (Mode::Tcp | Mode::Tls, _) => self
                        .events
                        .push_back(Event::Frame(unit[FRAME_HEADER_LEN..].to_vec())),
                    (Mode::Stcp, Some(opener)) => {
                        // Opened in a copy, its payload appended to the frame being assembled.
                        let mut record = unit.to_vec();
                        let kind = opener.open(&mut record)?;
                        let payload = &record[kind.header_len()..record.len() - TAG_LEN];
                        self.rx_frame.extend_from_slice(payload);
                        if kind.ends_frame() {
                            let frame = std::mem::take(&mut self.rx_frame);
                            self.events.push_back(Event::Frame(frame));
                        } else if kind == RecordType::Close {
                            self.peer_closed = true;
                            self.events.push_back(Event::Closed);
                        }
                    }
                    (Mode::Stcp, None) => return Err(Error::NotEstablished),
                }
            }
            State::Failed(e) => {
                self.state = State::Failed(e.clone());
                return Err(e);
            }
            State::Poisoned => return Err(Error::NotEstablished),
        }
        Ok(())
    }

    fn start_session(&mut self, session: crate::Session) {
        self.sealer = Some(session.sealer);
        self.opener = Some(session.opener);
        self.state = State::Established;
        self.handshake_deadline = None;
        self.events.push_back(Event::Connected);
    }

    /// Tells the connection the peer closed its side of the stream (EOF).
    /// Fine after the peer's authenticated close (or, in TCP mode, between
    /// frames); [`Error::Truncated`] otherwise.
    pub fn handle_eof(&mut self) -> Result<(), Error> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        let partial = self.decoder.buffered() != 0;
        let clean = match self.mode {
            Mode::Tcp | Mode::Tls => !partial,
            Mode::Stcp => self.peer_closed && !partial,
        };
        if clean {
            Ok(())
        } else {
            Err(self.fail(Error::Truncated))
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Queues one frame for sending.
    pub fn send_frame(&mut self, payload: &[u8]) -> Result<(), Error> {
        match &self.state {
            State::Established => {}
            State::Failed(e) => return Err(e.clone()),
            _ => return Err(Error::NotEstablished),
        }
        if self.local_closed {
            return Err(Error::Closed);
        }
        if payload.len() > MAX_FRAME_LEN {
            return Err(Error::FrameTooLarge {
                len: payload.len(),
                max: MAX_FRAME_LEN,
            });
        }
        self.compact_tx();
        match (self.mode, self.sealer.as_mut()) {
            (Mode::Tcp | Mode::Tls, _) => {
                self.tx.extend_from_slice(&frame_header(payload.len()));
                self.tx.extend_from_slice(payload);
            }
            (Mode::Stcp, Some(sealer)) => {
                let start = self.tx.len();
                self.tx.reserve(sealed_frame_len(payload.len()));
                for (header, offset) in frame_records(payload.len()) {
                    let at = self.tx.len();
                    self.tx.resize(at + header.record_len(), 0);
                    let record = &mut self.tx[at..];
                    let h = header.write(record);
                    record[h..h + header.payload_len]
                        .copy_from_slice(&payload[offset..offset + header.payload_len]);
                    if let Err(e) = sealer.seal(record) {
                        // A record sealed before this one cannot be taken back: the
                        // connection is unusable, as the error says.
                        self.tx.truncate(start);
                        return Err(e);
                    }
                }
            }
            (Mode::Stcp, None) => return Err(Error::NotEstablished),
        }
        Ok(())
    }

    /// Ends this side: in STCP mode queues the authenticated close record.
    /// Nothing more can be sent afterwards.
    pub fn close(&mut self) -> Result<(), Error> {
        if self.local_closed {
            return Ok(());
        }
        if let (Mode::Stcp, State::Established, Some(sealer)) =
            (self.mode, &self.state, self.sealer.as_mut())
        {
            let start = self.tx.len();
            self.tx.resize(start + RECORD_OVERHEAD, 0);
            let record = &mut self.tx[start..];
            write_record_header(record, RecordType::Close, 0);
            sealer.seal(record)?;
        }
        self.local_closed = true;
        Ok(())
    }

    /// Bytes waiting to be sent.
    pub fn poll_transmit(&self) -> &[u8] {
        &self.tx[self.tx_start..]
    }

    /// Marks `n` bytes of [`Connection::poll_transmit`] as sent.
    pub fn advance_transmit(&mut self, n: usize) {
        self.tx_start = (self.tx_start + n).min(self.tx.len());
        if self.tx_start == self.tx.len() {
            self.tx.clear();
            self.tx_start = 0;
        }
    }

    fn compact_tx(&mut self) {
        if self.tx_start > 0 {
            self.tx.drain(..self.tx_start);
            self.tx_start = 0;
        }
    }

    /// When [`Connection::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.handshake_deadline
    }

    /// Advances time: a handshake past its deadline fails with
    /// [`Error::HandshakeTimeout`].
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        match self.handshake_deadline {
            Some(deadline) if now >= deadline => Err(self.fail(Error::HandshakeTimeout)),
            _ => Ok(()),
        }
    }
}
