//! The key backends a service has, by kind. A key record names its backend by
//! [`KeyBackendKind`]; [`KeyBackends`] hands out the backend object for it. Callers then ask the
//! backend (and its keys) what they need to know, such as whether calls block
//! ([`KeyBackend::blocks`], [`crate::SigningKey::blocks`]), and never branch on the kind.

use std::sync::Arc;

use crate::software::SoftwareKeystore;
use crate::{KeyBackend, KeyError};

/// Where a key lives. Stored with every key record and named in the configuration by
/// [`as_str`](Self::as_str); [`parse`](Self::parse) is the only reading of those names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyBackendKind {
    /// The software keystore: the key is sealed under the key-encryption key, and the sealed
    /// bytes are the record's handle.
    Software,
    /// A PKCS#11 token: the key stays inside, and the handle is its `CKA_ID`.
    Pkcs11,
    /// The signer's own device (a smart card behind the bridge agent, a phone;
    /// `docs/device-protocol.md`): the key never is in the service, and the handle is its
    /// public key (DER SubjectPublicKeyInfo).
    Device,
}

impl KeyBackendKind {
    /// Every kind, in a stable order.
    pub const ALL: [Self; 3] = [Self::Software, Self::Pkcs11, Self::Device];

    /// The stored (and configured) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Software => "software",
            Self::Pkcs11 => "pkcs11",
            Self::Device => "device",
        }
    }

    /// The kind of a stored (or configured) name; `None` for a name no backend has.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The backend in words, for messages ("the key is in ...").
    pub fn describe(self) -> &'static str {
        match self {
            Self::Software => "the software keystore",
            Self::Pkcs11 => "a PKCS#11 token",
            Self::Device => "the signer's device",
        }
    }
}

impl std::fmt::Display for KeyBackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The configured backends by kind. The software keystore is always there (it also seals
/// other secrets, so it is kept with its concrete type); the others are optional.
#[derive(Clone)]
pub struct KeyBackends {
    software: Arc<SoftwareKeystore>,
    others: Vec<Arc<dyn KeyBackend>>,
}

impl KeyBackends {
    /// A registry with the software keystore only.
    pub fn new(software: Arc<SoftwareKeystore>) -> Self {
        Self { software, others: Vec::new() }
    }

    /// Add a backend under its own [`KeyBackend::kind`], replacing one of that kind.
    pub fn with(mut self, backend: Arc<dyn KeyBackend>) -> Self {
        let kind = backend.kind();
        self.others.retain(|b| b.kind() != kind);
        if kind != KeyBackendKind::Software {
            self.others.push(backend);
        }
        self
    }

    /// The software keystore.
    pub fn software(&self) -> &Arc<SoftwareKeystore> {
        &self.software
    }

    /// The backend of `kind`; [`KeyError::Unavailable`] when none of that kind is configured.
    pub fn get(&self, kind: KeyBackendKind) -> Result<Arc<dyn KeyBackend>, KeyError> {
        if kind == KeyBackendKind::Software {
            return Ok(self.software.clone());
        }
        self.others
            .iter()
            .find(|b| b.kind() == kind)
            .cloned()
            .ok_or_else(|| KeyError::Unavailable(format!("the key is in {}, and none is configured", kind.describe())))
    }

    /// The configured backends besides the software keystore (to check them at start).
    pub fn external(&self) -> impl Iterator<Item = &Arc<dyn KeyBackend>> {
        self.others.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for k in KeyBackendKind::ALL {
            assert_eq!(KeyBackendKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(KeyBackendKind::parse("software"), Some(KeyBackendKind::Software));
        assert_eq!(KeyBackendKind::parse("pkcs11"), Some(KeyBackendKind::Pkcs11));
        assert_eq!(KeyBackendKind::parse("PKCS11"), None);
        assert_eq!(KeyBackendKind::parse(""), None);
    }

    #[test]
    fn a_missing_backend_is_unavailable_and_software_is_always_there() {
        let backends = KeyBackends::new(Arc::new(SoftwareKeystore::new(&[7u8; 32]).unwrap()));
        assert_eq!(backends.get(KeyBackendKind::Software).unwrap().kind(), KeyBackendKind::Software);
        assert!(!backends.get(KeyBackendKind::Software).unwrap().blocks());
        match backends.get(KeyBackendKind::Pkcs11) {
            Err(KeyError::Unavailable(m)) => assert!(m.contains("PKCS#11") && m.contains("none is configured"), "{m}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("no PKCS#11 backend was configured"),
        }
        let hsm = crate::pkcs11::Pkcs11Backend::new(crate::pkcs11::Pkcs11Config {
            module: "/nonexistent/libpkcs11.so".into(),
            token: "t".into(),
            pin: zeroize::Zeroizing::new("0000".into()),
        });
        let backends = backends.with(Arc::new(hsm));
        let got = backends.get(KeyBackendKind::Pkcs11).unwrap();
        assert_eq!(got.kind(), KeyBackendKind::Pkcs11);
        assert!(got.blocks(), "PKCS#11 calls block");
        assert_eq!(backends.external().count(), 1);
    }
}
