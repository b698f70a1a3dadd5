//! Devices the signer holds (issue 18, `docs/device-protocol.md`): pairing, the connection
//! registry, signing requests, and the signing step of the `device` key backend.
//!
//! Every protocol check is `cloudsign_device`'s ([`protocol`]); this module brings the stored
//! state (pairing sessions, devices and their counters, requests), the time, and stores what is
//! accepted, each change one conditional statement with its audit record.
//!
//! Requests live in the store, so any node can answer them; a node wakes its own waiters (polls
//! held, signHash calls waiting for an answer) at once through a watch channel, and looks at the
//! store again at least every [`STORE_RECHECK`] for what other nodes changed.

use std::time::Duration;

use cloudsign_asn1::{KeyAlgorithm, SignAlgorithm};
use cloudsign_store::{CertState, CredentialRow, DeviceRequestRow, DeviceRow, NewAudit, Outcome, PairingRow, RequestEnd};
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

pub use cloudsign_device as protocol;
use protocol::b64::B64;
use protocol::check::{self, Answer, Device, KeyOrigin, Outstanding, PairingSession, Requested};
use protocol::freshness::{ChallengeKey, Purpose, new_id, new_nonce};
use protocol::jws::Jws;
use protocol::key::{DeviceKey, KeyKind, PublicKey, csc_signature};
use protocol::message::{Challenge, ErrorMessage, Id, PairChallenge, PairStart, Paired, ServiceMessage, SignRequest, V1};
use protocol::pairing::PairingCode;
use protocol::{Refusal, RefusalCode, VerificationCode};

use crate::secrets::{hash_secret, hex};
use crate::{Error, RequestContext, Result, Service, Session, now};

/// How often a waiter looks at the store again for what other nodes changed.
const STORE_RECHECK: Duration = Duration::from_millis(500);

/// The `[device]` settings (`docs/device-protocol.md`, "Implementation").
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceConfig {
    /// Serve `/device/v1/` and accept device credentials. Off by default.
    pub enabled: bool,
    /// How long a signing request waits for the device (seconds; never beyond the SAD).
    pub request_seconds: u64,
    /// How long a connection challenge is accepted (seconds).
    pub challenge_seconds: u64,
    /// How long a pairing code (then its session) lives (minutes).
    pub pairing_minutes: u64,
    /// How long a long poll is held (seconds; below common proxy idle timeouts).
    pub poll_hold_seconds: u64,
    /// WebSocket ping interval (seconds).
    pub ping_seconds: u64,
    /// A WebSocket silent this long is offline (seconds).
    pub offline_after_seconds: u64,
    /// Accept a card's existing certificate at pairing (not implemented yet: refused).
    pub allow_import: bool,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            request_seconds: 90,
            challenge_seconds: 60,
            pairing_minutes: 10,
            poll_hold_seconds: 25,
            ping_seconds: 20,
            offline_after_seconds: 45,
            allow_import: false,
        }
    }
}

/// The node's device state: the challenge key (derived from the key-encryption key, so every
/// node checks every node's challenges) and the wake-up of local waiters.
pub(crate) struct Hub {
    key: ChallengeKey,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Hub {
    pub(crate) fn new(kek: &[u8]) -> Self {
        // "Challenges need no storage": HMAC key = HMAC-SHA-256(KEK, label), the same on
        // every node that has the KEK, and not the KEK itself.
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, kek);
        let tag = aws_lc_rs::hmac::sign(&k, b"cloudsign-device-challenge-key-v1");
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(tag.as_ref());
        Self { key: ChallengeKey::new(&secret), changed: tokio::sync::watch::channel(0).0 }
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Wait for a local change, at most `max` (and at most [`STORE_RECHECK`]).
    async fn wait(&self, mut rx: tokio::sync::watch::Receiver<u64>, max: Duration) {
        let _ = tokio::time::timeout(max.min(STORE_RECHECK), rx.changed()).await;
    }
}

/// A refused device message, as the device endpoints answer it: the HTTP status of the
/// protocol's table ("Checks and refusals") and the `error` message.
#[derive(Debug)]
pub enum DeviceFailure {
    /// The protocol refused the message.
    Refused {
        /// HTTP status (long-polling).
        status: u16,
        /// The `error` message (sent as a [`ServiceMessage::Error`]).
        message: ErrorMessage,
    },
    /// The service failed (store, CA).
    Service(Error),
}

impl From<Error> for DeviceFailure {
    fn from(e: Error) -> Self {
        Self::Service(e)
    }
}

impl From<cloudsign_store::StoreError> for DeviceFailure {
    fn from(e: cloudsign_store::StoreError) -> Self {
        Self::Service(e.into())
    }
}

/// The result of a device endpoint.
pub type DeviceResult<T> = std::result::Result<T, DeviceFailure>;

fn status_of(code: RefusalCode) -> u16 {
    use RefusalCode::*;
    match code {
        Malformed | UnsupportedVersion | Unsupported | WrongVerificationCode | DigestNotRequested | BadSignature => 400,
        Unpaired | Foreign => 401,
        Replayed | UnknownRequest => 409,
        Late => 410,
    }
}

fn refused(code: RefusalCode, description: String, counter: Option<u64>) -> DeviceFailure {
    DeviceFailure::Refused {
        status: status_of(code),
        message: ErrorMessage { v: V1, error: code, error_description: description, counter },
    }
}

/// A paired device, as `admin device list` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceSummary {
    /// `dev_…`.
    pub device_id: String,
    /// Its signer.
    pub user: String,
    /// The credential whose key it holds.
    pub credential_id: String,
    /// Its name.
    pub name: String,
    /// `phone`, `agent`, `app`.
    pub kind: String,
    /// It signs precomputed digests.
    pub prehashed: bool,
    /// SHA-256 of the device key's SPKI, hex.
    pub thumbprint: String,
    /// Revoked.
    pub revoked: bool,
    /// Paired (Unix seconds).
    pub created_at: i64,
    /// Last poll (Unix seconds).
    pub last_seen: Option<i64>,
}

/// A new pairing code (`admin device pair`): shown once.
pub struct NewPairingCode {
    /// `XXXXX-XXXXX`.
    pub code: Zeroizing<String>,
    /// Unix seconds.
    pub expires_at: i64,
}

fn key_algorithm_of(key: &PublicKey) -> std::result::Result<KeyAlgorithm, Refusal> {
    Ok(match key.kind() {
        KeyKind::EcP256 => KeyAlgorithm::EcdsaP256,
        KeyKind::EcP384 => KeyAlgorithm::EcdsaP384,
        KeyKind::EcP521 => KeyAlgorithm::EcdsaP521,
        KeyKind::Rsa(2048) => KeyAlgorithm::Rsa2048,
        KeyKind::Rsa(3072) => KeyAlgorithm::Rsa3072,
        KeyKind::Rsa(4096) => KeyAlgorithm::Rsa4096,
        KeyKind::Rsa(_) => return Err(Refusal::Unsupported("RSA keys other than 2048, 3072 and 4096 bits")),
    })
}

/// The subjectPublicKey bits of a (verified) SPKI: the X9.62 point or the DER RSAPublicKey,
/// what the CA puts in the certificate.
fn raw_public_key(spki: &[u8]) -> Option<Vec<u8>> {
    let mut outer = cloudsign_asn1::der::Reader::new(spki);
    let mut inner = cloudsign_asn1::der::Reader::new(outer.expect(0x30)?);
    inner.expect(0x30)?;
    let bits = inner.expect(0x03)?;
    bits.split_first().filter(|(u, _)| **u == 0).map(|(_, k)| k.to_vec())
}

fn digest_of(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Service {
    /// The `[device]` settings.
    pub fn device_config(&self) -> &DeviceConfig {
        &self.cfg.device
    }

    /// The service's identity in device messages (`aud`): its public URL.
    fn device_aud(&self) -> Result<String> {
        self.cfg
            .public_url
            .as_deref()
            .map(|u| u.trim_end_matches('/').to_string())
            .ok_or_else(|| Error::invalid("devices need the service's public_url (their messages name it as aud)"))
    }

    // -----------------------------------------------------------------------------------------
    // Administration
    // -----------------------------------------------------------------------------------------

    /// Make a one-time pairing code for `user` (`admin device pair`): stored hashed, shown
    /// once. `pin` becomes the device credential's PIN (its knowledge factor; the device's
    /// approval is the possession factor).
    pub async fn device_pairing_code(&self, user: &str, pin: Zeroizing<String>, actor: &str) -> Result<NewPairingCode> {
        if !self.cfg.device.enabled {
            return Err(Error::invalid("devices are disabled: set enabled = true in [device] first"));
        }
        self.device_aud()?;
        let user = self.store.user_by_name(user).await?.ok_or_else(|| Error::invalid(format!("no user {user}")))?;
        if pin.chars().count() < 4 {
            return Err(Error::invalid("PINs need at least 4 characters"));
        }
        let pin_format = if pin.chars().all(|c| c.is_ascii_digit()) { "N" } else { "A" };
        let cost = self.cfg.argon2;
        let pin_hash = tokio::task::spawn_blocking(move || hash_secret(&pin, cost)).await.map_err(|e| Error::Internal(e.to_string()))??;
        let code = PairingCode::generate();
        let t = now();
        let expires_at = t + (self.cfg.device.pairing_minutes as i64) * 60;
        let row = PairingRow {
            code_hash: hex(&code.hash()),
            pairing_id: None,
            user_id: user.id.clone(),
            actor: actor.to_string(),
            pin_hash: format!("{pin_format}:{pin_hash}"),
            state: "code".into(),
            created_at: t,
            expires_at,
        };
        // Never the code: who made it, for whom, until when.
        let detail = json!({"by": actor, "user": user.name, "expiresAt": expires_at}).to_string();
        let audit = NewAudit { at: t, actor, event: "device.pair.code", outcome: Outcome::Ok, credential_id: None, detail: &detail };
        self.store.insert_pairing_code(&row, &audit).await?;
        Ok(NewPairingCode { code: code.display(), expires_at })
    }

    /// The paired devices (of one user).
    pub async fn devices(&self, user: Option<&str>) -> Result<Vec<DeviceSummary>> {
        let user_id = match user {
            Some(name) => Some(self.store.user_by_name(name).await?.ok_or_else(|| Error::invalid(format!("no user {name}")))?.id),
            None => None,
        };
        let mut names = std::collections::HashMap::new();
        let mut out = Vec::new();
        for d in self.store.devices(user_id.as_deref()).await? {
            if !names.contains_key(&d.user_id) {
                let name = self.store.user_by_id(&d.user_id).await?.map(|u| u.name).unwrap_or_default();
                names.insert(d.user_id.clone(), name);
            }
            out.push(DeviceSummary {
                user: names[&d.user_id].clone(),
                device_id: d.id,
                credential_id: d.credential_id,
                name: d.name,
                kind: d.kind,
                prehashed: d.prehashed,
                thumbprint: d.thumbprint,
                revoked: d.revoked,
                created_at: d.created_at,
                last_seen: d.last_seen,
            });
        }
        Ok(out)
    }

    /// Rename a device.
    pub async fn rename_device(&self, id: &str, name: &str, actor: &str) -> Result<()> {
        if name.is_empty() || !check::display_text_ok(name, protocol::MAX_NAME_CHARS) {
            return Err(Error::invalid("a device name is 1 to 64 characters, no control characters"));
        }
        let device = self.store.device(id).await?.ok_or_else(|| Error::invalid(format!("no device {id}")))?;
        let detail = json!({"by": actor, "device": id, "name": name, "thumbprint": device.thumbprint}).to_string();
        let audit = NewAudit {
            at: now(),
            actor,
            event: "device.rename",
            outcome: Outcome::Ok,
            credential_id: Some(&device.credential_id),
            detail: &detail,
        };
        if !self.store.rename_device(id, name, &audit).await? {
            return Err(Error::invalid(format!("no device {id}")));
        }
        Ok(())
    }

    /// Revoke a device: its messages are refused from now on, its credential is disabled.
    pub async fn revoke_device(&self, id: &str, actor: &str) -> Result<()> {
        let device = self.store.device(id).await?.ok_or_else(|| Error::invalid(format!("no device {id}")))?;
        let detail = json!({"by": actor, "device": id, "thumbprint": device.thumbprint}).to_string();
        let audit = NewAudit {
            at: now(),
            actor,
            event: "device.revoke",
            outcome: Outcome::Ok,
            credential_id: Some(&device.credential_id),
            detail: &detail,
        };
        if !self.store.revoke_device(id, &audit).await? {
            return Err(Error::invalid(format!("no device {id} that is not revoked")));
        }
        self.forget_key(&device.credential_id);
        self.devices.bump();
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Pairing
    // -----------------------------------------------------------------------------------------

    /// `POST /device/v1/pair/start`: use the code (once) and open a pairing session.
    pub async fn device_pair_start(&self, ctx: &RequestContext, body: &[u8]) -> DeviceResult<ServiceMessage> {
        let aud = self.device_aud()?;
        let refuse = |reason: &str| {
            let detail = json!({"client": ctx.client, "reason": reason});
            (detail, refused(RefusalCode::Foreign, "unknown, used or expired pairing code".into(), None))
        };
        let start: PairStart = match serde_json::from_slice(body) {
            Ok(s) => s,
            Err(_) => {
                self.audit("-", "device.pair.start", Outcome::Refused, None, json!({"client": ctx.client, "reason": "malformed"})).await?;
                return Err(refused(RefusalCode::Malformed, "a pair/start body is {\"v\":1,\"pairingCode\":…}".into(), None));
            }
        };
        let Some(code) = PairingCode::parse(&start.pairing_code) else {
            let (detail, e) = refuse("not a pairing code");
            self.audit("-", "device.pair.start", Outcome::Refused, None, detail).await?;
            return Err(e);
        };
        let t = now();
        let pairing_id = new_id("pair_");
        let expires_at = t + (self.cfg.device.pairing_minutes as i64) * 60;
        let Some(row) = self.store.start_pairing(&hex(&code.hash()), pairing_id.as_str(), t, expires_at).await? else {
            let (detail, e) = refuse("unknown, used or expired code");
            self.audit("-", "device.pair.start", Outcome::Refused, None, detail).await?;
            return Err(e);
        };
        let user = self.store.user_by_id(&row.user_id).await?.map(|u| u.name).unwrap_or_default();
        self.audit(&user, "device.pair.start", Outcome::Ok, None, json!({"client": ctx.client, "pairingId": pairing_id.as_str()})).await?;
        Ok(ServiceMessage::PairChallenge(PairChallenge {
            v: V1,
            challenge: self.devices.key.issue(Purpose::Pair(&pairing_id), t),
            pairing_id,
            user,
            aud,
            expires_at,
        }))
    }

    /// `POST /device/v1/pair/finish`: check the `pair` message, issue the certificate, create
    /// the device and its credential (backend `device`).
    pub async fn device_pair_finish(&self, ctx: &RequestContext, body: &[u8]) -> DeviceResult<ServiceMessage> {
        let aud = self.device_aud()?;
        let result = self.device_pair_finish_checked(ctx, body, &aud).await;
        if let Err(DeviceFailure::Refused { message: e, .. }) = &result {
            self.audit(
                "-",
                "device.pair",
                Outcome::Refused,
                None,
                json!({"client": ctx.client, "reason": e.error.as_str(), "detail": e.error_description}),
            )
            .await?;
        }
        result
    }

    async fn device_pair_finish_checked(&self, ctx: &RequestContext, body: &[u8], aud: &str) -> DeviceResult<ServiceMessage> {
        let from = |r: Refusal| refused(r.code(), r.to_string(), None);
        let text = std::str::from_utf8(body).map_err(|_| refused(RefusalCode::Malformed, "not a compact JWS".into(), None))?;
        let jws = Jws::parse(text.trim()).map_err(from)?;
        let Some(session) = self.store.pairing_session(jws.kid().as_str()).await? else {
            return Err(refused(RefusalCode::Foreign, "no such pairing session".into(), None));
        };
        let t = now();
        let lifetime = (self.cfg.device.pairing_minutes as i64) * 60;
        let checked = check::accept_pairing(
            &jws,
            &PairingSession { pairing_id: jws.kid(), aud, expires_at: session.expires_at, challenge_lifetime: lifetime },
            &self.devices.key,
            t,
        )
        .map_err(from)?;
        let KeyOrigin::Csr(_) = &checked.origin else {
            return Err(refused(RefusalCode::Unsupported, "this service does not import certificates: pair with a csr".into(), None));
        };
        let algorithm = key_algorithm_of(&checked.signing_key).map_err(from)?;
        let raw = raw_public_key(checked.signing_key.spki()).ok_or_else(|| refused(RefusalCode::Malformed, "signing key".into(), None))?;
        // The session ends here, once, whatever another node does with the same message.
        if !self.store.finish_pairing(jws.kid().as_str()).await? {
            return Err(refused(RefusalCode::Replayed, "the pairing session is finished".into(), None));
        }
        let user = self.store.user_by_id(&session.user_id).await?.ok_or_else(|| Error::invalid("the signer no longer exists"))?;
        let cert = crate::service::blocking_if(self.ca_in_hsm, || {
            self.ca.issue_signing_cert_for(&self.names, &user.name, algorithm, &raw, self.cfg.cert_validity_days)
        })
        .map_err(Error::from)?;
        let (pin_format, pin_hash) = session.pin_hash.split_once(':').unwrap_or(("N", session.pin_hash.as_str()));
        let credential_id = crate::secrets::new_id()?;
        let row = CredentialRow {
            id: credential_id.clone(),
            user_id: user.id.clone(),
            key_algo: algorithm,
            key_handle: checked.signing_key.spki().to_vec(),
            cert: cert.clone(),
            // SCAL 2: the device signs only the digests the SAD was issued for ("CSC
            // integration", SCAL 2).
            scal: 2,
            multisign: protocol::MAX_DIGESTS as i64,
            pin_hash: pin_hash.to_string(),
            pin_format: pin_format.to_string(),
            otp_kind: None,
            otp_secret: None,
            failed_attempts: 0,
            locked: false,
            disabled: false,
            description: Some(format!("device: {}", checked.name)),
            created_at: t,
            cert_status: CertState::Valid,
            revoked_at: None,
            revocation_reason: None,
            auth_mode: crate::AuthMode::Explicit,
            key_backend: cloudsign_keys::KeyBackendKind::Device,
            pin_wrap_salt: None,
        };
        self.store.insert_credential(&row).await?;
        let device_id = new_id("dev_");
        let thumbprint = hex(&checked.device_key.thumbprint());
        let kind = serde_json::to_value(checked.kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        let device = DeviceRow {
            id: device_id.to_string(),
            user_id: user.id.clone(),
            credential_id: credential_id.clone(),
            name: checked.name.clone(),
            kind: kind.clone(),
            prehashed: checked.prehashed,
            device_key: checked.device_key.spki().to_vec(),
            thumbprint: thumbprint.clone(),
            last_counter: 0,
            revoked: false,
            created_at: t,
            last_seen: None,
        };
        let detail = json!({
            "client": ctx.client, "device": device_id.as_str(), "kind": kind, "name": checked.name, "thumbprint": thumbprint,
            "signingKey": hex(&digest_of(checked.signing_key.spki())), "origin": "csr", "credential": credential_id,
            "serial": cert.serial_hex, "pairingId": jws.kid().as_str(),
        })
        .to_string();
        let audit = NewAudit {
            at: t,
            actor: &user.name,
            event: "device.pair",
            outcome: Outcome::Ok,
            credential_id: Some(&credential_id),
            detail: &detail,
        };
        self.store.insert_device(&device, &audit).await?;
        let mut certificates = vec![B64(cert.der.clone())];
        certificates.extend(self.ca_chain().iter().map(|c| B64(c.to_vec())));
        let credential_id = Id::new(credential_id).ok_or_else(|| Error::Internal("credential id".into()))?;
        Ok(ServiceMessage::Paired(Paired { v: V1, device_id, credential_id, certificates, counter: 0 }))
    }

    // -----------------------------------------------------------------------------------------
    // Connection: challenge, poll, answer
    // -----------------------------------------------------------------------------------------

    /// `GET /device/v1/challenge`: the first challenge of a long-polling device.
    pub fn device_challenge(&self) -> ServiceMessage {
        let t = now();
        ServiceMessage::Challenge(Challenge {
            v: V1,
            challenge: self.devices.key.issue(Purpose::Connect, t),
            counter: None,
            expires_at: t + self.cfg.device.challenge_seconds as i64,
        })
    }

    /// Steps 1–6 of "Checks and refusals" for a paired device's message: the JWS, the device
    /// (not revoked), its key's signature, the form, `aud`, the counter. Refusals are audited.
    async fn verify_from_device(&self, ctx: &RequestContext, body: &[u8], event: &str) -> DeviceResult<(DeviceRow, check::Verified)> {
        let aud = self.device_aud()?;
        let fail = |r: Refusal, counter: Option<u64>| refused(r.code(), r.to_string(), counter);
        let parsed = if body.len() > protocol::MAX_MESSAGE_BYTES {
            Err(Refusal::Malformed("a device message is at most 512 KiB".into()))
        } else {
            std::str::from_utf8(body).map_err(|_| Refusal::Malformed("not a compact JWS".into())).and_then(|t| Jws::parse(t.trim()))
        };
        let jws = match parsed {
            Ok(j) => j,
            Err(r) => {
                self.audit("-", event, Outcome::Refused, None, json!({"client": ctx.client, "reason": r.code().as_str()})).await?;
                return Err(fail(r, None));
            }
        };
        let device = match self.store.device(jws.kid().as_str()).await? {
            Some(d) if !d.revoked => d,
            other => {
                let detail = json!({"client": ctx.client, "reason": "unpaired", "device": jws.kid().as_str()});
                self.audit("-", event, Outcome::Refused, other.as_ref().map(|d| d.credential_id.as_str()), detail).await?;
                return Err(refused(RefusalCode::Unpaired, "the device is not paired (unknown or revoked)".into(), None));
            }
        };
        let key = DeviceKey::from_spki(&device.device_key).map_err(|e| Error::Internal(format!("stored device key: {e}")))?;
        let id = Id::new(device.id.clone()).ok_or_else(|| Error::Internal("stored device id".into()))?;
        let last = device.last_counter as u64;
        match check::verify_device_message(&jws, &Device { id: &id, key: &key, last_counter: last }, &aud) {
            Ok(v) => Ok((device, v)),
            Err(r) => {
                self.device_refusal_audit(ctx, event, &device, None, &r).await?;
                Err(fail(r, Some(last)))
            }
        }
    }

    async fn device_refusal_audit(
        &self,
        ctx: &RequestContext,
        event: &str,
        device: &DeviceRow,
        request: Option<&str>,
        r: &Refusal,
    ) -> Result<()> {
        let user = self.store.user_by_id(&device.user_id).await?.map(|u| u.name).unwrap_or_default();
        self.audit(
            &user,
            event,
            Outcome::Refused,
            Some(&device.credential_id),
            json!({"client": ctx.client, "device": device.id, "thumbprint": device.thumbprint, "request": request, "reason": r.code().as_str(), "detail": r.to_string()}),
        )
        .await
    }

    /// Whether a device is online: a poll held or answered within the hold time and a margin
    /// ("Transport": online while a poll is held or was answered less than 35 s ago).
    fn device_online(&self, device: &DeviceRow, t: i64) -> bool {
        device.last_seen.is_some_and(|s| t - s <= self.cfg.device.poll_hold_seconds as i64 + 10)
    }

    /// `POST /device/v1/poll`: a `hello`; answered with the requests not yet delivered (at once
    /// if any, else after at most `poll_hold_seconds`) and a fresh challenge.
    pub async fn device_poll(&self, ctx: &RequestContext, body: &[u8]) -> DeviceResult<Vec<ServiceMessage>> {
        let (device, verified) = self.verify_from_device(ctx, body, "device.connect").await?;
        let t = now();
        let hello = match check::accept_hello(&verified, &self.devices.key, self.cfg.device.challenge_seconds as i64, t) {
            Ok(h) => h,
            Err(r) => {
                self.device_refusal_audit(ctx, "device.connect", &device, None, &r).await?;
                return Err(refused(r.code(), r.to_string(), Some(device.last_counter as u64)));
            }
        };
        let was_online = self.device_online(&device, t);
        if !self.store.advance_device_counter(&device.id, verified.counter as i64, t).await? {
            let r = Refusal::Replayed { last: device.last_counter as u64 };
            self.device_refusal_audit(ctx, "device.connect", &device, None, &r).await?;
            return Err(refused(r.code(), r.to_string(), Some(device.last_counter as u64)));
        }
        if !was_online {
            let user = self.store.user_by_id(&device.user_id).await?.map(|u| u.name).unwrap_or_default();
            self.audit(
                &user,
                "device.connect",
                Outcome::Ok,
                Some(&device.credential_id),
                json!({"client": ctx.client, "device": device.id, "thumbprint": device.thumbprint, "transport": "poll", "agent": hello.agent, "counter": verified.counter}),
            )
            .await?;
        }
        let hold = Duration::from_secs(self.cfg.device.poll_hold_seconds);
        let started = tokio::time::Instant::now();
        let mut touched = started;
        // A request handed out this long ago and still pending is handed out again: the poll
        // answer that carried it may have been lost, and the device drops one it already has.
        let redeliver_after = self.cfg.device.poll_hold_seconds as i64 + 10;
        let mut out = Vec::new();
        loop {
            let rx = self.devices.changed.subscribe();
            let t = now();
            for r in self.store.take_undelivered_device_requests(&device.id, t, t - redeliver_after).await? {
                if let Ok(m) = serde_json::from_str::<ServiceMessage>(&r.message) {
                    out.push(m);
                }
            }
            let elapsed = started.elapsed();
            if !out.is_empty() || elapsed >= hold {
                break;
            }
            // Still revoked-checked: a revoked device's poll ends.
            if self.store.device(&device.id).await?.is_none_or(|d| d.revoked) {
                break;
            }
            // A held poll keeps the device online (for every node), written every few seconds.
            if touched.elapsed() >= Duration::from_secs(5) {
                self.store.device_seen(&device.id, now()).await?;
                touched = tokio::time::Instant::now();
            }
            self.devices.wait(rx, hold - elapsed).await;
        }
        let t = now();
        self.store.device_seen(&device.id, t).await?;
        out.push(ServiceMessage::Challenge(Challenge {
            v: V1,
            challenge: self.devices.key.issue(Purpose::Connect, t),
            counter: Some(verified.counter),
            expires_at: t + self.cfg.device.challenge_seconds as i64,
        }));
        Ok(out)
    }

    /// `POST /device/v1/answer`: a `signature` or `decline` (steps 7–12), accepted once with
    /// the counter's advance and the audit record in one transaction.
    pub async fn device_answer(&self, ctx: &RequestContext, body: &[u8]) -> DeviceResult<ServiceMessage> {
        let (device, verified) = self.verify_from_device(ctx, body, "device.answer").await?;
        let last = device.last_counter as u64;
        let Some(request_id) = verified.message.request_id().cloned() else {
            let r = Refusal::Malformed(format!("a {} is not an answer", verified.message.type_name()));
            self.device_refusal_audit(ctx, "device.answer", &device, None, &r).await?;
            return Err(refused(r.code(), r.to_string(), Some(last)));
        };
        let request = match self.store.device_request(request_id.as_str()).await? {
            Some(r) if r.state == "pending" => r,
            _ => {
                let detail =
                    json!({"client": ctx.client, "device": device.id, "request": request_id.as_str(), "reason": "unknown_request"});
                self.audit("-", "device.answer", Outcome::Refused, Some(&device.credential_id), detail).await?;
                return Err(refused(RefusalCode::UnknownRequest, "no such pending request".into(), Some(last)));
            }
        };
        let user = self.store.user_by_id(&device.user_id).await?.map(|u| u.name).unwrap_or_default();
        let sent = match serde_json::from_str::<ServiceMessage>(&request.message) {
            Ok(ServiceMessage::SignRequest(s)) => s,
            _ => return Err(Error::Internal("stored device request".into()).into()),
        };
        let credential =
            self.store.credential(&request.credential_id).await?.ok_or_else(|| Error::Internal("request credential".into()))?;
        let signing_key =
            PublicKey::from_certificate(&credential.cert.der).map_err(|e| Error::Internal(format!("device certificate: {e}")))?;
        let scheme = SignAlgorithm::resolve(&sent.sign_algo, Some(&sent.hash_algorithm_oid), None).map_err(Error::Internal)?;
        let digests: Vec<Vec<u8>> = sent.digests.iter().map(|d| d.0.clone()).collect();
        let device_id = Id::new(device.id.clone()).ok_or_else(|| Error::Internal("stored device id".into()))?;
        let request_device = Id::new(request.device_id.clone()).ok_or_else(|| Error::Internal("stored device id".into()))?;
        let outstanding = Outstanding {
            request_id: &sent.request_id,
            nonce: sent.nonce.as_bytes(),
            device_id: &request_device,
            expires_at: request.expires_at,
            what: Requested::Signature { scheme, digests: &digests, signing_key: &signing_key },
        };
        let jws_text = std::str::from_utf8(body).unwrap_or_default().trim().to_string();
        let t = now();
        let (state, result, outcome, refusal) = match check::accept_answer(&verified, &device_id, &outstanding, t) {
            Ok(Answer::Signed(sigs)) => {
                ("signed", json!({"signatures": sigs.iter().map(|s| protocol::b64::encode(s)).collect::<Vec<_>>()}), Outcome::Ok, None)
            }
            Ok(Answer::Declined(reason)) => ("declined", json!({"reason": reason.as_str()}), Outcome::Denied, None),
            Ok(Answer::Approved) => {
                return Err(refused(RefusalCode::Malformed, "an approval does not answer a signRequest".into(), Some(last)));
            }
            Err(r) => match r.code() {
                // Not necessarily the device's doing: the request stays for the real device.
                RefusalCode::Foreign | RefusalCode::Late | RefusalCode::UnknownRequest | RefusalCode::Replayed => {
                    self.device_refusal_audit(ctx, "device.answer", &device, Some(request_id.as_str()), &r).await?;
                    return Err(refused(r.code(), r.to_string(), Some(last)));
                }
                // An authentic answer that is wrong: the request ends as refused.
                code => ("refused", json!({"reason": code.as_str()}), Outcome::Refused, Some(r)),
            },
        };
        let detail = json!({
            "client": ctx.client, "device": device.id, "thumbprint": device.thumbprint, "request": request.id,
            "result": result, "answer": jws_text, "counter": verified.counter,
        })
        .to_string();
        let audit =
            NewAudit { at: t, actor: &user, event: "device.answer", outcome, credential_id: Some(&device.credential_id), detail: &detail };
        let end = RequestEnd {
            id: &request.id,
            state,
            result: &result.to_string(),
            answer: Some(&jws_text),
            counter: Some((&device.id, verified.counter as i64)),
        };
        if !self.store.end_device_request(&end, None, &audit).await? {
            let r = Refusal::Replayed { last };
            self.device_refusal_audit(ctx, "device.answer", &device, Some(request_id.as_str()), &r).await?;
            return Err(refused(RefusalCode::Replayed, "the counter or the request was taken by another message".into(), Some(last)));
        }
        self.devices.bump();
        if let Some(r) = refusal {
            return Err(refused(r.code(), r.to_string(), Some(verified.counter)));
        }
        Ok(ServiceMessage::Ack(protocol::message::Ack {
            v: V1,
            request_id,
            accepted: true,
            error: None,
            error_description: None,
            counter: verified.counter,
        }))
    }

    // -----------------------------------------------------------------------------------------
    // The device key backend's signing step
    // -----------------------------------------------------------------------------------------

    /// What the signer is shown about who asks: the OAuth client's registered name, when the
    /// bearer was issued to one.
    pub(crate) async fn device_application(&self, session: &Session) -> Result<Option<String>> {
        if let Some(token) = &session.token_hash
            && let Some(name) = self.store.token_client_name(token).await?
        {
            return Ok(Some(check::display_text(&name, protocol::MAX_NAME_CHARS)));
        }
        Ok(None)
    }

    /// A device credential's signature, before the SAD is touched: devices are on, the device is
    /// paired and not revoked, it can sign what `need` asks, and (synchronous calls) it is
    /// connected ("CSC integration", synchronous table; the asynchronous mode lets the request
    /// wait for an offline device).
    pub(crate) async fn device_precheck(&self, row: &CredentialRow, need: DeviceNeed) -> Result<DeviceRow> {
        if !self.cfg.device.enabled {
            return Err(Error::invalid("The credential's signing device is not connected (devices are disabled on this service)"));
        }
        let device = match self.store.device_of_credential(&row.id).await? {
            Some(d) if !d.revoked => d,
            _ => return Err(Error::invalid("The credential's signing device is revoked")),
        };
        // A device that hashes what it signs (the phone page: WebCrypto) needs the data to be
        // signed with each digest ("DTBS and DTBS/R"): signDoc has it (the signed attributes,
        // the SignedInfo, the JWS signing input it built), a signHash only the digests.
        if !device.prehashed && need.method == DeviceMethod::SignHash {
            return Err(Error::invalid(NO_DTBS));
        }
        if need.online && !self.device_online(&device, now()) {
            return Err(Error::invalid("The credential's signing device is not connected"));
        }
        Ok(device)
    }

    /// Send one `signRequest` for `digests` and wait for its end (the answer, or the expiry,
    /// which ends it here: with `ask.give_back` in the same transaction when given). Signatures
    /// come back in the CSC form, each verified against the certificate by `accept_answer`.
    /// Nothing else is given back here: the caller knows what the SAD paid.
    pub(crate) async fn device_request(&self, ask: &DeviceAsk<'_>, scheme: SignAlgorithm, digests: &[Vec<u8>]) -> Result<DeviceEnd> {
        self.device_request_with(ask, scheme, digests, None).await
    }

    /// [`device_request`](Self::device_request) with the data to be signed, one per digest
    /// (signDoc: what the service built and hashed), sent only to a device that hashes what it
    /// signs ("DTBS and DTBS/R"); a device that signs digests gets the digests alone. The
    /// answer is verified over the digests either way: the device checks that each DTBS hashes
    /// to its digest, so a signature over a DTBS is one over its digest.
    pub(crate) async fn device_request_with(
        &self,
        ask: &DeviceAsk<'_>,
        scheme: SignAlgorithm,
        digests: &[Vec<u8>],
        dtbs: Option<&[Vec<u8>]>,
    ) -> Result<DeviceEnd> {
        let (row, device) = (ask.row, ask.device);
        let dtbs = match (device.prehashed, dtbs) {
            (true, _) => None,
            // Refused by `device_precheck` before any SAD was spent; kept as the last word.
            (false, None) => return Err(Error::invalid(NO_DTBS)),
            (false, Some(data)) => {
                if data.len() != digests.len() {
                    return Err(Error::Internal("one data to be signed per digest".into()));
                }
                if data.iter().any(|d| d.len() > protocol::MAX_DTBS_BYTES) {
                    return Err(Error::invalid(DTBS_TOO_LARGE));
                }
                // What the device checks first (it would decline `invalid_request`): a mismatch
                // here is the service's own mistake, not the signer's.
                let hash = scheme.hash();
                if data.iter().zip(digests).any(|(d, h)| cloudsign_ades::digest(hash, d) != *h) {
                    return Err(Error::Internal("the data to be signed does not hash to its digest".into()));
                }
                Some(data.iter().map(|d| B64(d.clone())).collect())
            }
        };
        let digests_hex: Vec<String> = digests.iter().map(|d| hex(d)).collect();
        let t = now();
        let expires_at = (t + self.cfg.device.request_seconds as i64).min(ask.deadline.max(t + 1));
        let request_id = new_id("req_");
        let code = VerificationCode::of(digests).ok_or_else(|| Error::invalid("Empty hash array"))?;
        let credential_id = Id::new(row.id.clone()).ok_or_else(|| Error::Internal("credential id".into()))?;
        let message = ServiceMessage::SignRequest(SignRequest {
            v: V1,
            request_id: request_id.clone(),
            nonce: new_nonce(),
            credential_id,
            sign_algo: scheme.oid().to_string(),
            hash_algorithm_oid: scheme.hash().oid().to_string(),
            digests: digests.iter().map(|d| B64(d.clone())).collect(),
            dtbs,
            verification_code: code,
            application: ask.application.clone(),
            label: check::display_text(&ask.label, protocol::MAX_LABEL_CHARS),
            description: None,
            preview: None,
            issued_at: t,
            expires_at,
        });
        let stored = DeviceRequestRow {
            id: request_id.to_string(),
            device_id: device.id.clone(),
            credential_id: row.id.clone(),
            message: serde_json::to_string(&message).map_err(|e| Error::Internal(e.to_string()))?,
            state: "pending".into(),
            result: None,
            answer: None,
            created_at: t,
            expires_at,
        };
        let detail = json!({
            "client": ask.client, "request": request_id.as_str(), "kind": "signRequest", "device": device.id, "job": ask.job,
            "thumbprint": device.thumbprint, "signAlgo": scheme.oid(), "digests": digests_hex, "code": code.as_str(), "expiresAt": expires_at,
        })
        .to_string();
        let audit = NewAudit {
            at: t,
            actor: ask.actor,
            event: "device.request",
            outcome: Outcome::Ok,
            credential_id: Some(&row.id),
            detail: &detail,
        };
        if let Err(e) = self.store.insert_device_request(&stored, &audit).await {
            tracing::warn!(error = %e, "device request not stored");
            return Ok(DeviceEnd::NotSent);
        }
        self.devices.bump();
        loop {
            let rx = self.devices.changed.subscribe();
            let current =
                self.store.device_request(request_id.as_str()).await?.ok_or_else(|| Error::Internal("request vanished".into()))?;
            let t = now();
            match current.state.as_str() {
                "pending" if t < expires_at => {
                    let left = Duration::from_secs((expires_at - t) as u64);
                    self.devices.wait(rx, left).await;
                }
                "pending" => {
                    // The expiry: ended here, once (with the give-back, when the caller gave
                    // one); an answer that got in first wins.
                    let detail = json!({"client": ask.client, "request": request_id.as_str(), "reason": "expired"}).to_string();
                    let audit = NewAudit {
                        at: t,
                        actor: ask.actor,
                        event: "device.cancel",
                        outcome: Outcome::Ok,
                        credential_id: Some(&row.id),
                        detail: &detail,
                    };
                    let end =
                        RequestEnd { id: &current.id, state: "expired", result: "{\"reason\":\"expired\"}", answer: None, counter: None };
                    if self.store.end_device_request(&end, ask.give_back, &audit).await? {
                        return Ok(DeviceEnd::Expired);
                    }
                }
                "expired" => return Ok(DeviceEnd::Expired),
                "signed" => {
                    let result: serde_json::Value =
                        serde_json::from_str(current.result.as_deref().unwrap_or("{}")).map_err(|e| Error::Internal(e.to_string()))?;
                    let kind = PublicKey::from_certificate(&row.cert.der).map_err(|e| Error::Internal(e.to_string()))?.kind();
                    let mut out = Vec::with_capacity(digests.len());
                    for s in result["signatures"].as_array().into_iter().flatten() {
                        let raw = s.as_str().and_then(protocol::b64::decode).ok_or_else(|| Error::Internal("stored signature".into()))?;
                        out.push(csc_signature(kind, &raw).ok_or_else(|| Error::Internal("signature size".into()))?);
                    }
                    if out.len() != digests.len() {
                        return Err(Error::Internal("stored signatures".into()));
                    }
                    return Ok(DeviceEnd::Signed(out));
                }
                "declined" => return Ok(DeviceEnd::Declined),
                "refused" => {
                    let reason: serde_json::Value = serde_json::from_str(current.result.as_deref().unwrap_or("{}")).unwrap_or_default();
                    return Ok(DeviceEnd::Refused(reason["reason"].as_str().unwrap_or("malformed").to_string()));
                }
                _ => return Ok(DeviceEnd::Withdrawn),
            }
        }
    }

    /// Synchronous signHash on the device for consumed digests: one request, its answer, and
    /// anything but signatures gives the SAD back ("CSC integration", synchronous table).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn device_sign(
        &self,
        session: &Session,
        ctx: &RequestContext,
        row: &CredentialRow,
        device: &DeviceRow,
        scheme: SignAlgorithm,
        digests: &[Vec<u8>],
        sad_hash: &str,
    ) -> Result<Vec<Vec<u8>>> {
        let digests_hex: Vec<String> = digests.iter().map(|d| hex(d)).collect();
        let t = now();
        let sad_expiry = self.store.sad(sad_hash).await?.map(|s| s.expires_at).unwrap_or(t + self.cfg.device.request_seconds as i64);
        let n = digests.len();
        let ask = DeviceAsk {
            actor: &session.user_name,
            client: &ctx.client,
            job: None,
            application: self.device_application(session).await?,
            label: if n == 1 { "1 document".to_string() } else { format!("{n} documents") },
            row,
            device,
            deadline: sad_expiry,
            give_back: Some((sad_hash, &digests_hex)),
        };
        let end = self.device_request(&ask, scheme, digests).await?;
        let why = match &end {
            DeviceEnd::Signed(_) => None,
            // Given back with the request's end, in its transaction.
            DeviceEnd::Expired => {
                self.audit(
                    &session.user_name,
                    "signatures.signHash",
                    Outcome::Failed,
                    Some(&row.id),
                    json!({"client": ctx.client, "error": "the device did not answer in time"}),
                )
                .await?;
                None
            }
            DeviceEnd::NotSent => Some("the request could not be stored"),
            DeviceEnd::Declined => Some("the signer declined on the device"),
            DeviceEnd::Refused(_) => Some("the device's answer was refused"),
            DeviceEnd::Withdrawn => Some("the request was withdrawn"),
        };
        if let Some(why) = why {
            self.device_give_back(&session.user_name, ctx, row, "signatures.signHash", sad_hash, &digests_hex, why).await?;
        }
        end.signatures().map(|s| crate::metrics::METRICS.signed_then(row.key_backend, s))
    }

    /// Give a SAD back what one consumption took (`digests_hex`), audited as `event` failed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn device_give_back(
        &self,
        actor: &str,
        ctx: &RequestContext,
        row: &CredentialRow,
        event: &str,
        sad_hash: &str,
        digests_hex: &[String],
        why: &str,
    ) -> Result<()> {
        let detail = json!({"client": ctx.client, "error": why, "gaveBack": digests_hex.len()}).to_string();
        let audit = NewAudit { at: now(), actor, event, outcome: Outcome::Failed, credential_id: Some(&row.id), detail: &detail };
        Ok(self.store.give_back_sad(sad_hash, digests_hex, &audit).await?)
    }
}

/// The refusal of a signHash for a device that hashes what it signs ("CSC integration",
/// synchronous table): a hash-only request has no data to be signed to send it.
const NO_DTBS: &str = "This credential's device signs documents only: use signatures/signDoc";

/// The refusal of a document whose data to be signed exceeds what a request carries to a device
/// that hashes what it signs (`MAX_DTBS_BYTES`, doc "Encoding", limits).
pub(crate) const DTBS_TOO_LARGE: &str = "Invalid parameter documents: this credential's device hashes what it signs, and the data to be \
     signed for this document is larger than the 64 KiB a device request carries";

/// What a device signature is for (its precheck).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeviceNeed {
    /// The CSC method.
    pub(crate) method: DeviceMethod,
    /// The device must be connected now (synchronous calls).
    pub(crate) online: bool,
}

/// The CSC method a device signs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceMethod {
    /// signatures/signHash: the application's digests.
    SignHash,
    /// signatures/signDoc: digests of structures the service built.
    SignDoc,
}

/// Who asks a device for a signature, and until when.
#[derive(Clone)]
pub(crate) struct DeviceAsk<'a> {
    /// The signer (audit actor).
    pub(crate) actor: &'a str,
    /// The client address (audit).
    pub(crate) client: &'a str,
    /// The asynchronous job it serves (its id's prefix, audit).
    pub(crate) job: Option<&'a str>,
    /// The application, for the signer's screen.
    pub(crate) application: Option<String>,
    /// What is signed, for the signer's screen.
    pub(crate) label: String,
    /// The credential.
    pub(crate) row: &'a CredentialRow,
    /// Its device.
    pub(crate) device: &'a DeviceRow,
    /// The request expires by then at the latest (the SAD's expiry, a job's lease).
    pub(crate) deadline: i64,
    /// On expiry, give back this SAD (hash) these digests (hex), in the request's ending
    /// transaction; `None`: the caller gives back (or a failed job does).
    pub(crate) give_back: Option<(&'a str, &'a [String])>,
}

/// How a device request ended.
#[derive(Debug)]
pub(crate) enum DeviceEnd {
    /// The signatures, in the CSC form, verified.
    Signed(Vec<Vec<u8>>),
    /// The request could not be stored (nothing was sent).
    NotSent,
    /// The signer declined.
    Declined,
    /// No answer by the request's expiry.
    Expired,
    /// An authentic answer that was wrong (its refusal code).
    Refused(String),
    /// Withdrawn (the device was revoked).
    Withdrawn,
}

impl DeviceEnd {
    /// The signatures, or the error the application is given ("CSC integration", synchronous
    /// table; the asynchronous mode hands out the same through signPolling).
    pub(crate) fn signatures(self) -> Result<Vec<Vec<u8>>> {
        match self {
            DeviceEnd::Signed(s) => Ok(s),
            DeviceEnd::NotSent => Err(Error::Unavailable("the device request could not be stored".into())),
            DeviceEnd::Declined => Err(Error::AccessDenied("The signer declined on the device".into())),
            DeviceEnd::Expired => Err(Error::invalid("The signer did not answer on the device in time")),
            DeviceEnd::Refused(code) => Err(Error::invalid(format!("The signing device's answer was refused ({code})"))),
            DeviceEnd::Withdrawn => Err(Error::invalid("The credential's signing device is revoked")),
        }
    }
}
