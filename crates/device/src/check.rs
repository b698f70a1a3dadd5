//! The checks each side makes, in the order the protocol document gives them.
//!
//! Service side: [`accept_pairing`] for a `pair` message; for a paired device,
//! [`verify_device_message`] (signature, version and form, `aud`, counter), then
//! [`accept_hello`] or [`accept_answer`] (the request it answers: device, nonce, expiry,
//! verification code, digests, and every signature against the credential's key).
//!
//! Device side: [`check_sign_request`] and [`check_approval_request`] before anything is shown;
//! the device displays the code it computed itself, never the one it was sent.
//!
//! All of them are pure: the caller brings the stored state (the device's key and last counter,
//! the outstanding request) and the time, and stores what is accepted.

use cloudsign_asn1::SignAlgorithm;

use crate::b64::B64;
use crate::freshness::{ChallengeKey, Purpose, check_counter, check_expiry, same_nonce};
use crate::jws::Jws;
use crate::key::{DeviceKey, PublicKey, digest_algorithm};
use crate::message::*;
use crate::pairing::{key_proof_input, verify_csr, verify_key_proof};
use crate::vc::VerificationCode;
use crate::{MAX_DIGESTS, MAX_DTBS_BYTES, MAX_LABEL_CHARS, MAX_NAME_CHARS, MAX_TEXT_CHARS, Refusal};

// ---------------------------------------------------------------------------------------------
// Pairing (service side)
// ---------------------------------------------------------------------------------------------

/// A pairing session as the service stored it at `pair/start`.
#[derive(Debug, Clone, Copy)]
pub struct PairingSession<'a> {
    /// The session's id (the `kid` of the `pair` message).
    pub pairing_id: &'a Id,
    /// The service's `aud`.
    pub aud: &'a str,
    /// The `pair` message must come before then (Unix seconds).
    pub expires_at: i64,
    /// How long the pairing challenge is valid (seconds).
    pub challenge_lifetime: i64,
}

/// Where the signing key's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The service's CA issues one; this is the verified PKCS#10 request.
    Csr(Vec<u8>),
    /// The key has one (a smart card's), DER; its key made the key proof. The service still
    /// decides whether to accept it (chain, validity, key usage, subject).
    Certificate(Vec<u8>),
}

/// A verified pairing: what the service records for the new device.
#[derive(Debug, Clone)]
pub struct PairingProof {
    /// The device key (authenticates the device's messages).
    pub device_key: DeviceKey,
    /// The signing key (the credential's key).
    pub signing_key: PublicKey,
    /// Its certificate's origin.
    pub origin: KeyOrigin,
    /// The device's name.
    pub name: String,
    /// Its kind.
    pub kind: DeviceKind,
    /// Whether it signs precomputed digests (else it needs the DTBS).
    pub prehashed: bool,
}

/// Check a `pair` message against its session: signed with the device key it carries, this
/// session (`kid`, `pairingId`, challenge), this service (`aud`), in time; then the signing
/// key's proof (CSR, or certificate and key proof). The device key and the signing key must be
/// two keys.
pub fn accept_pairing(jws: &Jws, session: &PairingSession<'_>, key: &ChallengeKey, now: i64) -> Result<PairingProof, Refusal> {
    if jws.kid() != session.pairing_id {
        return Err(Refusal::Foreign("the kid is not this pairing session"));
    }
    let (pair, device_key) = jws.verify_pairing()?;
    if &pair.pairing_id != session.pairing_id {
        return Err(Refusal::Foreign("the pair message is for another pairing session"));
    }
    if pair.aud != session.aud {
        return Err(Refusal::Foreign("the pair message is for another service"));
    }
    check_expiry(session.expires_at, now)?;
    key.check(Purpose::Pair(session.pairing_id), pair.challenge.as_bytes(), now, session.challenge_lifetime)?;
    check_display_text("name", &pair.name, MAX_NAME_CHARS)?;
    if pair.name.is_empty() {
        return Err(Refusal::Malformed("name must not be empty".into()));
    }
    let (signing_key, origin) = match (&pair.csr, &pair.certificate, &pair.key_proof) {
        (Some(csr), None, None) => (verify_csr(csr.as_bytes(), pair.challenge.as_bytes())?, KeyOrigin::Csr(csr.0.clone())),
        (None, Some(cert), Some(proof)) => {
            let input = key_proof_input(&pair.aud, &pair.pairing_id, pair.challenge.as_bytes(), &device_key);
            (verify_key_proof(cert.as_bytes(), &input, proof.as_bytes())?, KeyOrigin::Certificate(cert.0.clone()))
        }
        _ => return Err(Refusal::Malformed("a pair message has either csr, or certificate and keyProof".into())),
    };
    if signing_key.spki() == device_key.spki() {
        return Err(Refusal::Malformed("the device key and the signing key must be different keys".into()));
    }
    Ok(PairingProof { device_key, signing_key, origin, name: pair.name, kind: pair.kind, prehashed: pair.prehashed })
}

// ---------------------------------------------------------------------------------------------
// A paired device's messages (service side)
// ---------------------------------------------------------------------------------------------

/// A paired device as the service stored it.
#[derive(Debug, Clone, Copy)]
pub struct Device<'a> {
    /// Its id (the `kid` of its messages).
    pub id: &'a Id,
    /// Its device key.
    pub key: &'a DeviceKey,
    /// The last counter accepted from it (0 before any).
    pub last_counter: u64,
}

/// A device message whose signature, form, `aud` and counter hold. Store `counter` as the
/// device's last (conditionally: `WHERE last_counter < counter`) before acting on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The message's counter.
    pub counter: u64,
    /// The message.
    pub message: DeviceMessage,
}

/// The checks every message of a paired device passes: `kid` is `device`, the signature is its
/// device key's ([`Refusal::Foreign`]), the payload is a version-1 message other than `pair`,
/// `aud` is this service ([`Refusal::Foreign`]), the counter is above the last
/// ([`Refusal::Replayed`]).
pub fn verify_device_message(jws: &Jws, device: &Device<'_>, aud: &str) -> Result<Verified, Refusal> {
    if jws.kid() != device.id {
        return Err(Refusal::Foreign("the kid is not this device"));
    }
    let message = jws.verify(device.key)?;
    let Some(counter) = message.counter() else {
        return Err(Refusal::Malformed("a paired device does not send pair messages".into()));
    };
    if message.aud() != aud {
        return Err(Refusal::Foreign("the message is for another service"));
    }
    check_counter(device.last_counter, counter)?;
    Ok(Verified { counter, message })
}

/// A `hello`: its challenge is this service's, for a connection, not older than `lifetime`.
pub fn accept_hello(verified: &Verified, key: &ChallengeKey, lifetime: i64, now: i64) -> Result<Hello, Refusal> {
    let DeviceMessage::Hello(hello) = &verified.message else {
        return Err(Refusal::Malformed(format!("expected hello, not {}", verified.message.type_name())));
    };
    key.check(Purpose::Connect, hello.challenge.as_bytes(), now, lifetime)?;
    if let Some(agent) = &hello.agent {
        check_display_text("agent", agent, MAX_NAME_CHARS)?;
    }
    Ok(hello.clone())
}

/// A request waiting for a device's answer, as the service stored it.
#[derive(Debug, Clone, Copy)]
pub struct Outstanding<'a> {
    /// The request.
    pub request_id: &'a Id,
    /// Its nonce.
    pub nonce: &'a [u8],
    /// The device it was sent to.
    pub device_id: &'a Id,
    /// Its expiry (Unix seconds).
    pub expires_at: i64,
    /// What it asks.
    pub what: Requested<'a>,
}

/// What a request asks.
#[derive(Debug, Clone, Copy)]
pub enum Requested<'a> {
    /// Signatures over these digests (a [`SignRequest`]).
    Signature {
        /// The scheme.
        scheme: SignAlgorithm,
        /// The digests, in the request's order.
        digests: &'a [Vec<u8>],
        /// The credential's key (from its certificate), which must have made every signature.
        signing_key: &'a PublicKey,
    },
    /// An approval (an [`ApprovalRequest`]), of these digests if any.
    Approval {
        /// The digests the SAD will be bound to (maybe none).
        digests: &'a [Vec<u8>],
    },
}

/// What the device answered, once every check holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The signatures (raw form, request order), each verified against the credential's key.
    Signed(Vec<Vec<u8>>),
    /// The approval.
    Approved,
    /// A decline.
    Declined(DeclineReason),
}

/// Check an answer against the request it names: sent to this device ([`Refusal::Foreign`]),
/// the request's nonce ([`Refusal::Foreign`]), before the expiry ([`Refusal::Late`]), the right
/// kind, the request's verification code ([`Refusal::WrongVerificationCode`]) and digests
/// ([`Refusal::DigestNotRequested`]), and signatures that verify ([`Refusal::BadSignature`]).
/// A decline needs only the first three: it spends nothing.
pub fn accept_answer(verified: &Verified, device_id: &Id, request: &Outstanding<'_>, now: i64) -> Result<Answer, Refusal> {
    let Some(answered) = verified.message.request_id() else {
        return Err(Refusal::Malformed(format!("expected an answer, not {}", verified.message.type_name())));
    };
    if answered != request.request_id {
        return Err(Refusal::Malformed("the answer is checked against another request".into()));
    }
    if request.device_id != device_id {
        return Err(Refusal::Foreign("the request was sent to another device"));
    }
    let nonce = match &verified.message {
        DeviceMessage::Signature(m) => m.nonce.as_bytes(),
        DeviceMessage::Approval(m) => m.nonce.as_bytes(),
        DeviceMessage::Decline(m) => m.nonce.as_bytes(),
        DeviceMessage::Pair(_) | DeviceMessage::Hello(_) => &[],
    };
    if !same_nonce(nonce, request.nonce) {
        return Err(Refusal::Foreign("the nonce is not the request's"));
    }
    check_expiry(request.expires_at, now)?;
    match (&verified.message, request.what) {
        (DeviceMessage::Decline(m), _) => Ok(Answer::Declined(m.reason)),
        (DeviceMessage::Signature(m), Requested::Signature { scheme, digests, signing_key }) => {
            let expected = VerificationCode::of(digests).ok_or_else(|| Refusal::Malformed("the request has no digests".into()))?;
            if !m.verification_code.matches(&expected) {
                return Err(Refusal::WrongVerificationCode);
            }
            if m.digests.len() != digests.len() || m.digests.iter().zip(digests).any(|(a, b)| a.as_bytes() != b.as_slice()) {
                return Err(Refusal::DigestNotRequested);
            }
            if m.signatures.len() != digests.len() {
                return Err(Refusal::Malformed("one signature per digest".into()));
            }
            for (i, (sig, digest)) in m.signatures.iter().zip(digests).enumerate() {
                if !signing_key.verify_digest(scheme, digest, sig.as_bytes()) {
                    return Err(Refusal::BadSignature(i));
                }
            }
            Ok(Answer::Signed(m.signatures.iter().map(|s| s.0.clone()).collect()))
        }
        (DeviceMessage::Approval(m), Requested::Approval { digests }) => {
            match (VerificationCode::of(digests), &m.verification_code) {
                (None, None) => {}
                (Some(expected), Some(shown)) if shown.matches(&expected) => {}
                _ => return Err(Refusal::WrongVerificationCode),
            }
            Ok(Answer::Approved)
        }
        (m, _) => Err(Refusal::Malformed(format!("a {} does not answer this request", m.type_name()))),
    }
}

// ---------------------------------------------------------------------------------------------
// Requests (device side)
// ---------------------------------------------------------------------------------------------

/// Why a device declines a request before showing it: the reason to send, and a text for its
/// own log.
pub type DeviceRefusal = (DeclineReason, &'static str);

/// A signing request that holds together, ready to show and sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToSign {
    /// The scheme.
    pub scheme: SignAlgorithm,
    /// The digests, in order.
    pub digests: Vec<Vec<u8>>,
    /// The data to sign instead (a device that does not sign precomputed digests).
    pub dtbs: Option<Vec<Vec<u8>>>,
    /// The code to show: computed here, from `digests`.
    pub verification_code: VerificationCode,
}

/// The digests of a request: at least one, at most [`MAX_DIGESTS`], each of the algorithm's
/// length.
fn digests_of(list: &[B64], hash_len: usize) -> Result<Vec<Vec<u8>>, DeviceRefusal> {
    if list.is_empty() || list.len() > MAX_DIGESTS {
        return Err((DeclineReason::InvalidRequest, "a request has 1 to 256 digests"));
    }
    if list.iter().any(|d| d.0.len() != hash_len) {
        return Err((DeclineReason::InvalidRequest, "a digest has the wrong length for its algorithm"));
    }
    Ok(list.iter().map(|d| d.0.clone()).collect())
}

/// Check a [`SignRequest`] on the device: not expired, an algorithm the device's key has, digests
/// of the right length, DTBS present exactly when the device needs them and hashing to the
/// digests, texts within limits, and the code it was sent equal to the one it computes.
pub fn check_sign_request(req: &SignRequest, key: &PublicKey, prehashed: bool, now: i64) -> Result<ToSign, DeviceRefusal> {
    if check_expiry(req.expires_at, now).is_err() {
        return Err((DeclineReason::Expired, "the request has expired"));
    }
    let scheme = SignAlgorithm::resolve(&req.sign_algo, Some(&req.hash_algorithm_oid), None)
        .map_err(|_| (DeclineReason::Unsupported, "unknown signAlgo or hashAlgorithmOID"))?;
    if scheme.oid() != req.sign_algo || !key.supports(scheme) {
        return Err((DeclineReason::Unsupported, "the key does not sign with this algorithm"));
    }
    let digests = digests_of(&req.digests, scheme.hash().len())?;
    let dtbs = match (&req.dtbs, prehashed) {
        (None, true) => None,
        (Some(_), true) => return Err((DeclineReason::InvalidRequest, "this device signs digests, not data")),
        (None, false) => return Err((DeclineReason::Unsupported, "this device needs the data to be signed (dtbs)")),
        (Some(data), false) => {
            if data.len() != digests.len() || data.iter().any(|d| d.0.len() > MAX_DTBS_BYTES) {
                return Err((DeclineReason::InvalidRequest, "one dtbs per digest, each at most 64 KiB"));
            }
            let alg = digest_algorithm(scheme.hash());
            if data.iter().zip(&digests).any(|(d, h)| aws_lc_rs::digest::digest(alg, d.as_bytes()).as_ref() != h.as_slice()) {
                return Err((DeclineReason::InvalidRequest, "the dtbs do not hash to the digests"));
            }
            Some(data.iter().map(|d| d.0.clone()).collect())
        }
    };
    check_texts(&req.label, req.application.as_deref(), req.description.as_deref())?;
    let verification_code = VerificationCode::of(&digests).ok_or((DeclineReason::InvalidRequest, "no digests"))?;
    if !verification_code.matches(&req.verification_code) {
        return Err((DeclineReason::WrongVerificationCode, "the request's verification code is not its digests'"));
    }
    Ok(ToSign { scheme, digests, dtbs, verification_code })
}

/// Check an [`ApprovalRequest`] on the device; returns the code to show, if it has digests.
pub fn check_approval_request(req: &ApprovalRequest, now: i64) -> Result<Option<VerificationCode>, DeviceRefusal> {
    if check_expiry(req.expires_at, now).is_err() {
        return Err((DeclineReason::Expired, "the request has expired"));
    }
    if req.num_signatures == 0 {
        return Err((DeclineReason::InvalidRequest, "numSignatures is at least 1"));
    }
    check_texts(req.label.as_deref().unwrap_or(""), req.application.as_deref(), req.description.as_deref())?;
    if req.digests.is_empty() {
        return match (&req.hash_algorithm_oid, &req.verification_code) {
            (None, None) => Ok(None),
            _ => Err((DeclineReason::InvalidRequest, "hashAlgorithmOID and verificationCode go with digests")),
        };
    }
    let hash = req
        .hash_algorithm_oid
        .as_deref()
        .and_then(cloudsign_asn1::HashAlgorithm::from_oid)
        .ok_or((DeclineReason::Unsupported, "unknown hashAlgorithmOID"))?;
    let digests = digests_of(&req.digests, hash.len())?;
    let code = VerificationCode::of(&digests).ok_or((DeclineReason::InvalidRequest, "no digests"))?;
    match &req.verification_code {
        Some(sent) if sent.matches(&code) => Ok(Some(code)),
        _ => Err((DeclineReason::WrongVerificationCode, "the request's verification code is not its digests'")),
    }
}

fn check_texts(label: &str, application: Option<&str>, description: Option<&str>) -> Result<(), DeviceRefusal> {
    let ok = display_text_ok(label, MAX_LABEL_CHARS)
        && application.is_none_or(|a| display_text_ok(a, MAX_NAME_CHARS))
        && description.is_none_or(|d| display_text_ok(d, MAX_TEXT_CHARS));
    if ok { Ok(()) } else { Err((DeclineReason::InvalidRequest, "a text is too long or has control characters")) }
}

impl SignRequest {
    /// The device's answer once the signer approved: `signatures` (raw form) over `to_sign`.
    pub fn answer(&self, to_sign: &ToSign, aud: &str, counter: u64, signatures: Vec<Vec<u8>>) -> DeviceMessage {
        DeviceMessage::Signature(SignatureAnswer {
            v: V1,
            aud: aud.to_string(),
            counter,
            request_id: self.request_id.clone(),
            nonce: self.nonce.clone(),
            verification_code: to_sign.verification_code,
            digests: to_sign.digests.iter().map(|d| B64(d.clone())).collect(),
            signatures: signatures.into_iter().map(B64).collect(),
        })
    }

    /// The device's decline.
    pub fn decline(&self, aud: &str, counter: u64, reason: DeclineReason) -> DeviceMessage {
        decline(&self.request_id, &self.nonce, aud, counter, reason)
    }
}

impl ApprovalRequest {
    /// The device's approval; `code` is what [`check_approval_request`] returned.
    pub fn approve(&self, aud: &str, counter: u64, code: Option<VerificationCode>) -> DeviceMessage {
        DeviceMessage::Approval(ApprovalAnswer {
            v: V1,
            aud: aud.to_string(),
            counter,
            request_id: self.request_id.clone(),
            nonce: self.nonce.clone(),
            verification_code: code,
        })
    }

    /// The device's decline.
    pub fn decline(&self, aud: &str, counter: u64, reason: DeclineReason) -> DeviceMessage {
        decline(&self.request_id, &self.nonce, aud, counter, reason)
    }
}

fn decline(request_id: &Id, nonce: &B64, aud: &str, counter: u64, reason: DeclineReason) -> DeviceMessage {
    DeviceMessage::Decline(Decline { v: V1, aud: aud.to_string(), counter, request_id: request_id.clone(), nonce: nonce.clone(), reason })
}

// ---------------------------------------------------------------------------------------------
// Texts shown on a device
// ---------------------------------------------------------------------------------------------

/// Characters that change how text around them is displayed without being seen: C0 and C1
/// controls, and the bidirectional formatting characters (Unicode UAX #9 §2: LRE…RLO,
/// LRI…PDI, LRM, RLM, ALM) that can make `invoice` + U+202E + `fdp.exe` read as `invoiceexe.pdf`.
fn is_hidden_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Whether `text` may be shown as it is: at most `max` characters, none of them hidden
/// controls.
pub fn display_text_ok(text: &str, max: usize) -> bool {
    text.chars().count() <= max && !text.chars().any(is_hidden_control)
}

fn check_display_text(member: &str, text: &str, max: usize) -> Result<(), Refusal> {
    if display_text_ok(text, max) {
        Ok(())
    } else {
        Err(Refusal::Malformed(format!("{member}: at most {max} characters, no control characters")))
    }
}

/// A text from an application made fit to show on a device: hidden controls become U+FFFD, and
/// it is cut to `max` characters (with an ellipsis). The service applies this to every label,
/// description and application name it sends.
pub fn display_text(text: &str, max: usize) -> String {
    let clean: String = text.chars().map(|c| if is_hidden_control(c) { '\u{FFFD}' } else { c }).collect();
    if clean.chars().count() <= max {
        return clean;
    }
    let mut cut: String = clean.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_texts() {
        assert!(display_text_ok("contrat signé.pdf", 200));
        assert!(!display_text_ok("invoice\u{202E}fdp.exe", 200));
        assert!(!display_text_ok("a\nb", 200));
        assert!(!display_text_ok("abc", 2));
        assert_eq!(display_text("invoice\u{202E}fdp.exe", 200), "invoice\u{FFFD}fdp.exe");
        assert_eq!(display_text("abcdef", 4), "abc…");
        assert_eq!(display_text("abcd", 4), "abcd");
        assert!(display_text_ok(&display_text(&"é\u{0007}".repeat(300), 200), 200));
    }
}
