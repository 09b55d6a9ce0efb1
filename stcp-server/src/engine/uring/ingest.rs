//! Turning one received ring buffer into work: finish the connection's partial unit, find the
//! run of whole units that can be echoed in place, keep the incomplete tail. Every header is
//! checked against the limits before anything is buffered for its unit, and a partial unit's
//! buffer grows only with bytes actually received.

use stcp_proto::{Error, ServerConfig};

use super::{
    conn::{Chunk, Conn},
    pool::BufPool,
};
use crate::echo::{accept_handshake, header_at, unit_len, Phase, HEADER_LEN};

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

/// Feeds `data` (bytes just received) to connection `c`. Whole reassembled units are queued on
/// `c.fresh` (STCP records, for the batch) or `c.sendq` (handshake reply, raw frames); the
/// returned range is the run of whole units left in `data` for the caller to queue in place.
pub fn ingest(
    c: &mut Conn,
    data: &[u8],
    pool: &mut BufPool,
    proto: &ServerConfig,
    max_frame: usize,
) -> Result<Ingested, Error> {
    let n = data.len();
    let mut pos = 0;
    let mut out = Ingested::default();

    // 1. Continue the partial unit.
    if let Some(p) = c.partial.as_mut() {
        if p.len() < HEADER_LEN {
            let take = (HEADER_LEN - p.len()).min(n);
            p.extend_from_slice(&data[..take]);
            pos += take;
            if p.len() < HEADER_LEN {
                return Ok(Ingested {
                    start: n,
                    end: n,
                    ..out
                });
            }
        }
        let opener = c.crypto.as_deref().map(|k| &k.opener);
        let need = unit_len(c.phase, opener, header_at(p, 0), max_frame)?;
        let take = (need - p.len()).min(n - pos);
        if p.len() + take == need {
            p.reserve_exact(take);
        }
        p.extend_from_slice(&data[pos..pos + take]);
        pos += take;
        if p.len() < need {
            return Ok(Ingested {
                start: n,
                end: n,
                ..out
            });
        }
        let unit = c.partial.take().unwrap_or_default();
        match c.phase {
            Phase::Handshake => {
                let r = handshake(c, &unit, pool, proto);
                pool.put(unit);
                r?;
                out.handshake = true;
            }
            Phase::Records => c.fresh.push_back(Chunk::Heap { buf: unit, sent: 0 }),
            Phase::Frames => {
                c.unsent += unit.len();
                c.sendq.push_back(Chunk::Heap { buf: unit, sent: 0 });
                out.frames += 1;
            }
        }
    }

    // 2. Whole units in place.
    let mut start = pos;
    while n - pos >= HEADER_LEN {
        let opener = c.crypto.as_deref().map(|k| &k.opener);
        let need = unit_len(c.phase, opener, header_at(data, pos), max_frame)?;
        if n - pos < need {
            break;
        }
        if c.phase == Phase::Handshake {
            handshake(c, &data[pos..pos + need], pool, proto)?;
            out.handshake = true;
            pos += need;
            start = pos;
            continue;
        }
        if c.phase == Phase::Frames {
            out.frames += 1;
        }
        pos += need;
    }
    out.start = start;
    out.end = pos;

    // 3. Keep the incomplete tail.
    if pos < n {
        let mut p = pool.get();
        p.extend_from_slice(&data[pos..]);
        c.partial = Some(p);
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
            c.phase = Phase::Records;
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
        c.open(fd.into(), Mode::Tcp, now, now);
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
        let r = ingest(&mut c, &data, &mut pool, &cfg, 64).unwrap();
        assert_eq!((r.start, r.end, r.frames), (0, 11, 2));
        assert_eq!(c.partial.as_deref(), Some(&frame(10)[..6]));
        // The rest of the partial frame plus a frame split after its header byte 2.
        let mut more = frame(10)[6..].to_vec();
        more.extend(&frame(5)[..2]);
        let r = ingest(&mut c, &more, &mut pool, &cfg, 64).unwrap();
        assert_eq!((r.start, r.end, r.frames), (8, 8, 1));
        match c.sendq.back() {
            Some(Chunk::Heap { buf, .. }) => assert_eq!(buf, &frame(10)),
            _ => panic!("reassembled frame not queued"),
        }
        let r = ingest(&mut c, &frame(5)[2..], &mut pool, &cfg, 64).unwrap();
        assert_eq!(r.frames, 1);
        assert!(c.partial.is_none());
    }

    #[test]
    fn oversized_header_fails_before_buffering() {
        let cfg = ServerConfig::new(StaticKeypair::generate([1; 32]));
        let mut pool = BufPool::default();
        let mut c = tcp_conn();
        let e = ingest(&mut c, &frame(65)[..10], &mut pool, &cfg, 64).unwrap_err();
        assert!(matches!(e, Error::FrameTooLarge { len: 65, max: 64 }));
        assert!(c.partial.is_none());
        // Same when the header arrives split over two receives.
        let mut c = tcp_conn();
        ingest(&mut c, &[0, 0], &mut pool, &cfg, 64).unwrap();
        assert!(ingest(&mut c, &[1, 0, 9], &mut pool, &cfg, 64).is_err());
    }
}
