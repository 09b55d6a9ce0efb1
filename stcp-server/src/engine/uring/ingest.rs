//! Turning one received ring buffer into work. TCP mode is cut-through: every byte is echoed
//! in place as it arrives while the connection's [`stcp_proto::FrameStream`] checks the frame
//! headers, so a frame of any allowed length holds no memory. STCP goes through the
//! connection's [`stcp_proto::Decoder`]: a record the decoder reassembled across receives
//! becomes a heap chunk, the run of whole records left in the ring buffer is opened and echoed
//! in place, and the decoder keeps the incomplete tail (at most one record of 16 KiB). Every
//! header is checked against the limits before anything is kept for its unit.

use stcp_proto::{Error, Framing, ServerConfig};

use super::{
    conn::{Chunk, Conn},
    pool::BufPool,
};
use crate::echo::accept_handshake;

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
    /// A handshake completed.
    pub handshake: bool,
}

/// Feeds `data` (bytes just received) to connection `c`. Reassembled records are queued on
/// `c.fresh` (for the batch), a handshake reply on `c.sendq`; the returned range is the run
/// left in `data` for the caller to queue in place.
pub fn ingest(
    c: &mut Conn,
    data: &[u8],
    pool: &mut BufPool,
    proto: &ServerConfig,
) -> Result<Ingested, Error> {
    let mut out = Ingested::default();
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
            let unit = c.decoder.take_reassembled(pool.get());
            if framing == Framing::Handshake {
                let r = handshake(c, &unit, pool, proto);
                pool.put(unit);
                r?;
                out.handshake = true;
            } else {
                queue_fresh(c, unit);
            }
        }
        if !d.run.is_empty() {
            let run = pos + d.run.start..pos + d.run.end;
            if framing == Framing::Handshake {
                handshake(c, &data[run], pool, proto)?;
                out.handshake = true;
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

/// Queues records in a heap buffer for the crypto batch.
fn queue_fresh(c: &mut Conn, buf: Vec<u8>) {
    let chunk = Chunk::Heap { buf, sent: 0 };
    c.held.add(&chunk);
    c.fresh.push_back(chunk);
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

    use stcp_proto::{Mode, StaticKeypair};

    use super::*;

    fn tcp_conn() -> Conn {
        let now = Instant::now();
        let mut c = Conn::vacant(now);
        let fd = std::fs::File::open("/dev/null").expect("open /dev/null");
        c.open(fd.into(), Mode::Tcp, 64, now, now);
        c
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
