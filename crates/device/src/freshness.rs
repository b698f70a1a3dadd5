//! Freshness and replay: challenges, counters, expiries, nonces (`docs/device-protocol.md`,
//! "Freshness and replay").
//!
//! Pure functions over state the caller keeps: the service stores, per device, the last
//! accepted counter, and advances it with one conditional update (`… SET last_counter = n WHERE
//! id = … AND last_counter < n`), the same pattern as the TOTP step (RFC 6238 §5.2), so that a
//! message is accepted once even when two server processes see it at the same time.
//! [`check_counter`] refuses early what that update would refuse.
//!
//! Challenges need no storage: a challenge is its issue time, 128 random bits and an HMAC-SHA-256
//! tag (RFC 2104) under a key the service's processes share, over the purpose it was issued for.
//! Any process can check one; the counter makes each use single.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::Refusal;
use crate::b64::B64;
use crate::message::Id;

/// The largest counter: 2^53 − 1, the largest integer a JavaScript device can count to exactly.
pub const MAX_COUNTER: u64 = (1 << 53) - 1;

/// How far in the future a challenge's issue time may be (seconds): the service's processes'
/// clocks may differ a little.
pub const CHALLENGE_CLOCK_SKEW: i64 = 5;

const CHALLENGE_LEN: usize = 8 + 16 + 16;
const CHALLENGE_LABEL: &[u8] = b"cloudsign-device-challenge-v1\0";

/// What a challenge is for: a challenge issued for one purpose is refused for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose<'a> {
    /// A `hello` (a WebSocket connection, or a long poll).
    Connect,
    /// The `pair` message of this pairing session.
    Pair(&'a Id),
}

impl Purpose<'_> {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Purpose::Connect => b"connect".to_vec(),
            Purpose::Pair(id) => [b"pair:".as_slice(), id.as_str().as_bytes()].concat(),
        }
    }
}

/// The key challenges are issued and checked with: 256 bits, the same in every process of the
/// service (the caller derives it, from the key-encryption key for instance).
pub struct ChallengeKey(hmac::Key);

impl std::fmt::Debug for ChallengeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChallengeKey(<secret>)")
    }
}

impl ChallengeKey {
    /// A key from 32 secret bytes.
    pub fn new(secret: &[u8; 32]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// A random key (a single process, tests).
    pub fn generate() -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        random(secret.as_mut());
        Self::new(&secret)
    }

    fn tag(&self, purpose: Purpose<'_>, issued_and_random: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(CHALLENGE_LABEL);
        ctx.update(&purpose.bytes());
        ctx.update(b"\0");
        ctx.update(issued_and_random);
        ctx.sign()
    }

    /// A fresh challenge for `purpose`, issued at `now` (Unix seconds): 40 bytes (issue time,
    /// big-endian; 16 random bytes; the first 16 bytes of the tag).
    pub fn issue(&self, purpose: Purpose<'_>, now: i64) -> B64 {
        let mut out = Vec::with_capacity(CHALLENGE_LEN);
        out.extend_from_slice(&now.to_be_bytes());
        let mut r = [0u8; 16];
        random(&mut r);
        out.extend_from_slice(&r);
        let tag = self.tag(purpose, &out);
        out.extend_from_slice(&tag.as_ref()[..16]);
        B64(out)
    }

    /// Whether `challenge` was issued by this service for `purpose`, at most `lifetime` seconds
    /// before `now`. A challenge of another service or purpose is [`Refusal::Foreign`]; an old
    /// one is [`Refusal::Late`].
    pub fn check(&self, purpose: Purpose<'_>, challenge: &[u8], now: i64, lifetime: i64) -> Result<(), Refusal> {
        if challenge.len() != CHALLENGE_LEN {
            return Err(Refusal::Malformed("a challenge has 40 bytes".into()));
        }
        let (body, tag) = challenge.split_at(24);
        let expected = self.tag(purpose, body);
        if !bool::from(expected.as_ref()[..16].ct_eq(tag)) {
            return Err(Refusal::Foreign("the challenge was not issued by this service for this purpose"));
        }
        let mut t = [0u8; 8];
        t.copy_from_slice(&body[..8]);
        let issued = i64::from_be_bytes(t);
        if issued > now.saturating_add(CHALLENGE_CLOCK_SKEW) {
            // Authentic but from the future: the service's clocks disagree. Not the device's doing.
            return Err(Refusal::Late);
        }
        if now >= issued.saturating_add(lifetime) {
            return Err(Refusal::Late);
        }
        Ok(())
    }
}

/// Fill `out` from the system's random generator.
pub fn random(out: &mut [u8]) {
    // The system generator failing is not a condition the protocol can answer; aws-lc aborts
    // rather than hand out predictable bytes, so this only panics on a broken platform.
    SystemRandom::new().fill(out).expect("system random generator");
}

/// 256 random bits: a request's nonce.
pub fn new_nonce() -> B64 {
    let mut n = [0u8; 32];
    random(&mut n);
    B64(n.to_vec())
}

/// A new random id (128 bits, base64url) with a prefix (`"dev_"`, `"req_"`, `"pair_"`).
pub fn new_id(prefix: &str) -> Id {
    let mut n = [0u8; 16];
    random(&mut n);
    // The prefix is the caller's constant; base64url is in the id alphabet.
    Id::new(format!("{prefix}{}", crate::b64::encode(&n))).expect("prefix in the id alphabet")
}

/// Whether `counter` may follow `last` (the last accepted one): strictly above it, and at most
/// [`MAX_COUNTER`].
pub fn check_counter(last: u64, counter: u64) -> Result<(), Refusal> {
    if counter > MAX_COUNTER {
        return Err(Refusal::Malformed(format!("the counter is above {MAX_COUNTER}")));
    }
    if counter <= last {
        return Err(Refusal::Replayed { last });
    }
    Ok(())
}

/// The counter a device uses next: above its own last one and above the last one the service
/// reports (a second tab, a restored backup, an agent reinstalled).
pub fn next_counter(own_last: u64, service_last: Option<u64>) -> u64 {
    own_last.max(service_last.unwrap_or(0)).saturating_add(1).min(MAX_COUNTER)
}

/// Whether something that expires at `expires_at` is still valid at `now`: valid while `now <
/// expires_at`.
pub fn check_expiry(expires_at: i64, now: i64) -> Result<(), Refusal> {
    if now >= expires_at { Err(Refusal::Late) } else { Ok(()) }
}

/// Constant-time equality of two nonces (or any two secrets of public length).
pub fn same_nonce(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let key = ChallengeKey::generate();
        let now = 1_700_000_000;
        let c = key.issue(Purpose::Connect, now);
        assert_eq!(c.0.len(), 40);
        assert_eq!(key.check(Purpose::Connect, &c.0, now + 59, 60), Ok(()));
        assert_eq!(key.check(Purpose::Connect, &c.0, now + 60, 60), Err(Refusal::Late));
        assert_eq!(key.check(Purpose::Connect, &c.0, now - CHALLENGE_CLOCK_SKEW, 60), Ok(()));
        assert_eq!(key.check(Purpose::Connect, &c.0, now - CHALLENGE_CLOCK_SKEW - 1, 60), Err(Refusal::Late));
        // Another purpose, another key, a changed byte, a short value.
        let pairing = Id::new("pair_1").unwrap();
        assert!(matches!(key.check(Purpose::Pair(&pairing), &c.0, now, 60), Err(Refusal::Foreign(_))));
        let p = key.issue(Purpose::Pair(&pairing), now);
        assert_eq!(key.check(Purpose::Pair(&pairing), &p.0, now, 60), Ok(()));
        let other = Id::new("pair_2").unwrap();
        assert!(matches!(key.check(Purpose::Pair(&other), &p.0, now, 60), Err(Refusal::Foreign(_))));
        assert!(matches!(ChallengeKey::generate().check(Purpose::Connect, &c.0, now, 60), Err(Refusal::Foreign(_))));
        let mut changed = c.0.clone();
        changed[7] ^= 1; // the issue time: pushing it later must not pass
        assert!(matches!(key.check(Purpose::Connect, &changed, now, 60), Err(Refusal::Foreign(_))));
        assert!(matches!(key.check(Purpose::Connect, &c.0[..39], now, 60), Err(Refusal::Malformed(_))));
        // Two challenges differ.
        assert_ne!(key.issue(Purpose::Connect, now), c);
    }

    #[test]
    fn counters() {
        assert_eq!(check_counter(0, 1), Ok(()));
        assert_eq!(check_counter(5, 6), Ok(()));
        assert_eq!(check_counter(5, 5), Err(Refusal::Replayed { last: 5 }));
        assert_eq!(check_counter(5, 4), Err(Refusal::Replayed { last: 5 }));
        assert!(matches!(check_counter(0, MAX_COUNTER + 1), Err(Refusal::Malformed(_))));
        assert_eq!(check_counter(0, MAX_COUNTER), Ok(()));
        assert_eq!(next_counter(3, None), 4);
        assert_eq!(next_counter(3, Some(9)), 10);
        assert_eq!(next_counter(12, Some(9)), 13);
        assert_eq!(next_counter(MAX_COUNTER, None), MAX_COUNTER);
    }

    #[test]
    fn expiry_and_nonces() {
        assert_eq!(check_expiry(100, 99), Ok(()));
        assert_eq!(check_expiry(100, 100), Err(Refusal::Late));
        assert!(same_nonce(b"abc", b"abc"));
        assert!(!same_nonce(b"abc", b"abd"));
        assert!(!same_nonce(b"abc", b"ab"));
        assert_ne!(new_nonce(), new_nonce());
        assert!(new_id("req_").as_str().starts_with("req_"));
    }
}
