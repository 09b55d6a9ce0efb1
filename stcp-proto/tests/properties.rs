//! Property tests: any split of a byte stream decodes to the same frames, in
//! TCP and STCP mode; seal then open is the identity; batches equal one-by-one.

mod common;

use common::{payload_of, plain_record, session_pair};
use proptest::prelude::*;
use stcp_proto::{
    frame::frame_header, open_batch, seal_batch, ClientConfig, Connection, CryptoBackend, Event,
    FrameDecoder, Mode, RecordType, ServerConfig, StaticKeypair,
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

fn decode_plain(chunks: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut d = FrameDecoder::new(1 << 16);
    let mut out = Vec::new();
    for c in chunks {
        d.push(c);
        while let Some(f) = d.next_frame().unwrap() {
            out.push(f.to_vec());
        }
    }
    assert_eq!(d.buffered(), 0);
    out
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
