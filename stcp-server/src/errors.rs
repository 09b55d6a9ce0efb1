//! Error kinds the server counts and logs, and the errors [`crate::Server::start`] returns.

use std::{io, net::SocketAddr};

use stcp_engine::Unavailable;

/// Why a connection ended badly (or an accept failed). One counter per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum ErrorKind {
    /// A frame or record header announced more than `max_frame`.
    FrameTooLarge = 0,
    /// A handshake frame announced more than `HANDSHAKE_MAX_LEN`.
    HandshakeTooLarge,
    /// A record type this version does not define.
    BadRecordType,
    /// A record length shorter than a tag, a Close with a payload, or an empty record that does
    /// not end its frame.
    BadLength,
    /// A record header announced more than `MAX_RECORD_PAYLOAD` (16 KiB) of payload.
    RecordTooLarge,
    /// A frame's records carried more or fewer bytes than its `Begin` record announced.
    FrameLength,
    /// A new frame (or a Close) began before the current frame's final record.
    MissingFinal,
    /// A `Continue` or `End` record arrived outside a frame.
    MissingBegin,
    /// A record failed authentication.
    BadTag,
    /// The first frame did not start with the STCP magic.
    NotStcp,
    /// The client speaks another STCP version.
    VersionMismatch,
    /// The hello named a handshake pattern this version does not define.
    UnknownPattern,
    /// The server has a PSK and the client offered none (NK).
    PskRequired,
    /// The client offered a PSK handshake (NKpsk2) to a server without a PSK.
    PskNotConfigured,
    /// A malformed handshake message (length, reserved bytes).
    BadHandshake,
    /// The client's hello failed to authenticate (it pinned another server key, or another PSK).
    HandshakeAuthFailed,
    /// No complete handshake within the handshake timeout.
    HandshakeTimeout,
    /// No traffic within the idle timeout.
    IdleTimeout,
    /// A record arrived after the client's authenticated close.
    RecordAfterClose,
    /// The stream ended in the middle of a frame, or (STCP) without an authenticated close.
    Truncated,
    /// A record counter ran out.
    CounterExhausted,
    /// The socket failed (reset, broken pipe, ...).
    Io,
    /// `accept` failed (e.g. out of file descriptors).
    Accept,
    /// Local misuse: sealing after our own Close (a server bug if ever counted).
    Closed,
    /// Local misuse: sealing before the handshake finished (a server bug if ever counted).
    NotEstablished,
    /// The hello's source address was over `--handshake-rate-per-ip`: closed without an answer.
    HandshakeRateLimited,
    /// TLS port: the first bytes were not a usable TLS ClientHello (not TLS at all, or malformed).
    TlsBadClientHello,
    /// TLS port: the client cannot speak TLS 1.3 with AES-256-GCM and X25519.
    TlsIncompatible,
    /// TLS port: the client sent a fatal alert (typically: it does not trust the certificate).
    TlsAlert,
    /// TLS port: the handshake failed after the ClientHello (bad Finished, misbehaviour).
    TlsHandshake,
    /// TLS port: a record after the handshake failed (decryption, malformed or unexpected).
    TlsBadRecord,
}

impl ErrorKind {
    /// Number of kinds.
    pub const COUNT: usize = 31;
    /// Every kind, in counter order.
    pub const ALL: [ErrorKind; ErrorKind::COUNT] = [
        ErrorKind::FrameTooLarge,
        ErrorKind::HandshakeTooLarge,
        ErrorKind::BadRecordType,
        ErrorKind::BadLength,
        ErrorKind::RecordTooLarge,
        ErrorKind::FrameLength,
        ErrorKind::MissingFinal,
        ErrorKind::MissingBegin,
        ErrorKind::BadTag,
        ErrorKind::NotStcp,
        ErrorKind::VersionMismatch,
        ErrorKind::UnknownPattern,
        ErrorKind::PskRequired,
        ErrorKind::PskNotConfigured,
        ErrorKind::BadHandshake,
        ErrorKind::HandshakeAuthFailed,
        ErrorKind::HandshakeTimeout,
        ErrorKind::IdleTimeout,
        ErrorKind::RecordAfterClose,
        ErrorKind::Truncated,
        ErrorKind::CounterExhausted,
        ErrorKind::Io,
        ErrorKind::Accept,
        ErrorKind::Closed,
        ErrorKind::NotEstablished,
        ErrorKind::HandshakeRateLimited,
        ErrorKind::TlsBadClientHello,
        ErrorKind::TlsIncompatible,
        ErrorKind::TlsAlert,
        ErrorKind::TlsHandshake,
        ErrorKind::TlsBadRecord,
    ];

    /// The kinds that only a handshake can end in (the server's `handshakes_failed` metric by
    /// kind). A handshake can also end in a kind not listed here (`io`: the socket failed;
    /// `truncated`: the client went away before its hello was whole); those count only among
    /// the errors.
    pub const HANDSHAKE: [ErrorKind; 13] = [
        ErrorKind::HandshakeTooLarge,
        ErrorKind::NotStcp,
        ErrorKind::VersionMismatch,
        ErrorKind::UnknownPattern,
        ErrorKind::PskRequired,
        ErrorKind::PskNotConfigured,
        ErrorKind::BadHandshake,
        ErrorKind::HandshakeAuthFailed,
        ErrorKind::HandshakeTimeout,
        ErrorKind::HandshakeRateLimited,
        ErrorKind::TlsBadClientHello,
        ErrorKind::TlsIncompatible,
        ErrorKind::TlsHandshake,
    ];

    /// Short stable label for stats lines and logs.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::FrameTooLarge => "frame_too_large",
            ErrorKind::HandshakeTooLarge => "handshake_too_large",
            ErrorKind::BadRecordType => "bad_record_type",
            ErrorKind::BadLength => "bad_length",
            ErrorKind::RecordTooLarge => "record_too_large",
            ErrorKind::FrameLength => "frame_length",
            ErrorKind::MissingFinal => "missing_final",
            ErrorKind::MissingBegin => "missing_begin",
            ErrorKind::BadTag => "bad_tag",
            ErrorKind::NotStcp => "not_stcp",
            ErrorKind::VersionMismatch => "version_mismatch",
            ErrorKind::UnknownPattern => "unknown_pattern",
            ErrorKind::PskRequired => "psk_required",
            ErrorKind::PskNotConfigured => "psk_not_configured",
            ErrorKind::BadHandshake => "bad_handshake",
            ErrorKind::HandshakeAuthFailed => "handshake_auth_failed",
            ErrorKind::HandshakeTimeout => "handshake_timeout",
            ErrorKind::IdleTimeout => "idle_timeout",
            ErrorKind::RecordAfterClose => "record_after_close",
            ErrorKind::Truncated => "truncated",
            ErrorKind::CounterExhausted => "counter_exhausted",
            ErrorKind::Io => "io",
            ErrorKind::Accept => "accept",
            ErrorKind::Closed => "closed",
            ErrorKind::NotEstablished => "not_established",
            ErrorKind::HandshakeRateLimited => "handshake_rate_limited",
            ErrorKind::TlsBadClientHello => "tls_bad_client_hello",
            ErrorKind::TlsIncompatible => "tls_incompatible",
            ErrorKind::TlsAlert => "tls_alert",
            ErrorKind::TlsHandshake => "tls_handshake",
            ErrorKind::TlsBadRecord => "tls_bad_record",
        }
    }

    /// The kind of a protocol error: one kind per error, with the protocol's label
    /// (`docs/PROTOCOL.md` section 5).
    pub fn of(e: &stcp_proto::Error) -> ErrorKind {
        use stcp_proto::Error as E;
        match e {
            E::FrameTooLarge { .. } => ErrorKind::FrameTooLarge,
            E::HandshakeTooLarge { .. } => ErrorKind::HandshakeTooLarge,
            E::BadRecordType(_) => ErrorKind::BadRecordType,
            E::BadLength => ErrorKind::BadLength,
            E::RecordTooLarge { .. } => ErrorKind::RecordTooLarge,
            E::FrameLength => ErrorKind::FrameLength,
            E::MissingFinal => ErrorKind::MissingFinal,
            E::MissingBegin => ErrorKind::MissingBegin,
            E::BadTag => ErrorKind::BadTag,
            E::NotStcp => ErrorKind::NotStcp,
            E::VersionMismatch { .. } => ErrorKind::VersionMismatch,
            E::UnknownPattern(_) => ErrorKind::UnknownPattern,
            E::PskRequired => ErrorKind::PskRequired,
            E::PskNotConfigured => ErrorKind::PskNotConfigured,
            E::BadHandshake => ErrorKind::BadHandshake,
            E::HandshakeAuthFailed => ErrorKind::HandshakeAuthFailed,
            E::HandshakeTimeout => ErrorKind::HandshakeTimeout,
            E::RecordAfterClose => ErrorKind::RecordAfterClose,
            E::Truncated => ErrorKind::Truncated,
            E::CounterExhausted => ErrorKind::CounterExhausted,
            E::Closed => ErrorKind::Closed,
            E::NotEstablished => ErrorKind::NotEstablished,
        }
    }
}

/// Why the server could not start (or a worker failed).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// `--io uring` was asked for and io_uring cannot be used.
    #[error("io_uring unavailable: {0}")]
    UringUnavailable(#[from] Unavailable),
    /// A listener could not be created.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// The metrics listener could not be created.
    #[error("cannot listen for metrics on {addr}: {source}")]
    MetricsListen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// The metrics thread could not be started.
    #[error("cannot start the metrics thread: {0}")]
    MetricsThread(io::Error),
    /// Neither listener is configured.
    #[error("nothing to serve: the STCP, TCP and TLS listeners are all turned off")]
    NoListener,
    /// A worker thread could not be started or set up.
    #[error("worker {worker}: {source}")]
    Worker {
        /// Worker index.
        worker: usize,
        /// The cause.
        source: io::Error,
    },
    /// `tls_listen` is set but no certificate was given.
    #[error("a TLS listener needs a certificate and key (Config::tls_identity)")]
    NoTlsIdentity,
    /// rustls refused the certificate or key.
    #[error("cannot use the TLS certificate: {0}")]
    Tls(Box<rustls::Error>),
    /// A certificate could not be made or read.
    #[error("{0}")]
    Cert(Box<crate::tls::CertFileError>),
    /// `--ktls` asked for and the kernel cannot take TLS keys.
    #[error("{0}")]
    Ktls(#[from] crate::tls::KtlsUnavailable),
    /// A worker thread panicked.
    #[error("worker {0} panicked")]
    WorkerPanicked(usize),
    /// The stats-line thread panicked (a bug: it must survive anything, a closed stderr too).
    #[error("the stats thread panicked")]
    ReporterPanicked,
}

impl From<crate::tls::CertFileError> for ServerError {
    fn from(e: crate::tls::CertFileError) -> Self {
        ServerError::Cert(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_all_is_in_counter_order() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
        let mut labels: Vec<_> = ErrorKind::ALL.iter().map(|k| k.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), ErrorKind::COUNT);
    }

    #[test]
    fn handshake_kinds_are_distinct_and_about_handshakes() {
        let mut kinds: Vec<usize> = ErrorKind::HANDSHAKE.iter().map(|&k| k as usize).collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), ErrorKind::HANDSHAKE.len());
        for k in ErrorKind::HANDSHAKE {
            let label = k.label();
            assert!(
                label.contains("handshake")
                    || label.contains("psk")
                    || ["tls_bad_client_hello", "tls_incompatible"].contains(&label)
                    || ["not_stcp", "version_mismatch", "unknown_pattern"].contains(&label),
                "{label}"
            );
        }
        for k in [ErrorKind::BadTag, ErrorKind::Io, ErrorKind::Truncated] {
            assert!(!ErrorKind::HANDSHAKE.contains(&k));
        }
    }

    #[test]
    fn maps_protocol_errors() {
        assert_eq!(ErrorKind::of(&stcp_proto::Error::BadTag), ErrorKind::BadTag);
        assert_eq!(
            ErrorKind::of(&stcp_proto::Error::PskRequired),
            ErrorKind::PskRequired
        );
        assert_eq!(
            ErrorKind::of(&stcp_proto::Error::FrameTooLarge { len: 9, max: 1 }),
            ErrorKind::FrameTooLarge
        );
    }

    /// Every protocol error has its own kind, labelled as stcp-proto labels it: the counters
    /// speak the protocol document's language.
    #[test]
    fn every_protocol_error_keeps_its_label() {
        use stcp_proto::Error as E;
        for e in [
            E::FrameTooLarge { len: 2, max: 1 },
            E::HandshakeTooLarge { len: 2, max: 1 },
            E::BadRecordType(9),
            E::BadLength,
            E::RecordTooLarge { len: 16 * 1024 + 1 },
            E::FrameLength,
            E::MissingFinal,
            E::MissingBegin,
            E::BadTag,
            E::NotStcp,
            E::VersionMismatch { got: 1, ours: 2 },
            E::UnknownPattern(7),
            E::PskRequired,
            E::PskNotConfigured,
            E::HandshakeAuthFailed,
            E::BadHandshake,
            E::HandshakeTimeout,
            E::Closed,
            E::RecordAfterClose,
            E::Truncated,
            E::CounterExhausted,
            E::NotEstablished,
        ] {
            assert_eq!(ErrorKind::of(&e).label(), e.kind(), "{e:?}");
        }
    }
}
