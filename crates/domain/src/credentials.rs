//! Credentials as the API shows them (CSC v2 §11.4, §11.5) and credential authorization
//! (§11.6 authorize, §11.8 getChallenge, §11.9 extendTransaction). Out-of-band approval (the
//! 202 answer of authorize and §11.7 authorizeCheck) is in `approval.rs`.

use cloudsign_asn1::{HashAlgorithm, KeyAlgorithm};
use cloudsign_store::Outcome;
use cloudsign_store::{CertState, ConsumeOutcome, CredentialRow, NewSad, OtpKind, TokenKind};
use serde_json::json;
use zeroize::Zeroizing;

use crate::approval::Authorization;
use crate::secrets::{ct_eq, new_token, random_bytes, token_hash, totp_match};
use crate::{Error, RequestContext, Result, Service, Session, now};

/// Certificate status (CSC `cert.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// Within its validity period.
    Valid,
    /// Past `notAfter` (or before `notBefore`).
    Expired,
    /// Revoked by the CA (final).
    Revoked,
    /// Suspended (certificateHold) until resumed.
    Suspended,
}

impl CertStatus {
    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Suspended => "suspended",
        }
    }
}

/// How a factor is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorKind {
    /// Typed in by the user (PIN, TOTP from an app).
    Password,
    /// Sent out of band by the service after `getChallenge`, then typed in.
    ChallengeResponse,
    /// Given out of band: the signer approves the request where an approver delivered it (a
    /// link, a device); the client sends nothing but the object's id and polls
    /// `credentials/authorizeCheck` (CSC v2 §11.6, §11.7).
    OutOfBand,
}

/// One factor the credential requires.
#[derive(Debug, Clone)]
pub struct AuthFactor {
    /// `PIN` or `OTP` (the object ids of the spec's samples), or
    /// [`APPROVAL_OBJECT`](crate::approval::APPROVAL_OBJECT).
    pub id: &'static str,
    /// Presentation.
    pub kind: FactorKind,
    /// `N` (digits) or `A` (any characters); meaningless for [`FactorKind::OutOfBand`].
    pub format: &'static str,
    /// `totp` or `online` for OTPs.
    pub generator: Option<&'static str>,
    /// UI label.
    pub label: &'static str,
    /// UI help.
    pub description: &'static str,
}

/// A credential as the API reports it.
#[derive(Debug, Clone)]
pub struct CredentialView {
    /// `credentialID`.
    pub id: String,
    /// Free text.
    pub description: Option<String>,
    /// Key type.
    pub key_algorithm: KeyAlgorithm,
    /// `key.status`: usable for signing now.
    pub key_enabled: bool,
    /// `cert.status`.
    pub cert_status: CertStatus,
    /// End-entity certificate DER.
    pub cert_der: Vec<u8>,
    /// Rest of the chain: issuing CA, root.
    pub chain: Vec<Vec<u8>>,
    /// Hex serial.
    pub serial_hex: String,
    /// RFC 4514 subject.
    pub subject_dn: String,
    /// RFC 4514 issuer.
    pub issuer_dn: String,
    /// Validity start (Unix seconds).
    pub not_before: i64,
    /// Validity end (Unix seconds).
    pub not_after: i64,
    /// 1 or 2.
    pub scal: u8,
    /// `multisign`.
    pub multisign: u32,
    /// Factors, all required (expression: AND of all).
    pub factors: Vec<AuthFactor>,
    /// `explicit` or `oauth2code`.
    pub auth_mode: crate::AuthMode,
}

impl CredentialView {
    /// 2.2 `cert.qcStatements` (§11.7): the statement OIDs of the certificate's
    /// qcStatements extension (RFC 3739 §3.2.6, ETSI EN 319 412-5), in their order.
    pub fn qc_statements(&self) -> Vec<String> {
        extension_oids(&self.cert_der, ID_PE_QC_STATEMENTS)
    }

    /// 2.2 `cert.policy` (§11.7): the policy OIDs of the certificatePolicies extension
    /// (RFC 5280 §4.2.1.4), in their order.
    pub fn policies(&self) -> Vec<String> {
        extension_oids(&self.cert_der, ID_CE_CERTIFICATE_POLICIES)
    }
}

/// id-pe-qcStatements (RFC 3739).
const ID_PE_QC_STATEMENTS: &str = "1.3.6.1.5.5.7.1.3";
/// id-ce-certificatePolicies (RFC 5280).
const ID_CE_CERTIFICATE_POLICIES: &str = "2.5.29.32";

/// The leading OID of each element of the SEQUENCE OF that extension `wanted` holds: both
/// `QCStatements` (`SEQUENCE OF QCStatement { statementId, ... }`) and `certificatePolicies`
/// (`SEQUENCE OF PolicyInformation { policyIdentifier, ... }`) have that shape. A certificate
/// that does not parse, or lacks the extension, yields none.
fn extension_oids(cert: &[u8], wanted: &str) -> Vec<String> {
    use cloudsign_asn1::der::Reader;
    use cloudsign_asn1::oid::decode_oid;
    let read = || -> Option<Vec<String>> {
        let exts = cloudsign_asn1::cert::extensions(cert)?;
        let Some((_, value)) = exts.into_iter().find(|(oid, _)| oid == wanted) else { return Some(Vec::new()) };
        let mut items = Reader::new(Reader::new(value).expect(0x30)?);
        let mut out = Vec::new();
        while !items.is_empty() {
            let mut item = Reader::new(items.expect(0x30)?);
            out.push(decode_oid(item.expect(0x06)?)?);
        }
        Some(out)
    };
    read().unwrap_or_default()
}

/// Digests sent with an authorization, decoded.
#[derive(Debug, Clone)]
pub struct HashesInput {
    /// Their algorithm.
    pub algorithm: HashAlgorithm,
    /// The digests.
    pub digests: Vec<Vec<u8>>,
}

/// The factors presented.
#[derive(Default)]
pub struct Factors {
    /// PIN.
    pub pin: Option<Zeroizing<String>>,
    /// OTP.
    pub otp: Option<Zeroizing<String>>,
}

/// A `credentials/authorize` call.
pub struct AuthorizeInput {
    /// The credential.
    pub credential_id: String,
    /// `numSignatures`.
    pub num_signatures: u64,
    /// Digests to bind.
    pub hashes: Option<HashesInput>,
    /// PIN/OTP.
    pub factors: Factors,
    /// `authData` named the out-of-band object ([`APPROVAL_OBJECT`](crate::approval::APPROVAL_OBJECT)).
    /// Not required: a credential with an approver always asks for the approval.
    pub out_of_band: bool,
    /// The application's transaction description (`description`, at most 500 characters),
    /// shown to the signer on the approval page.
    pub description: Option<String>,
    /// The base URL at which signers reach this service (the HTTP layer's): approval links
    /// start with it. `public_url` is used when this is absent.
    pub link_base: Option<String>,
    /// The API can answer 202 and be polled with `credentials/authorizeCheck` (CSC v2). CSC
    /// v1.0.4.0 cannot, so there a credential with an approver is refused before anything is
    /// checked or sent.
    pub accepts_pending: bool,
}

/// Signature activation data handed to the client.
#[derive(Debug)]
pub struct Sad {
    /// Opaque token.
    pub token: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

const PIN: AuthFactor = AuthFactor {
    id: "PIN",
    kind: FactorKind::Password,
    format: "N",
    generator: None,
    label: "PIN",
    description: "The signing PIN of this credential",
};

/// The factors of a credential that the row alone tells: PIN and OTP. A credential with an
/// approver ([`CredentialView::factors`]) has [`approval_factor`] too.
pub(crate) fn factors_of(row: &CredentialRow) -> Vec<AuthFactor> {
    let mut factors = vec![AuthFactor { format: if row.pin_format == "A" { "A" } else { "N" }, ..PIN }];
    match row.otp_kind {
        Some(OtpKind::Totp) => factors.push(AuthFactor {
            id: "OTP",
            kind: FactorKind::Password,
            format: "N",
            generator: Some("totp"),
            label: "One-time code",
            description: "The 6-digit code from your authenticator app",
        }),
        Some(OtpKind::Online) => factors.push(AuthFactor {
            id: "OTP",
            kind: FactorKind::ChallengeResponse,
            format: "N",
            generator: Some("online"),
            label: "One-time code",
            description: "The 6-digit code sent to you after credentials/getChallenge",
        }),
        _ => {}
    }
    factors
}

/// The out-of-band factor of a credential whose authorization also needs the signer's approval
/// through `approver`.
pub(crate) fn approval_factor(approver: &str) -> AuthFactor {
    AuthFactor {
        id: crate::approval::APPROVAL_OBJECT,
        kind: FactorKind::OutOfBand,
        format: "A",
        generator: None,
        label: "Approval",
        description: match approver {
            crate::approval::LINK_APPROVER => "Approve the request on the page of the one-time link the service sends you",
            _ => "Approve the request where the service sends it to you",
        },
    }
}

impl Service {
    /// The caller's credential, or the same refusal whether it does not exist or belongs to
    /// someone else (no probing of other users' credential ids).
    /// A credential-scope session reaches its own credential only.
    pub(crate) async fn own_credential(&self, session: &Session, id: &str) -> Result<CredentialRow> {
        if session.credential.as_ref().is_some_and(|c| c.credential_id != id) {
            return Err(Error::invalid("Invalid parameter credentialID"));
        }
        match self.store.credential(id).await? {
            Some(c) if c.user_id == session.user_id => {
                Self::remember(&self.hot_credentials, id, &c);
                Ok(c)
            }
            _ => Err(Error::invalid("Invalid parameter credentialID")),
        }
    }

    /// `approval`: the credential's approver (`Store::credential_approval`), if any.
    pub(crate) fn view(&self, row: &CredentialRow, approval: Option<&str>) -> Result<CredentialView> {
        let t = now();
        let cert_status = match row.cert_status {
            CertState::Revoked => CertStatus::Revoked,
            CertState::Suspended => CertStatus::Suspended,
            CertState::Valid if t < row.cert.not_before || t >= row.cert.not_after => CertStatus::Expired,
            CertState::Valid => CertStatus::Valid,
        };
        let key_algorithm = row.key_algo;
        Ok(CredentialView {
            id: row.id.clone(),
            description: row.description.clone(),
            key_algorithm,
            key_enabled: !row.disabled && !row.locked && cert_status == CertStatus::Valid,
            cert_status,
            cert_der: row.cert.der.clone(),
            chain: self.ca_chain().iter().map(|c| c.to_vec()).collect(),
            serial_hex: row.cert.serial_hex.clone(),
            subject_dn: row.cert.subject_dn.clone(),
            issuer_dn: row.cert.issuer_dn.clone(),
            not_before: row.cert.not_before,
            not_after: row.cert.not_after,
            scal: if row.scal == 1 { 1 } else { 2 },
            multisign: u32::try_from(row.multisign).unwrap_or(u32::MAX),
            factors: {
                let mut factors = factors_of(row);
                factors.extend(approval.map(approval_factor));
                factors
            },
            auth_mode: row.auth_mode,
        })
    }

    /// `credentials/list`: the caller's credentials (optionally only those usable now).
    pub async fn list_credentials(&self, session: &Session, only_valid: bool) -> Result<Vec<CredentialView>> {
        let mut rows = self.store.credentials(Some(&session.user_id)).await?;
        if let Some(scope) = &session.credential {
            rows.retain(|r| r.id == scope.credential_id);
        }
        let approvals = if rows.is_empty() { Vec::new() } else { self.store.credential_approvals(Some(&session.user_id)).await? };
        let approval_of = |id: &str| approvals.iter().find(|(c, _)| c == id).map(|(_, a)| a.as_str());
        let mut views = Vec::with_capacity(rows.len());
        for row in &rows {
            let v = self.view(row, approval_of(&row.id))?;
            if !only_valid || v.key_enabled {
                views.push(v);
            }
        }
        Ok(views)
    }

    /// `credentials/info`.
    pub async fn credential_info(&self, session: &Session, id: &str) -> Result<CredentialView> {
        let row = self.own_credential(session, id).await?;
        let approval = self.store.credential_approval(id).await?;
        self.view(&row, approval.as_deref())
    }

    /// Refuse a credential that cannot be used now (disabled, locked, certificate not valid).
    /// A lockout is a sign of guessing: SADs issued before it stop working too.
    pub(crate) fn check_usable(&self, row: &CredentialRow) -> Result<()> {
        if row.disabled {
            return Err(Error::invalid("The credential identified by credentialID is disabled"));
        }
        if row.locked {
            return Err(Error::Locked);
        }
        match row.cert_status {
            CertState::Revoked => return Err(Error::invalid(format!("Signing certificate '{}' is revoked.", row.cert.subject_dn))),
            CertState::Suspended => return Err(Error::invalid(format!("Signing certificate '{}' is suspended.", row.cert.subject_dn))),
            CertState::Valid => {}
        }
        let t = now();
        if t >= row.cert.not_after || t < row.cert.not_before {
            return Err(Error::invalid(format!("Signing certificate '{}' is expired.", row.cert.subject_dn)));
        }
        Ok(())
    }

    /// `credentials/authorize` (explicit mode): check the factors, count failures, lock after
    /// `max_auth_attempts`, and issue a SAD bound to the user, the credential, the count and —
    /// for SCAL 2, or whenever hashes are given — the exact digests. For a credential with an
    /// approver, the SAD waits for the signer's approval instead
    /// ([`Authorization::Pending`], CSC v2 §11.6 202 answer).
    pub async fn authorize(&self, session: &Session, ctx: &RequestContext, input: AuthorizeInput) -> Result<Authorization> {
        let credential_id = input.credential_id.clone();
        let result = self.authorize_checked(session, ctx, input).await;
        match &result {
            // Wrong factors and lockouts are audited where they are detected, with their reason.
            Err(Error::InvalidPin { .. } | Error::InvalidOtp { .. } | Error::Internal(_) | Error::Unavailable(_)) | Ok(_) => {}
            Err(e) => {
                self.audit(
                    &session.user_name,
                    "credentials.authorize",
                    Outcome::Refused,
                    Some(&credential_id),
                    json!({"client": ctx.client, "reason": e.to_string()}),
                )
                .await?;
            }
        }
        result
    }

    async fn authorize_checked(&self, session: &Session, ctx: &RequestContext, mut input: AuthorizeInput) -> Result<Authorization> {
        let row = self.own_credential(session, &input.credential_id).await?;
        self.check_usable(&row)?;
        // CSC v2 §8.3.3 / v1 §8.3.3: an oauth2code credential is authorized on the service's
        // consent page only.
        if row.auth_mode == crate::AuthMode::OAuth2Code {
            return Err(Error::invalid(
                "The credential is authorized through OAuth 2.0 (authMode oauth2code): credentials/authorize cannot be used",
            ));
        }
        let approval = self.store.credential_approval(&row.id).await?;
        if input.out_of_band && approval.is_none() {
            return Err(Error::invalid("Invalid parameter authData: this credential has no out-of-band object approval"));
        }
        if approval.is_some() && !input.accepts_pending {
            return Err(Error::invalid(V1_OUT_OF_BAND));
        }
        if approval.is_some() && !self.cfg.approval.enabled {
            return Err(Error::invalid(
                "The credential needs the signer's out-of-band approval, which this service does not offer now (approval is disabled)",
            ));
        }
        if input.num_signatures < 1 {
            return Err(Error::invalid("Invalid value for parameter numSignatures"));
        }
        if input.num_signatures > row.multisign as u64 {
            return Err(Error::invalid("Numbers of signatures is too high"));
        }
        if let Some(h) = &input.hashes {
            check_digests(h)?;
            if h.digests.len() as u64 > input.num_signatures {
                return Err(Error::invalid("More hashes than numSignatures"));
            }
        }
        // CSC §2.5 / v2 §8.3: SCAL 2 binds the SAD to the data to be signed.
        if row.scal == 2 && input.hashes.is_none() {
            return Err(Error::invalid("Missing (or invalid type) array parameter hashes: required for SCAL 2 credentials"));
        }
        let factors = factors_of(&row);
        let pin = input.factors.pin.take().ok_or_else(|| Error::invalid("Missing authentication object PIN in authData"))?;
        let needs_otp = factors.iter().any(|f| f.id == "OTP");
        if needs_otp && input.factors.otp.is_none() {
            return Err(Error::invalid("Missing authentication object OTP in authData"));
        }
        if !needs_otp && input.factors.otp.is_some() {
            return Err(Error::invalid("Invalid parameter authData: this credential has no OTP"));
        }
        let pin_for_key = row.pin_wrap_salt.as_ref().map(|_| pin.clone());
        self.verify_factors(session, ctx, &row, pin, input.factors.otp.take()).await?;
        // The PIN (and OTP) were right: the rest is the signer's to approve elsewhere.
        if let Some(approver) = approval {
            let pin_key = match (&row.pin_wrap_salt, pin_for_key) {
                (Some(salt), Some(pin)) => Some(self.pin_key(&pin, salt).await?),
                _ => None,
            };
            return self.request_approval(session, ctx, &row, &approver, input, pin_key).await.map(Authorization::Pending);
        }

        let sad = new_token()?;
        let sad_hash = token_hash(&sad);
        // Sole control: the SAD carries the PIN key, sealed under itself.
        let sole_key = match (&row.pin_wrap_salt, pin_for_key) {
            (Some(salt), Some(pin)) => Some(crate::sole::seal_for(&*self.pin_key(&pin, salt).await?, &sad, &sad_hash)?),
            _ => None,
        };
        let t = now();
        let digests_hex: Option<Vec<String>> = input.hashes.as_ref().map(|h| h.digests.iter().map(|d| crate::secrets::hex(d)).collect());
        let new = NewSad {
            sole_key: sole_key.as_deref(),
            hash: &sad_hash,
            user_id: &session.user_id,
            credential_id: &row.id,
            remaining: input.num_signatures as i64,
            hash_algo: input.hashes.as_ref().map(|h| h.algorithm.oid()),
            digests: digests_hex.as_deref(),
            expires_at: t + self.cfg.sad_ttl as i64,
            now: t,
        };
        // The SAD hangs from the token that obtained it: revoking the token revokes the SAD.
        match &session.token_hash {
            Some(token) => {
                if !self.store.insert_sad_for_token(&new, token).await? {
                    return Err(Error::ExpiredToken);
                }
            }
            None => self.store.insert_sad(&new).await?,
        }
        self.audit(
            &session.user_name,
            "credentials.authorize",
            Outcome::Ok,
            Some(&row.id),
            json!({"client": ctx.client, "clientData": ctx.client_data, "numSignatures": input.num_signatures, "hashes": digests_hex, "hashAlgorithmOID": input.hashes.as_ref().map(|h| h.algorithm.oid())}),
        )
        .await?;
        Ok(Authorization::Granted(Sad { token: sad, expires_in: self.cfg.sad_ttl }))
    }

    /// The PIN (and OTP) check with its attempt accounting. The check takes a place among the
    /// credential's attempts before argon2 runs, and failures plus checks in flight never exceed
    /// `max_auth_attempts`, so parallel guesses cannot get past the lockout; only a failure is
    /// counted, so right PINs sent at once never lock the credential. A check that finds every
    /// place taken waits for one (`wait_for_attempt`).
    pub(crate) async fn verify_factors(
        &self,
        session: &Session,
        ctx: &RequestContext,
        row: &CredentialRow,
        pin: Zeroizing<String>,
        otp: Option<Zeroizing<String>>,
    ) -> Result<()> {
        let max = self.cfg.max_auth_attempts;
        let lease = new_token()?;
        // `Some(true)`: admitted; `Some(false)`: locked; `None`: every place is in flight.
        let admitted = self
            .wait_for_attempt(|| async {
                Ok(match self.store.begin_attempt(&row.id, &lease, max, now()).await? {
                    Some(true) => Some(true),
                    Some(false) => None,
                    None => Some(false),
                })
            })
            .await?;
        if !admitted {
            return Err(Error::Locked); // audited by `authorize`
        }
        let mut guard = AttemptGuard::new(self, AttemptOf::Credential(row.id.clone()), lease);
        let stored = row.pin_hash.clone();
        let pin_ok = self.verify_secret_bounded(pin, stored).await?;
        let otp_ok = match (pin_ok, otp) {
            (false, _) => false,
            (true, None) => true,
            (true, Some(code)) => self.verify_otp(row, &code).await?,
        };
        if pin_ok && otp_ok {
            let held = self.store.attempt_succeeded(&row.id, guard.lease(), now()).await;
            guard.ended(self);
            return if held? { Ok(()) } else { Err(lapsed()) };
        }
        let failed = self.store.attempt_failed(&row.id, guard.lease(), max, now()).await;
        guard.ended(self);
        let Some((failures, locked)) = failed? else { return Err(lapsed()) };
        let reason = if pin_ok { "wrong OTP" } else { "wrong PIN" };
        self.audit(
            &session.user_name,
            "credentials.authorize",
            Outcome::Refused,
            Some(&row.id),
            json!({"client": ctx.client, "reason": reason, "locked": locked}),
        )
        .await?;
        let attempts_left = (max - failures).max(0);
        Err(if pin_ok { Error::InvalidOtp { attempts_left } } else { Error::InvalidPin { attempts_left } })
    }

    async fn verify_otp(&self, row: &CredentialRow, code: &str) -> Result<bool> {
        match row.otp_kind {
            Some(OtpKind::Totp) => {
                let sealed = row.otp_secret.as_deref().ok_or_else(|| Error::Internal("damaged OTP record".into()))?;
                let secret = self.keystore.open(sealed, &otp_binding(&row.id))?;
                let Some(step) = totp_match(&secret, code, now()) else { return Ok(false) };
                // RFC 6238 §5.2: each code is accepted once; later steps only.
                Ok(self.store.use_totp_step(&row.id, step).await?)
            }
            Some(OtpKind::Online) => {
                let Some((hash, expires_at)) = self.store.take_otp_challenge(&row.id).await? else { return Ok(false) };
                Ok(expires_at > now() && ct_eq(online_otp_hash(&row.id, code).as_bytes(), hash.as_bytes()))
            }
            _ => Ok(false),
        }
    }

    /// `credentials/getChallenge` for an online OTP: a fresh 6-digit code, valid `otp_ttl`
    /// seconds, delivered through the OTP sender. Replaces any pending code.
    pub async fn get_challenge(&self, session: &Session, ctx: &RequestContext, credential_id: &str, auth_object_id: &str) -> Result<()> {
        let row = self.own_credential(session, credential_id).await?;
        self.check_usable(&row)?;
        if row.otp_kind != Some(OtpKind::Online) || auth_object_id != "OTP" {
            return Err(Error::invalid("Invalid parameter authObjectID: no challenge-response object with this id"));
        }
        let n = u32::from_be_bytes(random_bytes(4)?.try_into().map_err(|_| Error::Internal("random".into()))?);
        let code = Zeroizing::new(format!("{:06}", n % 1_000_000));
        self.store.put_otp_challenge(&row.id, &online_otp_hash(&row.id, &code), now() + self.cfg.otp_ttl as i64).await?;
        self.otp_sender.send(&session.user_name, &row.id, &code).map_err(|e| Error::Unavailable(format!("OTP delivery failed: {e}")))?;
        self.audit(&session.user_name, "credentials.getChallenge", Outcome::Ok, Some(&row.id), json!({"client": ctx.client})).await?;
        Ok(())
    }

    /// `credentials/extendTransaction`: a new SAD carrying the old one's remaining count and
    /// unused digests, plus newly bound digests; the old SAD stops working.
    pub async fn extend_transaction(
        &self,
        session: &Session,
        ctx: &RequestContext,
        credential_id: &str,
        sad: &str,
        hashes: Option<HashesInput>,
    ) -> Result<Sad> {
        let row = self.own_credential(session, credential_id).await?;
        self.check_usable(&row)?;
        if let Some(h) = &hashes {
            check_digests(h)?;
            // A consent covers exactly the documents the signer saw: an OAuth authorization
            // (and any oauth2code credential's) cannot be widened here.
            let from_oauth = self.store.token(&token_hash(sad)).await?.is_some_and(|t| t.kind == TokenKind::Credential);
            // So does the signer's out-of-band approval: the approval page showed the hashes.
            let approved_elsewhere = self.store.credential_approval(&row.id).await?.is_some();
            if from_oauth || approved_elsewhere || row.auth_mode == crate::AuthMode::OAuth2Code {
                return Err(Error::invalid(
                    "Invalid parameter hashes: an authorization given on the consent page covers only the documents approved there",
                ));
            }
        }
        let fresh = new_token()?;
        let fresh_hash = token_hash(&fresh);
        // Sole control: the PIN key moves from the old SAD to the new one.
        let sole_key = match &row.pin_wrap_salt {
            Some(_) => match self
                .store
                .sad(&token_hash(sad))
                .await?
                .filter(|s| s.user_id == session.user_id && s.credential_id == row.id && !s.revoked)
                .and_then(|s| s.sole_key)
            {
                Some(sealed) => Some(crate::sole::rewrap_sealed(&sealed, (sad, &token_hash(sad)), (&fresh, &fresh_hash))?),
                None => None,
            },
            None => None,
        };
        let t = now();
        let extra: Vec<String> = hashes.as_ref().map(|h| h.digests.iter().map(|d| crate::secrets::hex(d)).collect()).unwrap_or_default();
        let new = NewSad {
            hash: &fresh_hash,
            user_id: &session.user_id,
            credential_id: &row.id,
            remaining: 0,
            hash_algo: hashes.as_ref().map(|h| h.algorithm.oid()),
            digests: None,
            expires_at: t + self.cfg.sad_ttl as i64,
            now: t,
            sole_key: sole_key.as_deref(),
        };
        let (outcome, remaining) = self
            .store
            .extend_sad_for_token(&token_hash(sad), &session.user_id, &row.id, &new, &extra, session.token_hash.as_deref())
            .await?;
        let result = sad_outcome(outcome);
        self.audit(
            &session.user_name,
            "credentials.extendTransaction",
            if result.is_ok() { Outcome::Ok } else { Outcome::Refused },
            Some(&row.id),
            json!({"client": ctx.client, "remaining": remaining, "hashes": extra}),
        )
        .await?;
        result?;
        Ok(Sad { token: fresh, expires_in: self.cfg.sad_ttl })
    }
}

/// The refusal of an authorization that only an API with the 202 answer and
/// `credentials/authorizeCheck` can give (CSC v2 §11.6, §11.7; v1.0.4.0 has neither).
const V1_OUT_OF_BAND: &str = "The credential is authorized out of band (the signer approves where the service sends the request), \
which CSC API v1 cannot wait for: use /csc/v2 credentials/authorize and credentials/authorizeCheck";

/// Map a SAD consumption outcome to the CSC error texts.
pub(crate) fn sad_outcome(outcome: ConsumeOutcome) -> Result<()> {
    match outcome {
        ConsumeOutcome::Consumed => Ok(()),
        ConsumeOutcome::Unknown => Err(Error::invalid("Invalid parameter SAD")),
        ConsumeOutcome::Expired => Err(Error::invalid("SAD expired")),
        ConsumeOutcome::Exhausted { remaining } => {
            Err(Error::invalid(format!("Numbers of signatures is too high: the SAD has {remaining} left")))
        }
        ConsumeOutcome::HashNotAuthorized => Err(Error::invalid("Hash is not authorized by the SAD.")),
        ConsumeOutcome::HashAlgorithmMismatch => Err(Error::invalid("hashAlgorithmOID differs from the one authorized by the SAD")),
    }
}

pub(crate) fn check_digests(h: &HashesInput) -> Result<()> {
    if h.digests.is_empty() {
        return Err(Error::invalid("Empty hash array"));
    }
    if h.digests.iter().any(|d| d.len() != h.algorithm.len()) {
        return Err(Error::invalid("Invalid digest value length"));
    }
    Ok(())
}

pub(crate) fn otp_binding(credential_id: &str) -> String {
    format!("otp:{credential_id}")
}

fn online_otp_hash(credential_id: &str, code: &str) -> String {
    token_hash(&format!("{credential_id}:{code}"))
}

/// A check that outlived its place (`auth_attempts` lease): its result is not used, since the
/// place may have gone to another attempt meanwhile.
pub(crate) fn lapsed() -> Error {
    Error::Unavailable("the authentication check took too long; try again".into())
}

/// Whose attempt a place is.
pub(crate) enum AttemptOf {
    /// A credential's PIN (and OTP).
    Credential(String),
    /// A user's password.
    User(String),
}

/// An admitted PIN or password check. If the request goes away before the check ends (the
/// client disconnected), dropping the guard gives the place back without counting anything: no
/// answer was sent, so nothing was learnt.
pub(crate) struct AttemptGuard {
    store: cloudsign_store::Store,
    of: AttemptOf,
    lease: String,
    armed: bool,
}

impl AttemptGuard {
    pub(crate) fn new(service: &Service, of: AttemptOf, lease: String) -> Self {
        Self { store: service.store.clone(), of, lease, armed: true }
    }

    pub(crate) fn lease(&self) -> &str {
        &self.lease
    }

    /// The check ended (its result was recorded or refused): wake those waiting for a place.
    pub(crate) fn ended(&mut self, service: &Service) {
        self.armed = false;
        service.attempt_ended();
    }
}

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        let (store, lease) = (self.store.clone(), std::mem::take(&mut self.lease));
        let of = std::mem::replace(&mut self.of, AttemptOf::User(String::new()));
        handle.spawn(async move {
            // Best effort: a place that is not given back lapses after its lease.
            let _ = match of {
                AttemptOf::Credential(id) => store.abandon_attempt(&id, &lease).await,
                AttemptOf::User(id) => store.abandon_login_attempt(&id, &lease).await,
            };
        });
    }
}

#[cfg(test)]
mod cert_extension_tests {
    use super::*;
    use cloudsign_asn1::der::{explicit, octets, oid, seq, small_uint};

    #[test]
    fn policy_and_qc_statement_oids_are_read_from_the_extensions() {
        let policies = seq(&[&seq(&[&oid("1.2.3.4")]), &seq(&[&oid("0.4.0.194112.1.2"), &seq(&[])])]);
        let qc = seq(&[&seq(&[&oid("0.4.0.1862.1.1")]), &seq(&[&oid("0.4.0.1862.1.6"), &seq(&[&oid("0.4.0.1862.1.6.1")])])]);
        let extensions = explicit(
            3,
            &seq(&[
                &seq(&[&oid(ID_CE_CERTIFICATE_POLICIES), &octets(&policies)]),
                &seq(&[&oid(ID_PE_QC_STATEMENTS), &[0x01, 0x01, 0xff], &octets(&qc)]),
            ]),
        );
        let cert = seq(&[&seq(&[&explicit(0, &small_uint(2)), &small_uint(7), &extensions])]);
        assert_eq!(extension_oids(&cert, ID_CE_CERTIFICATE_POLICIES), ["1.2.3.4", "0.4.0.194112.1.2"]);
        assert_eq!(extension_oids(&cert, ID_PE_QC_STATEMENTS), ["0.4.0.1862.1.1", "0.4.0.1862.1.6"]);
        assert!(extension_oids(&cert, "2.5.29.17").is_empty());
        assert!(extension_oids(b"not DER", ID_PE_QC_STATEMENTS).is_empty());
    }
}
