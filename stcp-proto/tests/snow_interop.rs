//! Our handshake and key schedule against snow's own Noise implementation
//! (its default, pure-Rust resolver): our initiator with a snow responder and
//! the reverse, for NK and NKpsk2, with each backend's resolver (aws-lc's
//! X25519, AES-GCM and SHA-256; snow's defaults for RustCrypto); each
//! backend's side against the other's; then transport messages both ways (snow seals with empty associated data,
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
        .unwrap()
        .local_private_key(&kp.private)
        .unwrap();
    if psk {
        b = b.psk(2, &PSK).unwrap();
    }
    b.build_responder().unwrap()
}

fn snow_initiator(server_public: &[u8; 32], psk: bool) -> HandshakeState {
    let (name, prologue) = builder_parts(psk);
    let mut b = Builder::new(name.parse().unwrap())
        .prologue(&prologue)
        .unwrap()
        .remote_public_key(server_public)
        .unwrap();
    if psk {
        b = b.psk(2, &PSK).unwrap();
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

/// Our client on one backend's resolver against our server on another's.
fn ours_across_backends(psk: bool, client_backend: CryptoBackend, server_backend: CryptoBackend) {
    let kp = StaticKeypair::generate([41; 32]);
    let mut server = ServerConfig::new(kp.clone());
    server.crypto = server_backend.provider();
    server.psk = psk.then_some(PSK);
    let mut client = ClientConfig::new(kp.public);
    client.crypto = client_backend.provider();
    client.psk = psk.then_some(PSK);

    let (hs, hello) = ClientHandshake::start(&client, [42; 32]).unwrap();
    let mut reply = Vec::new();
    let mut server_session =
        ServerHandshake::accept(&server, [43; 32], &hello[FRAME_HEADER_LEN..], &mut reply).unwrap();
    let mut client_session = hs.finish(&reply[FRAME_HEADER_LEN..]).unwrap();
    assert_eq!(client_session.handshake_hash, server_session.handshake_hash);

    // Records both ways under the split keys.
    one_way(&mut client_session, &mut server_session);
    one_way(&mut server_session, &mut client_session);
}

fn one_way(from: &mut Session, to: &mut Session) {
    let plain = payload(7, 300);
    let mut body = plain.clone();
    let mut tag = [0u8; TAG_LEN];
    from.sealer
        .cipher_state()
        .encrypt_with_ad(b"ad", &mut body, &mut tag)
        .unwrap();
    assert_ne!(body, plain);
    to.opener
        .cipher_state()
        .decrypt_with_ad(b"ad", &mut body, &tag)
        .unwrap();
    assert_eq!(body, plain);
}

#[test]
fn nk_every_backend_against_every_backend() {
    for c in CryptoBackend::ALL {
        for s in CryptoBackend::ALL {
            ours_across_backends(false, c, s);
        }
    }
}

#[test]
fn nkpsk2_every_backend_against_every_backend() {
    for c in CryptoBackend::ALL {
        for s in CryptoBackend::ALL {
            ours_across_backends(true, c, s);
        }
    }
}

/// The same seeds give the same handshake whatever the backend: the resolvers
/// compute the same functions, so the hello and the reply are byte for byte
/// the same.
#[test]
fn backends_write_the_same_bytes_from_the_same_seeds() {
    let kp = StaticKeypair::generate([51; 32]);
    let mut out = Vec::new();
    for b in CryptoBackend::ALL {
        let mut client = ClientConfig::new(kp.public);
        client.crypto = b.provider();
        let mut server = ServerConfig::new(kp.clone());
        server.crypto = b.provider();
        let (_, hello) = ClientHandshake::start(&client, [52; 32]).unwrap();
        let mut reply = Vec::new();
        ServerHandshake::accept(&server, [53; 32], &hello[FRAME_HEADER_LEN..], &mut reply).unwrap();
        out.push((hello, reply));
    }
    assert_eq!(out[0], out[1]);
}

/// A hello whose ephemeral key is a point of small order (here 0): X25519 with
/// it gives all zeros. aws-lc refuses that agreement, so the aws-lc backend's
/// server refuses the hello with a typed error; snow's default computes the
/// zero secret, and without a PSK the hello then authenticates, since anyone
/// can compute its key (NK does not authenticate clients anyway). With NKpsk2
/// the PSK is still needed, and both refuse a hello made without it.
#[test]
fn a_low_order_ephemeral_key_is_refused_by_aws_lc() {
    let kp = StaticKeypair::generate([61; 32]);
    let hello = low_order_hello(&kp);
    let mut aws = ServerConfig::new(kp.clone());
    aws.crypto = CryptoBackend::AwsLc.provider();
    let mut reply = Vec::new();
    assert_eq!(
        ServerHandshake::accept(&aws, [62; 32], &hello, &mut reply).err(),
        Some(Error::BadHandshake)
    );
    let mut pure = ServerConfig::new(kp);
    pure.crypto = CryptoBackend::RustCrypto.provider();
    assert!(ServerHandshake::accept(&pure, [62; 32], &hello, &mut reply).is_ok());
}

/// NK message 1 with e = 0, built by hand from the Noise specification's
/// steps (snow's Builder cannot fix an ephemeral key): `e`, then the empty
/// payload's tag under the key that `es` = X25519(s, 0) = 0 gives.
fn low_order_hello(kp: &StaticKeypair) -> Vec<u8> {
    use snow::params::{CipherChoice, HashChoice};
    use snow::resolvers::{CryptoResolver, DefaultResolver};
    let mut hash = DefaultResolver.resolve_hash(&HashChoice::SHA256).unwrap();
    let name = b"Noise_NK_25519_AESGCM_SHA256";
    // h = ck = protocol name padded to 32 bytes (it is shorter than 32).
    let mut h = [0u8; 32];
    h[..name.len()].copy_from_slice(name);
    let mut ck = h;
    let mix_hash = |hash: &mut Box<dyn snow::types::Hash>, h: &mut [u8; 32], data: &[u8]| {
        let mut out = [0u8; 64];
        hash.reset();
        hash.input(&h[..]);
        hash.input(data);
        hash.result(&mut out);
        h.copy_from_slice(&out[..32]);
    };
    mix_hash(&mut hash, &mut h, &prologue(PATTERN_NK));
    mix_hash(&mut hash, &mut h, &kp.public); // <- s
    let e = [0u8; 32];
    mix_hash(&mut hash, &mut h, &e); // -> e
                                     // es: MixKey(DH = 0).
    let (mut o1, mut o2, mut o3) = ([0u8; 64], [0u8; 64], [0u8; 64]);
    hash.hkdf(&ck, &[0u8; 32], 2, &mut o1, &mut o2, &mut o3);
    ck.copy_from_slice(&o1[..32]);
    let mut k = [0u8; 32];
    k.copy_from_slice(&o2[..32]);
    // EncryptAndHash(empty payload): the tag alone, under k, nonce 0, ad h.
    let mut cipher = DefaultResolver
        .resolve_cipher(&CipherChoice::AESGCM)
        .unwrap();
    cipher.set(&k);
    let mut tag = [0u8; TAG_LEN];
    cipher.encrypt(0, &h, &[], &mut tag);
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
    hello.extend_from_slice(&e);
    hello.extend_from_slice(&tag);
    hello
}
