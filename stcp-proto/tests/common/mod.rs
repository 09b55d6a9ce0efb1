//! Helpers shared by the integration tests: a client and a server session
//! made by a real handshake in memory, and record builders.

#![allow(dead_code)]

use stcp_proto::frame::FRAME_HEADER_LEN;
use stcp_proto::{
    write_record_header, ClientConfig, ClientHandshake, CryptoBackend, RecordType, ServerConfig,
    ServerHandshake, Session, StaticKeypair, RECORD_HEADER_LEN, RECORD_OVERHEAD,
};

/// A (client, server) session pair from a full handshake in memory.
pub fn session_pair(backend: CryptoBackend, max_frame: usize) -> (Session, Session) {
    let kp = StaticKeypair::generate([1; 32]);
    let mut server_cfg = ServerConfig::new(kp.clone());
    server_cfg.crypto = backend.provider();
    server_cfg.max_frame = max_frame;
    let mut client_cfg = ClientConfig::new(kp.public);
    client_cfg.crypto = backend.provider();
    client_cfg.max_frame = max_frame;
    let (client, hello) = ClientHandshake::start(&client_cfg, [2; 32]).unwrap();
    let mut reply = Vec::new();
    let server =
        ServerHandshake::accept(&server_cfg, [3; 32], &hello[FRAME_HEADER_LEN..], &mut reply)
            .unwrap();
    let client = client.finish(&reply[FRAME_HEADER_LEN..]).unwrap();
    (client, server)
}

/// An unsealed record carrying `payload`.
pub fn plain_record(kind: RecordType, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; payload.len() + RECORD_OVERHEAD];
    write_record_header(&mut buf, kind, payload.len());
    buf[RECORD_HEADER_LEN..RECORD_HEADER_LEN + payload.len()].copy_from_slice(payload);
    buf
}

/// The payload of an opened record.
pub fn payload_of(record: &[u8]) -> &[u8] {
    &record[RECORD_HEADER_LEN..record.len() - stcp_proto::TAG_LEN]
}
