//! Authentication of the record layer, structurally: a run of genuinely
//! sealed records (with a fuzzer-chosen rekey schedule, so keys change
//! mid-run) goes through fuzzer-chosen mutations: records swapped, replayed,
//! dropped, re-typed, re-sealed under another key; bits flipped, bytes set,
//! inserted or deleted, the stream cut. The opener must accept exactly the
//! records that are still the genuine record for their position and refuse
//! the first that is not; `open_all` and `open_batch` must agree with it.
//!
//! Input: `[flags] [max_records] [max_bytes: u16] [count] [count lengths:
//! u16] [mutations...]`; flags bit 0 seals with RustCrypto, bit 1 opens
//! with RustCrypto, bit 2 ends the run with a close record.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stcp_proto::{
    open_batch, write_record_header, CryptoProvider, Error, RecordOpener, RecordSealer, RecordType,
    RekeyPolicy, RECORD_HEADER_LEN, RECORD_OVERHEAD,
};
use stcp_proto_fuzz::fixture::provider;
use stcp_proto_fuzz::input::Reader;

const KEY: [u8; 32] = [0x11; 32];
const WRONG_KEY: [u8; 32] = [0x22; 32];
const MAX_PAYLOAD: usize = 1024;
const MAX_RECORDS: u8 = 8;

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
    let count = 1 + input.u8() % MAX_RECORDS;
    let mut kinds: Vec<RecordType> = (0..count).map(|_| RecordType::Data).collect();
    if flags & 4 != 0 {
        kinds.push(RecordType::Close);
    }
    let genuine = seal_run(&mut input, &kinds, sealer_crypto, policy);
    let original: Vec<u8> = genuine.iter().flat_map(|g| g.wire.clone()).collect();
    let mutated = mutate(&mut input, &genuine);

    let opener = || RecordOpener::with_policy(opener_crypto, &KEY, MAX_PAYLOAD, policy);
    let (opened, clean_end) = open_one_by_one(&mut opener(), &mutated, &genuine);

    let mut all = opener();
    let result = all.open_all(&mut mutated.clone());
    assert_eq!(
        all.counter() as usize,
        opened,
        "open_all opened another count"
    );
    assert_eq!(result.is_ok(), clean_end);

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
});

/// Seals `kinds` records (payload lengths from `input`) under `KEY` and
/// again under `WRONG_KEY`, with the same policy.
fn seal_run(
    input: &mut Reader<'_>,
    kinds: &[RecordType],
    crypto: &'static CryptoProvider,
    policy: RekeyPolicy,
) -> Vec<Genuine> {
    let mut sealer = RecordSealer::with_policy(crypto, &KEY, policy);
    let mut wrong = RecordSealer::with_policy(crypto, &WRONG_KEY, policy);
    let mut out = Vec::new();
    for (i, &kind) in kinds.iter().enumerate() {
        let len = match kind {
            RecordType::Data => input.u16() as usize % (MAX_PAYLOAD + 1),
            RecordType::Close => 0,
        };
        let payload: Vec<u8> = (0..len).map(|j| (i * 31 + j * 7) as u8).collect();
        let mut wire = vec![0; RECORD_OVERHEAD + len];
        write_record_header(&mut wire, kind, len);
        wire[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len].copy_from_slice(&payload);
        let mut wrong_key = wire.clone();
        assert_eq!(sealer.seal(&mut wire), Ok(kind));
        assert_eq!(wrong.seal(&mut wrong_key), Ok(kind));
        out.push(Genuine {
            kind,
            payload,
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
    let mut stream: Vec<u8> = records.into_iter().flat_map(|(_, r)| r).collect();
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
        let Some(header) = rest.get(..RECORD_HEADER_LEN) else {
            break;
        };
        let expected = genuine.get(k);
        let header = match opener.parse_header(header.try_into().unwrap()) {
            Ok(h) => h,
            Err(e) => {
                assert!(
                    expected.is_none_or(|g| g.wire[..RECORD_HEADER_LEN] != *header),
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
                    &record[RECORD_HEADER_LEN..wire.len() - stcp_proto::TAG_LEN],
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
