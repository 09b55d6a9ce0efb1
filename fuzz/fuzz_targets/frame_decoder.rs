//! Plain frames from a peer: `FrameDecoder` with a small maximum, fed any
//! bytes in any split, never panics; every frame it returns re-encodes to
//! the next bytes of the input; a header over the maximum fails at once and
//! for good; it buffers less than one header plus one maximal frame. A TCP
//! mode `Connection` must decode the same frames and fail the same way, and
//! `frame_len`/`handshake_frame_len` must read a header as documented.
//!
//! Input: `[max] [split stream]` (see `stcp_proto_fuzz::input`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use stcp_proto::handshake::{handshake_frame_len, HANDSHAKE_MAX_LEN};
use stcp_proto::{frame_len, Error, FrameDecoder, Mode, FRAME_HEADER_LEN};
use stcp_proto_fuzz::fixture::{self, Setup};
use stcp_proto_fuzz::input::{Reader, SplitStream};
use stcp_proto_fuzz::oracle::{feed, EventLog};

fuzz_target!(|data: &[u8]| {
    let mut reader = Reader::new(data);
    let max = reader.u8() as usize;
    let split = SplitStream::read(&mut reader);
    let chunks = split.chunks();
    let stream = split.stream;

    check_header_functions(stream, max);
    let (frames, error) = decode(&chunks, stream, max);

    // A TCP-mode connection is the same decoder behind another API.
    let setup = Setup {
        psk: false,
        max_frame: max,
        crypto: fixture::provider(false),
    };
    let mut conn = setup.server(Mode::Tcp);
    let mut log = EventLog::default();
    feed(&mut conn, &mut log, &chunks);
    assert_eq!(log.frames, frames, "Connection and FrameDecoder disagree");
    assert_eq!(conn.error(), error.as_ref());
    let consumed: usize = frames.iter().map(|f| FRAME_HEADER_LEN + f.len()).sum();
    let eof = conn.handle_eof();
    match &error {
        Some(e) => assert_eq!(eof.as_ref(), Err(e)),
        None if consumed == stream.len() => assert_eq!(eof, Ok(())),
        None => assert_eq!(eof, Err(Error::Truncated)),
    }
});

/// The header readers against the documented rule.
fn check_header_functions(stream: &[u8], max: usize) {
    let Some(header) = stream.get(..FRAME_HEADER_LEN) else {
        return;
    };
    let header: [u8; FRAME_HEADER_LEN] = header.try_into().unwrap();
    let len = u32::from_be_bytes(header) as usize;
    let expected = if len > max {
        Err(Error::FrameTooLarge { len, max })
    } else {
        Ok(len)
    };
    assert_eq!(frame_len(header, max), expected);
    let expected = if len > HANDSHAKE_MAX_LEN {
        Err(Error::HandshakeTooLarge {
            len,
            max: HANDSHAKE_MAX_LEN,
        })
    } else {
        Ok(len)
    };
    assert_eq!(handshake_frame_len(header), expected);
}

/// Decodes `chunks` with a `FrameDecoder`, checking it as it goes. Returns
/// the frames and the error that stopped it, if any.
fn decode(chunks: &[&[u8]], stream: &[u8], max: usize) -> (Vec<Vec<u8>>, Option<Error>) {
    let mut decoder = FrameDecoder::new(max);
    let mut frames = Vec::new();
    let mut pushed = 0;
    let mut consumed = 0;
    for chunk in chunks {
        decoder.push(chunk);
        pushed += chunk.len();
        loop {
            match decoder.next_frame() {
                Ok(Some(payload)) => {
                    let len = payload.len();
                    assert!(len <= max, "a frame over the maximum came out");
                    let end = consumed + FRAME_HEADER_LEN + len;
                    assert!(end <= pushed, "a frame from bytes not pushed yet");
                    assert_eq!(
                        &stream[consumed..consumed + FRAME_HEADER_LEN],
                        &(len as u32).to_be_bytes()
                    );
                    assert_eq!(payload, &stream[consumed + FRAME_HEADER_LEN..end]);
                    frames.push(payload.to_vec());
                    consumed = end;
                }
                Ok(None) => {
                    let pending = &stream[consumed..pushed];
                    assert_eq!(decoder.buffered(), pending.len());
                    if pending.len() >= FRAME_HEADER_LEN {
                        let len = u32::from_be_bytes(pending[..4].try_into().unwrap()) as usize;
                        assert!(
                            len <= max && pending.len() < FRAME_HEADER_LEN + len,
                            "a whole frame left in the buffer"
                        );
                    }
                    assert!(
                        decoder.buffered() < FRAME_HEADER_LEN + max,
                        "buffer holds more than one partial frame"
                    );
                    break;
                }
                Err(e) => {
                    let len = u32::from_be_bytes(stream[consumed..consumed + 4].try_into().unwrap())
                        as usize;
                    assert_eq!(e, Error::FrameTooLarge { len, max });
                    assert_eq!(decoder.next_frame(), Err(e.clone()), "error not repeated");
                    assert_eq!(decoder.buffered(), pushed - consumed);
                    return (frames, Some(e));
                }
            }
        }
    }
    (frames, None)
}
