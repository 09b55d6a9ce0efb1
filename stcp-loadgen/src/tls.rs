//! The client side of `--mode tls`: a rustls configuration with the parameters STCP is compared
//! at (TLS 1.3 only, TLS13_AES_256_GCM_SHA384 only, X25519 only, no ALPN, no resumption, no
//! client certificate), pinning the server's certificate from `--server-cert`. rustls is used
//! sans-IO: the engine moves its bytes through io_uring like STCP's records.
//!
//! Pinning: the server's end-entity certificate must be byte for byte the one in the file; no
//! chain is built and no name is checked against a CA. The handshake signature is still verified
//! with the provider's TLS 1.3 signature verification, so only the holder of that certificate's
//! key completes a handshake.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{aws_lc_rs, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// The certificate file a local `stcp-server` writes when it creates its TLS certificate, used
/// when --server-cert is not given.
pub const DEFAULT_SERVER_CERT_FILE: &str = "stcp-server.crt";

/// Why `--server-cert` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertFileError {
    #[error(
        "cannot read --server-cert {path}: {1}: give the PEM certificate the server uses \
         (stcp-server writes it as {DEFAULT_SERVER_CERT_FILE})",
        path = .0.display()
    )]
    Read(PathBuf, std::io::Error),
    #[error(
        "--server-cert {path}: no PEM certificate in it ({1}): give the file holding \
         \"-----BEGIN CERTIFICATE-----\" that the server uses (stcp-server writes it as \
         {DEFAULT_SERVER_CERT_FILE})",
        path = .0.display()
    )]
    Pem(PathBuf, String),
    #[error("cannot build the TLS configuration: {0}")]
    Config(rustls::Error),
    #[error("the embedded server's TLS certificate is not PEM: {0}")]
    Embedded(String),
}

/// What every TLS connection of a run shares: the configuration and the name the server is
/// asked for (SNI for a host name, none for an IP address).
#[derive(Clone, Debug)]
pub struct TlsClient {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
}

impl TlsClient {
    /// A client pinning `certificate` (DER), asking for `host` (a name or an IP address).
    pub fn new(
        certificate: CertificateDer<'static>,
        host: &str,
    ) -> Result<TlsClient, CertFileError> {
        Ok(TlsClient {
            config: client_config(certificate)?,
            server_name: server_name(host),
        })
    }
}

/// The provider: aws-lc-rs, cut down to the one cipher suite and the one key exchange compared.
pub fn provider() -> CryptoProvider {
    let mut provider = aws_lc_rs::default_provider();
    provider.cipher_suites = vec![aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384];
    provider.kx_groups = vec![aws_lc_rs::kx_group::X25519];
    provider
}

/// The client configuration pinning `certificate`.
pub fn client_config(
    certificate: CertificateDer<'static>,
) -> Result<Arc<rustls::ClientConfig>, CertFileError> {
    let provider = Arc::new(provider());
    let verifier = PinnedCertificate {
        certificate,
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(CertFileError::Config)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    config.enable_early_data = false;
    Ok(Arc::new(config))
}

/// Reads the first certificate of a PEM file.
pub fn load_certificate(path: &Path) -> Result<CertificateDer<'static>, CertFileError> {
    let pem = std::fs::read(path).map_err(|e| CertFileError::Read(path.to_path_buf(), e))?;
    CertificateDer::from_pem_slice(&pem)
        .map_err(|e| CertFileError::Pem(path.to_path_buf(), e.to_string()))
}

/// The certificate an embedded server handed over in memory (PEM).
pub fn certificate_from_pem(pem: &str) -> Result<CertificateDer<'static>, CertFileError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| CertFileError::Embedded(e.to_string()))
}

/// The server name for `host` (HOST of HOST:PORT, IPv6 in brackets or not): an IP address
/// (rustls then sends no SNI), or the name itself. A name rustls cannot take as a DNS name is
/// asked for as `localhost`, which the certificate stcp-server creates names.
pub fn server_name(host: &str) -> ServerName<'static> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return ServerName::IpAddress(ip.into());
    }
    ServerName::try_from(bare.to_string())
        .unwrap_or_else(|_| ServerName::try_from("localhost").expect("a valid DNS name"))
}

/// HOST of a HOST:PORT target.
pub fn host_of(target: &str) -> &str {
    target.rsplit_once(':').map_or(target, |(host, _)| host)
}

/// A rustls error during the handshake, in words a user can act on.
pub fn handshake_failure(e: &rustls::Error) -> &'static str {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure) => {
            "the server's TLS certificate is not the one in --server-cert: give the certificate \
             file this server uses"
        }
        rustls::Error::InvalidCertificate(_) => "the server's TLS certificate was refused",
        rustls::Error::PeerIncompatible(_) | rustls::Error::AlertReceived(_) => {
            "the server refused the TLS handshake (it must offer TLS 1.3 with \
             TLS13_AES_256_GCM_SHA384 and X25519)"
        }
        rustls::Error::PeerMisbehaved(_) | rustls::Error::InvalidMessage(_) => {
            "the server broke the TLS protocol during the handshake"
        }
        rustls::Error::DecryptError => "a TLS handshake record failed to authenticate",
        _ => "the TLS handshake failed",
    }
}

/// Accepts exactly one end-entity certificate, then verifies the handshake signature with it.
#[derive(Debug)]
struct PinnedCertificate {
    certificate: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.certificate.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
