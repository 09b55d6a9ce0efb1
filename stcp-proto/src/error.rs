//! The protocol's error type: one variant per cause, so a driver can count
//! failures by kind and a user can read what went wrong.

/// Everything that can go wrong while speaking STCP. Every variant is caused by
/// the peer's bytes, by the caller's misuse of the API, or by time running out;
/// none of them is a panic.
///
/// Exhaustive on purpose: a new variant must be given its own counter by every driver that
/// counts errors (the server maps each one to its own kind).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A frame header announced more payload than the configured maximum.
    /// Raised from the 4-byte header, before anything is buffered for the frame.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    /// A handshake frame announced more than [`crate::HANDSHAKE_MAX_LEN`] bytes.
    #[error("handshake message of {len} bytes exceeds the cap of {max} bytes")]
    HandshakeTooLarge { len: usize, max: usize },
    /// A record header carried a record type this version does not define.
    #[error("unknown record type {0}")]
    BadRecordType(u8),
    /// A record's length is shorter than its tag or disagrees with its buffer.
    #[error("record length is inconsistent")]
    BadLength,
    /// A record header announced more than [`crate::codec::MAX_RECORD_PAYLOAD`]
    /// (16 KiB) of payload: a larger frame must be carried by several records.
    #[error("record of {len} payload bytes exceeds the 16 KiB record limit")]
    RecordTooLarge { len: usize },
    /// A frame's records carried more or fewer bytes than its `Begin` record
    /// announced (or a `Begin` announced no more than it carried itself).
    #[error("a frame's records do not add up to the length it announced")]
    FrameLength,
    /// A new frame (or a Close) began before the current frame's final record.
    #[error("record starts a new frame before the current frame's final record")]
    MissingFinal,
    /// A `Continue` or `End` record arrived outside a frame.
    #[error("continuation record without a frame begun")]
    MissingBegin,
    /// AES-GCM authentication failed: the record was altered, replayed,
    /// reordered, dropped before, or sealed under another key.
    #[error("record failed authentication")]
    BadTag,
    /// The first handshake frame did not start with the STCP magic: the peer
    /// does not speak STCP (an HTTP request, a TLS ClientHello, random bytes...).
    #[error("peer does not speak STCP (bad magic)")]
    NotStcp,
    /// The peer speaks another version of STCP.
    #[error("peer speaks STCP version {got}, this side speaks version {ours}")]
    VersionMismatch { got: u8, ours: u8 },
    /// The handshake named a Noise pattern this version does not define.
    #[error("unknown handshake pattern {0}")]
    UnknownPattern(u8),
    /// The server requires a pre-shared key and the client offered none.
    #[error("server requires a pre-shared key (NKpsk2) and the client offered none")]
    PskRequired,
    /// The client offered a pre-shared key handshake to a server that has none.
    #[error("client offered a pre-shared key handshake but the server has no PSK")]
    PskNotConfigured,
    /// A Noise handshake message failed to authenticate. On the server this
    /// means the client pinned another server key; on the client it means the
    /// reply came from a server without our key or with another PSK.
    #[error("handshake authentication failed (wrong server key or wrong PSK)")]
    HandshakeAuthFailed,
    /// A handshake message was malformed (wrong length, cut short).
    #[error("malformed handshake message")]
    BadHandshake,
    /// The handshake did not finish before its deadline.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// This side already sent its close record; nothing more may be sent.
    #[error("connection already closed by this side")]
    Closed,
    /// The peer sent a record after its authenticated close.
    #[error("record received after the peer's authenticated close")]
    RecordAfterClose,
    /// The stream ended without an authenticated close, or in the middle of a
    /// frame: the data may have been cut by an attacker.
    #[error("stream ended without an authenticated close")]
    Truncated,
    /// A direction used 2^64 - 1 nonces; the connection must end.
    #[error("record counter exhausted")]
    CounterExhausted,
    /// The caller tried to send before the handshake finished.
    #[error("handshake not finished")]
    NotEstablished,
}

impl Error {
    /// A short stable label for counters, logs and JSON reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::FrameTooLarge { .. } => "frame_too_large",
            Error::HandshakeTooLarge { .. } => "handshake_too_large",
            Error::BadRecordType(_) => "bad_record_type",
            Error::BadLength => "bad_length",
            Error::RecordTooLarge { .. } => "record_too_large",
            Error::FrameLength => "frame_length",
            Error::MissingFinal => "missing_final",
            Error::MissingBegin => "missing_begin",
            Error::BadTag => "bad_tag",
            Error::NotStcp => "not_stcp",
            Error::VersionMismatch { .. } => "version_mismatch",
            Error::UnknownPattern(_) => "unknown_pattern",
            Error::PskRequired => "psk_required",
            Error::PskNotConfigured => "psk_not_configured",
            Error::HandshakeAuthFailed => "handshake_auth_failed",
            Error::BadHandshake => "bad_handshake",
            Error::HandshakeTimeout => "handshake_timeout",
            Error::Closed => "closed",
            Error::RecordAfterClose => "record_after_close",
            Error::Truncated => "truncated",
            Error::CounterExhausted => "counter_exhausted",
            Error::NotEstablished => "not_established",
        }
    }
}
