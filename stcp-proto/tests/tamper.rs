//! Tamper tests: every single-bit flip of a record's header, body or tag
//! fails; replay, reordering, dropping and truncation are detected; a frame
//! over the maximum is refused from its header, before allocation.

mod common;

use common::{payload_of, plain_record, session_pair};
use stcp_proto::{
    ClientConfig, Codec, Connection, CryptoBackend, Decoder, Error, Event, Framing, Mode,
    RecordType, ServerConfig, StaticKeypair,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn every_bit_flip_fails() {
    for backend in CryptoBackend::ALL {
        let (mut client, mut server) = session_pair(backend, 1 << 20);
        let mut original = plain_record(RecordType::Data, b"attack at dawn, bring snacks");
        client.sealer.seal(&mut original).unwrap();
        for bit in 0..original.len() * 8 {
            let mut r = original.clone();
            r[bit / 8] ^= 1 << (bit % 8);
            let res = server.opener.open(&mut r);
            assert!(
                res.is_err(),
                "{backend}: flipping bit {bit} was not detected"
            );
            assert_eq!(
                server.opener.counter(),
                0,
                "a failed record must not advance"
            );
        }
        // The untouched record still opens: failures consumed nothing.
        let mut r = original.clone();
        assert_eq!(server.opener.open(&mut r), Ok(RecordType::Data));
        assert_eq!(payload_of(&r), b"attack at dawn, bring snacks");
    }
}

#[test]
fn replay_reorder_and_drop_fail() {
    let (mut client, mut server) = session_pair(CryptoBackend::AwsLc, 1 << 20);
    let mut sealed: Vec<Vec<u8>> = (0..4u8)
        .map(|i| {
            let mut r = plain_record(RecordType::Data, &[i; 10]);
            client.sealer.seal(&mut r).unwrap();
            r
        })
        .collect();
    // In order: record 0 opens.
    let mut r0 = sealed[0].clone();
    server.opener.open(&mut r0).unwrap();
    // Replay of record 0 fails.
    assert_eq!(
        server.opener.open(&mut sealed[0].clone()),
        Err(Error::BadTag)
    );
    // Reorder: record 2 before record 1 fails.
    assert_eq!(
        server.opener.open(&mut sealed[2].clone()),
        Err(Error::BadTag)
    );
    // Record 1 then 2 in order still work.
    server.opener.open(&mut sealed[1]).unwrap();
    server.opener.open(&mut sealed[2]).unwrap();
    // Dropped: skipping record 3 and sending a 5th fails.
    let mut r4 = plain_record(RecordType::Data, &[4; 10]);
    client.sealer.seal(&mut r4).unwrap();
    assert_eq!(server.opener.open(&mut r4), Err(Error::BadTag));
}

#[test]
fn records_from_the_other_direction_fail() {
    let (mut client, mut server) = session_pair(CryptoBackend::AwsLc, 1 << 20);
    let mut r = plain_record(RecordType::Data, b"reflected");
    client.sealer.seal(&mut r).unwrap();
    // Reflecting a client record back to the client fails: keys differ per direction.
    assert_eq!(client.opener.open(&mut r.clone()), Err(Error::BadTag));
    server.opener.open(&mut r).unwrap();
}

/// A client and a server connection with the handshake done in memory.
fn connected_pair(now: Instant) -> (Connection, Connection) {
    let kp = StaticKeypair::generate([7; 32]);
    let t = Duration::from_secs(5);
    let mut c =
        Connection::client(&ClientConfig::new(kp.public), Mode::Stcp, now, [1; 32], t).unwrap();
    let mut s = Connection::server(Arc::new(ServerConfig::new(kp)), Mode::Stcp, now, [2; 32], t);
    s.handle_input(now, c.poll_transmit()).unwrap();
    c.advance_transmit(usize::MAX);
    c.handle_input(now, s.poll_transmit()).unwrap();
    s.advance_transmit(usize::MAX);
    (c, s)
}

#[test]
fn truncation_is_told_apart_from_a_clean_close() {
    let now = Instant::now();
    let t = Duration::from_secs(5);
    let (mut c, mut s) = connected_pair(now);

    c.send_frame(b"hello").unwrap();
    let bytes = c.poll_transmit().to_vec();
    c.advance_transmit(bytes.len());
    // Cut mid-record: EOF is truncation.
    let tcp_cfg = ClientConfig::new(StaticKeypair::generate([7; 32]).public);
    let mut cut = Connection::client(&tcp_cfg, Mode::Tcp, now, [1; 32], t).unwrap();
    cut.handle_input(now, &[0, 0, 0, 9, 1, 2]).unwrap();
    assert_eq!(cut.handle_eof(), Err(Error::Truncated));
    // Whole records but no close: still truncation in STCP mode.
    s.handle_input(now, &bytes).unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Connected)));
    assert_eq!(s.poll_event(), Some(Event::Frame(b"hello".to_vec())));
    // Clean close: EOF after the close record is fine, and a record after it fails.
    c.close().unwrap();
    let close = c.poll_transmit().to_vec();
    s.handle_input(now, &close).unwrap();
    assert_eq!(s.poll_event(), Some(Event::Closed));
    assert_eq!(s.handle_eof(), Ok(()));
    assert_eq!(c.send_frame(b"late"), Err(Error::Closed));
}

#[test]
fn eof_without_close_is_truncation() {
    let (_c, mut s) = connected_pair(Instant::now());
    assert_eq!(s.handle_eof(), Err(Error::Truncated));
}

#[test]
fn oversized_frames_are_refused_from_the_header() {
    // Plain frames: the decoder refuses before buffering the body.
    let mut d = Decoder::new(Codec::new(Framing::Frames, 1024));
    assert!(matches!(
        d.decode(&0xFFFF_FFFFu32.to_be_bytes()),
        Err(Error::FrameTooLarge {
            len: 0xFFFF_FFFF,
            max: 1024
        })
    ));
    assert_eq!(d.capacity(), 0, "nothing reserved for a refused frame");
    // Records: the opener's header check refuses before the record arrives.
    let (_client, server) = session_pair(CryptoBackend::AwsLc, 1024);
    let mut header = [0u8; 8];
    stcp_proto::RecordHeader::new(RecordType::Data, 1025).write(&mut header);
    assert!(matches!(
        server.opener.parse_header(&header),
        Err(Error::FrameTooLarge {
            len: 1025,
            max: 1024
        })
    ));
    // A frame of many records: its length is refused from its first record's header.
    stcp_proto::RecordHeader::first(1 << 20, 1000).write(&mut header);
    assert!(matches!(
        server.opener.parse_header(&header),
        Err(Error::FrameTooLarge {
            len: 1048576,
            max: 1024
        })
    ));
    // A connection fed only a huge header fails at once and holds 4 bytes.
    let kp = StaticKeypair::generate([7; 32]);
    let mut cfg = ServerConfig::new(kp);
    cfg.max_frame = 1024;
    let now = Instant::now();
    let mut s = Connection::server(
        Arc::new(cfg),
        Mode::Tcp,
        now,
        [0; 32],
        Duration::from_secs(1),
    );
    assert!(matches!(
        s.handle_input(now, &[0xff, 0xff, 0xff, 0xff]),
        Err(Error::FrameTooLarge { .. })
    ));
    // A handshake frame over its cap fails from its header too.
    let kp = StaticKeypair::generate([8; 32]);
    let mut s = Connection::server(
        Arc::new(ServerConfig::new(kp)),
        Mode::Stcp,
        now,
        [0; 32],
        Duration::from_secs(1),
    );
    assert!(matches!(
        s.handle_input(now, &[0, 0, 1, 1]),
        Err(Error::HandshakeTooLarge { len: 257, max: 256 })
    ));
}
