//! Key backends. The signing policy and the protocol hold a [`SigningKey`] and never ask which
//! backend made it: the software keystore ([`software::SoftwareKeystore`]) or a PKCS#11 HSM
//! ([`pkcs11::Pkcs11Backend`]), or the signer's own device ([`device::DeviceBackend`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod pkcs11;
mod registry;
pub mod software;

pub use registry::{KeyBackendKind, KeyBackends};

use std::sync::Arc;

use cloudsign_asn1::{KeyAlgorithm, SignAlgorithm};

/// Why a key operation failed. Messages never carry key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key does not do this scheme.
    #[error("the key cannot sign with {0}")]
    UnsupportedScheme(String),
    /// The digest has the wrong length for the scheme.
    #[error("invalid digest value length")]
    DigestLength,
    /// A wrapped key could not be opened: wrong key-encryption key or a damaged record.
    #[error("the wrapped key could not be opened (wrong key-encryption key or damaged record)")]
    Unwrap,
    /// The crypto library refused.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// The key store (an HSM) cannot be reached, or refused the configured login.
    #[error("{0}")]
    Unavailable(String),
    /// The key is not in the store.
    #[error("the key is not in the key store")]
    NotFound,
}

/// A private key that signs pre-computed digests.
pub trait SigningKey: Send + Sync {
    /// The key type.
    fn algorithm(&self) -> KeyAlgorithm;
    /// The public key as DER SubjectPublicKeyInfo.
    fn public_key_spki(&self) -> &[u8];
    /// The raw public key: an X9.62 uncompressed point (EC) or DER RSAPublicKey (RSA).
    fn public_key_raw(&self) -> &[u8];
    /// Sign one digest. ECDSA values are DER `ECDSA-Sig-Value`; RSA values are `k` bytes.
    fn sign_digest(&self, scheme: SignAlgorithm, digest: &[u8]) -> Result<Vec<u8>, KeyError>;
    /// Whether signing waits on something outside the process (an HSM, a device): such calls
    /// belong on a blocking thread, never on an async worker. In-process keys do not block.
    fn blocks(&self) -> bool {
        false
    }
}

/// A freshly generated key: what to store, and its public half.
pub struct GeneratedKey {
    /// The backend's opaque handle to persist (for the software keystore: the encrypted key).
    pub handle: Vec<u8>,
    /// The key itself, ready to use (for issuing its certificate).
    pub key: Arc<dyn SigningKey>,
}

/// A place where keys are generated and kept.
pub trait KeyBackend: Send + Sync {
    /// Which backend this is (what key records store to find it again).
    fn kind(&self) -> KeyBackendKind;
    /// Whether its calls (generate, load, destroy, and its keys' signatures) wait on something
    /// outside the process, and so belong on a blocking thread.
    fn blocks(&self) -> bool {
        false
    }
    /// Reach the backend now (load a module, log in), to report a misconfiguration at start.
    fn check(&self) -> Result<(), KeyError> {
        Ok(())
    }
    /// Generate a key. `binding` ties the stored handle to its owner record (e.g. the
    /// credential id) so that handles cannot be swapped between records.
    fn generate(&self, algorithm: KeyAlgorithm, binding: &str) -> Result<GeneratedKey, KeyError>;
    /// Open a stored handle.
    fn load(&self, algorithm: KeyAlgorithm, handle: &[u8], binding: &str) -> Result<Arc<dyn SigningKey>, KeyError>;
    /// Destroy a key that lives outside the handle (in an HSM). For the software keystore the
    /// handle is the key, gone with its record.
    fn destroy(&self, _handle: &[u8], _binding: &str) -> Result<(), KeyError> {
        Ok(())
    }
}

/// The `device` backend (`docs/device-protocol.md`, "CSC integration"): the key is on the
/// signer's device, and the credential's handle is only its public key (SPKI). It makes no keys
/// (the device makes them at pairing), opens none and signs nothing itself: a signature is a
/// request to the device that a person answers, which needs the request's context (application,
/// label, the SAD's digests) and waits on that person; the service's device module makes it
/// where the other backends' [`SigningKey::sign_digest`] is called.
pub mod device {
    use std::sync::Arc;

    use cloudsign_asn1::KeyAlgorithm;

    use crate::{GeneratedKey, KeyBackend, KeyBackendKind, KeyError, SigningKey};

    /// The device backend: keys are made on devices and never leave them.
    #[derive(Default)]
    pub struct DeviceBackend;

    impl KeyBackend for DeviceBackend {
        fn kind(&self) -> KeyBackendKind {
            KeyBackendKind::Device
        }
        fn generate(&self, _algorithm: KeyAlgorithm, _binding: &str) -> Result<GeneratedKey, KeyError> {
            Err(KeyError::Unavailable("device keys are made on the device, at pairing (cloudsign admin device pair)".into()))
        }
        fn load(&self, _algorithm: KeyAlgorithm, _handle: &[u8], _binding: &str) -> Result<Arc<dyn SigningKey>, KeyError> {
            Err(KeyError::Unavailable("the key is on the signer's device".into()))
        }
    }
}
