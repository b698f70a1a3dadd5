//! Secrets: random tokens, argon2id for PINs and passwords, constant-time comparison, TOTP.

use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::digest;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// `n` random bytes from the system generator.
pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    SystemRandom::new().fill(&mut buf).map_err(|_| Error::Internal("random generator failed".into()))?;
    Ok(buf)
}

/// A fresh opaque token (256 bits, base64url): access and refresh tokens, SADs.
pub fn new_token() -> Result<String> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes(32)?))
}

/// A fresh identifier (128 bits, hex).
pub fn new_id() -> Result<String> {
    Ok(hex(&random_bytes(16)?))
}

/// SHA-256 hex: how tokens and SADs are stored (a database copy reveals no usable token).
pub fn token_hash(token: &str) -> String {
    hex(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

/// Lower-case hex, as digests and token hashes are stored. Written into a string of the final
/// size: `hex::encode` collects char by char, growing the string, and at 100 digests per
/// signHash that showed in profiles.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Constant-time equality.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy)]
pub struct Argon2Cost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Cost {
    /// OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane): ~25 ms here.
    fn default() -> Self {
        Self { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }
}

/// Hash a PIN or password: `$argon2id$v=19$m=..,t=..,p=..$salt$hash` (PHC string format).
pub fn hash_secret(secret: &str, cost: Argon2Cost) -> Result<String> {
    let salt = random_bytes(16)?;
    let out = derive(secret.as_bytes(), &salt, cost)?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        cost.memory_kib,
        cost.iterations,
        cost.parallelism,
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(&*out)
    ))
}

pub(crate) fn derive(secret: &[u8], salt: &[u8], cost: Argon2Cost) -> Result<Zeroizing<[u8; 32]>> {
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, Some(32))
        .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(secret, salt, &mut *out)
        .map_err(|e| Error::Internal(format!("argon2: {e}")))?;
    Ok(out)
}

/// Verify a secret against its stored hash in constant time. A malformed stored hash is an
/// internal error, never a match.
pub fn verify_secret(secret: &str, stored: &str) -> Result<bool> {
    let parts: Vec<&str> = stored.split('$').collect();
    let malformed = || Error::Internal("malformed stored secret hash".into());
    if parts.len() != 6 || parts[1] != "argon2id" || parts[2] != "v=19" {
        return Err(malformed());
    }
    let mut cost = Argon2Cost::default();
    for kv in parts[3].split(',') {
        let (k, v) = kv.split_once('=').ok_or_else(malformed)?;
        let v: u32 = v.parse().map_err(|_| malformed())?;
        match k {
            "m" => cost.memory_kib = v,
            "t" => cost.iterations = v,
            "p" => cost.parallelism = v,
            _ => return Err(malformed()),
        }
    }
    let salt = STANDARD_NO_PAD.decode(parts[4]).map_err(|_| malformed())?;
    let expected = STANDARD_NO_PAD.decode(parts[5]).map_err(|_| malformed())?;
    let actual = derive(secret.as_bytes(), &salt, cost)?;
    Ok(ct_eq(&*actual, &expected))
}

/// RFC 6238 TOTP parameters used by cloudsign: HMAC-SHA-1, 6 digits, 30-second steps (the
/// defaults every authenticator app supports).
pub const TOTP_DIGITS: u32 = 6;
/// TOTP step length.
pub const TOTP_PERIOD: i64 = 30;

/// The TOTP code for a time step (RFC 4226 §5.3 dynamic truncation).
pub fn totp_code(secret: &[u8], step: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let bin = (u32::from(mac[offset] & 0x7f) << 24)
        | (u32::from(mac[offset + 1]) << 16)
        | (u32::from(mac[offset + 2]) << 8)
        | u32::from(mac[offset + 3]);
    format!("{:0width$}", bin % 10u32.pow(TOTP_DIGITS), width = TOTP_DIGITS as usize)
}

/// Which step (now-1, now, now+1: one step of clock drift each way) the code matches.
pub fn totp_match(secret: &[u8], code: &str, unix: i64) -> Option<i64> {
    let now = unix / TOTP_PERIOD;
    let mut found = None;
    for step in [now - 1, now, now + 1] {
        // Check every candidate so the time taken does not depend on which one matches.
        if ct_eq(totp_code(secret, step).as_bytes(), code.as_bytes()) {
            found = Some(step);
        }
    }
    found
}

/// RFC 4648 base32 without padding (what `otpauth://` URIs carry).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_and_matches_the_hex_crate() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(hex(&all), ::hex::encode(&all));
        assert_eq!(hex(&[0xab, 0x01]), "ab01");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 Appendix B, SHA-1 seed, last 6 digits.
        let seed = b"12345678901234567890";
        assert_eq!(totp_code(seed, 59 / 30), "287082");
        assert_eq!(totp_code(seed, 1111111109 / 30), "081804");
        assert_eq!(totp_code(seed, 2000000000 / 30), "279037");
        assert_eq!(totp_match(seed, "081804", 1111111109 + 30), Some(1111111109 / 30));
        assert_eq!(totp_match(seed, "081804", 1111111109 + 90), None);
    }

    #[test]
    fn base32_vectors() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }

    #[test]
    fn argon2_round_trip() {
        let cost = Argon2Cost { memory_kib: 64, iterations: 1, parallelism: 1 };
        let h = hash_secret("1234", cost).unwrap();
        assert!(verify_secret("1234", &h).unwrap());
        assert!(!verify_secret("1235", &h).unwrap());
        assert!(verify_secret("1234", "$argon2id$v=19$garbage").is_err());
    }
}
