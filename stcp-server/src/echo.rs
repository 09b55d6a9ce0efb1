//! The echo protocol shared by both io backends: how long the next unit (handshake frame, STCP
//! record, raw frame) is, the server handshake, and the close record. The backends own buffers
//! and sockets; this module only looks at bytes.

use stcp_proto::{
    frame_len, handshake::handshake_frame_len, write_record_header, Error, RecordOpener,
    RecordSealer, RecordType, ServerConfig, ServerHandshake, FRAME_HEADER_LEN, RECORD_OVERHEAD,
};

/// Every unit starts with a 4-byte header.
pub const HEADER_LEN: usize = FRAME_HEADER_LEN;

/// Both directions' record ciphers of an established STCP connection.
pub struct Crypto {
    /// Opens the client's records.
    pub opener: RecordOpener,
    /// Seals the echoes.
    pub sealer: RecordSealer,
}

/// What the bytes of a connection currently are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// STCP, waiting for the client hello (one frame of at most `HANDSHAKE_MAX_LEN`).
    Handshake,
    /// STCP records.
    Records,
    /// Raw frames (TCP mode).
    Frames,
}

/// Whole length (header included) of the unit whose header is `header`. Checked against the
/// limits before anything is buffered for it.
#[inline]
pub fn unit_len(
    phase: Phase,
    opener: Option<&RecordOpener>,
    header: [u8; HEADER_LEN],
    max_frame: usize,
) -> Result<usize, Error> {
    match (phase, opener) {
        (Phase::Records, Some(o)) => Ok(o.parse_header(header)?.record_len()),
        (Phase::Records, None) => Err(Error::NotEstablished),
        (Phase::Handshake, _) => Ok(HEADER_LEN + handshake_frame_len(header)?),
        (Phase::Frames, _) => Ok(HEADER_LEN + frame_len(header, max_frame)?),
    }
}

/// Header bytes at `pos` (caller checked `buf.len() >= pos + 4`).
#[inline]
pub fn header_at(buf: &[u8], pos: usize) -> [u8; HEADER_LEN] {
    [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]
}

/// Fresh OS randomness for a handshake's ephemeral key.
pub fn rng_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    // The OS RNG failing is not survivable for a server that must not reuse ephemeral keys.
    getrandom::getrandom(&mut seed).expect("the OS random number generator failed");
    seed
}

/// Answers a client hello frame (`hello` = the whole frame, header included). Writes the reply
/// frame into `reply` and returns the connection's ciphers.
pub fn accept_handshake(
    config: &ServerConfig,
    hello: &[u8],
    reply: &mut Vec<u8>,
) -> Result<Box<Crypto>, Error> {
    let session = ServerHandshake::accept(config, rng_seed(), &hello[HEADER_LEN..], reply)?;
    Ok(Box::new(Crypto {
        opener: session.opener,
        sealer: session.sealer,
    }))
}

/// Appends a sealed close record to `out`.
pub fn push_close_record(sealer: &mut RecordSealer, out: &mut Vec<u8>) -> Result<(), Error> {
    let start = out.len();
    out.resize(start + RECORD_OVERHEAD, 0);
    write_record_header(&mut out[start..], RecordType::Close, 0);
    sealer
        .seal(&mut out[start..])
        .inspect_err(|_| out.truncate(start))?;
    Ok(())
}
