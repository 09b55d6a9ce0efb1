//! Property tests: any split of a byte stream decodes to the same frames, in
//! TCP and STCP mode, and the codec's decoder returns the same units for any
//! split in every framing; seal then open is the identity; batches equal
//! one-by-one.

mod common;

use common::{payload_of, plain_record, session_pair};
use proptest::prelude::*;
use stcp_proto::{
    frame::frame_header, open_batch, seal_batch, write_record_header, ClientConfig, Codec,
    Connection, CryptoBackend, Decoder, Event, Framing, Mode, RecordType, ServerConfig,
    StaticKeypair, HANDSHAKE_MAX_LEN, RECORD_OVERHEAD,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn frames_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 0..12)
}

/// Splits `stream` at the given cut points (taken modulo its length).
fn chunks(stream: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.push(0);
    points.push(stream.len());
    points.sort_unstable();
    points.dedup();
    points
        .windows(2)
        .map(|w| stream[w[0]..w[1]].to_vec())
        .collect()
}

/// Decodes `chunks` with a `Decoder` of `framing`, returning every unit
/// (header included: reassembled ones and in-place runs, in order) and the
/// largest `buffered()` seen. Under `Framing::Handshake` every unit is read as
/// a handshake frame (the framing is set again after each stop).
fn decode_units(framing: Framing, max: usize, chunks: &[Vec<u8>]) -> (Vec<Vec<u8>>, usize) {
    let mut d = Decoder::new(Codec::new(framing, max));
    let mut units = Vec::new();
    let mut most = 0;
    for chunk in chunks {
        let mut data = &chunk[..];
        while !data.is_empty() {
            let out = d.decode(data).unwrap();
            assert!(out.consumed > 0 && out.consumed <= data.len());
            if out.reassembled {
                units.push(d.reassembled_mut().to_vec());
            }
            let run = &data[out.run.clone()];
            let split = d.codec().split(run).unwrap();
            assert_eq!(
                (split.whole, split.units, split.next_len),
                (run.len(), out.units, None)
            );
            for unit in d.codec().units(run) {
                units.push(run[unit.unwrap()].to_vec());
            }
            most = most.max(d.buffered());
            d.set_framing(framing);
            data = &data[out.consumed..];
        }
        most = most.max(d.buffered());
    }
    assert_eq!(d.buffered(), 0);
    (units, most)
}

fn decode_plain(chunks: &[Vec<u8>]) -> Vec<Vec<u8>> {
    decode_units(Framing::Frames, 1 << 16, chunks)
        .0
        .into_iter()
        .map(|unit| unit[4..].to_vec())
        .collect()
}

/// One unit of `framing` carrying `payload` (records unsealed: the codec
/// reads only headers).
fn unit_of(framing: Framing, payload: &[u8], close: bool) -> Vec<u8> {
    match framing {
        Framing::Records => {
            let mut unit = vec![0x5a; RECORD_OVERHEAD + payload.len()];
            // A Close is always empty: a payload makes it a Data record.
            let kind = if close && payload.is_empty() {
                RecordType::Close
            } else {
                RecordType::Data
            };
            write_record_header(&mut unit, kind, payload.len());
            unit[4..4 + payload.len()].copy_from_slice(payload);
            unit
        }
        Framing::Frames | Framing::Handshake => {
            [&frame_header(payload.len())[..], payload].concat()
        }
    }
}

/// Runs a client/server handshake, has the client send `frames`, and feeds
/// the server the resulting byte stream in the given split.
fn decode_stcp(frames: &[Vec<u8>], cuts: &[usize], one_byte: bool) -> Vec<Vec<u8>> {
    let kp = StaticKeypair::generate([4; 32]);
    let now = Instant::now();
    let t = Duration::from_secs(5);
    let mut c =
        Connection::client(&ClientConfig::new(kp.public), Mode::Stcp, now, [5; 32], t).unwrap();
    let mut s = Connection::server(Arc::new(ServerConfig::new(kp)), Mode::Stcp, now, [6; 32], t);
    let hello = c.poll_transmit().to_vec();
    c.advance_transmit(hello.len());
    s.handle_input(now, &hello).unwrap();
    c.handle_input(now, s.poll_transmit()).unwrap();
    for f in frames {
        c.send_frame(f).unwrap();
    }
    let stream = c.poll_transmit().to_vec();
    let pieces: Vec<Vec<u8>> = if one_byte {
        stream.iter().map(|b| vec![*b]).collect()
    } else {
        chunks(&stream, cuts)
    };
    let mut out = Vec::new();
    for p in &pieces {
        s.handle_input(now, p).unwrap();
        while let Some(e) = s.poll_event() {
            if let Event::Frame(f) = e {
                out.push(f);
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn plain_frames_survive_any_split(frames in frames_strategy(), cuts in prop::collection::vec(any::<usize>(), 0..20)) {
        let mut stream = Vec::new();
        for f in &frames {
            stream.extend_from_slice(&frame_header(f.len()));
            stream.extend_from_slice(f);
        }
        let whole = decode_plain(std::slice::from_ref(&stream));
        let bytewise: Vec<Vec<u8>> = stream.iter().map(|b| vec![*b]).collect();
        prop_assert_eq!(&whole, &frames);
        prop_assert_eq!(&decode_plain(&bytewise), &frames);
        prop_assert_eq!(&decode_plain(&chunks(&stream, &cuts)), &frames);
    }

    #[test]
    fn decoder_units_are_the_same_for_any_split(
        framing in prop::sample::select(vec![Framing::Handshake, Framing::Records, Framing::Frames]),
        payloads in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..300), any::<bool>()), 0..12),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let max = match framing {
            Framing::Handshake => HANDSHAKE_MAX_LEN,
            _ => 300,
        };
        let units: Vec<Vec<u8>> = payloads
            .iter()
            .map(|(p, close)| unit_of(framing, &p[..p.len().min(max)], *close))
            .collect();
        let stream = units.concat();
        let largest = units.iter().map(Vec::len).max().unwrap_or(0);
        let (whole, most) = decode_units(framing, max, std::slice::from_ref(&stream));
        prop_assert_eq!(&whole, &units);
        prop_assert_eq!(most, 0);
        let bytewise: Vec<Vec<u8>> = stream.iter().map(|b| vec![*b]).collect();
        for split in [bytewise, chunks(&stream, &cuts)] {
            let (got, most) = decode_units(framing, max, &split);
            prop_assert_eq!(&got, &whole);
            prop_assert!(most <= largest, "buffered {} > largest unit {}", most, largest);
        }
    }

    #[test]
    fn stcp_records_survive_any_split(frames in frames_strategy(), cuts in prop::collection::vec(any::<usize>(), 0..20)) {
        prop_assert_eq!(&decode_stcp(&frames, &[], false), &frames);
        prop_assert_eq!(&decode_stcp(&frames, &cuts, false), &frames);
        prop_assert_eq!(&decode_stcp(&frames, &[], true), &frames);
    }

    #[test]
    fn seal_then_open_is_identity(payload in prop::collection::vec(any::<u8>(), 0..5000), rustcrypto in any::<bool>()) {
        let backend = if rustcrypto { CryptoBackend::RustCrypto } else { CryptoBackend::AwsLc };
        let (mut client, mut server) = session_pair(backend, 1 << 16);
        let mut r = plain_record(RecordType::Data, &payload);
        client.sealer.seal(&mut r).unwrap();
        if !payload.is_empty() && payload.len() > 16 {
            prop_assert_ne!(payload_of(&r), &payload[..]);
        }
        prop_assert_eq!(server.opener.open(&mut r), Ok(RecordType::Data));
        prop_assert_eq!(payload_of(&r), &payload[..]);
    }

    #[test]
    fn batches_equal_one_by_one(sizes in prop::collection::vec(0usize..3000, 1..8)) {
        // Three connections; each job holds several back-to-back records.
        let mut pairs: Vec<_> = (0..3).map(|_| session_pair(CryptoBackend::AwsLc, 1 << 16)).collect();
        let mut bufs: Vec<Vec<u8>> = (0..3)
            .map(|c| sizes.iter().flat_map(|&n| plain_record(RecordType::Data, &vec![c as u8; n])).collect())
            .collect();
        let originals = bufs.clone();
        let mut sealed_counts = vec![0; 3];
        seal_batch(
            pairs.iter_mut().zip(bufs.iter_mut()).map(|((c, _), b)| (&mut c.sealer, b.as_mut_slice())),
            |i, r| sealed_counts[i] = r.unwrap(),
        );
        prop_assert_eq!(&sealed_counts, &vec![sizes.len(); 3]);
        let mut opened = vec![0; 3];
        open_batch(
            pairs.iter_mut().zip(bufs.iter_mut()).map(|((_, s), b)| (&mut s.opener, b.as_mut_slice())),
            |i, r| opened[i] = r.unwrap(),
        );
        prop_assert_eq!(&opened, &vec![sizes.len(); 3]);
        // Headers are untouched and payloads are back: tags differ from zeros only.
        for (b, o) in bufs.iter().zip(originals.iter()) {
            let mut pos = 0;
            for &n in &sizes {
                prop_assert_eq!(&b[pos..pos + 4 + n], &o[pos..pos + 4 + n]);
                pos += n + 20;
            }
        }
    }
}
