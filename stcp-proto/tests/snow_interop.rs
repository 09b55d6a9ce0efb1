//! Our handshake and key schedule against snow's own Noise implementation:
//! our initiator with a snow responder and the reverse, for NK and NKpsk2,
//! then transport messages both ways (snow seals with empty associated data,
//! our cipher state opens under the split keys and the same counters, and the
//! reverse), including across a Noise `Rekey()` on both sides.

use snow::{Builder, HandshakeState, TransportState};
use stcp_proto::frame::FRAME_HEADER_LEN;
use stcp_proto::handshake::{HELLO_PREFIX_LEN, PATTERN_NK, PATTERN_NKPSK2};
use stcp_proto::{
    ClientConfig, ClientHandshake, CryptoBackend, Error, ServerConfig, ServerHandshake, Session,
    StaticKeypair, TAG_LEN,
};

const PSK: [u8; 32] = [0x42; 32];

fn prologue(pattern: u8) -> Vec<u8> {
    let mut p = b"STCP handshake prologue".to_vec();
    p.extend_from_slice(&[
        b'S',
        b'T',
        b'C',
        b'P',
        stcp_proto::handshake::VERSION,
        pattern,
        0,
        0,
    ]);
    p
}

fn builder_parts(psk: bool) -> (&'static str, Vec<u8>) {
    if psk {
        ("Noise_NKpsk2_25519_AESGCM_SHA256", prologue(PATTERN_NKPSK2))
    } else {
        ("Noise_NK_25519_AESGCM_SHA256", prologue(PATTERN_NK))
    }
}

fn snow_responder(kp: &StaticKeypair, psk: bool) -> HandshakeState {
    let (name, prologue) = builder_parts(psk);
    let mut b = Builder::new(name.parse().unwrap())
        .prologue(&prologue)
        .local_private_key(&kp.private);
    if psk {
        b = b.psk(2, &PSK);
    }
    b.build_responder().unwrap()
}

fn snow_initiator(server_public: &[u8; 32], psk: bool) -> HandshakeState {
    let (name, prologue) = builder_parts(psk);
    let mut b = Builder::new(name.parse().unwrap())
        .prologue(&prologue)
        .remote_public_key(server_public);
    if psk {
        b = b.psk(2, &PSK);
    }
    b.build_initiator().unwrap()
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

/// Transport messages both ways, then a rekey on both sides, then more.
fn exchange(ours: &mut Session, theirs: &mut TransportState) {
    for round in 0..2 {
        for (i, len) in [0usize, 1, 100, 4096, 65535 - 16].into_iter().enumerate() {
            let plain = payload(i + round * 10, len);

            // snow seals, our opener's cipher state opens.
            let mut wire = vec![0u8; len + TAG_LEN];
            assert_eq!(
                theirs.write_message(&plain, &mut wire).unwrap(),
                len + TAG_LEN
            );
            let (body, tag) = wire.split_at_mut(len);
            let tag: &[u8; TAG_LEN] = (&*tag).try_into().unwrap();
            ours.opener
                .cipher_state()
                .decrypt_with_ad(&[], body, tag)
                .expect("snow's ciphertext opens under our keys and counter");
            assert_eq!(body, &plain[..]);

            // our sealer's cipher state seals, snow opens.
            let mut out = plain.clone();
            let mut tag = [0u8; TAG_LEN];
            ours.sealer
                .cipher_state()
                .encrypt_with_ad(&[], &mut out, &mut tag)
                .unwrap();
            out.extend_from_slice(&tag);
            let mut back = vec![0u8; len];
            assert_eq!(theirs.read_message(&out, &mut back).unwrap(), len);
            assert_eq!(back, plain);
        }
        // Noise Rekey() on both directions, both sides.
        theirs.rekey_outgoing();
        theirs.rekey_incoming();
        ours.sealer.cipher_state().rekey();
        ours.opener.cipher_state().rekey();
    }
    // A tampered message fails on both sides.
    let mut wire = vec![0u8; 10 + TAG_LEN];
    theirs.write_message(b"0123456789", &mut wire).unwrap();
    wire[3] ^= 1;
    let (body, tag) = wire.split_at_mut(10);
    let tag: &[u8; TAG_LEN] = (&*tag).try_into().unwrap();
    assert_eq!(
        ours.opener.cipher_state().decrypt_with_ad(&[], body, tag),
        Err(Error::BadTag)
    );
}

fn our_client_with_snow_server(psk: bool, backend: CryptoBackend) {
    let kp = StaticKeypair::generate([11; 32]);
    let mut cfg = ClientConfig::new(kp.public);
    cfg.crypto = backend.provider();
    cfg.psk = psk.then_some(PSK);
    let (client, hello) = ClientHandshake::start(&cfg, [12; 32]).unwrap();

    let mut responder = snow_responder(&kp, psk);
    let noise1 = &hello[FRAME_HEADER_LEN + HELLO_PREFIX_LEN..];
    let mut buf = [0u8; 256];
    responder.read_message(noise1, &mut buf).unwrap();
    let mut reply = [0u8; 256];
    let n = responder.write_message(&[], &mut reply).unwrap();
    let mut session = client.finish(&reply[..n]).unwrap();
    assert_eq!(&session.handshake_hash[..], responder.get_handshake_hash());
    let mut transport = responder.into_transport_mode().unwrap();
    exchange(&mut session, &mut transport);
}

fn snow_client_with_our_server(psk: bool, backend: CryptoBackend) {
    let kp = StaticKeypair::generate([21; 32]);
    let mut cfg = ServerConfig::new(kp.clone());
    cfg.crypto = backend.provider();
    cfg.psk = psk.then_some(PSK);

    let mut initiator = snow_initiator(&kp.public, psk);
    let mut hello = vec![b'S', b'T', b'C', b'P', stcp_proto::handshake::VERSION];
    hello.push(if psk { PATTERN_NKPSK2 } else { PATTERN_NK });
    hello.extend_from_slice(&[0, 0]);
    let mut msg = [0u8; 256];
    let n = initiator.write_message(&[], &mut msg).unwrap();
    hello.extend_from_slice(&msg[..n]);

    let mut reply = Vec::new();
    let mut session = ServerHandshake::accept(&cfg, [22; 32], &hello, &mut reply).unwrap();
    let len = u32::from_be_bytes(reply[..4].try_into().unwrap()) as usize;
    assert_eq!(len, reply.len() - FRAME_HEADER_LEN);
    let mut buf = [0u8; 256];
    initiator
        .read_message(&reply[FRAME_HEADER_LEN..], &mut buf)
        .unwrap();
    assert_eq!(&session.handshake_hash[..], initiator.get_handshake_hash());
    let mut transport = initiator.into_transport_mode().unwrap();
    exchange(&mut session, &mut transport);
}

#[test]
fn nk_our_initiator_snow_responder() {
    for b in CryptoBackend::ALL {
        our_client_with_snow_server(false, b);
    }
}

#[test]
fn nkpsk2_our_initiator_snow_responder() {
    for b in CryptoBackend::ALL {
        our_client_with_snow_server(true, b);
    }
}

#[test]
fn nk_snow_initiator_our_responder() {
    for b in CryptoBackend::ALL {
        snow_client_with_our_server(false, b);
    }
}

#[test]
fn nkpsk2_snow_initiator_our_responder() {
    for b in CryptoBackend::ALL {
        snow_client_with_our_server(true, b);
    }
}

#[test]
fn snow_client_pinning_another_key_is_refused() {
    let kp = StaticKeypair::generate([31; 32]);
    let other = StaticKeypair::generate([32; 32]);
    let cfg = ServerConfig::new(kp);
    let mut initiator = snow_initiator(&other.public, false);
    let mut hello = vec![
        b'S',
        b'T',
        b'C',
        b'P',
        stcp_proto::handshake::VERSION,
        PATTERN_NK,
        0,
        0,
    ];
    let mut msg = [0u8; 256];
    let n = initiator.write_message(&[], &mut msg).unwrap();
    hello.extend_from_slice(&msg[..n]);
    let mut reply = Vec::new();
    assert_eq!(
        ServerHandshake::accept(&cfg, [1; 32], &hello, &mut reply).err(),
        Some(Error::HandshakeAuthFailed)
    );
}
