//! `cargo bench -p stcp-proto`: record seal and open throughput per crypto
//! backend at the seed's payload sizes, one frame (its records: one up to
//! 16 KiB, four at 64 KiB) at a time and in batches across many connections,
//! plus full handshakes per second per backend and X25519 (key generation
//! plus agreement) per backend, the handshake's floor.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use stcp_proto::frame::FRAME_HEADER_LEN;
use stcp_proto::{
    frame_records, open_batch, seal_batch, sealed_frame_len, ClientConfig, ClientHandshake,
    CryptoBackend, RecordOpener, RecordSealer, ServerConfig, ServerHandshake, StaticKeypair,
};

const SIZES: [usize; 4] = [256, 4096, 16384, 65536];
/// Connections in one batch, as one io_uring completion batch might deliver.
const BATCH: usize = 16;

/// The records of one frame of `len` payload bytes, back to back, unsealed.
fn record(len: usize) -> Vec<u8> {
    let mut r = vec![0x5a; sealed_frame_len(len)];
    let mut at = 0;
    for (header, _) in frame_records(len) {
        header.write(&mut r[at..]);
        at += header.record_len();
    }
    r
}

fn keys() -> [u8; 32] {
    [0x24; 32]
}

fn seal_open(c: &mut Criterion) {
    for backend in CryptoBackend::ALL {
        let provider = backend.provider();
        let mut group = c.benchmark_group(format!("record/{backend}"));
        for len in SIZES {
            group.throughput(Throughput::Bytes(len as u64));
            group.bench_with_input(BenchmarkId::new("seal", len), &len, |b, &len| {
                let mut sealer = RecordSealer::new(provider, &keys());
                let mut r = record(len);
                b.iter(|| {
                    // Resealing the same buffer: the headers stay valid.
                    sealer.seal_all(black_box(&mut r)).unwrap();
                })
            });
            group.bench_with_input(BenchmarkId::new("open", len), &len, |b, &len| {
                // Pre-seal a ring of records so every open authenticates.
                let mut sealer = RecordSealer::new(provider, &keys());
                let mut opener = RecordOpener::new(provider, &keys(), 1 << 20);
                let mut sealed = Vec::new();
                b.iter_custom(|iters| {
                    let mut total = std::time::Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(256);
                        sealed.clear();
                        for _ in 0..n {
                            let mut r = record(len);
                            sealer.seal_all(&mut r).unwrap();
                            sealed.push(r);
                        }
                        let start = std::time::Instant::now();
                        for r in sealed.iter_mut() {
                            opener.open_all(black_box(r)).unwrap();
                        }
                        total += start.elapsed();
                        left -= n;
                    }
                    total
                })
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("batch{BATCH}/{backend}"));
        for len in SIZES {
            group.throughput(Throughput::Bytes((len * BATCH) as u64));
            group.bench_with_input(BenchmarkId::new("seal_batch", len), &len, |b, &len| {
                let mut sealers: Vec<RecordSealer> = (0..BATCH)
                    .map(|_| RecordSealer::new(provider, &keys()))
                    .collect();
                let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| record(len)).collect();
                b.iter(|| {
                    seal_batch(
                        sealers
                            .iter_mut()
                            .zip(bufs.iter_mut())
                            .map(|(s, b)| (s, b.as_mut_slice())),
                        |_, r| {
                            black_box(r.unwrap());
                        },
                    );
                })
            });
            group.bench_with_input(BenchmarkId::new("open_batch", len), &len, |b, &len| {
                let mut sealers: Vec<RecordSealer> = (0..BATCH)
                    .map(|_| RecordSealer::new(provider, &keys()))
                    .collect();
                let mut openers: Vec<RecordOpener> = (0..BATCH)
                    .map(|_| RecordOpener::new(provider, &keys(), 1 << 20))
                    .collect();
                let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| record(len)).collect();
                b.iter_custom(|iters| {
                    let mut total = std::time::Duration::ZERO;
                    for _ in 0..iters {
                        for (s, b) in sealers.iter_mut().zip(bufs.iter_mut()) {
                            s.seal_all(b).unwrap();
                        }
                        let start = std::time::Instant::now();
                        open_batch(
                            openers
                                .iter_mut()
                                .zip(bufs.iter_mut())
                                .map(|(o, b)| (o, b.as_mut_slice())),
                            |_, r| {
                                black_box(r.unwrap());
                            },
                        );
                        total += start.elapsed();
                    }
                    total
                })
            });
        }
        group.finish();
    }
}

fn handshakes(c: &mut Criterion) {
    let kp = StaticKeypair::generate([1; 32]);
    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Elements(1));
    for backend in CryptoBackend::ALL {
        let mut server = ServerConfig::new(kp.clone());
        server.crypto = backend.provider();
        let mut client = ClientConfig::new(kp.public);
        client.crypto = backend.provider();
        group.bench_function(BenchmarkId::new("nk_full", backend), |b| {
            let mut reply = Vec::new();
            let mut seed = 0u64;
            b.iter(|| {
                seed += 1;
                let mut s = [0u8; 32];
                s[..8].copy_from_slice(&seed.to_le_bytes());
                let (hs, hello) = ClientHandshake::start(&client, s).unwrap();
                s[8] = 1;
                let session =
                    ServerHandshake::accept(&server, s, &hello[FRAME_HEADER_LEN..], &mut reply)
                        .unwrap();
                let client_session = hs.finish(&reply[FRAME_HEADER_LEN..]).unwrap();
                black_box((session.handshake_hash, client_session.handshake_hash));
            })
        });
        // The server's half alone (what a server core pays in crypto per handshake): hellos
        // made beforehand, only `ServerHandshake::accept` timed.
        group.bench_function(BenchmarkId::new("nk_server_accept", backend), |b| {
            let mut reply = Vec::new();
            let mut seed = 0u64;
            b.iter_custom(|iters| {
                let hellos: Vec<Vec<u8>> = (0..iters)
                    .map(|_| {
                        seed += 1;
                        let mut s = [0u8; 32];
                        s[..8].copy_from_slice(&seed.to_le_bytes());
                        ClientHandshake::start(&client, s).unwrap().1
                    })
                    .collect();
                let start = std::time::Instant::now();
                for (i, hello) in hellos.iter().enumerate() {
                    let mut s = [1u8; 32];
                    s[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    let session =
                        ServerHandshake::accept(&server, s, &hello[FRAME_HEADER_LEN..], &mut reply)
                            .unwrap();
                    black_box(session.handshake_hash);
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// One X25519 key generation (from 32 given bytes, public key derived) plus
/// one agreement, as each backend's handshake does it: aws-lc-rs's
/// `agreement` for aws-lc, snow's default (curve25519-dalek) for RustCrypto.
/// A full NK handshake does three of each (both sides) plus the server's
/// static key import: this is the floor under `handshake/nk_full`.
fn x25519(c: &mut Criterion) {
    use aws_lc_rs::agreement::{agree, PrivateKey, UnparsedPublicKey, X25519};
    use snow::params::DHChoice;
    use snow::resolvers::{CryptoResolver, DefaultResolver};

    let peer = StaticKeypair::generate([3; 32]).public;
    let mut group = c.benchmark_group("x25519_keygen_agree");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::from_parameter(CryptoBackend::AwsLc), |b| {
        let mut private = [7u8; 32];
        b.iter(|| {
            private[0] = private[0].wrapping_add(1);
            let key = PrivateKey::from_private_key(&X25519, black_box(&private)).unwrap();
            let public = key.compute_public_key().unwrap();
            let mut out = [0u8; 32];
            agree(&key, UnparsedPublicKey::new(&X25519, &peer), (), |s| {
                out.copy_from_slice(s);
                Ok(())
            })
            .unwrap();
            black_box((public.as_ref()[0], out));
        })
    });
    group.bench_function(
        BenchmarkId::from_parameter(CryptoBackend::RustCrypto),
        |b| {
            let mut dh = DefaultResolver.resolve_dh(&DHChoice::Curve25519).unwrap();
            let mut private = [7u8; 32];
            b.iter(|| {
                private[0] = private[0].wrapping_add(1);
                dh.set(black_box(&private));
                let mut out = [0u8; 32];
                dh.dh(&peer, &mut out).unwrap();
                black_box((dh.pubkey()[0], out));
            })
        },
    );
    group.finish();
}

criterion_group!(benches, seal_open, handshakes, x25519);
criterion_main!(benches);
