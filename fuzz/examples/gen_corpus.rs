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

use stcp_proto::handshake::VERSION;
use stcp_proto::Connection;
use stcp_proto_fuzz::fixture::Setup;
use stcp_proto_fuzz::genuine::{self, Plan, OPEN};
use stcp_proto_fuzz::input::{
    encode_split_stream, even_cuts, BOUNDARY_CODE, BOUNDARY_CODE16, LONG_CUT, RECORD,
};
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
    // (+4: take reassembled units out of the decoder; +8: the maximum in KiB).
    const HANDSHAKE: u8 = 0;
    const RECORDS: u8 = 1;
    const FRAMES: u8 = 2;
    const TAKE: u8 = 4;
    const KIB: u8 = 8;
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
    // Plain frames longer than the input under a maximum in KiB: FrameStream
    // owes the rest of the last one.
    let stream = [frame(&[1; 300]), vec![0, 1, 0, 0], vec![2; 100]].concat();
    write(
        dir,
        "frames-kib-max-cut",
        &seed(FRAMES | KIB, 64, &[2, 200, 103, 1], &stream),
    );

    let records = [
        record(DATA, b"hello"),
        record(DATA, &[0xab; 40]),
        record(CLOSE_RECORD, b""),
    ]
    .concat();
    write(dir, "records", &seed(RECORDS, 64, &[3, 30, 1], &records));
    let cuts = even_cuts(records.len(), 7);
    write(
        dir,
        "records-taken",
        &seed(RECORDS | TAKE, 64, &cuts, &records),
    );
    let bad = [record(DATA, b"ok"), vec![0x50, 0, 0, 16], vec![0; 16]].concat();
    write(dir, "record-bad-type", &seed(RECORDS, 64, &[10], &bad));
    let short = [record(DATA, b"ok"), vec![0, 0, 0, 15]].concat();
    write(
        dir,
        "record-shorter-than-tag",
        &seed(RECORDS, 64, &[], &short),
    );
    // A frame of three records, then a one-record frame and the close.
    let frame_of_three = [
        begin(30, &[1; 10]),
        record(CONTINUE, &[2; 10]),
        record(END, &[3; 10]),
        record(DATA, b"abc"),
        record(CLOSE_RECORD, b""),
    ]
    .concat();
    write(
        dir,
        "records-frame-of-three",
        &seed(RECORDS, 64, &[5, 20, 9], &frame_of_three),
    );
    // Every sequence rule broken once (each refused record is skipped by the
    // target's sequence check, which goes on): a Continue with no Begin; a
    // Data inside a frame; an End short of the frame; a Continue taking all
    // that is left; a Close inside a frame; then the frame ends right, and
    // an End with no Begin.
    let sequence = [
        record(CONTINUE, &[5; 5]),
        begin(20, &[1; 5]),
        record(DATA, b"x"),
        record(END, &[2; 3]),
        record(CONTINUE, &[3; 15]),
        record(CLOSE_RECORD, b""),
        record(CONTINUE, &[4; 5]),
        record(END, &[5; 10]),
        record(END, b"z"),
    ]
    .concat();
    write(
        dir,
        "records-sequence-errors",
        &seed(RECORDS, 64, &[], &sequence),
    );
    // A Begin announcing more than the maximum, and one announcing no more
    // than it carries.
    let over = [record(DATA, b"ok"), begin(65, &[1; 10])].concat();
    write(dir, "record-begin-over-max", &seed(RECORDS, 64, &[], &over));
    let not_longer = [begin(10, &[1; 10]), record(END, b"x")].concat();
    write(
        dir,
        "record-begin-not-longer",
        &seed(RECORDS, 64, &[], &not_longer),
    );
    // An empty Continue inside a frame: refused from its header.
    let empty = [begin(20, &[1; 10]), record(CONTINUE, b"")].concat();
    write(
        dir,
        "record-empty-continue",
        &seed(RECORDS, 64, &[], &empty),
    );
    // The 16 KiB edge under a 32 KiB maximum: a full record's header is
    // fine (the record is not all there), one more byte is refused.
    let word =
        |kind: u8, payload: usize| (u32::from(kind) << 28 | (payload as u32 + 16)).to_be_bytes();
    let full = [&record(DATA, b"ok")[..], &word(DATA, RECORD), &[7; 100]].concat();
    write(
        dir,
        "record-16k",
        &seed(RECORDS | KIB, 32, &[30, 50], &full),
    );
    let over = [&record(DATA, b"ok")[..], &word(DATA, RECORD + 1), &[7; 100]].concat();
    write(
        dir,
        "record-16k-plus-1",
        &seed(RECORDS | KIB, 32, &[], &over),
    );
    let begin_full = [
        &word(BEGIN, RECORD)[..],
        &(RECORD as u32 * 2).to_be_bytes(),
        &[7; 60],
    ]
    .concat();
    write(
        dir,
        "record-begin-16k",
        &seed(RECORDS | KIB, 64, &[6], &begin_full),
    );

    let hello = frame(&[b'S'; 56]);
    let stream = [hello.clone(), records.clone()].concat();
    write(
        dir,
        "hello-then-records",
        &seed(HANDSHAKE, 64, &[2, 40, 20], &stream),
    );
    let stream = [hello, frame_of_three].concat();
    write(
        dir,
        "hello-then-frame-of-three",
        &seed(HANDSHAKE, 64, &[60, 7], &stream),
    );
    let stream = [vec![0, 0, 1, 1], vec![0; 8]].concat();
    write(dir, "hello-over-cap", &seed(HANDSHAKE, 64, &[2], &stream));
    write(dir, "tls-hello", &seed(HANDSHAKE, 64, &[1], TLS_HELLO));
}

/// Record types (docs/PROTOCOL.md section 4).
const DATA: u8 = 0;
const CLOSE_RECORD: u8 = 1;
const BEGIN: u8 = 2;
const CONTINUE: u8 = 3;
const END: u8 = 4;

/// An unsealed record of type `kind` (not `BEGIN`): the decoder reads only
/// headers, so the body and tag may be anything.
fn record(kind: u8, payload: &[u8]) -> Vec<u8> {
    let word = (u32::from(kind) << 28) | (payload.len() as u32 + 16);
    let mut out = word.to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out.extend_from_slice(&[0x77; 16]);
    out
}

/// An unsealed `Begin` record announcing a frame of `announced` bytes.
fn begin(announced: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = record(BEGIN, payload);
    out.splice(4..4, announced.to_be_bytes());
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

/// A planned seed: name, frame length codes, plan flags (`CLOSE`, `OPEN`),
/// cuts, raw bytes after.
type PlanCase = (
    &'static str,
    &'static [u8],
    u8,
    &'static [u8],
    &'static [u8],
);

/// Frame length codes (`input::frame_len`) at the record boundaries.
const LEN_16K: u8 = BOUNDARY_CODE + 1;
const LEN_16K_PLUS_1: u8 = BOUNDARY_CODE + 2;
const LEN_32K: u8 = BOUNDARY_CODE + 4;
const LEN_64K_PLUS_1: u8 = BOUNDARY_CODE + 11;
/// Cut bytes of whole KiB (`input::cut_len`).
const CUT_16K: u8 = LONG_CUT + 15;
const CUT_1K: u8 = LONG_CUT;

/// Plans for the stream targets: a genuine prefix, then a few raw bytes.
const PLANS: [PlanCase; 7] = [
    (
        "three-and-close",
        &[5, 0, 90],
        genuine::CLOSE,
        &[7, 0, 40],
        b"",
    ),
    ("two-then-junk", &[3, 3], 0, &[], b"\x00\x00\x00\x13junk"),
    ("close-then-byte", &[1], genuine::CLOSE, &[], b"\x00"),
    ("handshake-only", &[], 0, &[2], b""),
    // Frames of one full record, of a Begin and a one-byte End, and of two
    // full records, then the close; cut inside the records.
    (
        "boundaries-and-close",
        &[LEN_16K, LEN_16K_PLUS_1, LEN_32K],
        genuine::CLOSE,
        &[CUT_16K, 3, CUT_1K, 0, CUT_16K],
        b"",
    ),
    // A frame of five records, then a Continue with no frame begun (refused
    // before it is decrypted).
    (
        "five-records-then-continue",
        &[LEN_64K_PLUS_1],
        0,
        &[CUT_16K, 200],
        b"\x30\x00\x00\x15sixteen-plus-5-bytes.",
    ),
    // A frame left open after its Begin: a Data record instead of its End.
    (
        "open-frame-then-data-record",
        &[3, LEN_32K],
        OPEN,
        &[],
        b"\x00\x00\x00\x11x0123456789abcdef",
    ),
];

fn planned(dir: &mut Out<'_>, flags: u8, name: &str) {
    for (case, lens, plan, cuts, raw) in PLANS {
        let seed = stream_seed(flags, &Plan::encode(lens, plan), cuts, raw);
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
    wrong_version[8] = VERSION - 1;
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
    // Frames of 16 KiB + 1 (Begin, End), 2 x 16 KiB + 1 (Begin, Continue,
    // End) and 5 bytes (Data), then the close: records 0 B, 1 E, 2 B, 3 C,
    // 4 E, 5 D, 6 Close.
    let frames = [BOUNDARY_CODE16 + 2, BOUNDARY_CODE16 + 5, 5];
    write(dir, "frames-untouched", &run(4 | 2, &frames));
    // The Continue dropped: the End falls short of the frame.
    write(
        dir,
        "frames-drop-continue",
        &[run(4, &frames), vec![2, 3, 0]].concat(),
    );
    // A frame's Begin and End swapped: an End with no frame begun.
    write(
        dir,
        "frames-swap-begin-end",
        &[run(4, &frames), vec![0, 0, 1]].concat(),
    );
    // The Data record re-typed as a Continue (mutation 4, type 3).
    write(
        dir,
        "frames-retype-data",
        &[run(4, &frames), vec![4, 5, 3]].concat(),
    );
    // A Begin replayed inside its frame, and the Close moved into a frame.
    write(
        dir,
        "frames-replay-begin",
        &[run(0, &frames), vec![1, 2, 3]].concat(),
    );
    write(
        dir,
        "frames-close-inside",
        &[run(4, &frames), vec![0, 6, 3]].concat(),
    );
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
    // Frames at the record boundaries, both ways, delivered in pieces that
    // cut their records.
    let large = [
        deliver(client, 0),
        deliver(server, 0),
        send(client, BOUNDARY_CODE16 + 1),
        send(client, BOUNDARY_CODE16 + 2),
        send(client, BOUNDARY_CODE16 + 11),
        deliver(client, 7000),
        deliver(client, 16_390),
        deliver(client, 0),
        send(server, BOUNDARY_CODE16 + 4),
        send(server, 3),
        deliver(server, 16_400),
        deliver(server, 0),
        vec![6],
        deliver(client, 0),
        vec![7],
        deliver(server, 0),
        vec![8, 9],
    ]
    .concat();
    for (name, flags) in [("stcp", 0u8), ("tcp", 1)] {
        write(
            dir,
            &format!("large-{name}"),
            &[vec![flags, 255, 255], large.clone()].concat(),
        );
    }
    let late = [deliver(client, 30), vec![10, 11], deliver(client, 0)].concat();
    write(
        dir,
        "handshake-timeout",
        &[vec![0, 255, 255], late].concat(),
    );
}
