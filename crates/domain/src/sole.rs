//! Sole control of software keys (the spirit of CEN EN 419 241-1 SCAL 2): a credential's PKCS#8
//! is sealed twice, first under a key derived from the signer's PIN (argon2id, per-credential
//! salt), then under the key-encryption key. Neither a copy of the database with the KEK nor the
//! operator can sign without the PIN.
//!
//! The PIN is only seen at authorization, but signatures come later: when a SAD is issued, the
//! PIN-derived key is sealed under a key derived from the SAD itself and stored with the SAD's
//! row. The database holds only the SAD's hash, so the key is recoverable only by whoever holds
//! the SAD, for as long as the SAD lives.

use std::sync::Arc;

use cloudsign_asn1::b64;
use cloudsign_keys::SigningKey;
use cloudsign_keys::software::{SoftwareKeystore, open_with_key, seal_with_key};
use cloudsign_store::CredentialRow;
use zeroize::Zeroizing;

use crate::secrets::derive;
use crate::service::credential_key_binding;
use crate::{Error, Result, Service};

/// The key a SAD (or an authorization code on its way to becoming one) protects the PIN key
/// with. The SAD has 256 bits of entropy, so a hash with domain separation is a sound KDF.
fn transport_key(token: &str) -> [u8; 32] {
    let mut input = b"cloudsign sole control v1\0".to_vec();
    input.extend_from_slice(token.as_bytes());
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Seal the PIN key under `token` (a SAD or a code); `label` binds it to that record.
pub(crate) fn seal_for(pin_key: &[u8], token: &str, label: &str) -> Result<Vec<u8>> {
    Ok(seal_with_key(&transport_key(token), pin_key, &format!("sole:{label}"))?)
}

/// [`seal_for`], as base64 text (an authorization code's grant carries it in its JSON).
pub(crate) fn wrap_for(pin_key: &[u8], token: &str, label: &str) -> Result<String> {
    Ok(b64::encode(&seal_for(pin_key, token, label)?))
}

/// Recover the PIN key sealed by [`seal_for`].
pub(crate) fn unwrap_from(sealed: &[u8], token: &str, label: &str) -> Result<Zeroizing<Vec<u8>>> {
    open_with_key(&transport_key(token), sealed, &format!("sole:{label}")).map_err(|_| Error::invalid("Invalid parameter SAD"))
}

/// Move the PIN key from under one token (an old SAD) to under another (the new SAD).
pub(crate) fn rewrap_sealed(sealed: &[u8], from: (&str, &str), to: (&str, &str)) -> Result<Vec<u8>> {
    let pin_key = unwrap_from(sealed, from.0, from.1)?;
    seal_for(&pin_key, to.0, to.1)
}

/// Move the PIN key from under a code (the base64 text of [`wrap_for`], from its grant) to
/// under the token the code is exchanged for.
pub(crate) fn rewrap(sealed_b64: &str, from: (&str, &str), to: (&str, &str)) -> Result<Vec<u8>> {
    let sealed = b64::decode_lenient(sealed_b64).ok_or_else(|| Error::Internal("damaged sole-control record".into()))?;
    rewrap_sealed(&sealed, from, to)
}

impl Service {
    /// The PIN-derived key of a sole-control credential (argon2id, on the blocking pool).
    pub(crate) async fn pin_key(&self, pin: &str, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let salt = salt.to_vec();
        let pin = Zeroizing::new(pin.to_string());
        let cost = self.cfg.argon2;
        tokio::task::spawn_blocking(move || derive(pin.as_bytes(), &salt, cost)).await.map_err(|e| Error::Internal(e.to_string()))?
    }

    /// Seal a fresh PKCS#8 for sole control: the handle to store.
    pub(crate) fn seal_sole(&self, pkcs8: &[u8], pin_key: &[u8], credential_id: &str) -> Result<Vec<u8>> {
        let binding = credential_key_binding(credential_id);
        let inner = seal_with_key(pin_key, pkcs8, &binding)?;
        Ok(self.keystore.seal(&inner, &binding)?)
    }

    /// The clear PKCS#8 of a sole-control credential (zeroized on drop).
    pub(crate) fn open_sole(&self, row: &CredentialRow, pin_key: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let binding = credential_key_binding(&row.id);
        let inner = self.keystore.open(&row.key_handle, &binding)?;
        // A wrong PIN key cannot happen after a PIN check; a failure here is a damaged record.
        Ok(open_with_key(pin_key, &inner, &binding)?)
    }

    /// The signing key of a sole-control credential, from the PIN key a SAD carried. Never
    /// cached: without the SAD, the key cannot be opened again.
    pub(crate) fn sole_signing_key(&self, row: &CredentialRow, pin_key: &[u8]) -> Result<Arc<dyn SigningKey>> {
        let algorithm = row.key_algo;
        let pkcs8 = self.open_sole(row, pin_key)?;
        Ok(SoftwareKeystore::key_from_pkcs8_der(algorithm, &pkcs8)?)
    }
}
