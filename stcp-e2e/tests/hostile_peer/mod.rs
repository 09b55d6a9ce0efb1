//! What the hostile matrix's peers do on the wire: plain sockets that connect, send crafted bytes,
//! reset or trickle, and watch for the server to close; and a hand-driven STCP client (the
//! handshake through stcp-proto, records sealed and opened by hand) so records can be altered,
//! replayed, reordered, sent after a close, or tied into frames the wrong way.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use stcp_proto::handshake::handshake_frame_len;
use stcp_proto::{
    frame_records, sealed_frame_len, write_record_header, RecordHeader, RecordOpener, RecordSealer,
    RecordType, Session, FRAME_HEADER_LEN, MAX_FRAME_LEN, RECORD_HEADER_LEN, TAG_LEN,
};

/// Generous: the machine is small and shared.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// True when the peer closed (EOF or reset) within the read timeout.
pub fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

pub fn assert_closed(s: &mut TcpStream, what: &str) {
    assert!(
        closed_by_peer(s),
        "{what}: the server did not close the connection"
    );
}

/// Connects, sends `bytes`, and expects the server to close the connection.
pub fn refused_after(addr: SocketAddr, bytes: &[u8], what: &str) {
    let mut s = connect(addr);
    // The server may close before all of it is written: a failed write is fine.
    let _ = s.write_all(bytes);
    assert_closed(&mut s, what);
}

/// Resets the connection (SO_LINGER 0, then close: RST instead of FIN).
pub fn reset(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` outlives the call and has the layout SO_LINGER expects; `s` owns the fd.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_LINGER");
    drop(s);
}

/// Sends `hello` one byte a second until the server closes; returns how long that took and how
/// many bytes were sent.
pub fn slowloris(addr: SocketAddr, hello: &[u8]) -> (Duration, usize) {
    let mut s = connect(addr);
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let t0 = Instant::now();
    let mut sent = 0;
    let mut sink = [0u8; 64];
    for b in hello {
        if s.write_all(std::slice::from_ref(b)).is_err() {
            break;
        }
        sent += 1;
        // Waiting one second for the server's answer doubles as the pace.
        match s.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => panic!("the server answered a partial hello"),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("slowloris read: {e}"),
        }
        assert!(t0.elapsed() < IO_TIMEOUT, "slowloris was never cut");
    }
    (t0.elapsed(), sent)
}

pub fn frame(p: &[u8]) -> Vec<u8> {
    let mut f = (p.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(p);
    f
}

pub fn read_frame(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h)?;
    let mut p = vec![0u8; u32::from_be_bytes(h) as usize];
    s.read_exact(&mut p)?;
    Ok(p)
}

/// The server's handshake reply frame's payload.
pub fn read_handshake_reply(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut h = [0u8; FRAME_HEADER_LEN];
    s.read_exact(&mut h)?;
    let len = handshake_frame_len(h).map_err(io::Error::other)?;
    let mut p = vec![0u8; len];
    s.read_exact(&mut p)?;
    Ok(p)
}

pub fn data_record(sealer: &mut RecordSealer, payload: &[u8]) -> Vec<u8> {
    let mut rec = vec![0u8; RECORD_HEADER_LEN + payload.len() + TAG_LEN];
    write_record_header(&mut rec, RecordType::Data, payload.len());
    rec[RECORD_HEADER_LEN..RECORD_HEADER_LEN + payload.len()].copy_from_slice(payload);
    sealer.seal(&mut rec).unwrap();
    rec
}

/// A record with `header` carrying `payload`, sealed under the sealer's next nonce without its
/// bookkeeping (which refuses anything after a Close, and records that do not tie into frames):
/// the record authenticates, only its place or its length is wrong.
pub fn seal_by_hand(sealer: &mut RecordSealer, header: RecordHeader, payload: &[u8]) -> Vec<u8> {
    assert_eq!(header.payload_len, payload.len());
    let mut rec = vec![0u8; header.record_len()];
    let h = header.write(&mut rec);
    let (aad, rest) = rec.split_at_mut(h);
    let (body, tag) = rest.split_at_mut(payload.len());
    body.copy_from_slice(payload);
    let tag: &mut [u8; TAG_LEN] = tag.try_into().unwrap();
    sealer
        .cipher_state()
        .encrypt_with_ad(aad, body, tag)
        .unwrap();
    rec
}

/// A record of `kind` (not `Begin`) carrying `payload`, sealed by hand (see [`seal_by_hand`]).
pub fn record_by_hand(sealer: &mut RecordSealer, kind: RecordType, payload: &[u8]) -> Vec<u8> {
    seal_by_hand(sealer, RecordHeader::new(kind, payload.len()), payload)
}

/// A record header word written by hand: type `kind` (top 4 bits) and the length of
/// `payload_len` bytes of ciphertext plus the tag, for the lengths `RecordHeader` refuses to
/// write.
pub fn record_word(kind: RecordType, payload_len: usize) -> [u8; RECORD_HEADER_LEN] {
    (((kind as u32) << 28) | (payload_len + TAG_LEN) as u32).to_be_bytes()
}

/// A sealed `Begin` record announcing a frame of `frame_len` bytes and carrying `payload`, its
/// first part.
pub fn begin_record(sealer: &mut RecordSealer, frame_len: usize, payload: &[u8]) -> Vec<u8> {
    let header = RecordHeader::first(frame_len, payload.len());
    assert_eq!(header.kind, RecordType::Begin);
    let mut rec = vec![0u8; header.record_len()];
    let h = header.write(&mut rec);
    rec[h..h + payload.len()].copy_from_slice(payload);
    sealer.seal(&mut rec).unwrap();
    rec
}

/// A whole frame as the protocol sends it: one `Data` record, or `Begin`, `Continue`s and `End`
/// (records of at most 16 KiB), sealed in order, back to back.
pub fn sealed_frame(sealer: &mut RecordSealer, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sealed_frame_len(payload.len()));
    for (header, offset) in frame_records(payload.len()) {
        let start = out.len();
        out.resize(start + header.record_len(), 0);
        let rec = &mut out[start..];
        let h = header.write(rec);
        rec[h..h + header.payload_len]
            .copy_from_slice(&payload[offset..offset + header.payload_len]);
        sealer.seal(rec).unwrap();
    }
    out
}

/// Reads one record (4 header bytes, 4 more for a `Begin`) and returns its type and opened
/// payload.
pub fn read_any_record(
    s: &mut TcpStream,
    opener: &mut RecordOpener,
) -> io::Result<(RecordType, Vec<u8>)> {
    let mut word = [0u8; RECORD_HEADER_LEN];
    s.read_exact(&mut word)?;
    let (kind, payload_len) = RecordHeader::peek(word, MAX_FRAME_LEN).map_err(io::Error::other)?;
    let mut rec = vec![0u8; kind.header_len() + payload_len + TAG_LEN];
    rec[..RECORD_HEADER_LEN].copy_from_slice(&word);
    s.read_exact(&mut rec[RECORD_HEADER_LEN..])?;
    let kind = opener.open(&mut rec).map_err(io::Error::other)?;
    let h = kind.header_len();
    Ok((kind, rec[h..rec.len() - TAG_LEN].to_vec()))
}

/// Reads one record and returns its opened payload.
pub fn read_record(s: &mut TcpStream, opener: &mut RecordOpener) -> io::Result<Vec<u8>> {
    read_any_record(s, opener).map(|(_, payload)| payload)
}

/// Reads records up to the end of a frame and returns the frame's payload; `None` for the
/// server's Close.
pub fn read_stcp_frame(
    s: &mut TcpStream,
    opener: &mut RecordOpener,
) -> io::Result<Option<Vec<u8>>> {
    let mut frame = Vec::new();
    loop {
        let (kind, payload) = read_any_record(s, opener)?;
        if kind == RecordType::Close {
            return Ok(None);
        }
        frame.extend_from_slice(&payload);
        if kind.ends_frame() {
            return Ok(Some(frame));
        }
    }
}

/// One verified echo on an established connection.
pub fn echo_ok(s: &mut TcpStream, session: &mut Session, payload: &[u8]) {
    s.write_all(&data_record(&mut session.sealer, payload))
        .unwrap();
    assert_eq!(read_record(s, &mut session.opener).unwrap(), payload);
}

/// Deterministic bytes (xorshift64*).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// A plausible TLS 1.3 ClientHello record, as a scanner sends.
pub fn tls_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend(pseudo_random(32, 11)); // random
    body.push(32);
    body.extend(pseudo_random(32, 12)); // legacy session id
    body.extend([0x00, 0x06, 0x13, 0x01, 0x13, 0x02, 0x13, 0x03]); // cipher suites
    body.extend([0x01, 0x00]); // compression: null
    let sni = b"localhost";
    let mut ext = vec![0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04]; // supported_versions: 1.3
    ext.extend([0x00, 0x00]); // server_name
    ext.extend(((sni.len() + 5) as u16).to_be_bytes());
    ext.extend(((sni.len() + 3) as u16).to_be_bytes());
    ext.push(0);
    ext.extend((sni.len() as u16).to_be_bytes());
    ext.extend(sni);
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut hs = vec![0x01];
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend((hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

/// One verified echo of a frame, whatever its number of records.
pub fn echo_frame_ok(s: &mut TcpStream, session: &mut Session, payload: &[u8]) {
    s.write_all(&sealed_frame(&mut session.sealer, payload))
        .unwrap();
    let echo = read_stcp_frame(s, &mut session.opener).unwrap();
    assert!(echo.as_deref() == Some(payload), "the frame's echo differs");
}
