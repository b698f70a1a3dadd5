//! The messages of the device protocol, version 1 (`docs/device-protocol.md`, "Messages").
//!
//! Two directions, two rules:
//!
//! * [`DeviceMessage`]: what a device says. It travels as the payload of a JWS (see
//!   [`crate::jws`]), and is parsed strictly: unknown members are refused
//!   (`deny_unknown_fields`), every binary value has one spelling ([`B64`]), ids have one
//!   alphabet ([`Id`]). A signed statement must mean exactly one thing, in the audit log too.
//! * [`ServiceMessage`]: what the service says, over TLS. A device ignores members it does not
//!   know (as Smart-ID's RP API asks of its clients, §2.2.9), so the service can add
//!   informational members within version 1; a change of meaning is a new version.
//!
//! Member names are camelCase and reuse the CSC API's where they mean the same thing
//! (`credentialID` is spelled `credentialId` here, like every id; `signAlgo`,
//! `hashAlgorithmOID` as in CSC v2 §11.10).

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use zeroize::Zeroize as _;

use crate::b64::B64;
use crate::refusal::RefusalCode;
use crate::vc::VerificationCode;

/// The protocol version, `"v": 1` in every message. Any other number is refused when parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct V1;

impl Serialize for V1 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(1)
    }
}

impl<'de> Deserialize<'de> for V1 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match u64::deserialize(deserializer)? {
            1 => Ok(V1),
            v => Err(de::Error::custom(format!("protocol version {v} is not supported"))),
        }
    }
}

/// An identifier (device, request, pairing, credential): 1 to [`Id::MAX_LEN`] characters from
/// `A-Z a-z 0-9 - _ . :`, so that it can be logged, compared and put in a path as it is.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(String);

impl Id {
    /// The longest id.
    pub const MAX_LEN: usize = 128;

    /// `text` if it is a valid id.
    pub fn new(text: impl Into<String>) -> Option<Self> {
        let text = text.into();
        let ok = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        ok.then_some(Self(text))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Id {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Id::new(s).ok_or_else(|| de::Error::custom("an id is 1 to 128 characters of A-Z a-z 0-9 - _ . :"))
    }
}

// ---------------------------------------------------------------------------------------------
// Service → device
// ---------------------------------------------------------------------------------------------

/// A message from the service to a device: a WebSocket text frame (RFC 6455 §5.6), or one
/// element of a long-poll response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServiceMessage {
    /// A fresh challenge for the next `hello`.
    Challenge(Challenge),
    /// The `hello` was accepted: the connection now carries this device's requests.
    Ready(Ready),
    /// Sign these digests, if the signer approves.
    SignRequest(SignRequest),
    /// Approve (or deny) a credential authorization.
    ApprovalRequest(ApprovalRequest),
    /// A request is withdrawn; stop showing it.
    Cancel(Cancel),
    /// What became of the device's answer.
    Ack(Ack),
    /// The last device message was refused; on a WebSocket the service then closes with 1008.
    Error(ErrorMessage),
    /// Pairing, step 1 answer: the pairing session and its challenge.
    PairChallenge(PairChallenge),
    /// Pairing, step 2 answer: the device and its credential exist.
    Paired(Paired),
}

/// A challenge: binds the device's next `hello` to this service and to now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Challenge {
    /// Protocol version.
    pub v: V1,
    /// The challenge (opaque to the device; see [`crate::freshness::ChallengeKey`]).
    pub challenge: B64,
    /// The last counter the service accepted from this device (0 before any), so that a device
    /// that lost its own (a second tab, a restore) continues above it. Absent before the device
    /// is known (the first frame of a WebSocket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<u64>,
    /// The challenge is accepted until then (Unix seconds).
    pub expires_at: i64,
}

/// The connection is the device's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ready {
    /// Protocol version.
    pub v: V1,
    /// The device.
    pub device_id: Id,
    /// The counter of the accepted `hello`.
    pub counter: u64,
}

/// The document preview a device may show (fetched with the capability in `href`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// Where to fetch it: an absolute `https` URL whose query carries a one-time capability.
    pub href: String,
    /// Its media type (`application/pdf`, `image/png`, `text/plain`).
    pub media_type: String,
}

/// Sign `digests` (CSC's hashes; ETSI TS 119 432's DTBS/R) with the credential's key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignRequest {
    /// Protocol version.
    pub v: V1,
    /// The request; the answer names it.
    pub request_id: Id,
    /// 256 random bits; the answer carries them back.
    pub nonce: B64,
    /// The credential whose key signs.
    pub credential_id: Id,
    /// The signature algorithm OID (CSC `signAlgo`: a combined OID, or id-RSASSA-PSS).
    pub sign_algo: String,
    /// The digest algorithm OID (CSC `hashAlgorithmOID`).
    #[serde(rename = "hashAlgorithmOID")]
    pub hash_algorithm_oid: String,
    /// The digests to sign, in order; the answer's signatures are in the same order.
    pub digests: Vec<B64>,
    /// The data whose digests these are (DTBS), for a device that cannot sign a precomputed
    /// digest (WebCrypto hashes what it signs): present only for such a device, and only when
    /// the service built the data itself (signDoc, the portal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtbs: Option<Vec<B64>>,
    /// The verification code of `digests`; the device computes its own and shows that.
    pub verification_code: VerificationCode,
    /// Who asks: the OAuth client's name or the application's declared name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// What is signed, for the signer: the document's name ("contract.pdf", "3 documents").
    pub label: String,
    /// The application's transaction description (CSC `description`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The document preview, when the service has the document (signDoc, the portal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<Preview>,
    /// When the request was made (Unix seconds).
    pub issued_at: i64,
    /// The answer must reach the service before then (Unix seconds).
    pub expires_at: i64,
}

/// Approve a credential authorization (CSC v2 §11.6 answered 202, then §11.7 authorizeCheck).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequest {
    /// Protocol version.
    pub v: V1,
    /// The request; the answer names it.
    pub request_id: Id,
    /// 256 random bits; the answer carries them back.
    pub nonce: B64,
    /// The credential to authorize.
    pub credential_id: Id,
    /// Signatures the SAD will allow.
    pub num_signatures: u64,
    /// The digests' algorithm OID, when the authorization binds digests (SCAL 2).
    #[serde(rename = "hashAlgorithmOID", default, skip_serializing_if = "Option::is_none")]
    pub hash_algorithm_oid: Option<String>,
    /// The digests the SAD will be bound to (empty when it binds none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub digests: Vec<B64>,
    /// Their verification code, when there are digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_code: Option<VerificationCode>,
    /// Who asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// What will be signed, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The application's transaction description, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When the request was made (Unix seconds).
    pub issued_at: i64,
    /// The answer must reach the service before then (Unix seconds).
    pub expires_at: i64,
}

/// Why a request is withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// Its time is up.
    Expired,
    /// The application or the service withdrew it (SAD revoked, credential disabled).
    Withdrawn,
    /// It was answered (from another connection of the same device).
    Answered,
}

/// A request is withdrawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancel {
    /// Protocol version.
    pub v: V1,
    /// The request.
    pub request_id: Id,
    /// Why.
    pub reason: CancelReason,
}

/// What became of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    /// Protocol version.
    pub v: V1,
    /// The request answered.
    pub request_id: Id,
    /// Whether the answer was accepted (a signature delivered, an approval recorded).
    pub accepted: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RefusalCode>,
    /// Why not, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    /// The last counter accepted from the device.
    pub counter: u64,
}

/// A refused device message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorMessage {
    /// Protocol version.
    pub v: V1,
    /// The refusal code.
    pub error: RefusalCode,
    /// In words (never a secret, never the refused message).
    pub error_description: String,
    /// The last counter accepted from the device, when it is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<u64>,
}

/// Pairing, step 1 answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairChallenge {
    /// Protocol version.
    pub v: V1,
    /// The pairing session.
    pub pairing_id: Id,
    /// What the `pair` message and the CSR's challengePassword must carry.
    pub challenge: B64,
    /// The signer the device is being paired for (shown on the device before it pairs).
    pub user: String,
    /// The service's identity for this device: every device message carries it back as `aud`.
    pub aud: String,
    /// The `pair` message must arrive before then (Unix seconds).
    pub expires_at: i64,
}

/// Pairing, step 2 answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Paired {
    /// Protocol version.
    pub v: V1,
    /// The device (the `kid` of its messages from now on).
    pub device_id: Id,
    /// The credential whose key the device holds.
    pub credential_id: Id,
    /// The credential's certificate chain, DER, end entity first.
    pub certificates: Vec<B64>,
    /// The counter so far (0: the device's first `hello` uses 1 or more).
    pub counter: u64,
}

// ---------------------------------------------------------------------------------------------
// Device → service
// ---------------------------------------------------------------------------------------------

/// Pairing, step 1: the code the signer was given (`POST /device/v1/pair/start`). Not signed:
/// the device has no key the service knows yet; the code is the credential.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PairStart {
    /// Protocol version.
    pub v: V1,
    /// The pairing code as the signer typed it (a secret; see [`crate::pairing::PairingCode`]).
    pub pairing_code: String,
}

impl fmt::Debug for PairStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairStart").field("pairing_code", &"<secret>").finish()
    }
}

impl Drop for PairStart {
    fn drop(&mut self) {
        self.pairing_code.zeroize();
    }
}

/// A message from a device: the payload of its JWS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum DeviceMessage {
    /// Pairing, step 2: the device's keys and their proofs.
    Pair(Pair),
    /// Open a connection, or one long poll.
    Hello(Hello),
    /// The signer approved a [`SignRequest`]: the signatures.
    Signature(SignatureAnswer),
    /// The signer approved an [`ApprovalRequest`].
    Approval(ApprovalAnswer),
    /// The signer (or the device) declined a request.
    Decline(Decline),
}

impl DeviceMessage {
    /// The message's type, as it is written.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Pair(_) => "pair",
            Self::Hello(_) => "hello",
            Self::Signature(_) => "signature",
            Self::Approval(_) => "approval",
            Self::Decline(_) => "decline",
        }
    }

    /// The `aud` member.
    pub fn aud(&self) -> &str {
        match self {
            Self::Pair(m) => &m.aud,
            Self::Hello(m) => &m.aud,
            Self::Signature(m) => &m.aud,
            Self::Approval(m) => &m.aud,
            Self::Decline(m) => &m.aud,
        }
    }

    /// The counter (a `pair` message has none: the device is not known yet).
    pub fn counter(&self) -> Option<u64> {
        match self {
            Self::Pair(_) => None,
            Self::Hello(m) => Some(m.counter),
            Self::Signature(m) => Some(m.counter),
            Self::Approval(m) => Some(m.counter),
            Self::Decline(m) => Some(m.counter),
        }
    }

    /// The request an answer is for.
    pub fn request_id(&self) -> Option<&Id> {
        match self {
            Self::Signature(m) => Some(&m.request_id),
            Self::Approval(m) => Some(&m.request_id),
            Self::Decline(m) => Some(&m.request_id),
            Self::Pair(_) | Self::Hello(_) => None,
        }
    }
}

/// What kind of device this is (shown in the signer's and the administrator's lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// The phone page (WebCrypto key in the browser's store).
    Phone,
    /// `cloudsign device`, the bridge agent for a smart card (PKCS#11).
    Agent,
    /// A native app, its key in a secure element.
    App,
}

/// Pairing, step 2 (`POST /device/v1/pair/finish`), signed with the new device key (`kid` is
/// the pairing id): proves possession of the device key (this JWS) and of the signing key (the
/// CSR, or the key proof with an existing certificate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pair {
    /// Protocol version.
    pub v: V1,
    /// The `aud` of the pairing challenge.
    pub aud: String,
    /// The pairing session.
    pub pairing_id: Id,
    /// The pairing challenge, as received.
    pub challenge: B64,
    /// The device key: DER SubjectPublicKeyInfo, ECDSA P-256.
    pub device_key: B64,
    /// A name for the device, chosen by the signer ("Pixel 8", "office card reader").
    pub name: String,
    /// What kind of device.
    pub kind: DeviceKind,
    /// Whether the device signs precomputed digests (PKCS#11 `CKM_ECDSA`, a secure element); if
    /// not (WebCrypto), it is sent the data to be signed and hashes it itself.
    pub prehashed: bool,
    /// For a certificate from the service's CA: a PKCS#10 request (RFC 2986) signed with the
    /// signing key, its challengePassword attribute (RFC 2985 §5.4.1) the pairing challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr: Option<B64>,
    /// For a key that already has a certificate (a smart card's): that certificate, DER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<B64>,
    /// With `certificate`: the signing key's signature over the key-proof input
    /// ([`crate::pairing::key_proof_input`]), raw form, the key's default scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_proof: Option<B64>,
}

/// Open a WebSocket connection (its first device frame), or make one long poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hello {
    /// Protocol version.
    pub v: V1,
    /// The service's `aud`.
    pub aud: String,
    /// Above every counter this device used before.
    pub counter: u64,
    /// The latest challenge from the service.
    pub challenge: B64,
    /// The device software and its version, for the audit log ("cloudsign-device/0.1").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

/// The signer approved a [`SignRequest`]: the signatures, in the request's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignatureAnswer {
    /// Protocol version.
    pub v: V1,
    /// The service's `aud`.
    pub aud: String,
    /// Above every counter this device used before.
    pub counter: u64,
    /// The request.
    pub request_id: Id,
    /// The request's nonce.
    pub nonce: B64,
    /// The code the device showed (computed by the device from `digests`).
    pub verification_code: VerificationCode,
    /// The digests the device signed, in order (the request's).
    pub digests: Vec<B64>,
    /// The signatures, raw form (ECDSA `r ‖ s`, RSA octets), one per digest.
    pub signatures: Vec<B64>,
}

/// The signer approved an [`ApprovalRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalAnswer {
    /// Protocol version.
    pub v: V1,
    /// The service's `aud`.
    pub aud: String,
    /// Above every counter this device used before.
    pub counter: u64,
    /// The request.
    pub request_id: Id,
    /// The request's nonce.
    pub nonce: B64,
    /// The code the device showed, when the request had digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_code: Option<VerificationCode>,
}

/// Why a device declined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclineReason {
    /// The signer said no.
    UserRefused,
    /// The signer picked a code other than the one the application shows, or the device's code
    /// differs from the request's.
    WrongVerificationCode,
    /// The device saw the request expire before the signer decided.
    Expired,
    /// The device cannot do what is asked (algorithm, key, DTBS needed but absent).
    Unsupported,
    /// The request does not hold together (a digest of the wrong length, DTBS that do not hash
    /// to the digests, limits exceeded).
    InvalidRequest,
}

impl DeclineReason {
    /// The reason as it is written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserRefused => "user_refused",
            Self::WrongVerificationCode => "wrong_verification_code",
            Self::Expired => "expired",
            Self::Unsupported => "unsupported",
            Self::InvalidRequest => "invalid_request",
        }
    }
}

/// The signer (or the device) declined a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Decline {
    /// Protocol version.
    pub v: V1,
    /// The service's `aud`.
    pub aud: String,
    /// Above every counter this device used before.
    pub counter: u64,
    /// The request.
    pub request_id: Id,
    /// The request's nonce.
    pub nonce: B64,
    /// Why.
    pub reason: DeclineReason,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_messages_are_strict() {
        let ok = r#"{"type":"hello","v":1,"aud":"https://sign.example","counter":7,"challenge":"AAEC"}"#;
        let m: DeviceMessage = serde_json::from_str(ok).unwrap();
        assert_eq!(m.counter(), Some(7));
        assert_eq!(m.type_name(), "hello");
        for bad in [
            // unknown member, even inside an internally tagged enum
            r#"{"type":"hello","v":1,"aud":"a","counter":7,"challenge":"AAEC","extra":1}"#,
            // another version
            r#"{"type":"hello","v":2,"aud":"a","counter":7,"challenge":"AAEC"}"#,
            // padded base64
            r#"{"type":"hello","v":1,"aud":"a","counter":7,"challenge":"AAE="}"#,
            // negative counter
            r#"{"type":"hello","v":1,"aud":"a","counter":-1,"challenge":"AAEC"}"#,
            // unknown type
            r#"{"type":"helo","v":1,"aud":"a","counter":7,"challenge":"AAEC"}"#,
            // bad id
            r#"{"type":"decline","v":1,"aud":"a","counter":7,"requestId":"a b","nonce":"AA","reason":"user_refused"}"#,
            // bad reason
            r#"{"type":"decline","v":1,"aud":"a","counter":7,"requestId":"r1","nonce":"AA","reason":"no"}"#,
        ] {
            assert!(serde_json::from_str::<DeviceMessage>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn service_messages_tolerate_additions() {
        let text = r#"{"type":"cancel","v":1,"requestId":"r1","reason":"expired","note":"informational"}"#;
        let m: ServiceMessage = serde_json::from_str(text).unwrap();
        assert_eq!(m, ServiceMessage::Cancel(Cancel { v: V1, request_id: Id::new("r1").unwrap(), reason: CancelReason::Expired }));
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json, serde_json::json!({"type": "cancel", "v": 1, "requestId": "r1", "reason": "expired"}));
        // But not another version.
        assert!(serde_json::from_str::<ServiceMessage>(r#"{"type":"cancel","v":3,"requestId":"r1","reason":"expired"}"#).is_err());
    }

    #[test]
    fn ids() {
        assert!(Id::new("dev_3f2a-9.x:1").is_some());
        assert!(Id::new("").is_none());
        assert!(Id::new("a/b").is_none());
        assert!(Id::new("é").is_none());
        assert!(Id::new("a".repeat(128)).is_some());
        assert!(Id::new("a".repeat(129)).is_none());
    }

    #[test]
    fn pairing_code_is_not_printed() {
        let start: PairStart = serde_json::from_str(r#"{"v":1,"pairingCode":"ABCDE-FGHJK"}"#).unwrap();
        assert!(!format!("{start:?}").contains("ABCDE"));
        assert!(serde_json::from_str::<PairStart>(r#"{"v":1,"pairingCode":"x","more":1}"#).is_err());
    }
}
