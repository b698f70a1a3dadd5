//! Keys in a hardware security module over PKCS#11 (OASIS PKCS#11 v2.40), through `cryptoki`.
//!
//! Keys are generated inside the token as `CKA_SENSITIVE` and not `CKA_EXTRACTABLE`, usable for
//! `CKA_SIGN` only; the stored handle is the key's random `CKA_ID`, and its `CKA_LABEL` is the
//! owner binding, checked on every load so handles cannot be swapped between records.
//!
//! The module is loaded and logged in lazily, on first use, and again after a failure: a missing
//! or misconfigured HSM makes HSM-backed operations fail with [`KeyError::Unavailable`] while
//! everything else keeps working. Sessions are pooled (a `Session` is `Send` but not `Sync`);
//! login is per token (PKCS#11 §5.6), so one session stays open to keep it. Every call here
//! blocks: callers run them off the async executor.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use cloudsign_asn1::der::{Reader, seq, tlv, uint};
use cloudsign_asn1::{HashAlgorithm, KeyAlgorithm, SignAlgorithm};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::{GeneratedKey, KeyBackend, KeyBackendKind, KeyError, SigningKey};

/// Where the token is and how to log in.
pub struct Pkcs11Config {
    /// The PKCS#11 module (e.g. `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// The token label.
    pub token: String,
    /// The user PIN.
    pub pin: Zeroizing<String>,
}

impl std::fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Config").field("module", &self.module).field("token", &self.token).field("pin", &"***").finish()
    }
}

/// A PKCS#11 token as a key backend.
pub struct Pkcs11Backend {
    shared: Arc<Shared>,
}

struct Shared {
    cfg: Pkcs11Config,
    conn: Mutex<Option<Arc<Connection>>>,
    /// The token refused the configured PIN: retrying would only count towards locking the
    /// token's user PIN, so no login is tried again until the configuration changes (restart).
    pin_refused: std::sync::atomic::AtomicBool,
}

struct Connection {
    ctx: Pkcs11,
    slot: cryptoki::slot::Slot,
    /// Keeps the token logged in: closing the last session logs out.
    _login: Mutex<Session>,
    pool: Mutex<Vec<Session>>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> KeyError {
    KeyError::Unavailable(format!("{what}: {e}"))
}

impl Pkcs11Backend {
    /// A backend for this token; nothing is loaded until the first use.
    pub fn new(cfg: Pkcs11Config) -> Self {
        Self { shared: Arc::new(Shared { cfg, conn: Mutex::new(None), pin_refused: std::sync::atomic::AtomicBool::new(false) }) }
    }

    /// Load the module and log in now (to report a misconfiguration at start).
    pub fn check(&self) -> Result<(), KeyError> {
        self.shared.connection().map(|_| ())
    }
}

impl Shared {
    fn connection(&self) -> Result<Arc<Connection>, KeyError> {
        let mut guard = self.conn.lock().map_err(|_| KeyError::Crypto("PKCS#11 state poisoned"))?;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        if self.pin_refused.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(self.pin_refusal());
        }
        let c = Arc::new(self.connect()?);
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Forget the connection after a failure that may be the token's (removed, reset): the
    /// next operation connects again.
    fn reset(&self) {
        if let Ok(mut guard) = self.conn.lock() {
            *guard = None;
        }
    }

    fn connect(&self) -> Result<Connection, KeyError> {
        let module = self.cfg.module.display();
        let ctx = Pkcs11::new(&self.cfg.module).map_err(|e| unavailable(&format!("cannot load the PKCS#11 module {module}"), e))?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(unavailable(&format!("the PKCS#11 module {module} failed to initialize"), e)),
        }
        let slots = ctx.get_slots_with_token().map_err(|e| unavailable("cannot list PKCS#11 slots", e))?;
        let mut found = None;
        for slot in slots {
            let info = ctx.get_token_info(slot).map_err(|e| unavailable("cannot read PKCS#11 token information", e))?;
            if info.label() == self.cfg.token {
                found = Some(slot);
                break;
            }
        }
        let slot = found.ok_or_else(|| KeyError::Unavailable(format!("no PKCS#11 token labelled {:?} in {module}", self.cfg.token)))?;
        let login = ctx.open_rw_session(slot).map_err(|e| unavailable("cannot open a PKCS#11 session", e))?;
        let pin = AuthPin::new(self.cfg.pin.as_str().into());
        match login.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(P11Error::Pkcs11(RvError::PinIncorrect | RvError::PinLocked | RvError::PinLenRange, _)) => {
                self.pin_refused.store(true, std::sync::atomic::Ordering::Relaxed);
                return Err(self.pin_refusal());
            }
            Err(e) => return Err(unavailable("PKCS#11 login failed", e)),
        }
        Ok(Connection { ctx, slot, _login: Mutex::new(login), pool: Mutex::new(Vec::new()) })
    }

    fn pin_refusal(&self) -> KeyError {
        KeyError::Unavailable(format!(
            "the PKCS#11 token {:?} refused the configured PIN (not retried until restart, so as not to lock it)",
            self.cfg.token
        ))
    }

    /// Run `f` on a pooled, logged-in session.
    fn with_session<T>(&self, f: impl FnOnce(&Session) -> Result<T, P11Error>) -> Result<T, KeyError> {
        let conn = self.connection()?;
        let pooled = conn.pool.lock().map_err(|_| KeyError::Crypto("PKCS#11 pool poisoned"))?.pop();
        let session = match pooled {
            Some(s) => s,
            None => match conn.ctx.open_rw_session(conn.slot) {
                Ok(s) => s,
                Err(e) => {
                    self.reset();
                    return Err(unavailable("cannot open a PKCS#11 session", e));
                }
            },
        };
        match f(&session) {
            Ok(v) => {
                if let Ok(mut pool) = conn.pool.lock() {
                    pool.push(session);
                }
                Ok(v)
            }
            Err(e) => {
                // The session is dropped (closed); a failure of the token itself resets the
                // connection so that the next request logs in again.
                if matches!(
                    e,
                    P11Error::Pkcs11(
                        RvError::SessionHandleInvalid
                            | RvError::SessionClosed
                            | RvError::DeviceError
                            | RvError::DeviceRemoved
                            | RvError::TokenNotPresent
                            | RvError::UserNotLoggedIn
                            | RvError::CryptokiNotInitialized,
                        _
                    )
                ) {
                    self.reset();
                }
                Err(unavailable("PKCS#11 operation failed", e))
            }
        }
    }
}

/// DER of the named curve OID (CKA_EC_PARAMS).
fn curve_params(algorithm: KeyAlgorithm) -> Option<&'static [u8]> {
    match algorithm {
        KeyAlgorithm::EcdsaP256 => Some(&[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
        KeyAlgorithm::EcdsaP384 => Some(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]),
        KeyAlgorithm::EcdsaP521 => Some(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23]),
        _ => None,
    }
}

impl KeyBackend for Pkcs11Backend {
    fn kind(&self) -> KeyBackendKind {
        KeyBackendKind::Pkcs11
    }

    /// Every call goes to the token (PKCS#11 functions are synchronous).
    fn blocks(&self) -> bool {
        true
    }

    fn check(&self) -> Result<(), KeyError> {
        Pkcs11Backend::check(self)
    }

    fn generate(&self, algorithm: KeyAlgorithm, binding: &str) -> Result<GeneratedKey, KeyError> {
        let mut id = [0u8; 16];
        SystemRandom::new().fill(&mut id).map_err(|_| KeyError::Crypto("random generator"))?;
        let label = binding.as_bytes().to_vec();
        // Sign only: SoftHSM (like many tokens) would otherwise also allow decrypt and unwrap.
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label.clone()),
        ];
        let mut public = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label),
        ];
        let mechanism = match curve_params(algorithm) {
            Some(params) => {
                public.push(Attribute::EcParams(params.to_vec()));
                Mechanism::EccKeyPairGen
            }
            None => {
                public.push(Attribute::ModulusBits(u64::from(algorithm.bits()).into()));
                public.push(Attribute::PublicExponent(vec![1, 0, 1]));
                Mechanism::RsaPkcsKeyPairGen
            }
        };
        self.shared.with_session(|s| s.generate_key_pair(&mechanism, &public, &private).map(|_| ()))?;
        let key = self.load(algorithm, &id, binding)?;
        Ok(GeneratedKey { handle: id.to_vec(), key })
    }

    fn destroy(&self, handle: &[u8], binding: &str) -> Result<(), KeyError> {
        let id = handle.to_vec();
        let label = binding.as_bytes().to_vec();
        self.shared.with_session(|s| {
            for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
                let found = s.find_objects(&[Attribute::Class(class), Attribute::Id(id.clone()), Attribute::Label(label.clone())])?;
                for h in found {
                    s.destroy_object(h)?;
                }
            }
            Ok(())
        })
    }

    fn load(&self, algorithm: KeyAlgorithm, handle: &[u8], binding: &str) -> Result<Arc<dyn SigningKey>, KeyError> {
        let id = handle.to_vec();
        let (label, public) = self.shared.with_session(|s| {
            let private = find(s, ObjectClass::PRIVATE_KEY, &id)?;
            let label = private.map(|h| s.get_attributes(h, &[AttributeType::Label])).transpose()?;
            let public = match find(s, ObjectClass::PUBLIC_KEY, &id)? {
                Some(h) => Some(s.get_attributes(h, &[AttributeType::EcPoint, AttributeType::Modulus, AttributeType::PublicExponent])?),
                None => None,
            };
            Ok((label, public))
        })?;
        let label = label.ok_or(KeyError::NotFound)?;
        let label_ok = label.iter().any(|a| matches!(a, Attribute::Label(l) if l.as_slice() == binding.as_bytes()));
        if !label_ok {
            return Err(KeyError::Unwrap);
        }
        let public = public.ok_or(KeyError::NotFound)?;
        let (spki, raw) = match curve_params(algorithm) {
            Some(params) => {
                let point = public.iter().find_map(|a| if let Attribute::EcPoint(p) = a { Some(p.clone()) } else { None });
                let point = unwrap_octet_string(&point.ok_or(KeyError::Crypto("the token gave no EC point"))?);
                (ec_spki(params, &point), point)
            }
            None => {
                let n = public.iter().find_map(|a| if let Attribute::Modulus(n) = a { Some(n.clone()) } else { None });
                let e = public.iter().find_map(|a| if let Attribute::PublicExponent(e) = a { Some(e.clone()) } else { None });
                let (n, e) = n.zip(e).ok_or(KeyError::Crypto("the token gave no RSA public key"))?;
                if n.iter().skip_while(|b| **b == 0).count() * 8 != algorithm.bits() as usize {
                    return Err(KeyError::Crypto("RSA modulus size does not match the recorded key type"));
                }
                let rsa_public_key = seq(&[&uint(&n), &uint(&e)]);
                (rsa_spki(&rsa_public_key), rsa_public_key)
            }
        };
        Ok(Arc::new(Pkcs11Key { shared: self.shared.clone(), id, algorithm, spki, raw }))
    }
}

fn find(s: &Session, class: ObjectClass, id: &[u8]) -> Result<Option<ObjectHandle>, P11Error> {
    Ok(s.find_objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())])?.into_iter().next())
}

/// A private key inside the token.
pub struct Pkcs11Key {
    shared: Arc<Shared>,
    id: Vec<u8>,
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
    raw: Vec<u8>,
}

impl SigningKey for Pkcs11Key {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }

    fn public_key_raw(&self) -> &[u8] {
        &self.raw
    }

    /// C_Sign is a synchronous call into the token.
    fn blocks(&self) -> bool {
        true
    }

    fn sign_digest(&self, scheme: SignAlgorithm, digest: &[u8]) -> Result<Vec<u8>, KeyError> {
        let hash = scheme.hash();
        if digest.len() != hash.len() {
            return Err(KeyError::DigestLength);
        }
        if !self.algorithm.schemes().contains(&scheme) {
            return Err(KeyError::UnsupportedScheme(scheme.name()));
        }
        let (mechanism, input) = mechanism_for(scheme, digest);
        let id = &self.id;
        let signature = self.shared.with_session(|s| {
            let key = find(s, ObjectClass::PRIVATE_KEY, id)?
                .ok_or(P11Error::Pkcs11(RvError::KeyHandleInvalid, cryptoki::context::Function::Sign))?;
            s.sign(&mechanism, key, &input)
        })?;
        Ok(match scheme {
            SignAlgorithm::Ecdsa(_) => ecdsa_raw_to_der(&signature)?,
            _ => signature,
        })
    }
}

/// The PKCS#11 mechanism and its input for `scheme` over a precomputed digest (also the bridge
/// agent's, `cloudsign device`, for the signer's card). CKM_ECDSA signs the digest itself;
/// CKM_RSA_PKCS signs the DER DigestInfo (RFC 8017 §9.2), whose prefix is added here;
/// CKM_RSA_PKCS_PSS signs the digest, with MGF1 on the same hash and a salt as long as the
/// digest (the one PSS parameter set cloudsign signs with).
pub fn mechanism_for(scheme: SignAlgorithm, digest: &[u8]) -> (Mechanism<'static>, Vec<u8>) {
    match scheme {
        SignAlgorithm::Ecdsa(_) => (Mechanism::Ecdsa, digest.to_vec()),
        SignAlgorithm::RsaPkcs1(h) => (Mechanism::RsaPkcs, [digest_info_prefix(h), digest].concat()),
        SignAlgorithm::RsaPss(h) => {
            let (hash_alg, mgf) = match h {
                HashAlgorithm::Sha256 => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
                HashAlgorithm::Sha384 => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
                HashAlgorithm::Sha512 => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
            };
            (Mechanism::RsaPkcsPss(PkcsPssParams { hash_alg, mgf, s_len: (h.len() as u64).into() }), digest.to_vec())
        }
    }
}

/// RFC 8017 §9.2 note 1: the DER DigestInfo prefixes.
fn digest_info_prefix(h: HashAlgorithm) -> &'static [u8] {
    match h {
        HashAlgorithm::Sha256 => {
            &[0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20]
        }
        HashAlgorithm::Sha384 => {
            &[0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30]
        }
        HashAlgorithm::Sha512 => {
            &[0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40]
        }
    }
}

/// PKCS#11 §2.3.3: CKA_EC_POINT is the DER OCTET STRING of the point; some tokens give the
/// bare point.
pub fn unwrap_octet_string(p: &[u8]) -> Vec<u8> {
    let mut r = Reader::new(p);
    match r.next() {
        Some((0x04, content, _)) if r.is_empty() && !content.is_empty() => content.to_vec(),
        _ => p.to_vec(),
    }
}

/// RFC 5480 §2.1.1 SubjectPublicKeyInfo for an EC point (`curve`: CKA_EC_PARAMS, the DER
/// named-curve OID).
pub fn ec_spki(curve: &[u8], point: &[u8]) -> Vec<u8> {
    const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let algorithm = seq(&[EC_PUBLIC_KEY, curve]);
    seq(&[&algorithm, &tlv(0x03, &[&[0u8][..], point].concat())])
}

/// RFC 3279 §2.3.1 SubjectPublicKeyInfo for an RSA key (`rsa_public_key`: the DER
/// RSAPublicKey).
pub fn rsa_spki(rsa_public_key: &[u8]) -> Vec<u8> {
    const RSA_ENCRYPTION_NULL: &[u8] = &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
    seq(&[RSA_ENCRYPTION_NULL, &tlv(0x03, &[&[0u8][..], rsa_public_key].concat())])
}

/// PKCS#11 §2.3.1: CKM_ECDSA gives r ‖ s; X.509 and CMS want `ECDSA-Sig-Value` (RFC 5480).
fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, KeyError> {
    cloudsign_asn1::der::ecdsa_sig_value(raw).ok_or(KeyError::Crypto("malformed ECDSA signature from the token"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_helpers() {
        assert_eq!(uint(&[0x00, 0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(uint(&[0x00, 0x00, 0x01]), vec![0x02, 0x01, 0x01]);
        assert_eq!(tlv(0x04, &[0u8; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(unwrap_octet_string(&[0x04, 0x03, 0x04, 0x01, 0x02]), vec![0x04, 0x01, 0x02]);
        let mut wrapped = vec![0x04, 0x81, 0x85];
        wrapped.extend(std::iter::once(0x04).chain(std::iter::repeat_n(7u8, 132)));
        assert_eq!(unwrap_octet_string(&wrapped).len(), 133);
        assert_eq!(ecdsa_raw_to_der(&[0x80, 0x01]).unwrap(), vec![0x30, 0x07, 0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x01]);
    }

    #[test]
    fn mechanisms_over_a_digest() {
        let d = [7u8; 32];
        let (m, input) = mechanism_for(SignAlgorithm::Ecdsa(HashAlgorithm::Sha256), &d);
        assert!(matches!(m, Mechanism::Ecdsa) && input == d);
        let (m, input) = mechanism_for(SignAlgorithm::RsaPkcs1(HashAlgorithm::Sha256), &d);
        assert!(matches!(m, Mechanism::RsaPkcs));
        // The DigestInfo of RFC 8017 §9.2: SEQUENCE { AlgorithmIdentifier sha256 NULL, OCTET STRING }.
        assert_eq!(input.len(), 19 + 32);
        let mut r = Reader::new(&input);
        let mut info = Reader::new(r.expect(0x30).unwrap());
        let mut alg = Reader::new(info.expect(0x30).unwrap());
        assert_eq!(cloudsign_asn1::oid::decode_oid(alg.expect(0x06).unwrap()).unwrap(), cloudsign_asn1::oid::SHA256);
        assert_eq!(info.expect(0x04).unwrap(), &d);
        for h in [HashAlgorithm::Sha384, HashAlgorithm::Sha512] {
            let digest = vec![1u8; h.len()];
            let (_, input) = mechanism_for(SignAlgorithm::RsaPkcs1(h), &digest);
            let mut r = Reader::new(&input);
            let mut info = Reader::new(r.expect(0x30).unwrap());
            let mut alg = Reader::new(info.expect(0x30).unwrap());
            assert_eq!(cloudsign_asn1::oid::decode_oid(alg.expect(0x06).unwrap()).unwrap(), h.oid());
            assert_eq!(info.expect(0x04).unwrap(), &digest[..]);
            let (m, input) = mechanism_for(SignAlgorithm::RsaPss(h), &digest);
            let Mechanism::RsaPkcsPss(p) = m else { panic!("PSS") };
            assert_eq!(u64::from(p.s_len), h.len() as u64);
            assert_eq!(input, digest);
        }
    }
}
