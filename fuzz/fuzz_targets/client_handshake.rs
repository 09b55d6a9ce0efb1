//! A server's first bytes, as the client sees them. Any bytes as the server
//! reply to a `ClientHandshake` are refused unless they are one 48-byte
//! Noise message that authenticates; the same bytes as a stream into an STCP
//! `Connection::client`, in any split, must end exactly as `finish` on the
//! first frame says; after the genuine reply it must read the records as the
//! reference receiver does (`oracle::RecordWalker`: the same frames, close
//! and error), and every frame it then opens must be what the genuine
//! fixture server seals.
//!
//! Input: `[flags] [plan] [split stream]`: flags as in
//! `fixture::Setup::from_flags`; the stream is the genuine server's reply
//! and records the plan asks for (`genuine::Plan`), then the fuzzer's bytes.
//! Some seeds are recorded sessions instead (plan 0), replayed verbatim.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stcp_proto::{ClientHandshake, Error, Mode, RekeyPolicy};
use stcp_proto_fuzz::fixture::{self, Setup, CLIENT_RNG_SEED};
use stcp_proto_fuzz::genuine::Plan;
use stcp_proto_fuzz::input::{Reader, SplitStream};
use stcp_proto_fuzz::oracle::{
    assert_eof, assert_genuine_records, assert_walked, feed, first_handshake_frame, is_noise_error,
    EventLog, FirstFrame, RecordWalker, NOISE_MESSAGE_LEN,
};

fuzz_target!(|data: &[u8]| {
    let mut reader = Reader::new(data);
    let setup = Setup::from_flags(reader.u8());
    let plan = Plan::read(&mut reader);
    let split = SplitStream::read(&mut reader);

    // The fuzzer's bytes as the reply's payload.
    let _ = finish(&setup, split.stream);

    // The genuine server (made only when needed: a handshake costs) sends
    // the planned prefix and then stands for the genuine peer.
    let genuine_server = || {
        let mut server = setup.server(Mode::Stcp);
        server
            .handle_input(fixture::start(), setup.hello())
            .expect("the genuine server accepts the genuine hello");
        assert_eq!(server.poll_transmit(), setup.reply());
        server.advance_transmit(server.poll_transmit().len());
        server
    };
    let mut server = plan.enabled.then(genuine_server);
    let (prefix, known) = match &mut server {
        Some(server) => {
            let (records, known) = plan.seal(server);
            ([setup.reply(), &records].concat(), known)
        }
        None => (Vec::new(), Vec::new()),
    };
    let stream = &[&prefix[..], split.stream].concat()[..];

    // The stream as a client connection receives it.
    let mut conn = setup.client(Mode::Stcp);
    let hello = conn.poll_transmit().to_vec();
    assert_eq!(
        hello,
        setup.hello(),
        "the client's hello is not deterministic"
    );
    let mut log = EventLog::default();
    feed(&mut conn, &mut log, &split.chunks_of(stream));
    assert_eq!(
        conn.poll_transmit(),
        &hello[..],
        "the client sent more than its hello"
    );
    match first_handshake_frame(stream) {
        FirstFrame::Incomplete => {
            assert!(!log.connected && conn.error().is_none());
            assert_eof(&mut conn, false);
        }
        FirstFrame::TooLarge(e) => assert_eq!(conn.error(), Some(&e)),
        FirstFrame::Complete(reply, end) => match finish(&setup, reply) {
            Err(e) => {
                assert!(!log.connected);
                assert_eq!(conn.error(), Some(&e));
            }
            Ok(()) => {
                assert!(log.connected, "finish succeeded but the connection did not");
                let records = &stream[end..];
                if stream[..end] == *setup.reply() {
                    // The records read as the reference receiver reads them,
                    // with the client's opening key.
                    let (mut reference, _) = setup.session_pair();
                    let walked = RecordWalker::new(
                        reference.opener.cipher_state(),
                        RekeyPolicy::PROTOCOL,
                        setup.max_frame,
                    )
                    .walk(records);
                    assert_walked(&conn, &log, &walked);
                    let server = server.get_or_insert_with(genuine_server);
                    assert_genuine_records(records, &walked, &known, server);
                    assert_eof(&mut conn, walked.clean_eof());
                }
            }
        },
    }
});

/// `ClientHandshake::finish` with `reply` as the server's message, checked
/// against the documented rule: exactly 48 bytes, then Noise decides.
fn finish(setup: &Setup, reply: &[u8]) -> Result<(), Error> {
    let (handshake, _hello) = ClientHandshake::start(&setup.client_config(), CLIENT_RNG_SEED)
        .expect("the fixture client configuration is valid");
    let result = handshake.finish(reply).map(|_session| ());
    if reply.len() != NOISE_MESSAGE_LEN {
        assert_eq!(result, Err(Error::BadHandshake));
    } else if let Err(e) = &result {
        assert!(is_noise_error(e), "unexpected {e:?}");
    }
    result
}
