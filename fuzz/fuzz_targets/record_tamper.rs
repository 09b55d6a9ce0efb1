//! Authentication of the record layer, structurally: a run of genuinely
//! sealed frames (each one record, or a `Begin`, `Continue`s and an `End`
//! when over 16 KiB, with a fuzzer-chosen rekey schedule, so keys change
//! mid-run and mid-frame) goes through fuzzer-chosen mutations: records
//! swapped, replayed, dropped, re-typed, re-sealed under another key; bits
//! flipped, bytes set, inserted or deleted, the stream cut. The opener must
//! accept exactly the records that are still the genuine record for their
//! position and refuse the first that is not, with the error the reference
//! receiver written from docs/PROTOCOL.md gives (`oracle::RecordWalker`: a
//! header's rules, a record after the Close, a frame's sequence and length
//! rules, each before authentication); `open_all` and `open_batch` must
//! agree with it. The sealer cuts each frame into records as documented
//! (`oracle::documented_frame_records`, `sealed_frame_len`).
//!
//! Input: `[flags] [max_records] [max_bytes: u16] [count] [count lengths:
//! u16] [mutations...]`; flags bit 0 seals with RustCrypto, bit 1 opens
//! with RustCrypto, bit 2 ends the run with a close record. A length is
//! `input::frame_len16`: up to 4 KiB, or one at a 16 KiB record boundary;
//! frames past `MAX_RUN` bytes in all are left out.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stcp_proto::{
    frame_records, open_batch, sealed_frame_len, write_record_header, CipherState, CryptoProvider,
    Error, RecordOpener, RecordSealer, RecordType, RekeyPolicy, RECORD_OVERHEAD,
};
use stcp_proto_fuzz::fixture::provider;
use stcp_proto_fuzz::input::{frame_len16, pattern, Reader, LONGEST_FRAME};
use stcp_proto_fuzz::oracle::{
    documented_frame_records, documented_record_header, RecordWalker, WalkEnd, TAG_BYTES,
};

const KEY: [u8; 32] = [0x11; 32];
const WRONG_KEY: [u8; 32] = [0x22; 32];
/// The opener's frame limit: every frame length the input can ask for.
const MAX_FRAME: usize = LONGEST_FRAME;
const MAX_FRAMES: u8 = 8;
/// Frames after this many payload bytes in all are left out of the run
/// (they would only make the input slower to run).
const MAX_RUN: usize = 2 * LONGEST_FRAME;

/// One genuine record: its type, plaintext and sealed bytes.
struct Genuine {
    kind: RecordType,
    payload: Vec<u8>,
    wire: Vec<u8>,
    /// The same record sealed under `WRONG_KEY`.
    wrong_key: Vec<u8>,
}

fuzz_target!(|data: &[u8]| {
    let mut input = Reader::new(data);
    let flags = input.u8();
    let sealer_crypto = provider(flags & 1 != 0);
    let opener_crypto = provider(flags & 2 != 0);
    let policy = RekeyPolicy {
        max_records: 1 + u64::from(input.u8() % 8),
        max_bytes: 1 + u64::from(input.u16()),
    };
    let count = 1 + input.u8() % MAX_FRAMES;
    let mut total = 0;
    let lens: Vec<usize> = (0..count)
        .map(|_| frame_len16(input.u16()))
        .filter(|len| {
            total += len;
            total <= MAX_RUN
        })
        .collect();
    let genuine = seal_run(&lens, flags & 4 != 0, sealer_crypto, policy);
    let original: Vec<u8> = genuine
        .iter()
        .map(|g| &g.wire[..])
        .collect::<Vec<_>>()
        .concat();
    let mutated = mutate(&mut input, &genuine);

    let opener = || RecordOpener::with_policy(opener_crypto, &KEY, MAX_FRAME, policy);
    let (opened, clean_end) = open_one_by_one(&mut opener(), &mutated, &genuine);

    // The reference reading of the same bytes.
    let mut cipher = CipherState::new(opener_crypto, &KEY);
    let walked = RecordWalker::new(&mut cipher, policy, MAX_FRAME).walk(&mutated);
    assert_eq!(
        walked.records.len(),
        opened,
        "the reference opened another count"
    );

    let mut all = opener();
    let result = all.open_all(&mut mutated.clone());
    assert_eq!(
        all.counter() as usize,
        opened,
        "open_all opened another count"
    );
    assert_eq!(result.is_ok(), clean_end);
    match (&walked.end, &result) {
        (WalkEnd::Clean, Ok(n)) => assert_eq!(*n, opened),
        (WalkEnd::Incomplete(_), Err(e)) => assert_eq!(*e, Error::BadLength),
        (WalkEnd::Refused(_, error), Err(e)) => assert_eq!(e, error),
        (end, result) => panic!("open_all gave {result:?}, the reference {end:?}"),
    }

    let (mut batch_mutated, mut batch_original) = (opener(), opener());
    let mut bufs = [mutated.clone(), original.clone()];
    let [buf_mutated, buf_original] = &mut bufs;
    let mut results = Vec::new();
    open_batch(
        [
            (&mut batch_mutated, &mut buf_mutated[..]),
            (&mut batch_original, &mut buf_original[..]),
        ],
        |i, r| results.push((i, r)),
    );
    assert_eq!(results.len(), 2);
    assert_eq!((results[0].0, results[0].1.is_ok()), (0, clean_end));
    assert_eq!(batch_mutated.counter() as usize, opened);
    assert_eq!(results[1], (1, Ok(genuine.len())), "the genuine run failed");
    assert_eq!(batch_original.peer_closed(), flags & 4 != 0);
    assert_eq!(batch_original.frames(), lens.len() as u64);
});

/// Seals frames of `lens` bytes (then a close when `close`) under `KEY`
/// and again under `WRONG_KEY`, with the same policy, checking the records
/// each frame is cut into. Returns the records.
fn seal_run(
    lens: &[usize],
    close: bool,
    crypto: &'static CryptoProvider,
    policy: RekeyPolicy,
) -> Vec<Genuine> {
    let mut sealer = RecordSealer::with_policy(crypto, &KEY, policy);
    let mut wrong = RecordSealer::with_policy(crypto, &WRONG_KEY, policy);
    let mut out = Vec::new();
    for (i, &len) in lens.iter().enumerate() {
        let frame = pattern(len, i * 31, 7);
        let records: Vec<_> = frame_records(len).collect();
        let cut: Vec<(RecordType, usize)> = records
            .iter()
            .map(|(h, _)| (h.kind, h.payload_len))
            .collect();
        assert_eq!(cut, documented_frame_records(len), "frame of {len} bytes");
        let mut on_wire = 0;
        for (header, offset) in records {
            let payload = frame[offset..offset + header.payload_len].to_vec();
            let mut wire = vec![0; header.record_len()];
            let h = header.write(&mut wire);
            wire[h..h + payload.len()].copy_from_slice(&payload);
            let documented = documented_record_header(&wire, MAX_FRAME).expect("a good header");
            assert_eq!(documented.announced.unwrap_or(len), len);
            let mut wrong_key = wire.clone();
            assert_eq!(sealer.seal(&mut wire), Ok(header.kind));
            assert_eq!(wrong.seal(&mut wrong_key), Ok(header.kind));
            on_wire += wire.len();
            out.push(Genuine {
                kind: header.kind,
                payload,
                wire,
                wrong_key,
            });
        }
        assert_eq!(on_wire, sealed_frame_len(len), "sealed_frame_len({len})");
    }
    if close {
        let mut wire = vec![0; RECORD_OVERHEAD];
        write_record_header(&mut wire, RecordType::Close, 0);
        let mut wrong_key = wire.clone();
        assert_eq!(sealer.seal(&mut wire), Ok(RecordType::Close));
        assert_eq!(wrong.seal(&mut wrong_key), Ok(RecordType::Close));
        out.push(Genuine {
            kind: RecordType::Close,
            payload: Vec::new(),
            wire,
            wrong_key,
        });
    }
    out
}

/// Applies the mutations in `input`: those on whole records first, in
/// order, then those on the bytes of the resulting stream, in order.
fn mutate(input: &mut Reader<'_>, genuine: &[Genuine]) -> Vec<u8> {
    let mut records: Vec<(usize, Vec<u8>)> = genuine
        .iter()
        .enumerate()
        .map(|(i, g)| (i, g.wire.clone()))
        .collect();
    let mut byte_ops = Vec::new();
    while !input.is_empty() {
        let op = input.u8() % 10;
        if op >= 5 {
            byte_ops.push((op, input.u16() as usize, input.u8()));
            continue;
        }
        let (a, b) = (input.u8() as usize, input.u8() as usize);
        if records.is_empty() {
            continue;
        }
        let i = a % records.len();
        match op {
            0 => {
                let j = b % records.len();
                records.swap(i, j);
            }
            1 => {
                let copy = records[i].clone();
                records.insert(b % (records.len() + 1), copy);
            }
            2 => {
                records.remove(i);
            }
            3 => records[i].1 = genuine[records[i].0].wrong_key.clone(),
            _ => records[i].1[0] = ((b as u8) << 4) | (records[i].1[0] & 0x0f),
        }
    }
    let mut stream: Vec<u8> = records
        .into_iter()
        .map(|(_, r)| r)
        .collect::<Vec<_>>()
        .concat();
    for (op, pos, value) in byte_ops {
        let len = stream.len();
        match op {
            5 if len > 0 => stream[pos % len] ^= 1 << (value % 8),
            6 if len > 0 => stream[pos % len] = value,
            7 => stream.truncate(pos % (len + 1)),
            8 => stream.insert(pos % (len + 1), value),
            9 if len > 0 => {
                let at = pos % len;
                let end = (at + value as usize).min(len);
                stream.drain(at..end);
            }
            _ => {}
        }
    }
    stream
}

/// Opens `stream` record by record as a receiver would. A record opens if
/// and only if it is the genuine record for its position; after the first
/// refusal nothing more is tried. Returns how many opened and whether the
/// whole stream was used up by them.
fn open_one_by_one(opener: &mut RecordOpener, stream: &[u8], genuine: &[Genuine]) -> (usize, bool) {
    let mut pos = 0;
    let mut k = 0;
    loop {
        let rest = &stream[pos..];
        if rest.is_empty() {
            return (k, true);
        }
        let expected = genuine.get(k);
        let header = match opener.parse_header(rest) {
            Ok(h) => h,
            Err(e) => {
                assert!(
                    expected.is_none_or(|g| !rest.starts_with(&g.wire[..g.kind.header_len()])),
                    "record {k}: a genuine header refused: {e:?}"
                );
                break;
            }
        };
        let Some(wire) = rest.get(..header.record_len()) else {
            break;
        };
        let is_genuine = expected.is_some_and(|g| g.wire == wire);
        let was_closed = opener.peer_closed();
        let mut record = wire.to_vec();
        match opener.open(&mut record) {
            Ok(kind) => {
                let g = expected.filter(|_| is_genuine).unwrap_or_else(|| {
                    panic!("record {k} is not the genuine one but opened ({kind:?})")
                });
                assert_eq!(kind, g.kind);
                assert_eq!(
                    &record[kind.header_len()..wire.len() - TAG_BYTES],
                    g.payload
                );
            }
            Err(e) => {
                assert!(!is_genuine, "genuine record {k} refused: {e:?}");
                if was_closed {
                    assert_eq!(e, Error::RecordAfterClose);
                }
                assert_eq!(
                    opener.counter() as usize,
                    k,
                    "a refused record moved the counter"
                );
                break;
            }
        }
        pos += wire.len();
        k += 1;
    }
    (k, false)
}
