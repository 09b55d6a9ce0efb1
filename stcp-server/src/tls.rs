//! TLS 1.3 beside STCP: the server's certificate (an ECDSA P-256 self-signed certificate made
//! with rcgen on first start, or given as PEM files), the one rustls `ServerConfig` every worker
//! shares read-only (TLS 1.3 only, TLS13_AES_256_GCM_SHA384 only, X25519 only, no ALPN, no
//! resumption, no client auth), the sans-IO pump both io backends drive a
//! [`rustls::ServerConnection`] with (bytes in, plaintext frames echoed, bytes out), the
//! mapping of rustls errors to a few [`ErrorKind`]s an operator can act on, and the kTLS probe
//! `--ktls` runs at start (handing a session's keys to the kernel is not built: `--ktls` always
//! refuses to start, naming why).

use std::{
    fmt,
    fs::{self, OpenOptions},
    io::{self, Read, Write},
    net::{TcpListener, TcpStream},
    os::{
        fd::{AsRawFd, RawFd},
        unix::fs::{OpenOptionsExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    crypto::{aws_lc_rs, CryptoProvider},
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::NoServerSessionStorage,
    ServerConnection,
};
use stcp_proto::FrameStream;

use crate::errors::ErrorKind;

/// Default `--cert`: the PEM certificate the TLS listener presents.
pub const DEFAULT_CERT_PATH: &str = "./stcp-server.crt";
/// Default `--cert-key`: its PEM PKCS#8 private key (mode 0600).
pub const DEFAULT_CERT_KEY_PATH: &str = "./stcp-server-cert.key";
/// The names a generated certificate is valid for.
pub const CERT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Plaintext read out of rustls at a time (one TLS record's worth).
pub const SCRATCH_LEN: usize = 16 * 1024;

/// The most ciphertext rustls keeps between receives: one incomplete record, at most a TLS
/// record's wire size (16 KiB of payload, 256 bytes of expansion in TLS 1.3 plus padding room as
/// rustls allows, and the 5-byte header). Plaintext it decrypts is read out at once, ciphertext
/// it produces written out at once, so this is what it holds for a connection after each pump.
/// The server counts it in a TLS connection's buffers, so reading pauses before rustls and the
/// server's own buffers together go over `Config::conn_buffer_limit`.
pub const RUSTLS_HELD: usize = 16 * 1024 + 2048 + 5;

/// A certificate and its private key, as the TLS listener presents them.
#[derive(Clone)]
pub struct TlsIdentity {
    cert_pem: String,
    cert: CertificateDer<'static>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert_der_len", &self.cert.len())
            .field("key", &"[secret]")
            .finish()
    }
}

/// Why a certificate or its key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertFileError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The private key file is readable by group or others.
    #[error(
        "{path}: permissions {mode:04o} are too open; a secret key file must not be readable by \
         others (run: chmod 600 {path})"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    /// The file is not a PEM certificate (or PKCS#8 key).
    #[error("{path}: not a PEM {what}: {reason}")]
    Malformed {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    /// Only one of the two files exists.
    #[error(
        "{present} exists but {missing} does not: give both --cert and --cert-key, or remove \
         {present} so that both are created"
    )]
    OnlyOne { present: PathBuf, missing: PathBuf },
    /// The certificate does not go with the key, or rustls refuses them.
    #[error("the certificate and key cannot be used together: {0}")]
    Mismatch(rustls::Error),
    /// rcgen could not make a certificate.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CertFileError + '_ {
    move |source| CertFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl TlsIdentity {
    /// A new self-signed ECDSA P-256 certificate for `localhost`, `127.0.0.1` and `::1`
    /// (rcgen, with aws-lc-rs's random numbers).
    pub fn generate() -> Result<TlsIdentity, CertFileError> {
        Ok(TlsIdentity::generate_with_key_pem()?.0)
    }

    fn generate_with_key_pem() -> Result<(TlsIdentity, String), CertFileError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(
            CERT_NAMES.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "stcp-server");
        let cert = params.self_signed(&key)?;
        let id = TlsIdentity {
            cert_pem: cert.pem(),
            cert: cert.der().clone(),
            key: Arc::new(PrivateKeyDer::Pkcs8(key.serialize_der().into())),
        };
        Ok((id, key.serialize_pem()))
    }

    /// An identity from a PEM certificate (the first one in the text) and a PEM private key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<TlsIdentity, String> {
        let cert =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| e.to_string())?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| e.to_string())?;
        Ok(TlsIdentity {
            cert_pem: cert_pem.to_string(),
            cert,
            key: Arc::new(key),
        })
    }

    /// Loads the certificate and key files, or, when neither exists, creates both (the key mode
    /// 0600). Returns the identity and whether it was created. A key file group or others may
    /// read is refused, like the STCP key.
    pub fn load_or_create(
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<(TlsIdentity, bool), CertFileError> {
        match (cert_path.exists(), key_path.exists()) {
            (false, false) => {
                let (id, key_pem) = TlsIdentity::generate_with_key_pem()?;
                write_new(key_path, 0o600, &key_pem)?;
                write_new(cert_path, 0o644, &id.cert_pem)?;
                Ok((id, true))
            }
            (true, true) => Ok((TlsIdentity::load(cert_path, key_path)?, false)),
            (true, false) => Err(CertFileError::OnlyOne {
                present: cert_path.to_path_buf(),
                missing: key_path.to_path_buf(),
            }),
            (false, true) => Err(CertFileError::OnlyOne {
                present: key_path.to_path_buf(),
                missing: cert_path.to_path_buf(),
            }),
        }
    }

    /// Loads a PEM certificate and a PEM private key (mode 0600 or stricter).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<TlsIdentity, CertFileError> {
        let meta = fs::metadata(key_path).map_err(io_err(key_path))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CertFileError::TooOpen {
                path: key_path.to_path_buf(),
                mode,
            });
        }
        let cert_pem = fs::read_to_string(cert_path).map_err(io_err(cert_path))?;
        let key_pem = fs::read_to_string(key_path).map_err(io_err(key_path))?;
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| {
            CertFileError::Malformed {
                path: cert_path.to_path_buf(),
                what: "certificate",
                reason: e.to_string(),
            }
        })?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
            CertFileError::Malformed {
                path: key_path.to_path_buf(),
                what: "private key",
                reason: e.to_string(),
            }
        })?;
        let id = TlsIdentity {
            cert_pem,
            cert,
            key: Arc::new(key),
        };
        // Refuse a pair that does not match now, not at the first handshake.
        server_config(&id, false).map_err(CertFileError::Mismatch)?;
        Ok(id)
    }

    /// The certificate in PEM, as clients pin it.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificate in DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }
}

fn write_new(path: &Path, mode: u32, text: &str) -> Result<(), CertFileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err(path))?;
    file.write_all(text.as_bytes()).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

/// The crypto provider both sides use: aws-lc-rs with only TLS13_AES_256_GCM_SHA384 and X25519.
pub fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: vec![aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384],
        kx_groups: vec![aws_lc_rs::kx_group::X25519],
        ..aws_lc_rs::default_provider()
    }
}

/// The server's rustls configuration, built once and shared read-only by every worker: TLS 1.3
/// only, no ALPN, no session cache, no tickets (every handshake is a full one), no client auth.
/// `ktls` turns on secret extraction, which kTLS would need.
pub fn server_config(id: &TlsIdentity, ktls: bool) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![id.cert.clone()], id.key.clone_key())?;
    cfg.session_storage = Arc::new(NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
    cfg.max_early_data_size = 0;
    cfg.enable_secret_extraction = ktls;
    Ok(cfg)
}

/// Where in its life a TLS connection failed (the same rustls error means different things).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Before a whole ClientHello was read.
    ClientHello,
    /// Between the ClientHello and the client's Finished.
    Handshake,
    /// After the handshake.
    Established,
}

/// The stage `tls` is in.
pub fn stage_of(tls: &ServerConnection) -> Stage {
    if tls.is_handshaking() {
        Stage::Handshake
    } else {
        Stage::Established
    }
}

/// Why a TLS connection failed.
#[derive(Debug)]
pub enum TlsError {
    /// rustls refused the peer's bytes.
    Tls(rustls::Error, Stage),
    /// rustls's buffer of undecoded bytes is full (a peer that sends more than a record's worth
    /// that never completes a message).
    Buffer(io::Error, Stage),
    /// A frame header inside the TLS stream broke the limits.
    Frame(stcp_proto::Error),
}

impl TlsError {
    /// The counter it goes to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TlsError::Tls(e, stage) => kind_of(e, *stage),
            TlsError::Buffer(_, Stage::ClientHello) => ErrorKind::TlsBadClientHello,
            TlsError::Buffer(_, Stage::Handshake) => ErrorKind::TlsHandshake,
            TlsError::Buffer(_, Stage::Established) => ErrorKind::TlsBadRecord,
            TlsError::Frame(e) => ErrorKind::of(e),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Tls(e, _) => write!(f, "tls: {e}"),
            TlsError::Buffer(e, _) => write!(f, "tls: {e}"),
            TlsError::Frame(e) => write!(f, "{e}"),
        }
    }
}

/// A rustls error as one of the few kinds an operator can act on.
pub fn kind_of(e: &rustls::Error, stage: Stage) -> ErrorKind {
    use rustls::Error as E;
    match (e, stage) {
        // The client cannot speak TLS 1.3 with AES-256-GCM and X25519.
        (E::PeerIncompatible(_), _) => ErrorKind::TlsIncompatible,
        // The client gave up on us (typically: it does not trust the certificate).
        (E::AlertReceived(_), _) => ErrorKind::TlsAlert,
        // Not TLS at all, or a malformed ClientHello.
        (_, Stage::ClientHello) => ErrorKind::TlsBadClientHello,
        (_, Stage::Handshake) => ErrorKind::TlsHandshake,
        (_, Stage::Established) => ErrorKind::TlsBadRecord,
    }
}

/// What one [`pump`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pumped {
    /// Frames completed in the plaintext.
    pub frames: u64,
    /// The client's close_notify arrived (bytes after it are ignored).
    pub peer_closed: bool,
    /// The handshake finished during this pump.
    pub handshake_done: bool,
}

/// Feeds `data` (bytes just received) to `tls`, echoes every plaintext byte back through it as
/// it comes out (the frame headers checked by `frames`, as in TCP mode: nothing is held for a
/// frame), and appends every TLS byte rustls has to send to `out`. Plaintext goes through
/// `scratch`, so rustls holds no plaintext afterwards and at most one incomplete record of
/// ciphertext ([`RUSTLS_HELD`]). On a rustls error, the alert it queued is in `out`.
pub fn pump(
    tls: &mut ServerConnection,
    mut data: &[u8],
    frames: &mut FrameStream,
    scratch: &mut [u8],
    out: &mut Vec<u8>,
) -> Result<Pumped, TlsError> {
    let mut p = Pumped::default();
    let was_handshaking = tls.is_handshaking();
    while !data.is_empty() && !p.peer_closed {
        let stage = stage_of(tls);
        match tls.read_tls(&mut data) {
            // Only after the client's close_notify: the rest is ignored.
            Ok(0) => p.peer_closed = true,
            Ok(_) => {}
            Err(e) => return Err(TlsError::Buffer(e, stage)),
        }
        let state = match tls.process_new_packets() {
            Ok(state) => state,
            Err(e) => {
                flush(tls, out);
                return Err(TlsError::Tls(e, stage));
            }
        };
        let closed = state.peer_has_closed();
        echo_plaintext(tls, frames, scratch, out, &mut p)?;
        p.peer_closed |= closed;
    }
    flush(tls, out);
    p.handshake_done = was_handshaking && !tls.is_handshaking();
    Ok(p)
}

/// Reads the plaintext rustls decrypted and writes it straight back (the echo).
fn echo_plaintext(
    tls: &mut ServerConnection,
    frames: &mut FrameStream,
    scratch: &mut [u8],
    out: &mut Vec<u8>,
    p: &mut Pumped,
) -> Result<(), TlsError> {
    loop {
        let n = match tls.reader().read(scratch) {
            Ok(0) => {
                p.peer_closed = true;
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(TlsError::Buffer(e, Stage::Established)),
        };
        // A bad header fails the connection: the bytes before it are not echoed either.
        p.frames += frames
            .advance(&scratch[..n])
            .map_err(|e| TlsError::Frame(e.error))? as u64;
        let mut rest = &scratch[..n];
        while !rest.is_empty() {
            let written = tls
                .writer()
                .write(rest)
                .map_err(|e| TlsError::Buffer(e, Stage::Established))?;
            flush(tls, out);
            if written == 0 {
                return Err(TlsError::Buffer(
                    io::Error::new(io::ErrorKind::WriteZero, "rustls took no plaintext"),
                    Stage::Established,
                ));
            }
            rest = &rest[written..];
        }
    }
}

/// Moves every TLS byte rustls has to send into `out`.
pub fn flush(tls: &mut ServerConnection, out: &mut Vec<u8>) {
    while tls.wants_write() {
        // Writing into a Vec cannot fail.
        if tls.write_tls(out).is_err() {
            break;
        }
    }
}

/// Queues the server's close_notify into `out`.
pub fn close(tls: &mut ServerConnection, out: &mut Vec<u8>) {
    tls.send_close_notify();
    flush(tls, out);
}

/// A fresh connection's rustls limits: what rustls may buffer of plaintext and ciphertext to send
/// is capped at `limit` (the server drains both after every receive, so this only guards a bug).
pub fn limit_buffers(tls: &mut ServerConnection, limit: usize) {
    tls.set_buffer_limit(Some(limit.max(SCRATCH_LEN)));
}

/// A client's check of the server's certificate by pinning: the end-entity certificate must be
/// exactly the pinned one (DER equal); the handshake signature is still verified with the
/// provider's TLS 1.3 signature verification. No chain, no name check against a CA.
#[derive(Debug)]
pub struct PinnedCert {
    cert: CertificateDer<'static>,
    algs: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl PinnedCert {
    /// Pins `cert`.
    pub fn new(cert: CertificateDer<'static>) -> PinnedCert {
        PinnedCert {
            cert,
            algs: provider().signature_verification_algorithms,
        }
    }
}

impl rustls::client::danger::ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// A client configuration matching the server's (TLS 1.3, AES-256-GCM, X25519, no resumption)
/// that pins `cert_pem`'s certificate. For tests and embedders; the load generator has its own.
pub fn pinned_client_config(cert_pem: &str) -> Result<rustls::ClientConfig, String> {
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| e.to_string())?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCert::new(cert)))
        .with_no_client_auth();
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(cfg)
}

// ---- kTLS ---------------------------------------------------------------------------------

/// Why `--ktls` cannot work here.
#[derive(Debug, thiserror::Error)]
pub enum KtlsUnavailable {
    /// The kernel has no TLS upper-layer protocol.
    #[error(
        "--ktls: this kernel has no TLS ULP (setsockopt TCP_ULP \"tls\" failed: {0}); load the \
         tls module (modprobe tls) or run without --ktls"
    )]
    NoUlp(io::Error),
    /// The kernel has the TLS ULP, but this server does not hand keys over yet (see the crate
    /// README: the multishot receive may already hold records past the handshake).
    #[error(
        "--ktls: this kernel has the TLS ULP, but this stcp-server cannot hand a session to it yet \
         (not built: the io_uring receive may already hold records past the handshake); run \
         without --ktls"
    )]
    NotBuilt,
    /// The loopback socket pair for the probe could not be made.
    #[error("--ktls: cannot make a loopback socket pair to probe kTLS: {0}")]
    Probe(io::Error),
}

fn set_ulp_tls(fd: RawFd) -> io::Result<()> {
    let name = b"tls";
    // SAFETY: `name` outlives the call and its length is passed with it.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_TCP,
            libc::TCP_ULP,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the kernel can take TLS keys: sets TCP_ULP "tls" once on a throwaway connected socket
/// pair over loopback (the ULP needs an established socket). `Ok` means the kernel has it.
pub fn probe_ktls() -> Result<(), KtlsUnavailable> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(KtlsUnavailable::Probe)?;
    let addr = listener.local_addr().map_err(KtlsUnavailable::Probe)?;
    let client = TcpStream::connect(addr).map_err(KtlsUnavailable::Probe)?;
    let (server, _) = listener.accept().map_err(KtlsUnavailable::Probe)?;
    set_ulp_tls(server.as_raw_fd()).map_err(KtlsUnavailable::NoUlp)?;
    drop(client);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_config(id: &TlsIdentity) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(id.cert_der().clone()).unwrap();
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    fn transfer(from: &mut impl FnMut(&mut Vec<u8>), to: &mut Vec<u8>) {
        from(to);
    }

    /// A whole session in memory: handshake, frames echoed through `pump`, close_notify.
    #[test]
    fn pump_echoes_frames_and_closes() {
        let id = TlsIdentity::generate().unwrap();
        let server_cfg = Arc::new(server_config(&id, false).unwrap());
        let mut server = ServerConnection::new(server_cfg).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(client_config(&id), name).unwrap();
        let mut frames = FrameStream::new(1 << 20);
        let mut scratch = vec![0; SCRATCH_LEN];
        let mut done = false;
        for _ in 0..10 {
            let mut to_server = Vec::new();
            transfer(
                &mut |v| {
                    client.write_tls(v).unwrap();
                },
                &mut to_server,
            );
            let mut to_client = Vec::new();
            let p = pump(
                &mut server,
                &to_server,
                &mut frames,
                &mut scratch,
                &mut to_client,
            )
            .unwrap();
            done |= p.handshake_done;
            client.read_tls(&mut &to_client[..]).unwrap();
            client.process_new_packets().unwrap();
            if !client.is_handshaking() && !server.is_handshaking() {
                break;
            }
        }
        assert!(done);
        assert_eq!(
            server.negotiated_cipher_suite().unwrap().suite(),
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
        );
        // Two frames, one of 40 KiB (several records).
        let mut sent = Vec::new();
        for len in [3usize, 40 << 10] {
            sent.extend((len as u32).to_be_bytes());
            sent.extend((0..len).map(|i| i as u8));
        }
        client.writer().write_all(&sent).unwrap();
        let mut echoed = Vec::new();
        let mut total = 0;
        for _ in 0..20 {
            let mut to_server = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut to_server).unwrap();
            }
            let mut to_client = Vec::new();
            let p = pump(
                &mut server,
                &to_server,
                &mut frames,
                &mut scratch,
                &mut to_client,
            )
            .unwrap();
            total += p.frames;
            let mut rd = &to_client[..];
            let mut buf = [0u8; 65536];
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
                client.process_new_packets().unwrap();
                while let Ok(n) = client.reader().read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    echoed.extend_from_slice(&buf[..n]);
                }
            }
            if echoed.len() == sent.len() {
                break;
            }
        }
        assert_eq!(echoed, sent);
        assert_eq!(total, 2);
        // close_notify from the client is seen.
        client.send_close_notify();
        let mut to_server = Vec::new();
        client.write_tls(&mut to_server).unwrap();
        let mut out = Vec::new();
        let p = pump(&mut server, &to_server, &mut frames, &mut scratch, &mut out).unwrap();
        assert!(p.peer_closed);
    }

    /// An oversized frame header inside TLS fails like TCP mode's; HTTP on the TLS port is a
    /// bad ClientHello (checked in the backends, which use rustls's Acceptor first).
    #[test]
    fn frame_limit_applies_inside_tls() {
        let mut frames = FrameStream::new(10);
        let e = frames.advance(&[0, 0, 0, 11]).unwrap_err();
        assert_eq!(TlsError::Frame(e.error).kind(), ErrorKind::FrameTooLarge);
        let bad = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert_eq!(
            kind_of(&bad, Stage::ClientHello),
            ErrorKind::TlsBadClientHello
        );
        assert_eq!(kind_of(&bad, Stage::Established), ErrorKind::TlsBadRecord);
        assert_eq!(
            kind_of(
                &rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate),
                Stage::Handshake
            ),
            ErrorKind::TlsAlert
        );
    }

    #[test]
    fn files_are_created_once_and_the_key_is_private() {
        let dir = std::env::temp_dir().join(format!("stcp-tls-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("c.crt"), dir.join("c.key"));
        let (a, created) = TlsIdentity::load_or_create(&cert, &key).unwrap();
        assert!(created);
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (b, created) = TlsIdentity::load_or_create(&cert, &key).unwrap();
        assert!(!created);
        assert_eq!(a.cert_der(), b.cert_der());
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            TlsIdentity::load_or_create(&cert, &key),
            Err(CertFileError::TooOpen { mode: 0o644, .. })
        ));
        fs::remove_file(&key).unwrap();
        assert!(matches!(
            TlsIdentity::load_or_create(&cert, &key),
            Err(CertFileError::OnlyOne { .. })
        ));
        let _ = fs::remove_dir_all(&dir);
    }

    /// Here the kernel has no TLS ULP (ENOENT): the probe says so in one line. Where the kernel
    /// has it, the probe passes.
    #[test]
    fn ktls_probe_names_the_cause_or_passes() {
        match probe_ktls() {
            Ok(()) => {}
            Err(KtlsUnavailable::NoUlp(e)) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
                let line = KtlsUnavailable::NoUlp(e).to_string();
                assert!(line.contains("TCP_ULP") && !line.contains('\n'), "{line}");
            }
            Err(e) => panic!("{e}"),
        }
    }
}
