//! Turning one received ring buffer into work, through the connection's
//! [`stcp_proto::Decoder`]: a unit the decoder reassembled across receives becomes a heap chunk,
//! the run of whole units left in the ring buffer is echoed in place, and the decoder keeps the
//! incomplete tail. The decoder checks every header against the limits before it buffers
//! anything for its unit.

use stcp_proto::{Error, Framing, ServerConfig};

use super::{
    conn::{Chunk, Conn},
    pool::BufPool,
};
use crate::echo::accept_handshake;

/// What one receive produced besides the chunks queued on the connection.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    /// `data[start..end]` holds whole units to echo in place (`start == end`: none).
    pub start: usize,
    /// End of the in-place run.
    pub end: usize,
    /// Raw frames queued for sending (TCP mode, counted here because no batch sees them).
    pub frames: u64,
    /// A handshake completed.
    pub handshake: bool,
}

/// Feeds `data` (bytes just received) to connection `c`. Reassembled units are queued on
/// `c.fresh` (STCP records, for the batch) or `c.sendq` (handshake reply, raw frames); the
/// returned range is the run of whole units left in `data` for the caller to queue in place.
pub fn ingest(
    c: &mut Conn,
    data: &[u8],
    pool: &mut BufPool,
    proto: &ServerConfig,
) -> Result<Ingested, Error> {
    let mut out = Ingested::default();
    let mut pos = 0;
    while pos < data.len() {
        let framing = c.decoder.codec().framing();
        let d = c.decoder.decode(&data[pos..])?;
        if d.reassembled {
            let unit = c.decoder.take_reassembled(pool.get());
            match framing {
                Framing::Handshake => {
                    let r = handshake(c, &unit, pool, proto);
                    pool.put(unit);
                    r?;
                    out.handshake = true;
                }
                Framing::Records => c.fresh.push_back(Chunk::Heap { buf: unit, sent: 0 }),
                Framing::Frames => {
                    c.unsent += unit.len();
                    c.sendq.push_back(Chunk::Heap { buf: unit, sent: 0 });
                    out.frames += 1;
                }
            }
        }
        if !d.run.is_empty() {
            let run = pos + d.run.start..pos + d.run.end;
            match framing {
                Framing::Handshake => {
                    handshake(c, &data[run], pool, proto)?;
                    out.handshake = true;
                }
                _ if out.end == out.start => {
                    if framing == Framing::Frames {
                        out.frames += d.units as u64;
                    }
                    (out.start, out.end) = (run.start, run.end);
                }
                _ => {
                    // A second run in one receive (only after a unit the decoder held back):
                    // copied, since a ring chunk covers one run.
                    let mut copy = pool.get();
                    copy.extend_from_slice(&data[run]);
                    if framing == Framing::Frames {
                        out.frames += d.units as u64;
                        c.unsent += copy.len();
                        c.sendq.push_back(Chunk::Heap { buf: copy, sent: 0 });
                    } else {
                        c.fresh.push_back(Chunk::Heap { buf: copy, sent: 0 });
                    }
                }
            }
        }
        pos += d.consumed.max(1);
    }
    Ok(out)
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
            c.unsent += reply.len();
            c.sendq.push_back(Chunk::Heap {
                buf: reply,
                sent: 0,
            });
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
    fn whole_frames_stay_in_place_and_tail_is_kept() {
        let cfg = ServerConfig::new(StaticKeypair::generate([1; 32]));
        let mut pool = BufPool::default();
        let mut c = tcp_conn();
        let mut data = frame(3);
        data.extend(frame(0));
        data.extend(&frame(10)[..6]);
        let r = ingest(&mut c, &data, &mut pool, &cfg).unwrap();
        assert_eq!((r.start, r.end, r.frames), (0, 11, 2));
        assert_eq!(c.decoder.buffered(), 6);
        // The rest of the partial frame plus a frame split after its header byte 2.
        let mut more = frame(10)[6..].to_vec();
        more.extend(&frame(5)[..2]);
        let r = ingest(&mut c, &more, &mut pool, &cfg).unwrap();
        assert_eq!((r.start, r.end, r.frames), (0, 0, 1));
        match c.sendq.back() {
            Some(Chunk::Heap { buf, .. }) => assert_eq!(buf, &frame(10)),
            _ => panic!("reassembled frame not queued"),
        }
        assert_eq!(c.decoder.buffered(), 2);
        let r = ingest(&mut c, &frame(5)[2..], &mut pool, &cfg).unwrap();
        assert_eq!(r.frames, 1);
        assert_eq!(c.decoder.buffered(), 0);
    }

    #[test]
    fn oversized_header_fails_before_buffering() {
        let cfg = ServerConfig::new(StaticKeypair::generate([1; 32]));
        let mut pool = BufPool::default();
        let mut c = tcp_conn();
        let e = ingest(&mut c, &frame(65)[..10], &mut pool, &cfg).unwrap_err();
        assert!(matches!(e, Error::FrameTooLarge { len: 65, max: 64 }));
        assert!(c.decoder.capacity() <= 4);
        // Same when the header arrives split over two receives.
        let mut c = tcp_conn();
        ingest(&mut c, &[0, 0], &mut pool, &cfg).unwrap();
        assert!(ingest(&mut c, &[1, 0, 9], &mut pool, &cfg).is_err());
        assert!(c.decoder.capacity() <= 4);
    }
}
