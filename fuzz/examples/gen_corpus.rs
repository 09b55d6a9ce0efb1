//! Writes the seed corpora in `fuzz/corpus/<target>/`: a few small valid
//! inputs per target, made with the same fixture the targets use, so that
//! recorded sessions replay. Run from the repository root:
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example gen_corpus
//! ```
//!
//! Output is deterministic; existing seed files of the same name are
//! overwritten, other files are left alone. With `--check` nothing is
//! written: it exits 1 when a committed seed differs from what it would
//! write (the protocol changed: regenerate them, or recorded sessions no
//! longer replay and the fuzzer starts from shallow inputs).

use stcp_proto::Connection;
use stcp_proto_fuzz::fixture::Setup;
use stcp_proto_fuzz::genuine::Plan;
use stcp_proto_fuzz::input::{encode_split_stream, even_cuts};
use std::fs;
use std::path::Path;
use std::process::ExitCode;

/// Flags bits shared by the stream targets (see `Setup::from_flags`).
const PSK: u8 = 1;
const RUSTCRYPTO: u8 = 2;
const MAX_100: u8 = 2 << 2;
const MAX_1024: u8 = 3 << 2;

/// Seeds as (target, file name, bytes).
type Seeds = Vec<(&'static str, String, Vec<u8>)>;

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            eprintln!("usage: gen_corpus [--check]; unknown argument {other}");
            return ExitCode::from(2);
        }
    };
    let mut seeds = Seeds::new();
    frame_decoder(&mut Out("frame_decoder", &mut seeds));
    server_handshake(&mut Out("server_handshake", &mut seeds));
    client_handshake(&mut Out("client_handshake", &mut seeds));
    record_open(&mut Out("record_open", &mut seeds));
    record_tamper(&mut Out("record_tamper", &mut seeds));
    connection_stream(&mut Out("connection_stream", &mut seeds));

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut stale = 0;
    for (target, name, bytes) in &seeds {
        let path = root.join(target).join(name);
        if check {
            if fs::read(&path).ok().as_ref() != Some(bytes) {
                eprintln!("stale or missing seed: {}", path.display());
                stale += 1;
            }
        } else {
            fs::create_dir_all(path.parent().unwrap()).expect("create corpus dir");
            fs::write(&path, bytes).expect("write seed");
            println!("{} ({} bytes)", path.display(), bytes.len());
        }
    }
    if stale > 0 {
        eprintln!(
            "{stale} seed(s) differ from what gen_corpus writes; regenerate them with \
             `cargo run --manifest-path fuzz/Cargo.toml --example gen_corpus`"
        );
        return ExitCode::FAILURE;
    }
    if check {
        println!("{} seed files are current", seeds.len());
    }
    ExitCode::SUCCESS
}

/// Where one target's seeds go.
struct Out<'a>(&'static str, &'a mut Seeds);

fn write(out: &mut Out<'_>, name: &str, bytes: &[u8]) {
    out.1.push((out.0, name.to_string(), bytes.to_vec()));
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

const HTTP_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
/// The start of a TLS 1.2/1.3 ClientHello record.
const TLS_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03, 0x00, 0x01, 0x02, 0x03,
];

fn frame_decoder(dir: &mut Out<'_>) {
    // Mode byte: 0 a handshake frame then records, 1 records, 2 plain frames
    // (+4: take reassembled units out of the decoder).
    const HANDSHAKE: u8 = 0;
    const RECORDS: u8 = 1;
    const FRAMES: u8 = 2;
    const TAKE: u8 = 4;
    let seed = |mode: u8, max: u8, cuts: &[u8], stream: &[u8]| {
        let mut seed = vec![mode, max];
        seed.extend(encode_split_stream(cuts, stream));
        seed
    };

    let stream = [frame(b"hi"), frame(b""), frame(&[b'x'; 16])].concat();
    write(
        dir,
        "three-frames",
        &seed(FRAMES, 16, &[1, 2, 3, 0, 5], &stream),
    );
    let stream = [frame(b"ok"), vec![0, 0, 0, 17], vec![0; 17]].concat();
    write(dir, "over-max", &seed(FRAMES, 16, &[6, 1], &stream));
    let cuts = even_cuts(14, 1);
    write(
        dir,
        "empty-frames-bytewise",
        &seed(FRAMES, 0, &cuts, &[0; 14]),
    );
    let stream = [0xff, 0xff, 0xff, 0xff, 1, 2];
    write(dir, "len-ffffffff", &seed(FRAMES, 255, &[], &stream));
    write(dir, "http-get", &seed(FRAMES, 255, &[3], HTTP_GET));

    let records = [record(0, b"hello"), record(0, &[0xab; 40]), record(1, b"")].concat();
    write(dir, "records", &seed(RECORDS, 64, &[3, 30, 1], &records));
    let cuts = even_cuts(records.len(), 7);
    write(
        dir,
        "records-taken",
        &seed(RECORDS | TAKE, 64, &cuts, &records),
    );
    let bad = [record(0, b"ok"), vec![0x20, 0, 0, 16], vec![0; 16]].concat();
    write(dir, "record-bad-type", &seed(RECORDS, 64, &[10], &bad));
    let short = [record(0, b"ok"), vec![0, 0, 0, 15]].concat();
    write(
        dir,
        "record-shorter-than-tag",
        &seed(RECORDS, 64, &[], &short),
    );

    let hello = frame(&[b'S'; 56]);
    let stream = [hello.clone(), records.clone()].concat();
    write(
        dir,
        "hello-then-records",
        &seed(HANDSHAKE, 64, &[2, 40, 20], &stream),
    );
    let stream = [vec![0, 0, 1, 1], vec![0; 8]].concat();
    write(dir, "hello-over-cap", &seed(HANDSHAKE, 64, &[2], &stream));
    write(dir, "tls-hello", &seed(HANDSHAKE, 64, &[1], TLS_HELLO));
}

/// An unsealed record of type `kind` (0 data, 1 close): the decoder reads
/// only headers, so the body and tag may be anything.
fn record(kind: u8, payload: &[u8]) -> Vec<u8> {
    let word = (u32::from(kind) << 28) | (payload.len() as u32 + 16);
    let mut out = word.to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out.extend_from_slice(&[0x77; 16]);
    out
}

/// Payloads of the recorded sessions.
fn payloads() -> Vec<Vec<u8>> {
    vec![
        b"hello".to_vec(),
        Vec::new(),
        vec![0xab; 90],
        b"bye".to_vec(),
    ]
}

/// What `sender` queues for `payloads()` and then a close.
fn records(sender: &mut Connection) -> Vec<u8> {
    for p in payloads() {
        sender.send_frame(&p).expect("send");
    }
    sender.close().expect("close");
    let bytes = sender.poll_transmit().to_vec();
    sender.advance_transmit(bytes.len());
    bytes
}

/// A stream target's seed: flags, plan, then a split stream.
fn stream_seed(flags: u8, plan: &[u8], cuts: &[u8], stream: &[u8]) -> Vec<u8> {
    [&[flags][..], plan, &encode_split_stream(cuts, stream)].concat()
}

/// A planned seed: name, payload lengths, close, cuts, raw bytes after.
type PlanCase = (
    &'static str,
    &'static [u8],
    bool,
    &'static [u8],
    &'static [u8],
);

/// Plans for the stream targets: a genuine prefix, then a few raw bytes.
const PLANS: [PlanCase; 4] = [
    ("three-and-close", &[5, 0, 90], true, &[7, 0, 40], b""),
    (
        "two-then-junk",
        &[3, 3],
        false,
        &[],
        b"\x00\x00\x00\x13junk",
    ),
    ("close-then-byte", &[1], true, &[], b"\x00"),
    ("handshake-only", &[], false, &[2], b""),
];

fn planned(dir: &mut Out<'_>, flags: u8, name: &str) {
    for (case, lens, close, cuts, raw) in PLANS {
        let seed = stream_seed(flags, &Plan::encode(lens, close), cuts, raw);
        write(dir, &format!("plan-{name}-{case}"), &seed);
    }
}

fn server_handshake(dir: &mut Out<'_>) {
    for (name, flags) in [
        ("nk", 0),
        ("psk", PSK),
        ("rustcrypto-max100", RUSTCRYPTO | MAX_100),
    ] {
        let setup = Setup::from_flags(flags);
        planned(dir, flags, name);
        let (mut client, _server) = setup.established_pair();
        let stream = [setup.hello(), &records(&mut client)].concat();
        for (cut_name, cuts) in [("whole", vec![]), ("pieces", vec![3, 9, 60, 1, 30])] {
            let seed = stream_seed(flags, &[0], &cuts, &stream);
            write(dir, &format!("session-{name}-{cut_name}"), &seed);
        }
        let seed = stream_seed(flags, &[0], &[], &setup.hello()[..30]);
        write(dir, &format!("hello-cut-{name}"), &seed);
    }
    let mut wrong_version = Setup::from_flags(0).hello().to_vec();
    wrong_version[8] = 2;
    for (name, stream) in [
        ("http-get", HTTP_GET.to_vec()),
        ("tls-client-hello", TLS_HELLO.to_vec()),
        ("wrong-version", wrong_version),
    ] {
        write(dir, name, &stream_seed(0, &[0], &[], &stream));
    }
}

fn client_handshake(dir: &mut Out<'_>) {
    for (name, flags) in [
        ("nk", 0),
        ("psk", PSK),
        ("rustcrypto-max1024", RUSTCRYPTO | MAX_1024),
    ] {
        let setup = Setup::from_flags(flags);
        planned(dir, flags, name);
        let (_client, mut server) = setup.established_pair();
        let stream = [setup.reply(), &records(&mut server)].concat();
        for (cut_name, cuts) in [("whole", vec![]), ("pieces", vec![2, 50, 7, 0, 40])] {
            let seed = stream_seed(flags, &[0], &cuts, &stream);
            write(dir, &format!("session-{name}-{cut_name}"), &seed);
        }
    }
}

fn record_open(dir: &mut Out<'_>) {
    for (name, flags) in [
        ("nk", 0),
        ("psk-rustcrypto", PSK | RUSTCRYPTO),
        ("max100", MAX_100),
    ] {
        let setup = Setup::from_flags(flags);
        planned(dir, flags, name);
        let (mut client, _server) = setup.established_pair();
        let stream = records(&mut client);
        for (cut_name, cuts) in [("whole", vec![]), ("pieces", vec![1, 3, 20, 21, 0, 64])] {
            let seed = stream_seed(flags, &[0], &cuts, &stream);
            write(dir, &format!("records-{name}-{cut_name}"), &seed);
        }
    }
}

fn record_tamper(dir: &mut Out<'_>) {
    // [flags] [max_records] [max_bytes u16] [count] [lengths u16...] [mutations...]
    let run = |flags: u8, lens: &[u16]| -> Vec<u8> {
        let mut out = vec![flags, 2, 0, 100, lens.len() as u8 - 1];
        for len in lens {
            out.extend_from_slice(&len.to_be_bytes());
        }
        out
    };
    write(dir, "untouched", &run(0, &[5, 0, 300]));
    write(dir, "untouched-close-crossed", &run(4 | 1, &[10, 20]));
    // Byte mutation 5 (flip bit): position 30, bit 3.
    write(
        dir,
        "flip-bit",
        &[run(0, &[40, 40]), vec![5, 0, 30, 3]].concat(),
    );
    // Record mutation 0 (swap) of records 0 and 1.
    write(dir, "swap", &[run(2, &[8, 8, 8]), vec![0, 0, 1]].concat());
    // Record mutation 3 (wrong key) on record 1.
    write(dir, "wrong-key", &[run(0, &[8, 8]), vec![3, 1, 0]].concat());
    // Close at the end, then mutation 1 (replay) of record 0 after it.
    write(
        dir,
        "replay-after-close",
        &[run(4, &[3]), vec![1, 0, 2]].concat(),
    );
    // Byte mutation 7 (truncate) at 25.
    write(dir, "cut", &[run(0, &[16, 16]), vec![7, 0, 25, 0]].concat());
}

fn connection_stream(dir: &mut Out<'_>) {
    // Op codes: see `Op::read` in fuzz_targets/connection_stream.rs.
    let send = |from: u8, size: u16| [vec![from], size.to_be_bytes().to_vec()].concat();
    let deliver = |from: u8, max: u16| [vec![2 + from], max.to_be_bytes().to_vec()].concat();
    let (client, server) = (0u8, 1u8);
    let echo = [
        deliver(client, 0),
        deliver(server, 0),
        send(client, 5),
        send(client, 300),
        deliver(client, 7),
        deliver(client, 0),
        send(server, 5),
        send(server, 0),
        deliver(server, 3),
        vec![6],
        deliver(client, 0),
        vec![7],
        deliver(server, 0),
        vec![8, 9],
    ]
    .concat();
    for (name, flags) in [("stcp", 0u8), ("tcp", 1), ("stcp-psk-rustcrypto", 2 | 4)] {
        write(
            dir,
            &format!("echo-{name}"),
            &[vec![flags, 255, 255], echo.clone()].concat(),
        );
    }
    let injected = [
        deliver(client, 0),
        deliver(server, 0),
        send(client, 20),
        vec![4, 3, 1, 2, 3],
        deliver(client, 0),
    ]
    .concat();
    write(dir, "inject-stcp", &[vec![0, 255, 255], injected].concat());
    let oversized = [
        deliver(client, 0),
        deliver(server, 0),
        send(client, 10),
        send(client, 100),
        send(client, 1),
    ]
    .concat();
    write(
        dir,
        "oversized-stcp",
        &[vec![0, 255, 1], oversized.clone()].concat(),
    );
    write(dir, "oversized-tcp", &[vec![1, 255, 1], oversized].concat());
    let late = [deliver(client, 30), vec![10, 11], deliver(client, 0)].concat();
    write(
        dir,
        "handshake-timeout",
        &[vec![0, 255, 255], late].concat(),
    );
}
