//! The echo protocol shared by both io backends: the server handshake, the connection's ciphers
//! and the close record. Units are cut from the byte stream by stcp-proto's codec; the backends
//! own buffers and sockets.

use stcp_proto::{
    write_record_header, Error, RecordOpener, RecordSealer, RecordType, ServerConfig,
    ServerHandshake, FRAME_HEADER_LEN, RECORD_OVERHEAD,
};

/// Both directions' record ciphers of an established STCP connection.
pub struct Crypto {
    /// Opens the client's records.
    pub opener: RecordOpener,
    /// Seals the echoes.
    pub sealer: RecordSealer,
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
    let session = ServerHandshake::accept(config, rng_seed(), &hello[FRAME_HEADER_LEN..], reply)?;
    Ok(Box::new(Crypto {
        opener: session.opener,
        sealer: session.sealer,
    }))
}

/// The cheap checks of a whole hello frame (header included), before any handshake work:
/// what [`accept_handshake`] would refuse without computing anything.
pub fn check_hello(config: &ServerConfig, hello: &[u8]) -> Result<(), Error> {
    ServerHandshake::check_hello(config, hello.get(FRAME_HEADER_LEN..).unwrap_or_default())
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
