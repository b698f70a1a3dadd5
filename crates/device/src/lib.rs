//! The device protocol (issue 18): what the service and a signer's device (the bridge agent
//! for a smart card, the phone page, a native app) say to each other. See
//! `docs/device-protocol.md`, which this crate implements message by message.
//!
//! The crate holds the protocol's types and pure functions, with no I/O and no storage: the
//! caller brings the state it stores (a device's key and last counter, the outstanding
//! request) and the time, and stores what is accepted.
//!
//! * [`message`]: the messages, version 1 (serde; strict for what devices send).
//! * [`jws`]: how a device signs its messages (compact JWS, ES256, RFC 7515 / RFC 7518).
//! * [`vc`]: the verification code both screens show.
//! * [`key`]: device keys, signing keys, and verifying what they signed.
//! * [`freshness`]: challenges, counters, expiries, nonces.
//! * [`pairing`]: pairing codes, CSR and key proofs.
//! * [`check`]: the checks each side makes, composed in the protocol's order.
//! * [`refusal`]: why a message is refused.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod b64;
pub mod check;
pub mod freshness;
pub mod jws;
pub mod key;
pub mod message;
pub mod pairing;
pub mod refusal;
pub mod vc;

pub use refusal::{Refusal, RefusalCode};
pub use vc::VerificationCode;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// The largest device message (the compact JWS), in bytes: 256 digests and RSA-4096 signatures
/// fit.
pub const MAX_MESSAGE_BYTES: usize = 512 * 1024;

/// The most digests in one request.
pub const MAX_DIGESTS: usize = 256;

/// The largest data to be signed (DTBS) per digest, in bytes: CAdES signed attributes, a
/// canonical XAdES SignedInfo, a JAdES signing input with its certificate chain.
pub const MAX_DTBS_BYTES: usize = 64 * 1024;

/// The longest document label, in characters (what Smart-ID allows for its longest display
/// text, `displayText200`).
pub const MAX_LABEL_CHARS: usize = 200;

/// The longest transaction description, in characters.
pub const MAX_TEXT_CHARS: usize = 500;

/// The longest device or application name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
