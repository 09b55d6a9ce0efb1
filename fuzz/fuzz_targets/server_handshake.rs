//! A client's first bytes, as the server sees them. Any bytes as a client
//! hello to `ServerHandshake::accept` (with and without a PSK) give the
//! documented error of the first check they fail, or a 48-byte reply; the
//! same bytes as a stream into an STCP `Connection::server`, in any split,
//! must end exactly as `accept` on the first frame says; after the genuine
//! hello it must read the records as the reference receiver does
//! (`oracle::RecordWalker`: the same frames, close and error), and every
//! frame it then opens must be what the genuine fixture client seals.
//!
//! Input: `[flags] [plan] [split stream]`: flags as in
//! `fixture::Setup::from_flags`; the stream is the genuine client's hello
//! and records the plan asks for (`genuine::Plan`), then the fuzzer's bytes.
//! Some seeds are recorded sessions instead (plan 0), replayed verbatim.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stcp_proto::{Error, Mode, RekeyPolicy, ServerConfig, ServerHandshake, FRAME_HEADER_LEN};
use stcp_proto_fuzz::fixture::{self, Setup, SERVER_RNG_SEED};
use stcp_proto_fuzz::genuine::Plan;
use stcp_proto_fuzz::input::{Reader, SplitStream};
use stcp_proto_fuzz::oracle::{
    assert_eof, assert_genuine_records, assert_walked, feed, first_handshake_frame, hello_precheck,
    is_noise_error, EventLog, FirstFrame, RecordWalker, NOISE_MESSAGE_LEN,
};

fuzz_target!(|data: &[u8]| {
    let mut reader = Reader::new(data);
    let setup = Setup::from_flags(reader.u8());
    let plan = Plan::read(&mut reader);
    let split = SplitStream::read(&mut reader);

    // The fuzzer's bytes as one hello, to a server with and without a PSK.
    for psk in [false, true] {
        let config = Setup { psk, ..setup }.server_config();
        let _ = accept(&config, split.stream);
    }

    // The genuine client (made only when needed: a handshake costs) sends
    // the planned prefix and then stands for the genuine peer.
    let genuine_client = || {
        let mut client = setup.client(Mode::Stcp);
        client.advance_transmit(client.poll_transmit().len());
        client
            .handle_input(fixture::start(), setup.reply())
            .expect("the genuine client accepts the genuine reply");
        client
    };
    let mut client = plan.enabled.then(genuine_client);
    let (prefix, known) = match &mut client {
        Some(client) => {
            let (records, known) = plan.seal(client);
            ([setup.hello(), &records].concat(), known)
        }
        None => (Vec::new(), Vec::new()),
    };
    let stream = &[&prefix[..], split.stream].concat()[..];

    // The stream as a connection receives it.
    let mut conn = setup.server(Mode::Stcp);
    let mut log = EventLog::default();
    feed(&mut conn, &mut log, &split.chunks_of(stream));
    match first_handshake_frame(stream) {
        FirstFrame::Incomplete => {
            assert!(!log.connected && conn.error().is_none());
            assert_eof(&mut conn, false);
        }
        FirstFrame::TooLarge(e) => assert_eq!(conn.error(), Some(&e)),
        FirstFrame::Complete(hello, end) => match accept(&setup.server_config(), hello) {
            Err(e) => {
                assert!(!log.connected);
                assert_eq!(conn.error(), Some(&e));
            }
            Ok(reply) => {
                assert!(log.connected, "accept succeeded but the connection did not");
                assert_eq!(conn.poll_transmit(), &reply[..]);
                let records = &stream[end..];
                if stream[..end] == *setup.hello() {
                    assert_eq!(reply, setup.reply(), "the genuine hello got another reply");
                    // The records read as the reference receiver reads them,
                    // with the server's opening key.
                    let (_, mut reference) = setup.session_pair();
                    let walked = RecordWalker::new(
                        reference.opener.cipher_state(),
                        RekeyPolicy::PROTOCOL,
                        setup.max_frame,
                    )
                    .walk(records);
                    assert_walked(&conn, &log, &walked);
                    let client = client.get_or_insert_with(genuine_client);
                    assert_genuine_records(records, &walked, &known, client);
                    assert_eof(&mut conn, walked.clean_eof());
                }
            }
        },
    }
});

/// `ServerHandshake::accept` on `hello`, checked against the documented
/// order of checks. Returns the reply frame.
fn accept(config: &ServerConfig, hello: &[u8]) -> Result<Vec<u8>, Error> {
    let mut reply = vec![0xa5; 7];
    let result = ServerHandshake::accept(config, SERVER_RNG_SEED, hello, &mut reply);
    let result = result.map(|_session| reply);
    match (hello_precheck(hello, config.psk.is_some()), &result) {
        (Some(expected), _) => assert_eq!(result.as_ref().err(), Some(&expected)),
        (None, Err(e)) => assert!(is_noise_error(e), "unexpected {e:?}"),
        (None, Ok(reply)) => {
            assert_eq!(reply.len(), FRAME_HEADER_LEN + NOISE_MESSAGE_LEN);
            assert_eq!(
                reply[..FRAME_HEADER_LEN],
                (NOISE_MESSAGE_LEN as u32).to_be_bytes()
            );
        }
    }
    result
}
