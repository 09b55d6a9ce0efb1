//! The codec against hand-made streams: limits refused from the header, units in place,
//! reassembly across any split.

use super::*;

fn frame(payload: &[u8]) -> Vec<u8> {
    [&frame_header(payload.len())[..], payload].concat()
}

fn record(kind: RecordType, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0xaa; RECORD_OVERHEAD + payload.len()];
    write_record_header(&mut buf, kind, payload.len());
    buf[RECORD_HEADER_LEN..RECORD_HEADER_LEN + payload.len()].copy_from_slice(payload);
    buf
}

/// Decodes `chunks` in order, returning every unit (reassembled and in
/// place, in order) and the largest `buffered()` seen.
fn decode_all(d: &mut Decoder, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, usize) {
    let mut units = Vec::new();
    let mut most = 0;
    for chunk in chunks {
        let mut data = *chunk;
        while !data.is_empty() {
            let out = d.decode(data).unwrap();
            assert!(out.consumed > 0);
            if out.reassembled {
                units.push(d.reassembled_mut().to_vec());
            }
            let run = &data[out.run.clone()];
            let mut n = 0;
            for unit in d.codec().units(run) {
                units.push(run[unit.unwrap()].to_vec());
                n += 1;
            }
            assert_eq!(n, out.units);
            most = most.max(d.buffered());
            data = &data[out.consumed..];
        }
    }
    (units, most)
}

#[test]
fn header_functions_follow_the_spec() {
    assert_eq!(
        frame_len([0xff, 0xff, 0xff, 0xff], 1024),
        Err(Error::FrameTooLarge {
            len: 0xffff_ffff,
            max: 1024
        })
    );
    assert_eq!(frame_len([0, 0, 4, 0], 1024), Ok(1024));
    assert_eq!(handshake_frame_len([0, 0, 1, 0]), Ok(256));
    assert_eq!(
        handshake_frame_len([0, 0, 1, 1]),
        Err(Error::HandshakeTooLarge { len: 257, max: 256 })
    );
    let h = RecordHeader::new(RecordType::Close, 0);
    let mut buf = [0u8; 8];
    assert_eq!(h.write(&mut buf), 4);
    assert_eq!(buf[..4], [0x10, 0, 0, 16]);
    assert_eq!(RecordHeader::parse(&buf, 10), Ok(h));
    let begin = RecordHeader::first(70_000, MAX_RECORD_PAYLOAD);
    assert_eq!(begin.kind, RecordType::Begin);
    assert_eq!(begin.write(&mut buf), 8);
    assert_eq!(buf, [0x20, 0, 0x40, 0x10, 0, 1, 0x11, 0x70]);
    assert_eq!(RecordHeader::parse(&buf, 70_000), Ok(begin));
    assert_eq!(begin.record_len(), 8 + MAX_RECORD_PAYLOAD + 16);
    assert_eq!(
        RecordHeader::parse(&buf, 69_999),
        Err(Error::FrameTooLarge {
            len: 70_000,
            max: 69_999
        })
    );
    assert_eq!(
        RecordHeader::parse(&buf[..7], 70_000),
        Err(Error::BadLength)
    );
    // A Begin must announce more than it carries itself.
    assert_eq!(
        RecordHeader::parse(&[0x20, 0, 0, 17, 0, 0, 0, 1], 10),
        Err(Error::FrameLength)
    );
    assert_eq!(
        RecordHeader::parse(&[0x50, 0, 0, 16], 10),
        Err(Error::BadRecordType(5))
    );
    assert_eq!(
        RecordHeader::parse(&[0, 0, 0, 15], 10),
        Err(Error::BadLength)
    );
    assert_eq!(
        RecordHeader::parse(&[0, 0, 0, 27], 10),
        Err(Error::FrameTooLarge { len: 11, max: 10 })
    );
    // 16 KiB + 1 is over the record limit whatever the frame limit.
    assert_eq!(
        RecordHeader::parse(&[0, 0, 0x40, 0x11], usize::MAX),
        Err(Error::RecordTooLarge { len: 16385 })
    );
    // Non-final records are never empty; a Close always is.
    for kind in [0x20u8, 0x30, 0x40] {
        assert_eq!(
            RecordHeader::parse(&[kind, 0, 0, 16, 0, 0, 1, 0], 1000),
            Err(Error::BadLength)
        );
    }
    assert_eq!(
        RecordHeader::parse(&[0x10, 0, 0, 17], 10),
        Err(Error::BadLength)
    );
}

#[test]
fn frames_split_into_full_records() {
    for (frame_len, kinds) in [
        (0usize, vec![RecordType::Data]),
        (1, vec![RecordType::Data]),
        (MAX_RECORD_PAYLOAD, vec![RecordType::Data]),
        (
            MAX_RECORD_PAYLOAD + 1,
            vec![RecordType::Begin, RecordType::End],
        ),
        (
            4 * MAX_RECORD_PAYLOAD,
            vec![
                RecordType::Begin,
                RecordType::Continue,
                RecordType::Continue,
                RecordType::End,
            ],
        ),
    ] {
        let records: Vec<_> = frame_records(frame_len).collect();
        assert_eq!(
            records.iter().map(|(h, _)| h.kind).collect::<Vec<_>>(),
            kinds,
            "{frame_len}"
        );
        let mut seq = FrameSequence::default();
        let mut offset = 0;
        let mut wire = 0;
        for (h, at) in &records {
            assert_eq!(*at, offset);
            assert!(h.payload_len <= MAX_RECORD_PAYLOAD);
            seq.check(h).unwrap();
            seq.advance(h);
            offset += h.payload_len;
            wire += h.record_len();
        }
        assert_eq!(offset, frame_len);
        assert!(!seq.in_frame());
        assert_eq!(wire, sealed_frame_len(frame_len), "{frame_len}");
    }
}

#[test]
fn the_frame_sequence_refuses_what_does_not_add_up() {
    let begin = RecordHeader::first(100, 40);
    let cont = |n| RecordHeader::new(RecordType::Continue, n);
    let end = |n| RecordHeader::new(RecordType::End, n);
    let data = RecordHeader::new(RecordType::Data, 5);
    let close = RecordHeader::new(RecordType::Close, 0);
    let mut seq = FrameSequence::default();
    assert_eq!(seq.check(&cont(1)), Err(Error::MissingBegin));
    assert_eq!(seq.check(&end(1)), Err(Error::MissingBegin));
    seq.advance(&begin);
    assert_eq!(seq.remaining(), 60);
    for next in [data, begin, close] {
        assert_eq!(seq.check(&next), Err(Error::MissingFinal));
    }
    // A Continue may not reach the end; an End must reach it exactly.
    assert_eq!(seq.check(&cont(60)), Err(Error::FrameLength));
    assert_eq!(seq.check(&end(59)), Err(Error::FrameLength));
    assert_eq!(seq.check(&end(61)), Err(Error::FrameLength));
    seq.check(&cont(59)).unwrap();
    seq.advance(&cont(59));
    seq.check(&end(1)).unwrap();
    seq.advance(&end(1));
    assert!(!seq.in_frame());
    seq.check(&close).unwrap();
}

#[test]
fn unit_len_per_framing() {
    let frames = Codec::new(Framing::Frames, 10);
    assert_eq!(frames.unit_len([0, 0, 0, 10]), Ok(14));
    assert_eq!(
        frames.unit_len([0, 0, 0, 11]),
        Err(Error::FrameTooLarge { len: 11, max: 10 })
    );
    let records = Codec::new(Framing::Records, usize::MAX);
    assert_eq!(records.max_frame(), MAX_FRAME_LEN);
    assert_eq!(
        records.unit_len([0, 0, 0x40, 0x10]),
        Ok(4 + (16 << 10) + 16)
    );
    assert_eq!(records.unit_len([0x20, 0, 0x40, 0x10]), Ok(MAX_RECORD_LEN));
    let hs = Codec::new(Framing::Handshake, 10);
    assert_eq!(hs.unit_len([0, 0, 1, 0]), Ok(260));
    assert_eq!(hs.max_frame(), 10);
}

/// Each framing refuses an over-limit header from the header alone: the
/// decoder holds at most the 4 header bytes and reserves nothing more.
#[test]
fn limits_are_refused_from_the_header() {
    let cases: [(Framing, [u8; 4], Error); 6] = [
        (
            Framing::Frames,
            [0xff, 0xff, 0xff, 0xff],
            Error::FrameTooLarge {
                len: 0xffff_ffff,
                max: 1024,
            },
        ),
        (
            Framing::Handshake,
            [0, 0, 1, 1],
            Error::HandshakeTooLarge { len: 257, max: 256 },
        ),
        (
            Framing::Records,
            [0x0f, 0xff, 0xff, 0xff],
            Error::RecordTooLarge {
                len: (1 << 28) - 1 - TAG_LEN,
            },
        ),
        (
            Framing::Records,
            [0, 0, 0x04, 0x11],
            Error::FrameTooLarge {
                len: 1025,
                max: 1024,
            },
        ),
        (Framing::Records, [0x70, 0, 0, 16], Error::BadRecordType(7)),
        (Framing::Records, [0, 0, 0, 15], Error::BadLength),
    ];
    for (framing, header, error) in cases {
        // In place, with body bytes following.
        let mut d = Decoder::new(Codec::new(framing, 1024));
        let mut data = header.to_vec();
        data.extend_from_slice(&[0; 100]);
        assert_eq!(d.decode(&data), Err(error.clone()), "{framing:?}");
        assert!(d.buffered() <= HEADER_LEN);
        assert!(d.capacity() <= HEADER_LEN);
        assert_eq!(d.decode(&[0; 8]), Err(error.clone()), "sticky");
        // Header cut in two: held, then refused when it completes.
        let mut d = Decoder::new(Codec::new(framing, 1024));
        let out = d.decode(&header[..3]).unwrap();
        assert_eq!((out.consumed, out.units, d.buffered()), (3, 0, 3));
        assert!(d.capacity() <= HEADER_LEN);
        assert_eq!(d.decode(&data[3..]), Err(error.clone()));
        assert!(d.buffered() <= HEADER_LEN);
        assert!(d.capacity() <= HEADER_LEN);
        // Split agrees.
        assert_eq!(Codec::new(framing, 1024).split(&data), Err(error));
    }
}

#[test]
fn back_to_back_units_come_back_in_place() {
    let stream = [frame(b"hi"), frame(b""), frame(b"abc"), frame(b"xy")].concat();
    let mut d = Decoder::new(Codec::new(Framing::Frames, 16));
    let cut = stream.len() - 2;
    let out = d.decode(&stream[..cut]).unwrap();
    assert_eq!(
        out,
        Decoded {
            reassembled: false,
            run: 0..17,
            units: 3,
            consumed: cut,
        }
    );
    assert_eq!(d.buffered(), 4);
    // Only the bytes that arrived are held, not the 6 the tail's header announces.
    assert_eq!(d.capacity(), 4);
    let units: Vec<_> = d
        .codec()
        .units(&stream[out.run])
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(units, vec![0..6, 6..10, 10..17]);
    let out = d.decode(&stream[cut..]).unwrap();
    assert!(out.reassembled);
    assert_eq!((out.run, out.units, out.consumed), (2..2, 0, 2));
    assert_eq!(d.reassembled_mut(), &frame(b"xy")[..]);
    assert_eq!(d.buffered(), 0);
    // The completed unit is dropped by the next call.
    let out = d.decode(&[]).unwrap();
    assert_eq!(out, Decoded::default());
    assert!(d.reassembled_mut().is_empty());
    assert_eq!(
        Codec::new(Framing::Frames, 16).split(&stream[..cut]),
        Ok(Split {
            whole: 17,
            units: 3,
            next_len: Some(6),
        })
    );
}

#[test]
fn reassembles_across_many_splits() {
    let payloads: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; i as usize * 5]).collect();
    for framing in [Framing::Frames, Framing::Records] {
        let units: Vec<Vec<u8>> = payloads
            .iter()
            .map(|p| match framing {
                Framing::Records => record(RecordType::Data, p),
                _ => frame(p),
            })
            .collect();
        let stream = units.concat();
        for piece in [1, 2, 3, 5, 7, 64] {
            let chunks: Vec<&[u8]> = stream.chunks(piece).collect();
            let mut d = Decoder::new(Codec::new(framing, 1000));
            let (got, most) = decode_all(&mut d, &chunks);
            assert_eq!(got, units, "{framing:?} in pieces of {piece}");
            let largest = units.iter().map(Vec::len).max().unwrap();
            assert!(most <= largest);
            assert!(d.capacity() <= largest);
            assert_eq!(d.buffered(), 0);
        }
    }
}

#[test]
fn a_header_split_over_two_decodes() {
    let unit = record(RecordType::Close, b"");
    let mut d = Decoder::new(Codec::new(Framing::Records, 100));
    let out = d.decode(&unit[..2]).unwrap();
    assert_eq!(out.consumed, 2);
    assert!(!out.reassembled);
    assert_eq!(d.buffered(), 2);
    assert!(d.capacity() <= HEADER_LEN);
    let out = d.decode(&unit[2..]).unwrap();
    assert!(out.reassembled);
    assert_eq!(out.consumed, unit.len() - 2);
    assert_eq!(d.reassembled_mut(), &unit[..]);
}

#[test]
fn handshake_stops_after_one_unit() {
    let hello = frame(&[7; 56]);
    let records = [
        record(RecordType::Data, b"one"),
        record(RecordType::Close, b""),
    ]
    .concat();
    let stream = [hello.clone(), records.clone()].concat();
    // In place.
    let mut d = Decoder::new(Codec::new(Framing::Handshake, 1 << 20));
    let out = d.decode(&stream).unwrap();
    assert_eq!((out.run.clone(), out.units), (0..hello.len(), 1));
    assert_eq!(out.consumed, hello.len());
    d.set_framing(Framing::Records);
    assert_eq!(d.codec().max_frame(), 1 << 20);
    let out = d.decode(&stream[hello.len()..]).unwrap();
    assert_eq!((out.units, out.consumed), (2, records.len()));
    // Reassembled: the bytes after the frame are not consumed.
    let mut d = Decoder::new(Codec::new(Framing::Handshake, 1 << 20));
    assert_eq!(d.decode(&stream[..10]).unwrap().consumed, 10);
    let out = d.decode(&stream[10..]).unwrap();
    assert!(out.reassembled);
    assert_eq!(out.units, 0);
    assert_eq!(out.consumed, hello.len() - 10);
    assert_eq!(d.reassembled_mut(), &hello[..]);
    d.set_framing(Framing::Records);
    let out = d.decode(&stream[hello.len()..]).unwrap();
    assert!(!out.reassembled);
    assert_eq!(out.units, 2);
}

#[test]
fn take_reassembled_swaps_buffers() {
    let unit = frame(b"pooled");
    let mut d = Decoder::new(Codec::new(Framing::Frames, 64));
    d.decode(&unit[..5]).unwrap();
    // Nothing completed yet: the replacement comes back, the partial stays.
    let back = d.take_reassembled(vec![1, 2, 3]);
    assert!(back.is_empty());
    assert_eq!(d.buffered(), 5);
    assert!(d.decode(&unit[5..]).unwrap().reassembled);
    let spare = Vec::with_capacity(128);
    let got = d.take_reassembled(spare);
    assert_eq!(got, unit);
    assert_eq!(d.capacity(), 128);
    assert!(d.reassembled_mut().is_empty());
    assert_eq!(d.buffered(), 0);
    // The next unit goes into the replacement buffer.
    d.decode(&unit[..3]).unwrap();
    assert_eq!(d.capacity(), 128);
    assert!(d.decode(&unit[3..]).unwrap().reassembled);
    assert_eq!(d.reassembled_mut(), &unit[..]);
    let buf = d.clear();
    assert!(buf.is_empty() && buf.capacity() == 128);
    assert_eq!((d.capacity(), d.buffered()), (0, 0));
}

#[test]
fn bad_header_after_whole_units_returns_them_first() {
    let stream = [frame(b"ok"), frame(&[0; 17])].concat();
    let mut d = Decoder::new(Codec::new(Framing::Frames, 16));
    let out = d.decode(&stream).unwrap();
    assert_eq!((out.run, out.units, out.consumed), (0..6, 1, 6));
    let e = Error::FrameTooLarge { len: 17, max: 16 };
    assert_eq!(d.decode(&stream[6..]), Err(e.clone()));
    assert_eq!(d.decode(b""), Err(e.clone()));
    assert_eq!(Codec::new(Framing::Frames, 16).split(&stream), Err(e));
    d.clear();
    assert!(d.decode(&stream[..6]).is_ok());
}

#[test]
fn units_iterator_stops_at_incomplete_and_bad() {
    let codec = Codec::new(Framing::Frames, 4);
    let buf = [frame(b"a"), frame(b"bb"), vec![0, 0]].concat();
    let mut it = codec.units(&buf);
    assert_eq!(it.next(), Some(Ok(0..5)));
    assert_eq!(it.next(), Some(Ok(5..11)));
    assert_eq!(it.next(), None);
    assert_eq!(it.offset(), 11);
    let buf = [frame(b"a"), vec![0, 0, 0, 5]].concat();
    let got: Vec<_> = codec.units(&buf).collect();
    assert_eq!(
        got,
        vec![Ok(0..5), Err(Error::FrameTooLarge { len: 5, max: 4 })]
    );
}

#[test]
fn a_claimed_length_never_sizes_the_buffer() {
    // A frame announcing 60,000 bytes, trickled in: the buffer follows what arrived.
    let mut d = Decoder::new(Codec::new(Framing::Frames, 1 << 16));
    let mut data = 60_000u32.to_be_bytes().to_vec();
    data.extend_from_slice(&[7; 10]);
    d.decode(&data).unwrap();
    assert_eq!(d.buffered(), 14);
    assert!(d.capacity() < 64, "capacity {}", d.capacity());
    let mut received = 14;
    for _ in 0..100 {
        d.decode(&[7; 100]).unwrap();
        received += 100;
        assert!(d.capacity() <= 2 * received, "capacity {}", d.capacity());
    }
}
