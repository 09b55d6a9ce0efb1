//! Turning one received ring buffer into work. TCP mode is cut-through: every byte is echoed
//! in place as it arrives while the connection's [`stcp_proto::FrameStream`] checks the frame
//! headers, so a frame of any allowed length holds no memory. STCP goes through the
//! connection's [`stcp_proto::Decoder`]: a record the decoder reassembled across receives
//! becomes a heap chunk, the run of whole records left in the ring buffer is opened and echoed
//! in place, and the decoder keeps the incomplete tail (at most one record of 16 KiB). Every
//! header is checked against the limits before anything is kept for its unit.

use stcp_proto::{Error, Framing, ServerConfig, MAX_RECORD_LEN};

use super::{
    conn::{Chunk, Conn},
    pool::BufPool,
};
use crate::echo::{accept_handshake, check_hello};

/// What one receive produced besides the chunks queued on the connection.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    /// `data[start..end]` holds bytes to echo in place (`start == end`: none): whole records
    /// (STCP) or whatever arrived (TCP mode).
    pub start: usize,
    /// End of the in-place run.
    pub end: usize,
    /// Raw frames completed (TCP mode, counted here because no batch sees them).
    pub frames: u64,
    /// A complete hello is held on the connection (`Conn::hello`) for the worker's bounded
    /// handshake step ([`answer_hello`]).
    pub hello: bool,
}

/// Feeds `data` (bytes just received) to connection `c`. Reassembled records are queued on
/// `c.fresh` (for the batch); a complete hello passing the cheap checks (magic, version,
/// pattern, length: a garbage hello fails here, as it would in the handshake) is copied to
/// `c.hello` and answered later by
/// [`answer_hello`], so that the ~90 us of the server's handshake half run where the worker
/// budgets them, after established connections' records. A client cannot seal anything before
/// the server's reply, so bytes after the hello (in the same receive or before the reply) fail
/// the connection as [`Error::BadHandshake`]. The returned range is the run left in `data` for
/// the caller to queue in place.
pub fn ingest(
    c: &mut Conn,
    data: &[u8],
    pool: &mut BufPool,
    proto: &ServerConfig,
) -> Result<Ingested, Error> {
    let mut out = Ingested::default();
    if c.hello.is_some() {
        return Err(Error::BadHandshake);
    }
    if c.framing() == Framing::Frames {
        // A bad header fails the connection: the bytes before it are not echoed either.
        out.frames = c.stream.advance(data).map_err(|e| e.error)? as u64;
        out.end = data.len();
        return Ok(out);
    }
    let mut pos = 0;
    while pos < data.len() {
        let framing = c.decoder.codec().framing();
        let d = c.decoder.decode(&data[pos..])?;
        if d.reassembled {
            let unit = c.decoder.take_reassembled(decoder_spare(pool));
            if framing == Framing::Handshake {
                if let Err(e) = check_hello(proto, &unit) {
                    pool.put(unit);
                    return Err(e);
                }
                hold_hello(c, unit, data.len() - pos, d.consumed)?;
                out.hello = true;
                return Ok(out);
            } else {
                queue_fresh(c, unit);
            }
        }
        if !d.run.is_empty() {
            let run = pos + d.run.start..pos + d.run.end;
            if framing == Framing::Handshake {
                check_hello(proto, &data[run.clone()])?;
                let mut hello = pool.get();
                hello.extend_from_slice(&data[run]);
                hold_hello(c, hello, data.len() - pos, d.consumed)?;
                out.hello = true;
                return Ok(out);
            } else if out.end == out.start {
                (out.start, out.end) = (run.start, run.end);
            } else {
                // A second run in one receive (only after a unit the decoder held back):
                // copied, since a ring chunk covers one run.
                let mut copy = pool.get();
                copy.extend_from_slice(&data[run]);
                queue_fresh(c, copy);
            }
        }
        pos += d.consumed.max(1);
    }
    Ok(out)
}

/// An empty buffer for the decoder to keep for the connection's next incomplete unit. The decoder
/// keeps its buffer's capacity, and that capacity counts against the connection's buffer limit
/// ([`Conn::held_bytes`]); a pooled buffer larger than any unit (a TLS connection's output for a
/// 64 KiB frame, say) could leave no room for a ring buffer, and the connection would wait for
/// ever for the rest of a record it can no longer receive. Such a buffer is freed instead.
fn decoder_spare(pool: &mut BufPool) -> Vec<u8> {
    let spare = pool.get();
    if spare.capacity() > MAX_RECORD_LEN {
        Vec::new()
    } else {
        spare
    }
}

/// Queues records in a heap buffer for the crypto batch.
fn queue_fresh(c: &mut Conn, buf: Vec<u8>) {
    let chunk = Chunk::Heap { buf, sent: 0 };
    c.held.add(&chunk);
    c.fresh.push_back(chunk);
}

/// Keeps a complete hello on the connection; `left` bytes of the receive were still unread
/// before the decoder consumed `consumed` of them.
fn hold_hello(c: &mut Conn, hello: Vec<u8>, left: usize, consumed: usize) -> Result<(), Error> {
    c.hello = Some(hello);
    if left > consumed {
        return Err(Error::BadHandshake);
    }
    Ok(())
}

/// Answers the hello held on `c` (see [`ingest`]): on success the connection carries records
/// from now on and the reply is queued on `c.sendq`.
pub fn answer_hello(c: &mut Conn, pool: &mut BufPool, proto: &ServerConfig) -> Result<(), Error> {
    let Some(hello) = c.hello.take() else {
        return Ok(());
    };
    let r = handshake(c, &hello, pool, proto);
    pool.put(hello);
    r
}

fn handshake(
    c: &mut Conn,
    hello: &[u8],
    pool: &mut BufPool,
    proto: &ServerConfig,
) -> Result<(), Error> {
    let mut reply = pool.get();
    match accept_handshake(proto, hello, &mut reply) {
        Ok(crypto) => {
            c.crypto = Some(crypto);
            c.decoder.set_framing(Framing::Records);
            c.deadline = None;
            let chunk = Chunk::Heap {
                buf: reply,
                sent: 0,
            };
            c.held.add(&chunk);
            c.sendq.push_back(chunk);
            Ok(())
        }
        Err(e) => {
            pool.put(reply);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use stcp_proto::{ClientConfig, ClientHandshake, Mode, StaticKeypair, FRAME_HEADER_LEN};

    use super::*;

    fn tcp_conn() -> Conn {
        let now = Instant::now();
        let mut c = Conn::vacant(now);
        let fd = std::fs::File::open("/dev/null").expect("open /dev/null");
        c.open(fd.into(), Mode::Tcp, 64, now, now);
        c
    }

    fn stcp_conn() -> Conn {
        let now = Instant::now();
        let mut c = Conn::vacant(now);
        let fd = std::fs::File::open("/dev/null").expect("open /dev/null");
        c.open(fd.into(), Mode::Stcp, 64, now, now);
        c
    }

    fn server_and_hello() -> (ServerConfig, Vec<u8>) {
        let keys = StaticKeypair::generate([1; 32]);
        let client = ClientConfig::new(keys.public);
        let (_, hello) = ClientHandshake::start(&client, [2; 32]).expect("hello");
        (ServerConfig::new(keys), hello)
    }

    /// A hello is only held by ingest (no handshake work while receiving); answering it later
    /// queues the reply and switches the connection to records.
    #[test]
    fn a_hello_is_held_then_answered() {
        let (cfg, hello) = server_and_hello();
        let mut pool = BufPool::default();
        let mut c = stcp_conn();
        // Split across two receives: the decoder reassembles it.
        let r = ingest(&mut c, &hello[..10], &mut pool, &cfg).unwrap();
        assert!(!r.hello && c.hello.is_none());
        let r = ingest(&mut c, &hello[10..], &mut pool, &cfg).unwrap();
        assert!(r.hello);
        assert!(c.hello.is_some() && c.sendq.is_empty() && c.crypto.is_none());
        assert_eq!(c.framing(), Framing::Handshake);
        answer_hello(&mut c, &mut pool, &cfg).unwrap();
        assert!(c.hello.is_none() && c.crypto.is_some());
        assert_eq!(c.sendq.len(), 1, "the reply is queued");
        assert_eq!(c.framing(), Framing::Records);
        // Whole in one receive: same.
        let mut c = stcp_conn();
        assert!(ingest(&mut c, &hello, &mut pool, &cfg).unwrap().hello);
        answer_hello(&mut c, &mut pool, &cfg).unwrap();
        assert_eq!(c.sendq.len(), 1);
    }

    /// No client can seal a record before the server's reply: bytes after the hello, in the
    /// same receive or a later one, fail the connection.
    #[test]
    fn garbage_hellos_fail_before_being_held() {
        let (cfg, hello) = server_and_hello();
        let mut pool = BufPool::default();
        let mut garbage = hello.clone();
        garbage[FRAME_HEADER_LEN] ^= 0xff;
        let mut c = stcp_conn();
        let e = ingest(&mut c, &garbage, &mut pool, &cfg).unwrap_err();
        assert!(matches!(e, Error::NotStcp), "{e:?}");
        assert!(c.hello.is_none());
        // Split, so the decoder reassembles it: same.
        let mut c = stcp_conn();
        ingest(&mut c, &garbage[..7], &mut pool, &cfg).unwrap();
        let e = ingest(&mut c, &garbage[7..], &mut pool, &cfg).unwrap_err();
        assert!(matches!(e, Error::NotStcp), "{e:?}");
        assert!(c.hello.is_none());
    }

    #[test]
    fn bytes_after_a_held_hello_fail() {
        let (cfg, hello) = server_and_hello();
        let mut pool = BufPool::default();
        let mut c = stcp_conn();
        let mut data = hello.clone();
        data.push(0);
        let e = ingest(&mut c, &data, &mut pool, &cfg).unwrap_err();
        assert!(matches!(e, Error::BadHandshake), "{e:?}");
        let mut c = stcp_conn();
        assert!(ingest(&mut c, &hello, &mut pool, &cfg).unwrap().hello);
        let e = ingest(&mut c, &[0], &mut pool, &cfg).unwrap_err();
        assert!(matches!(e, Error::BadHandshake), "{e:?}");
    }

    fn frame(len: usize) -> Vec<u8> {
        let mut f = (len as u32).to_be_bytes().to_vec();
        f.extend((0..len).map(|i| i as u8));
        f
    }

    #[test]
    fn tcp_bytes_are_echoed_as_they_arrive() {
        let cfg = ServerConfig::new(StaticKeypair::generate([1; 32]));
        let mut pool = BufPool::default();
        let mut c = tcp_conn();
        let mut data = frame(3);
        data.extend(frame(0));
        data.extend(&frame(10)[..6]);
        let r = ingest(&mut c, &data, &mut pool, &cfg).unwrap();
        assert_eq!((r.start, r.end, r.frames), (0, data.len(), 2));
        assert!(!c.stream.at_boundary());
        // The rest of the partial frame plus a frame split after its header byte 2.
        let mut more = frame(10)[6..].to_vec();
        more.extend(&frame(5)[..2]);
        let r = ingest(&mut c, &more, &mut pool, &cfg).unwrap();
        assert_eq!((r.start, r.end, r.frames), (0, more.len(), 1));
        let r = ingest(&mut c, &frame(5)[2..], &mut pool, &cfg).unwrap();
        assert_eq!(r.frames, 1);
        assert!(c.stream.at_boundary());
        assert_eq!(c.decoder.capacity(), 0, "nothing is buffered in TCP mode");
        assert!(c.sendq.is_empty() && c.fresh.is_empty());
    }

    #[test]
    fn oversized_header_fails_before_buffering() {
        let cfg = ServerConfig::new(StaticKeypair::generate([1; 32]));
        let mut pool = BufPool::default();
        let mut c = tcp_conn();
        let e = ingest(&mut c, &frame(65)[..10], &mut pool, &cfg).unwrap_err();
        assert!(matches!(e, Error::FrameTooLarge { len: 65, max: 64 }));
        // Same when the header arrives split over two receives, and for good.
        let mut c = tcp_conn();
        ingest(&mut c, &[0, 0], &mut pool, &cfg).unwrap();
        assert!(ingest(&mut c, &[1, 0, 9], &mut pool, &cfg).is_err());
        assert!(ingest(&mut c, &[0], &mut pool, &cfg).is_err());
        assert_eq!(c.decoder.capacity(), 0);
    }
}
