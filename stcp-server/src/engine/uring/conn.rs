//! One io_uring connection's state (a slab entry) and the chunks of bytes it echoes.
//!
//! The receive and send sides are enums, so a connection cannot be "paused and starved" or
//! "shut for writing with a send in flight" by accident; the socket is an owned fd, and a free
//! slot is one without a socket.

use std::{
    collections::VecDeque,
    os::fd::{AsRawFd, OwnedFd, RawFd},
    time::Instant,
};

use stcp_engine::{BufRing, RingBuf};
use stcp_proto::{Codec, Decoder, FrameStream, Framing, Mode};

use crate::{echo::Crypto, tls::RUSTLS_HELD};

/// A TLS connection's rustls state.
pub enum TlsState {
    /// Not a TLS connection (or its session is over).
    None,
    /// Reading the ClientHello (rustls's `Acceptor`: parsing only, no cryptography).
    Accepting(Box<rustls::server::Acceptor>),
    /// A whole ClientHello, waiting for the worker's bounded handshake step (`hello.rs`); bytes
    /// that came after it wait in `Conn::hello`.
    Hello(Box<rustls::server::Accepted>),
    /// The session: handshake under way or done.
    Session(Box<rustls::ServerConnection>),
}

/// Bytes to echo: a run of whole units inside a ring buffer (sent in place), or a heap buffer
/// (a reassembled unit, a handshake reply, a close record).
pub enum Chunk {
    /// `buf[start..end]`, of which `sent` bytes went out.
    Ring {
        /// The ring buffer, owned by the connection until the send completes.
        buf: RingBuf,
        /// First byte of the run.
        start: u32,
        /// One past the last byte.
        end: u32,
        /// Bytes already sent.
        sent: u32,
    },
    /// A pooled heap buffer, of which `sent` bytes went out.
    Heap {
        /// The bytes.
        buf: Vec<u8>,
        /// Bytes already sent.
        sent: usize,
    },
}

impl Chunk {
    /// Bytes not yet sent.
    pub fn unsent(&self) -> usize {
        match self {
            Chunk::Ring {
                start, end, sent, ..
            } => (end - start - sent) as usize,
            Chunk::Heap { buf, sent } => buf.len() - sent,
        }
    }

    /// The whole run, mutable (for in-place open and reseal before any of it is sent).
    pub fn bytes_mut<'a>(&'a mut self, ring: &'a BufRing) -> &'a mut [u8] {
        match self {
            Chunk::Ring {
                buf, start, end, ..
            } => &mut ring.bytes_mut(buf)[*start as usize..*end as usize],
            Chunk::Heap { buf, .. } => &mut buf[..],
        }
    }

    /// The unsent bytes.
    pub fn unsent_bytes<'a>(&'a self, ring: &'a BufRing) -> &'a [u8] {
        match self {
            Chunk::Ring {
                buf,
                end,
                start,
                sent,
            } => &ring.bytes(buf)[(start + sent) as usize..*end as usize],
            Chunk::Heap { buf, sent } => &buf[*sent..],
        }
    }

    /// Pointer and length of the unsent bytes, for a send SQE.
    pub fn unsent_ptr(&self, ring: &BufRing) -> (*const u8, usize) {
        match self {
            Chunk::Ring {
                buf, start, sent, ..
            } => {
                // SAFETY: `start + sent <= end <= buf.len()`, inside the ring buffer.
                (
                    unsafe { ring.ptr(buf).add((start + sent) as usize) },
                    self.unsent(),
                )
            }
            Chunk::Heap { buf, sent } => (buf[*sent..].as_ptr(), self.unsent()),
        }
    }

    /// True for a chunk that holds a ring buffer.
    pub fn is_ring(&self) -> bool {
        matches!(self, Chunk::Ring { .. })
    }

    /// Marks `n` more bytes sent.
    pub fn advance(&mut self, n: usize) {
        match self {
            Chunk::Ring { sent, .. } => *sent += n as u32,
            Chunk::Heap { sent, .. } => *sent += n,
        }
    }
}

/// Buffer memory a connection's chunks hold (in `fresh`, in the crypto batch, in `sendq`):
/// added when a chunk is made, removed when it is released.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Ring buffers held.
    pub ring: usize,
    /// Bytes the kernel received into them: what they hold, and what a capped receive counts.
    pub ring_bytes: usize,
    /// Heap capacity, in bytes.
    pub heap: usize,
}

impl Held {
    /// Accounts for a chunk just made.
    pub fn add(&mut self, chunk: &Chunk) {
        match chunk {
            Chunk::Ring { buf, .. } => {
                self.ring += 1;
                self.ring_bytes += buf.len();
            }
            Chunk::Heap { buf, .. } => self.heap += buf.capacity(),
        }
    }

    /// Accounts for a chunk released.
    pub fn remove(&mut self, chunk: &Chunk) {
        match chunk {
            Chunk::Ring { buf, .. } => {
                self.ring -= 1;
                self.ring_bytes -= buf.len();
            }
            Chunk::Heap { buf, .. } => self.heap -= buf.capacity(),
        }
    }

    /// Bytes held: received bytes in ring buffers, and heap capacity.
    pub fn bytes(&self) -> usize {
        self.ring_bytes + self.heap
    }
}

/// Most chunks one gathering send carries.
pub const MAX_IOV: usize = 8;

/// The `msghdr` and iovecs of a connection's in-flight gathering send. Boxed so their address
/// stays put while the slab (a Vec of connections) grows.
pub struct Gather {
    pub msg: libc::msghdr,
    pub iov: [libc::iovec; MAX_IOV],
}

impl Gather {
    fn new() -> Box<Gather> {
        // SAFETY: msghdr and iovec are plain C structs for which all-zero is a valid value.
        Box::new(Gather {
            msg: unsafe { std::mem::zeroed() },
            iov: unsafe { std::mem::zeroed() },
        })
    }
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    /// Reading and echoing.
    Open,
    /// No more echoing: flush what is queued, send FIN, wait for the client's FIN (or `deadline`).
    Draining,
    /// Socket shut down both ways; waiting for in-flight operations to end, then close.
    Aborting,
}

/// The receiving side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recv {
    /// No receive in the kernel; the next completion or tick decides whether to arm one.
    Idle,
    /// A multishot receive is armed.
    Armed,
    /// Backpressure: reading stops until the queued echoes drain. `armed` while the receive
    /// armed before the pause is still in the kernel (its cancel is on the way).
    Paused { armed: bool },
    /// The buffer ring ran dry; the driver re-arms it through `resume_receive`.
    Starved,
    /// The client's FIN arrived: nothing more to read.
    Eof,
}

impl Recv {
    /// A receive of this connection is in the kernel.
    pub fn in_kernel(self) -> bool {
        matches!(self, Recv::Armed | Recv::Paused { armed: true })
    }
}

/// The sending side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Send {
    /// No send in the kernel.
    Idle,
    /// One send covering the first `chunks` chunks of `sendq` is in the kernel.
    InFlight { chunks: usize },
    /// Everything was sent and FIN followed (draining).
    Shut,
}

/// A connection slab entry. `fd == None` marks a free slot.
pub struct Conn {
    pub fd: Option<OwnedFd>,
    pub gen: u32,
    pub mode: Mode,
    pub life: Life,
    pub recv: Recv,
    pub send: Send,
    pub crypto: Option<Box<Crypto>>,
    /// TLS: the rustls side of the connection.
    pub tls: TlsState,
    /// STCP: turns received bytes into units (handshake frame, then records) and holds the
    /// incomplete one (at most one record).
    pub decoder: Decoder,
    /// TCP and TLS modes: tracks frame boundaries while the (plaintext) bytes are echoed as
    /// they arrive.
    pub stream: FrameStream,
    /// Chunks received this batch, waiting for batched open + reseal (STCP).
    pub fresh: VecDeque<Chunk>,
    /// Chunks ready to send, in order; the front ones may be in flight.
    pub sendq: VecDeque<Chunk>,
    /// Buffers held by the chunks in `fresh`, the crypto batch and `sendq`.
    pub held: Held,
    /// The in-flight send's msghdr and iovecs.
    pub gather: Box<Gather>,
    pub cancels_inflight: u8,
    /// In the worker's list of connections with fresh chunks for the crypto batch.
    pub in_batch: bool,
    /// In the worker's list of connections to send for.
    pub in_flush: bool,
    /// STCP: a complete hello waiting for the worker's bounded handshake step. TLS: bytes that
    /// came after the ClientHello before the handshake step (at most [`RUSTLS_HELD`]).
    pub hello: Option<Vec<u8>>,
    /// Handshake deadline (STCP and TLS until the handshake is done) or drain deadline.
    pub deadline: Option<Instant>,
    pub last_active: Instant,
}

impl Conn {
    pub fn vacant(now: Instant) -> Conn {
        Conn {
            fd: None,
            gen: 0,
            mode: Mode::Tcp,
            life: Life::Aborting,
            recv: Recv::Idle,
            send: Send::Idle,
            crypto: None,
            tls: TlsState::None,
            decoder: Decoder::new(Codec::new(Framing::Frames, 0)),
            stream: FrameStream::new(0),
            fresh: VecDeque::new(),
            sendq: VecDeque::with_capacity(8),
            held: Held::default(),
            gather: Gather::new(),
            cancels_inflight: 0,
            in_batch: false,
            in_flush: false,
            hello: None,
            deadline: None,
            last_active: now,
        }
    }

    /// Resets a vacant slot for a new connection on `fd`, accepting frames (or records) of at
    /// most `max_frame` payload bytes.
    pub fn open(
        &mut self,
        fd: OwnedFd,
        mode: Mode,
        max_frame: usize,
        now: Instant,
        handshake_deadline: Instant,
    ) {
        self.fd = Some(fd);
        self.mode = mode;
        let framing = match mode {
            Mode::Stcp => Framing::Handshake,
            // TLS: the plaintext inside is plain frames, tracked by `stream`.
            Mode::Tcp | Mode::Tls => Framing::Frames,
        };
        self.decoder.set_codec(Codec::new(framing, max_frame));
        self.stream.reset(max_frame);
        self.life = Life::Open;
        self.recv = Recv::Idle;
        self.send = Send::Idle;
        self.crypto = None;
        self.tls = match mode {
            Mode::Tls => TlsState::Accepting(Box::default()),
            _ => TlsState::None,
        };
        self.held = Held::default();
        self.cancels_inflight = 0;
        self.in_batch = false;
        self.in_flush = false;
        self.hello = None;
        self.deadline = (mode != Mode::Tcp).then_some(handshake_deadline);
        self.last_active = now;
    }

    /// What the connection's bytes currently are.
    pub fn framing(&self) -> Framing {
        self.decoder.codec().framing()
    }

    /// The socket, while the slot is in use.
    pub fn raw_fd(&self) -> Option<RawFd> {
        self.fd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Whether the slot holds a connection of generation `gen`.
    pub fn is(&self, gen: u32) -> bool {
        self.fd.is_some() && self.gen == gen
    }

    /// Chunks at the front of `sendq` that the kernel is sending.
    pub fn chunks_in_flight(&self) -> usize {
        match self.send {
            Send::InFlight { chunks } => chunks,
            _ => 0,
        }
    }

    /// Buffer memory this connection holds: the bytes received into its ring buffers, plus the
    /// capacity of its heap buffers (the decoder's, queued heap chunks), and for TLS what rustls
    /// may hold between receives ([`RUSTLS_HELD`]). What backpressure bounds
    /// (`Config::conn_buffer_limit`).
    pub fn held_bytes(&self) -> usize {
        let rustls = match self.tls {
            TlsState::None => 0,
            _ => RUSTLS_HELD,
        };
        self.held.bytes() + self.decoder.capacity() + rustls
    }

    /// Whether the connection may receive again under `limit` with ring buffers of
    /// `ring_buf_size`: room for a whole buffer, or nothing queued of its own at all (then the
    /// receive, capped at the room left, is all it can hold: with TLS's fixed allowance for
    /// rustls a small limit would otherwise never let it read).
    pub fn may_receive(&self, ring_buf_size: usize, limit: usize) -> bool {
        self.held_bytes() + ring_buf_size <= limit
            || (self.held.bytes() == 0 && self.decoder.capacity() == 0 && self.held_bytes() < limit)
    }

    /// A hello is held for the bounded handshake step (STCP: the hello; TLS: the ClientHello).
    pub fn hello_ready(&self) -> bool {
        match self.mode {
            Mode::Tls => matches!(self.tls, TlsState::Hello(_)),
            _ => self.hello.is_some(),
        }
    }

    /// A TLS session whose handshake is done.
    pub fn tls_established(&self) -> bool {
        matches!(&self.tls, TlsState::Session(s) if !s.is_handshaking())
    }

    /// No operation of this connection is in the kernel.
    pub fn idle_in_kernel(&self) -> bool {
        !self.recv.in_kernel()
            && !matches!(self.send, Send::InFlight { .. })
            && self.cancels_inflight == 0
    }
}
