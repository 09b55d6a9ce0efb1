//! A client and a server `Connection` talking in memory, driven by a
//! fuzzer-chosen sequence of operations: send frames of fuzzer sizes (up to
//! 4 KiB, or at the 16 KiB record boundaries: frames of up to 6 records),
//! deliver bytes in fuzzer-chosen amounts (so records are cut anywhere),
//! inject bytes, close, end the stream (EOF), let time pass. Asserted, per
//! direction:
//! - frames arrive intact and in order, never one that was not sent (in STCP
//!   mode even after injected bytes: forged records must not open);
//! - without injected bytes, once everything is delivered, every frame sent
//!   has arrived, and the close too; the only failures are the documented
//!   ones (handshake timeout, a frame over the receiver's maximum, a stream
//!   ended without a close);
//! - a send fails exactly when the sender failed, has no session yet, or
//!   has closed; errors are kept; a frame goes out as the records the
//!   protocol documents (`oracle::documented_frame_records`: `Data`, or
//!   `Begin`, `Continue`s, `End`, full but the last), `sealed_frame_len`
//!   bytes in all (a plain frame: header and payload).
//!
//! Input: `[flags] [client max] [server max] [operations...]`; flags bit 0
//! TCP mode (else STCP), bit 1 PSK, bit 2 RustCrypto. See `Op::read`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stcp_proto::{sealed_frame_len, Connection, Error, Mode, RecordType, DEFAULT_MAX_FRAME};
use stcp_proto_fuzz::fixture::{self, Setup, HANDSHAKE_TIMEOUT};
use stcp_proto_fuzz::input::{frame_len16, pattern, Reader};
use stcp_proto_fuzz::oracle::{
    assert_sticky, documented_frame_records, documented_record_word, EventLog, TAG_BYTES,
};
use std::time::{Duration, Instant};

const CLIENT: usize = 0;
const SERVER: usize = 1;

/// One step of the scenario. `from`/`to` are `CLIENT` or `SERVER`.
enum Op<'a> {
    Send {
        from: usize,
        size: usize,
    },
    /// Moves up to `max` pending bytes (all when 0) from `from` to its peer.
    Deliver {
        from: usize,
        max: usize,
    },
    Inject {
        to: usize,
        bytes: &'a [u8],
    },
    Close {
        side: usize,
    },
    Eof {
        to: usize,
    },
    Tick {
        secs: u64,
    },
}

impl<'a> Op<'a> {
    /// `[op % 11] [arguments]`: 0/1 send (size: u16, `input::frame_len16`)
    /// from client/server,
    /// 2/3 deliver (max: u16) from client/server, 4/5 inject (len: u8, bytes)
    /// into server/client, 6/7 close client/server, 8/9 EOF into
    /// server/client, 10 tick (seconds: u8).
    fn read(input: &mut Reader<'a>) -> Self {
        let op = input.u8() % 11;
        let side = (op % 2) as usize;
        match op {
            0 | 1 => Op::Send {
                from: side,
                size: frame_len16(input.u16()),
            },
            2 | 3 => Op::Deliver {
                from: side,
                max: input.u16() as usize,
            },
            4 | 5 => {
                let len = input.u8() as usize;
                Op::Inject {
                    to: 1 - side,
                    bytes: input.bytes(len),
                }
            }
            6 | 7 => Op::Close { side },
            8 | 9 => Op::Eof { to: 1 - side },
            _ => Op::Tick {
                secs: u64::from(input.u8()),
            },
        }
    }
}

/// One direction of the byte stream, named by its sender.
#[derive(Default)]
struct Direction {
    /// Frames the sender queued, in order.
    sent: Vec<Vec<u8>>,
    /// The sender queued its authenticated close (STCP).
    close_sent: bool,
    /// Index in `sent` of the first frame over the receiver's maximum.
    oversized: Option<usize>,
    /// Bytes not from the sender were fed to the receiver.
    tainted: bool,
    /// The receiver was told the stream ended; nothing more is delivered.
    ended: bool,
    /// Bytes of the sender's stream delivered so far.
    delivered: usize,
    /// TCP mode: offsets in the sender's stream where a frame ends.
    frame_ends: Vec<usize>,
    /// What the receiver reported.
    log: EventLog,
}

struct Pair {
    mode: Mode,
    now: Instant,
    conns: [Connection; 2],
    max_frame: [usize; 2],
    closed: [bool; 2],
    /// Indexed by sender.
    dirs: [Direction; 2],
}

fuzz_target!(|data: &[u8]| {
    let mut input = Reader::new(data);
    let flags = input.u8();
    let mode = if flags & 1 != 0 {
        Mode::Tcp
    } else {
        Mode::Stcp
    };
    let setup = Setup {
        psk: flags & 2 != 0,
        crypto: fixture::provider(flags & 4 != 0),
        max_frame: DEFAULT_MAX_FRAME,
    };
    let max_frame = [max_frame(input.u8()), max_frame(input.u8())];
    let client = Setup {
        max_frame: max_frame[CLIENT],
        ..setup
    }
    .client(mode);
    let server = Setup {
        max_frame: max_frame[SERVER],
        ..setup
    }
    .server(mode);
    let mut pair = Pair {
        mode,
        now: fixture::start(),
        conns: [client, server],
        max_frame,
        closed: [false; 2],
        dirs: [Direction::default(), Direction::default()],
    };
    for from in [CLIENT, SERVER] {
        pair.dirs[from].frame_ends.push(0);
        pair.take_events(1 - from);
    }
    while !input.is_empty() {
        pair.apply(Op::read(&mut input));
    }
    pair.flush();
    for from in [CLIENT, SERVER] {
        pair.check_complete(from);
    }
});

/// `sealed`, the bytes one frame of `size` payload bytes was sealed into,
/// are the documented records: their types and lengths, a `Begin` that
/// announces `size`, `sealed_frame_len(size)` bytes in all.
fn check_records(sealed: &[u8], size: usize) {
    assert_eq!(
        sealed.len(),
        sealed_frame_len(size),
        "sealed_frame_len({size})"
    );
    let mut pos = 0;
    for (kind, payload) in documented_frame_records(size) {
        let word = sealed[pos..pos + 4].try_into().unwrap();
        assert_eq!(documented_record_word(word, size), Ok((kind, payload)));
        let mut len = 4 + payload + TAG_BYTES;
        if kind == RecordType::Begin {
            let announced = u32::from_be_bytes(sealed[pos + 4..pos + 8].try_into().unwrap());
            assert_eq!(announced as usize, size, "the Begin's frame length");
            len += 4;
        }
        pos += len;
    }
    assert_eq!(pos, sealed.len());
}

/// A frame limit from one byte: 255 is the default, else 16-byte steps.
fn max_frame(b: u8) -> usize {
    if b == u8::MAX {
        DEFAULT_MAX_FRAME
    } else {
        b as usize * 16
    }
}

impl Pair {
    fn apply(&mut self, op: Op<'_>) {
        match op {
            Op::Send { from, size } => self.send(from, size),
            Op::Deliver { from, max } => self.deliver(from, max),
            Op::Inject { to, bytes } => {
                if !self.dirs[1 - to].ended {
                    self.dirs[1 - to].tainted |= !bytes.is_empty();
                    self.input(to, bytes);
                }
            }
            Op::Close { side } => self.close(side),
            Op::Eof { to } => self.eof(to),
            Op::Tick { secs } => self.tick(secs),
        }
    }

    fn send(&mut self, from: usize, size: usize) {
        let dir = &mut self.dirs[from];
        let payload = pattern(size, from * 101 + dir.sent.len() * 13, 1);
        let conn = &mut self.conns[from];
        let expected = match conn.error() {
            Some(e) => Err(e.clone()),
            None if !conn.is_established() => Err(Error::NotEstablished),
            None if self.closed[from] => Err(Error::Closed),
            None => Ok(()),
        };
        let queued = conn.poll_transmit().len();
        assert_eq!(conn.send_frame(&payload), expected);
        let added = &conn.poll_transmit()[queued..];
        match (&expected, self.mode) {
            (Err(_), _) => assert!(added.is_empty(), "a failed send queued bytes"),
            (Ok(()), Mode::Tcp | Mode::Tls) => assert_eq!(added.len(), 4 + size),
            (Ok(()), Mode::Stcp) => check_records(added, size),
        }
        if expected.is_ok() {
            if size > self.max_frame[1 - from] && dir.oversized.is_none() {
                dir.oversized = Some(dir.sent.len());
            }
            dir.sent.push(payload);
            dir.frame_ends
                .push(dir.delivered + conn.poll_transmit().len());
        }
    }

    fn close(&mut self, side: usize) {
        let conn = &mut self.conns[side];
        let queues_record = self.mode == Mode::Stcp && conn.is_established() && !self.closed[side];
        assert_eq!(conn.close(), Ok(()));
        self.closed[side] = true;
        self.dirs[side].close_sent |= queues_record;
    }

    fn deliver(&mut self, from: usize, max: usize) {
        if self.dirs[from].ended {
            return;
        }
        let pending = self.conns[from].poll_transmit();
        let n = if max == 0 {
            pending.len()
        } else {
            max.min(pending.len())
        };
        let bytes = pending[..n].to_vec();
        self.conns[from].advance_transmit(n);
        self.dirs[from].delivered += n;
        self.input(1 - from, &bytes);
    }

    /// Feeds `bytes` to connection `to` and checks what it reported.
    fn input(&mut self, to: usize, bytes: &[u8]) {
        let before = self.conns[to].error().cloned();
        let result = self.conns[to].handle_input(self.now, bytes);
        assert_sticky(&self.conns[to], &result);
        self.take_events(to);
        match (before, result) {
            (Some(e), result) => assert_eq!(result, Err(e), "error changed"),
            (None, Err(e)) => self.check_failure(1 - to, &e),
            (None, Ok(())) => {}
        }
    }

    /// Takes the events of connection `to` and checks they are a prefix of
    /// what its peer sent.
    fn take_events(&mut self, to: usize) {
        let dir = &mut self.dirs[1 - to];
        dir.log.take(&mut self.conns[to]);
        if self.mode == Mode::Tcp && dir.tainted {
            return;
        }
        assert!(
            dir.log.frames.len() <= dir.sent.len(),
            "a frame arrived that was never sent"
        );
        for (k, frame) in dir.log.frames.iter().enumerate() {
            assert_eq!(frame, &dir.sent[k], "frame {k} arrived altered");
        }
        if dir.log.closed {
            assert!(dir.close_sent, "a close arrived that was never sent");
            assert_eq!(
                dir.log.frames.len(),
                dir.sent.len(),
                "the close overtook frames"
            );
        }
    }

    /// The receiver of the stream sent by `from` just failed with `e`.
    fn check_failure(&self, from: usize, e: &Error) {
        let dir = &self.dirs[from];
        if dir.tainted {
            return;
        }
        match e {
            Error::HandshakeTimeout => assert!(self.timed_out()),
            Error::FrameTooLarge { .. } => assert_eq!(dir.oversized, Some(dir.log.frames.len())),
            other => panic!("a genuine stream failed with {other:?}"),
        }
    }

    fn timed_out(&self) -> bool {
        self.now >= fixture::start() + HANDSHAKE_TIMEOUT
    }

    fn eof(&mut self, to: usize) {
        let dir = &mut self.dirs[1 - to];
        if dir.ended {
            return;
        }
        dir.ended = true;
        let conn = &mut self.conns[to];
        let before = conn.error().cloned();
        let result = conn.handle_eof();
        assert_sticky(conn, &result);
        if let Some(e) = before {
            assert_eq!(result, Err(e), "EOF changed the error");
            return;
        }
        let clean = match self.mode {
            Mode::Stcp => dir.log.closed,
            Mode::Tcp | Mode::Tls => dir.frame_ends.contains(&dir.delivered),
        };
        if !dir.tainted {
            let expected = if clean { Ok(()) } else { Err(Error::Truncated) };
            assert_eq!(result, expected);
        } else if self.mode == Mode::Stcp && result.is_ok() {
            assert!(dir.log.closed, "EOF accepted without the peer's close");
        }
    }

    fn tick(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        for side in [CLIENT, SERVER] {
            let conn = &mut self.conns[side];
            let before = conn.error().cloned();
            let handshaking = self.mode == Mode::Stcp && !conn.is_established();
            let result = conn.handle_timeout(self.now);
            match before {
                Some(e) => assert_eq!(conn.error(), Some(&e), "a timeout changed the error"),
                None if handshaking && self.now >= fixture::start() + HANDSHAKE_TIMEOUT => {
                    assert_eq!(result, Err(Error::HandshakeTimeout));
                    assert_sticky(conn, &result);
                }
                None => assert_eq!(result, Ok(())),
            }
        }
    }

    /// Delivers everything pending, both ways, until nothing moves.
    fn flush(&mut self) {
        loop {
            let mut moved = false;
            for from in [CLIENT, SERVER] {
                if !self.dirs[from].ended && !self.conns[from].poll_transmit().is_empty() {
                    self.deliver(from, 0);
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// After the flush: an untouched stream delivered everything it carried.
    fn check_complete(&self, from: usize) {
        let dir = &self.dirs[from];
        if dir.tainted || dir.ended {
            return;
        }
        match self.conns[1 - from].error() {
            None => {
                assert_eq!(dir.oversized, None, "a frame over the maximum was accepted");
                assert_eq!(dir.log.frames.len(), dir.sent.len(), "frames lost");
                assert_eq!(dir.log.closed, dir.close_sent, "close lost");
            }
            Some(Error::FrameTooLarge { .. }) => {
                assert_eq!(dir.oversized, Some(dir.log.frames.len()));
            }
            Some(Error::HandshakeTimeout) => assert!(self.timed_out()),
            Some(other) => panic!("a genuine stream ended in {other:?}"),
        }
    }
}
