//! Why a device message is refused, as the audit log records it and the device is told.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The refusal codes of the protocol (`error` in [`crate::message::Ack`] and
/// [`crate::message::ErrorMessage`], `reason` in the audit record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// Not a well-formed message of this protocol version (JSON, JWS, base64url, lengths).
    Malformed,
    /// A protocol version the service does not speak.
    UnsupportedVersion,
    /// Signed by a key other than the named device's, for another service (`aud`), or an answer
    /// to a request that was sent to another device.
    Foreign,
    /// The counter is not above the last accepted one: a message seen before.
    Replayed,
    /// After the request's or the challenge's expiry.
    Late,
    /// The verification code in the answer is not the request's.
    WrongVerificationCode,
    /// The answer's digests are not the ones the request (and so the SAD) named.
    DigestNotRequested,
    /// A returned signature does not verify with the credential's certificate.
    BadSignature,
    /// An algorithm or key type this service does not use.
    Unsupported,
    /// No request with this id is waiting for this device (never sent, or already answered).
    UnknownRequest,
    /// The device is not paired (unknown, or revoked by the signer or an administrator).
    Unpaired,
}

impl RefusalCode {
    /// The code as it is written (`snake_case`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnsupportedVersion => "unsupported_version",
            Self::Foreign => "foreign",
            Self::Replayed => "replayed",
            Self::Late => "late",
            Self::WrongVerificationCode => "wrong_verification_code",
            Self::DigestNotRequested => "digest_not_requested",
            Self::BadSignature => "bad_signature",
            Self::Unsupported => "unsupported",
            Self::UnknownRequest => "unknown_request",
            Self::Unpaired => "unpaired",
        }
    }
}

/// A refused device message, with what can be said about it. The descriptions never carry a
/// secret (pairing codes, challenges' keys) nor the message itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not well formed; the text says which part.
    Malformed(String),
    /// Protocol version `v` is not spoken.
    UnsupportedVersion(u64),
    /// Not from the expected device or not for this service; the text says which check.
    Foreign(&'static str),
    /// The counter was not above `last`, the last accepted one.
    Replayed {
        /// The last accepted counter (the device may resynchronize from it).
        last: u64,
    },
    /// Too late: past the request's expiry or the challenge's lifetime.
    Late,
    /// The verification code does not match.
    WrongVerificationCode,
    /// The answer names digests the request did not.
    DigestNotRequested,
    /// The signature at this index does not verify.
    BadSignature(usize),
    /// Not supported; the text names what.
    Unsupported(&'static str),
}

impl Refusal {
    /// The protocol code.
    pub fn code(&self) -> RefusalCode {
        match self {
            Self::Malformed(_) => RefusalCode::Malformed,
            Self::UnsupportedVersion(_) => RefusalCode::UnsupportedVersion,
            Self::Foreign(_) => RefusalCode::Foreign,
            Self::Replayed { .. } => RefusalCode::Replayed,
            Self::Late => RefusalCode::Late,
            Self::WrongVerificationCode => RefusalCode::WrongVerificationCode,
            Self::DigestNotRequested => RefusalCode::DigestNotRequested,
            Self::BadSignature(_) => RefusalCode::BadSignature,
            Self::Unsupported(_) => RefusalCode::Unsupported,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(what) => write!(f, "malformed device message: {what}"),
            Self::UnsupportedVersion(v) => write!(f, "protocol version {v} is not supported (this service speaks 1)"),
            Self::Foreign(what) => write!(f, "foreign device message: {what}"),
            Self::Replayed { last } => write!(f, "replayed device message: the counter must be above {last}"),
            Self::Late => f.write_str("the device message came after the expiry"),
            Self::WrongVerificationCode => f.write_str("the verification code does not match the request"),
            Self::DigestNotRequested => f.write_str("the answer names digests that were not requested"),
            Self::BadSignature(i) => write!(f, "signature {i} does not verify with the credential's certificate"),
            Self::Unsupported(what) => write!(f, "not supported: {what}"),
        }
    }
}

impl std::error::Error for Refusal {}
