//! The protocol end to end between a service (this crate's checks) and devices: one written in
//! Python with `cryptography` (an implementation that shares nothing with ours, and makes its
//! ECDSA signatures as r‖s as WebCrypto does), one in Rust on aws-lc; openssl makes an RSA CSR, a
//! card-style certificate and a key proof, and verifies the signatures the service accepted.
//!
//! Every refusal the protocol document lists has a test here: replayed, late, foreign (another
//! device's key; another user's device; another service; another request's nonce), malformed,
//! a signature over a digest that was not requested, a wrong verification code.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use cloudsign_asn1::{HashAlgorithm, SignAlgorithm, oid};
use cloudsign_device::b64::{self, B64};
use cloudsign_device::check::*;
use cloudsign_device::freshness::{ChallengeKey, Purpose, new_id, new_nonce};
use cloudsign_device::jws::{self, Jws};
use cloudsign_device::key::{DeviceKey, KeyKind, PublicKey, csc_signature};
use cloudsign_device::message::*;
use cloudsign_device::pairing::{key_proof_input, verify_csr};
use cloudsign_device::{Refusal, VerificationCode};
use serde_json::{Value, json};

const AUD: &str = "https://sign.example.test";
const NOW: i64 = 1_800_000_000;

// ---------------------------------------------------------------------------------------------
// Oracles
// ---------------------------------------------------------------------------------------------

fn python() -> PathBuf {
    std::env::var_os("CLOUDSIGN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"))
}

/// Run `oracle.py cmd` with `args`; its JSON answer.
fn oracle(cmd: &str, args: Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle.py");
    let mut child = Command::new(python())
        .arg(script)
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test virtualenv's python (.venv/bin/python, or CLOUDSIGN_PYTHON) with `cryptography`");
    child.stdin.take().unwrap().write_all(args.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "oracle {cmd}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    b64::decode(v.as_str().expect("a string")).expect("base64url")
}

fn tmp() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("cloudsign-device-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("openssl").current_dir(dir).args(args).output().expect("openssl")
}

fn openssl_ok(dir: &Path, args: &[&str]) {
    let out = openssl(dir, args);
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// openssl verifies `signature` (DER for ECDSA, as the service hands it on) by the key in
/// `spki` over the precomputed `digest`.
fn openssl_verifies_digest(spki: &[u8], digest_value: &[u8], signature: &[u8], pss: bool) -> bool {
    let dir = tmp();
    std::fs::write(dir.join("pub.der"), spki).unwrap();
    std::fs::write(dir.join("digest.bin"), digest_value).unwrap();
    std::fs::write(dir.join("sig.bin"), signature).unwrap();
    let mut args = vec!["pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", "pub.der", "-in", "digest.bin", "-sigfile", "sig.bin"];
    if pss {
        args.extend(["-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:digest", "-pkeyopt", "digest:sha256"]);
    } else if spki.len() > 100 {
        args.extend(["-pkeyopt", "digest:sha256"]);
    }
    let ok = openssl(&dir, &args).status.success();
    std::fs::remove_dir_all(&dir).ok();
    ok
}

// ---------------------------------------------------------------------------------------------
// A Rust device
// ---------------------------------------------------------------------------------------------

struct RustDevice {
    id: Id,
    key: EcdsaKeyPair,
    public: DeviceKey,
    signing: EcdsaKeyPair,
    signing_public: PublicKey,
}

impl RustDevice {
    fn new(id: &str) -> Self {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let signing = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let public = DeviceKey::from_spki(key.public_key().as_der().unwrap().as_ref()).unwrap();
        let signing_public = PublicKey::from_spki(signing.public_key().as_der().unwrap().as_ref()).unwrap();
        Self { id: Id::new(id).unwrap(), key, public, signing, signing_public }
    }

    fn send(&self, message: &DeviceMessage) -> String {
        jws::sign(&self.key, &self.id, message)
    }

    /// Sign a precomputed SHA-256 digest with the signing key. aws-lc signs messages, so the
    /// digest is signed through `sign_digest`.
    fn sign_digest(&self, d: &[u8]) -> Vec<u8> {
        let digest = aws_lc_rs::digest::Digest::import_less_safe(d, &SHA256).unwrap();
        self.signing.sign_digest(&digest).unwrap().as_ref().to_vec()
    }

    fn record(&self, last_counter: u64) -> Device<'_> {
        Device { id: &self.id, key: &self.public, last_counter }
    }
}

fn sha256(data: &[u8]) -> Vec<u8> {
    digest(&SHA256, data).as_ref().to_vec()
}

fn es256() -> SignAlgorithm {
    SignAlgorithm::Ecdsa(HashAlgorithm::Sha256)
}

/// A signing request as the service would send it.
fn sign_request(digests: &[Vec<u8>], expires_at: i64) -> SignRequest {
    SignRequest {
        v: V1,
        request_id: new_id("req_"),
        nonce: new_nonce(),
        credential_id: Id::new("cred_1").unwrap(),
        sign_algo: oid::ECDSA_WITH_SHA256.into(),
        hash_algorithm_oid: oid::SHA256.into(),
        digests: digests.iter().map(|d| B64(d.clone())).collect(),
        dtbs: None,
        verification_code: VerificationCode::of(digests).unwrap(),
        application: Some("Example SCA".into()),
        label: "contract.pdf".into(),
        description: None,
        preview: None,
        issued_at: NOW,
        expires_at,
    }
}

fn outstanding<'a>(req: &'a SignRequest, device: &'a Id, digests: &'a [Vec<u8>], key: &'a PublicKey) -> Outstanding<'a> {
    Outstanding {
        request_id: &req.request_id,
        nonce: req.nonce.as_bytes(),
        device_id: device,
        expires_at: req.expires_at,
        what: Requested::Signature { scheme: es256(), digests, signing_key: key },
    }
}

/// The service side for one answer: parse, verify, check against the request.
fn service_accepts(text: &str, device: &Device<'_>, request: &Outstanding<'_>, now: i64) -> Result<(u64, Answer), Refusal> {
    let jws = Jws::parse(text)?;
    let verified = verify_device_message(&jws, device, AUD)?;
    let answer = accept_answer(&verified, device.id, request, now)?;
    Ok((verified.counter, answer))
}

// ---------------------------------------------------------------------------------------------
// The verification code
// ---------------------------------------------------------------------------------------------

#[test]
fn verification_code_equals_pythons_for_random_batches() {
    let mut lists = Vec::new();
    for n in [1usize, 1, 2, 3, 7, 20] {
        for h in [HashAlgorithm::Sha256, HashAlgorithm::Sha384, HashAlgorithm::Sha512] {
            let list: Vec<Vec<u8>> = (0..n).map(|_| new_nonce().0[..h.len().min(32)].repeat(2)[..h.len()].to_vec()).collect();
            lists.push(list);
        }
    }
    for list in lists {
        let theirs = oracle("vc", json!({ "digests": list.iter().map(|d| b64::encode(d)).collect::<Vec<_>>() }));
        let ours = VerificationCode::of(&list).unwrap();
        assert_eq!(ours.as_str(), theirs["code"].as_str().unwrap(), "{} digests", list.len());
    }
}

// ---------------------------------------------------------------------------------------------
// Pairing
// ---------------------------------------------------------------------------------------------

struct PythonDevice {
    keys: Value,
    pairing_id: Id,
}

impl PythonDevice {
    fn jws(&self, kid: &str, payload: Value) -> String {
        oracle("jws", json!({ "device_pkcs8": self.keys["device_pkcs8"], "kid": kid, "payload": payload }))["jws"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn pair_payload(pairing_id: &Id, challenge: &B64, device_spki: &Value, extra: Value) -> Value {
    let mut p = json!({
        "type": "pair", "v": 1, "aud": AUD, "pairingId": pairing_id.as_str(),
        "challenge": b64::encode(challenge.as_bytes()), "deviceKey": device_spki,
        "name": "Test phone", "kind": "phone", "prehashed": false,
    });
    p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    p
}

#[test]
fn pairing_with_a_csr_from_an_independent_device() {
    let key = ChallengeKey::generate();
    let pairing_id = new_id("pair_");
    let challenge = key.issue(Purpose::Pair(&pairing_id), NOW);
    let keys = oracle("keys", json!({ "signing": "p256", "challenge": b64::encode(challenge.as_bytes()) }));
    let device = PythonDevice { keys, pairing_id: pairing_id.clone() };
    let session = PairingSession { pairing_id: &pairing_id, aud: AUD, expires_at: NOW + 600, challenge_lifetime: 600 };

    let text = device
        .jws(pairing_id.as_str(), pair_payload(&pairing_id, &challenge, &device.keys["device_spki"], json!({ "csr": device.keys["csr"] })));
    let proof = accept_pairing(&Jws::parse(&text).unwrap(), &session, &key, NOW + 10).unwrap();
    assert_eq!(proof.device_key.spki(), bytes(&device.keys["device_spki"]));
    assert_eq!(proof.signing_key.spki(), bytes(&device.keys["signing_spki"]));
    assert_eq!(proof.signing_key.kind(), KeyKind::EcP256);
    assert!(matches!(proof.origin, KeyOrigin::Csr(_)));
    // The ECDSA CSR with its signature changed (the last octet of s): not the key's.
    let mut forged = bytes(&device.keys["csr"]);
    *forged.last_mut().unwrap() ^= 0x01;
    assert!(matches!(verify_csr(&forged, challenge.as_bytes()), Err(Refusal::Foreign(m)) if m.contains("not signed")));
    assert!(!proof.prehashed);
    assert_eq!(proof.kind, DeviceKind::Phone);

    // Late: after the session's expiry.
    assert_eq!(accept_pairing(&Jws::parse(&text).unwrap(), &session, &key, NOW + 600).unwrap_err(), Refusal::Late);
    // Foreign: another pairing session, another service's challenge key.
    let other_id = new_id("pair_");
    let other = PairingSession { pairing_id: &other_id, ..session };
    assert!(matches!(accept_pairing(&Jws::parse(&text).unwrap(), &other, &key, NOW), Err(Refusal::Foreign(_))));
    assert!(matches!(accept_pairing(&Jws::parse(&text).unwrap(), &session, &ChallengeKey::generate(), NOW), Err(Refusal::Foreign(_))));
    // Foreign: another service's aud.
    let mut p = pair_payload(&pairing_id, &challenge, &device.keys["device_spki"], json!({ "csr": device.keys["csr"] }));
    p["aud"] = json!("https://elsewhere.example");
    let text = device.jws(pairing_id.as_str(), p);
    assert!(matches!(accept_pairing(&Jws::parse(&text).unwrap(), &session, &key, NOW), Err(Refusal::Foreign(_))));
    // Foreign: a CSR made for another pairing's challenge (replayed into this one).
    let old = oracle("keys", json!({ "signing": "p256", "challenge": b64::encode(key.issue(Purpose::Pair(&other_id), NOW).as_bytes()) }));
    let text =
        device.jws(pairing_id.as_str(), pair_payload(&pairing_id, &challenge, &device.keys["device_spki"], json!({ "csr": old["csr"] })));
    assert!(matches!(accept_pairing(&Jws::parse(&text).unwrap(), &session, &key, NOW), Err(Refusal::Foreign(_))));
    // Foreign: signed by a key other than the one it carries.
    let text = PythonDevice { keys: old.clone(), pairing_id: pairing_id.clone() }
        .jws(pairing_id.as_str(), pair_payload(&pairing_id, &challenge, &device.keys["device_spki"], json!({ "csr": device.keys["csr"] })));
    assert!(matches!(accept_pairing(&Jws::parse(&text).unwrap(), &session, &key, NOW), Err(Refusal::Foreign(_))));
    // Malformed: both proofs, no proof, an extra member, a name with a direction override.
    for extra in [
        json!({ "csr": device.keys["csr"], "certificate": device.keys["csr"] }),
        json!({}),
        json!({ "csr": device.keys["csr"], "pushToken": "x" }),
        json!({ "csr": device.keys["csr"], "name": "phone\u{202e}" }),
    ] {
        let text = device.jws(pairing_id.as_str(), pair_payload(&pairing_id, &challenge, &device.keys["device_spki"], extra.clone()));
        assert!(matches!(accept_pairing(&Jws::parse(&text).unwrap(), &session, &key, NOW), Err(Refusal::Malformed(_))), "{extra}");
    }
    // Key separation: a device key that is also the signing key is refused.
    let same = oracle("keys", json!({ "signing": "p256", "same_key": true, "challenge": b64::encode(challenge.as_bytes()) }));
    let text = PythonDevice { keys: same.clone(), pairing_id: pairing_id.clone() }
        .jws(pairing_id.as_str(), pair_payload(&pairing_id, &challenge, &same["device_spki"], json!({ "csr": same["csr"] })));
    let refused = accept_pairing(&Jws::parse(&text).unwrap(), &session, &key, NOW).unwrap_err();
    assert!(matches!(&refused, Refusal::Malformed(m) if m.contains("different keys")), "{refused}");
    let _ = device.pairing_id;
}

#[test]
fn pairing_an_rsa_card_by_csr_and_by_its_own_certificate() {
    let key = ChallengeKey::generate();
    let pairing_id = new_id("pair_");
    let challenge = key.issue(Purpose::Pair(&pairing_id), NOW);
    let challenge_text = b64::encode(challenge.as_bytes());

    // openssl makes the card's RSA key, a CSR with the challenge, and a self-signed certificate.
    let dir = tmp();
    std::fs::write(
        dir.join("req.cnf"),
        format!(
            "[req]\nprompt = no\nstring_mask = utf8only\ndistinguished_name = dn\nattributes = attrs\n\
             [dn]\nCN = card holder\n[attrs]\nchallengePassword = {challenge_text}\n"
        ),
    )
    .unwrap();
    openssl_ok(&dir, &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "card.pem"]);
    openssl_ok(&dir, &["req", "-new", "-key", "card.pem", "-config", "req.cnf", "-outform", "DER", "-out", "csr.der"]);
    openssl_ok(&dir, &["req", "-x509", "-key", "card.pem", "-config", "req.cnf", "-days", "30", "-outform", "DER", "-out", "cert.der"]);
    let csr = std::fs::read(dir.join("csr.der")).unwrap();
    let cert = std::fs::read(dir.join("cert.der")).unwrap();

    let card_key = verify_csr(&csr, challenge.as_bytes()).unwrap();
    assert_eq!(card_key.kind(), KeyKind::Rsa(2048));
    assert_eq!(card_key, PublicKey::from_certificate(&cert).unwrap());
    assert!(matches!(verify_csr(&csr, new_nonce().as_bytes()), Err(Refusal::Foreign(_))));
    let mut tampered = csr.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x01;
    assert!(verify_csr(&tampered, challenge.as_bytes()).is_err());
    // A signature that does not hold (its last octet changed): well formed, not the key's.
    let mut forged = csr.clone();
    *forged.last_mut().unwrap() ^= 0x01;
    assert!(matches!(verify_csr(&forged, challenge.as_bytes()), Err(Refusal::Foreign(m)) if m.contains("not signed")));

    // The import path: the agent's device key (Rust) signs the pair message; openssl makes the
    // card's key proof (RSASSA-PKCS1-v1_5 with SHA-256, the default scheme for RSA).
    let agent = RustDevice::new("unused");
    let input = key_proof_input(AUD, &pairing_id, challenge.as_bytes(), &agent.public);
    std::fs::write(dir.join("proof.in"), &input).unwrap();
    openssl_ok(&dir, &["dgst", "-sha256", "-sign", "card.pem", "-out", "proof.sig", "proof.in"]);
    let proof = std::fs::read(dir.join("proof.sig")).unwrap();
    let pair = |cert: &[u8], proof: &[u8], name: &str| {
        DeviceMessage::Pair(Pair {
            v: V1,
            aud: AUD.into(),
            pairing_id: pairing_id.clone(),
            challenge: challenge.clone(),
            device_key: B64(agent.public.spki().to_vec()),
            name: name.into(),
            kind: DeviceKind::Agent,
            prehashed: true,
            csr: None,
            certificate: Some(B64(cert.to_vec())),
            key_proof: Some(B64(proof.to_vec())),
        })
    };
    let session = PairingSession { pairing_id: &pairing_id, aud: AUD, expires_at: NOW + 600, challenge_lifetime: 600 };
    let text = jws::sign(&agent.key, &pairing_id, &pair(&cert, &proof, "office reader"));
    let paired = accept_pairing(&Jws::parse(&text).unwrap(), &session, &key, NOW).unwrap();
    assert_eq!(paired.origin, KeyOrigin::Certificate(cert.clone()));
    assert_eq!(paired.signing_key, card_key);
    assert!(paired.prehashed);

    // A certificate whose key did not make the proof: foreign.
    let other_cert =
        bytes(&oracle("cert", json!({ "signing_pkcs8": oracle("keys", json!({ "signing": "rsa2048" }))["signing_pkcs8"] }))["cert"]);
    let text = jws::sign(&agent.key, &pairing_id, &pair(&other_cert, &proof, "office reader"));
    assert!(matches!(accept_pairing(&Jws::parse(&text).unwrap(), &session, &key, NOW), Err(Refusal::Foreign(_))));
    // A proof made for another device key (someone else's agent) does not carry over.
    let thief = RustDevice::new("unused");
    let mut stolen = pair(&cert, &proof, "office reader");
    if let DeviceMessage::Pair(p) = &mut stolen {
        p.device_key = B64(thief.public.spki().to_vec());
    }
    let text = jws::sign(&thief.key, &pairing_id, &stolen);
    assert!(matches!(accept_pairing(&Jws::parse(&text).unwrap(), &session, &key, NOW), Err(Refusal::Foreign(_))));
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------------------------------------
// Connection
// ---------------------------------------------------------------------------------------------

#[test]
fn hello_from_an_independent_device_and_its_refusals() {
    let key = ChallengeKey::generate();
    let keys = oracle("keys", json!({ "signing": "p256" }));
    let device_key = DeviceKey::from_spki(&bytes(&keys["device_spki"])).unwrap();
    let id = Id::new("dev_py").unwrap();
    let device = PythonDevice { keys, pairing_id: id.clone() };
    let record = Device { id: &id, key: &device_key, last_counter: 4 };
    let challenge = key.issue(Purpose::Connect, NOW);
    let hello = |counter: u64, challenge: &B64, aud: &str| {
        device.jws(id.as_str(), json!({ "type": "hello", "v": 1, "aud": aud, "counter": counter, "challenge": b64::encode(challenge.as_bytes()), "agent": "oracle.py" }))
    };

    let text = hello(5, &challenge, AUD);
    let verified = verify_device_message(&Jws::parse(&text).unwrap(), &record, AUD).unwrap();
    assert_eq!(verified.counter, 5);
    let accepted = accept_hello(&verified, &key, 60, NOW + 1).unwrap();
    assert_eq!(accepted.agent.as_deref(), Some("oracle.py"));

    // Replayed: the same message once its counter is stored.
    let stored = Device { last_counter: 5, ..record };
    assert_eq!(verify_device_message(&Jws::parse(&text).unwrap(), &stored, AUD).unwrap_err(), Refusal::Replayed { last: 5 });
    // Late: the challenge is older than its lifetime.
    assert_eq!(accept_hello(&verified, &key, 60, NOW + 60).unwrap_err(), Refusal::Late);
    // Foreign: a challenge from another service, or a pairing challenge.
    let theirs = ChallengeKey::generate().issue(Purpose::Connect, NOW);
    let v = verify_device_message(&Jws::parse(&hello(6, &theirs, AUD)).unwrap(), &stored, AUD).unwrap();
    assert!(matches!(accept_hello(&v, &key, 60, NOW), Err(Refusal::Foreign(_))));
    let pairing = key.issue(Purpose::Pair(&id), NOW);
    let v = verify_device_message(&Jws::parse(&hello(6, &pairing, AUD)).unwrap(), &stored, AUD).unwrap();
    assert!(matches!(accept_hello(&v, &key, 60, NOW), Err(Refusal::Foreign(_))));
    // Foreign: for another service.
    assert!(matches!(
        verify_device_message(&Jws::parse(&hello(6, &challenge, "https://elsewhere.example")).unwrap(), &stored, AUD),
        Err(Refusal::Foreign(_))
    ));
    // Foreign: another device's key under this device's kid.
    let impostor = RustDevice::new("dev_py");
    let forged =
        impostor.send(&DeviceMessage::Hello(Hello { v: V1, aud: AUD.into(), counter: 9, challenge: challenge.clone(), agent: None }));
    assert!(matches!(verify_device_message(&Jws::parse(&forged).unwrap(), &stored, AUD), Err(Refusal::Foreign(_))));
    // Malformed: a version this service does not speak, a pair message from a paired device.
    let v2 = device.jws(id.as_str(), json!({ "type": "hello", "v": 2, "aud": AUD, "counter": 7, "challenge": "AA" }));
    assert_eq!(verify_device_message(&Jws::parse(&v2).unwrap(), &stored, AUD).unwrap_err(), Refusal::UnsupportedVersion(2));
    let text = device.jws(id.as_str(), json!({ "type": "hello", "v": 1, "aud": AUD, "counter": 7 }));
    assert!(matches!(verify_device_message(&Jws::parse(&text).unwrap(), &stored, AUD), Err(Refusal::Malformed(_))));
}

#[test]
fn an_independent_jose_implementation_verifies_what_a_rust_device_sends() {
    let device = RustDevice::new("dev_rs");
    let text = device.send(&DeviceMessage::Hello(Hello {
        v: V1,
        aud: AUD.into(),
        counter: 1,
        challenge: new_nonce(),
        agent: Some("cloudsign-device/0.1".into()),
    }));
    let checked = oracle("verify_jws", json!({ "spki": b64::encode(device.public.spki()), "jws": text }));
    assert_eq!(checked["ok"], json!(true));
    assert_eq!(checked["header"], json!({ "alg": "ES256", "typ": "cloudsign-device+jws", "kid": "dev_rs" }));
    assert_eq!(checked["payload"]["type"], json!("hello"));
    // And a tampered one fails there too (the oracle can say no).
    let (input, sig) = text.rsplit_once('.').unwrap();
    let mut raw = b64::decode(sig).unwrap();
    raw[10] ^= 1;
    let checked =
        oracle("verify_jws", json!({ "spki": b64::encode(device.public.spki()), "jws": format!("{input}.{}", b64::encode(&raw)) }));
    assert_eq!(checked["ok"], json!(false));
}

// ---------------------------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------------------------

#[test]
fn signatures_from_an_independent_device_are_verified_and_openssl_agrees() {
    let keys = oracle("keys", json!({ "signing": "p256" }));
    let device_key = DeviceKey::from_spki(&bytes(&keys["device_spki"])).unwrap();
    let signing_key = PublicKey::from_spki(&bytes(&keys["signing_spki"])).unwrap();
    let id = Id::new("dev_py").unwrap();
    let device = PythonDevice { keys, pairing_id: id.clone() };
    let digests: Vec<Vec<u8>> = ["page one", "page two", "page one"].iter().map(|t| sha256(t.as_bytes())).collect();
    let req = sign_request(&digests, NOW + 120);

    // The device checks the request as it arrives (over the wire: JSON both ways).
    let wire = serde_json::to_string(&ServiceMessage::SignRequest(req.clone())).unwrap();
    let ServiceMessage::SignRequest(received) = serde_json::from_str(&wire).unwrap() else { panic!() };
    let to_sign = check_sign_request(&received, &signing_key, true, NOW + 5).unwrap();
    let theirs = oracle("vc", json!({ "digests": digests.iter().map(|d| b64::encode(d)).collect::<Vec<_>>() }));
    assert_eq!(to_sign.verification_code.as_str(), theirs["code"].as_str().unwrap());

    let sigs = oracle(
        "sign_digests",
        json!({ "signing_pkcs8": device.keys["signing_pkcs8"], "scheme": "es256", "digests": digests.iter().map(|d| b64::encode(d)).collect::<Vec<_>>() }),
    );
    let answer = json!({
        "type": "signature", "v": 1, "aud": AUD, "counter": 11,
        "requestId": req.request_id.as_str(), "nonce": b64::encode(req.nonce.as_bytes()),
        "verificationCode": to_sign.verification_code.as_str(),
        "digests": digests.iter().map(|d| b64::encode(d)).collect::<Vec<_>>(),
        "signatures": sigs["signatures"],
    });
    let text = device.jws(id.as_str(), answer.clone());
    let record = Device { id: &id, key: &device_key, last_counter: 10 };
    let request = outstanding(&req, &id, &digests, &signing_key);
    let (counter, accepted) = service_accepts(&text, &record, &request, NOW + 6).unwrap();
    assert_eq!(counter, 11);
    let Answer::Signed(raw) = accepted else { panic!("signed") };
    assert_eq!(raw.len(), 3);
    for (sig, d) in raw.iter().zip(&digests) {
        assert_eq!(sig.len(), 64, "r‖s");
        let der = csc_signature(signing_key.kind(), sig).unwrap();
        assert!(openssl_verifies_digest(signing_key.spki(), d, &der, false), "openssl verifies the DER signature");
        assert!(!openssl_verifies_digest(signing_key.spki(), &sha256(b"other"), &der, false), "and refuses another digest");
    }

    // A signature over a digest that was not requested, the echo honest: bad signature.
    let mut wrong = answer.clone();
    let other = oracle(
        "sign_digests",
        json!({ "signing_pkcs8": device.keys["signing_pkcs8"], "scheme": "es256", "digests": [b64::encode(&sha256(b"page three"))] }),
    );
    wrong["signatures"][1] = other["signatures"][0].clone();
    wrong["counter"] = json!(12);
    let refused = service_accepts(&device.jws(id.as_str(), wrong), &record, &request, NOW + 6).unwrap_err();
    assert_eq!(refused, Refusal::BadSignature(1));
    // The device answers for a digest it was not sent (echo and signature of page three).
    let mut wrong = answer.clone();
    wrong["digests"][1] = json!(b64::encode(&sha256(b"page three")));
    wrong["signatures"][1] = other["signatures"][0].clone();
    assert_eq!(service_accepts(&device.jws(id.as_str(), wrong), &record, &request, NOW + 6).unwrap_err(), Refusal::DigestNotRequested);
    // Digests in another order (SCAL 2 binds the order of the signatures to the request's).
    let mut wrong = answer.clone();
    wrong["digests"] = json!([answer["digests"][1], answer["digests"][0], answer["digests"][2]]);
    assert_eq!(service_accepts(&device.jws(id.as_str(), wrong), &record, &request, NOW + 6).unwrap_err(), Refusal::DigestNotRequested);
    // Signatures by the device key instead of the credential's key.
    let by_device_key =
        oracle("sign_digests", json!({ "signing_pkcs8": device.keys["device_pkcs8"], "scheme": "es256", "digests": answer["digests"] }));
    let mut wrong = answer.clone();
    wrong["signatures"] = by_device_key["signatures"].clone();
    assert_eq!(service_accepts(&device.jws(id.as_str(), wrong), &record, &request, NOW + 6).unwrap_err(), Refusal::BadSignature(0));
    // A wrong verification code.
    let mut wrong = answer.clone();
    wrong["verificationCode"] = json!(format!("{:04}", (to_sign.verification_code.as_str().parse::<u32>().unwrap() + 1) % 10_000));
    assert_eq!(service_accepts(&device.jws(id.as_str(), wrong), &record, &request, NOW + 6).unwrap_err(), Refusal::WrongVerificationCode);
    // Malformed: fewer signatures than digests; DER instead of r‖s.
    let mut wrong = answer.clone();
    wrong["signatures"].as_array_mut().unwrap().pop();
    assert!(matches!(service_accepts(&device.jws(id.as_str(), wrong), &record, &request, NOW + 6), Err(Refusal::Malformed(_))));
    let mut wrong = answer.clone();
    let der = csc_signature(KeyKind::EcP256, &raw[0]).unwrap();
    wrong["signatures"][0] = json!(b64::encode(&der));
    assert_eq!(service_accepts(&device.jws(id.as_str(), wrong), &record, &request, NOW + 6).unwrap_err(), Refusal::BadSignature(0));
    // Late: the same answer after the request's expiry.
    assert_eq!(service_accepts(&text, &record, &request, NOW + 120).unwrap_err(), Refusal::Late);
    // Replayed: the answer again once its counter is stored.
    let stored = Device { last_counter: 11, ..record };
    assert_eq!(service_accepts(&text, &stored, &request, NOW + 7).unwrap_err(), Refusal::Replayed { last: 11 });
}

#[test]
fn foreign_answers_are_refused() {
    let alice = RustDevice::new("dev_alice");
    let bob = RustDevice::new("dev_bob"); // another user's device
    let digests = vec![sha256(b"alice's contract")];
    let req = sign_request(&digests, NOW + 120);
    let request = outstanding(&req, &alice.id, &digests, &alice.signing_public);
    let to_sign = check_sign_request(&req, &alice.signing_public, true, NOW).unwrap();

    // Bob's device answers Alice's request with its own key and kid (it saw the request id).
    let bobs = req.answer(&to_sign, AUD, 1, vec![bob.sign_digest(&digests[0])]);
    let refused = service_accepts(&bob.send(&bobs), &bob.record(0), &request, NOW).unwrap_err();
    assert!(matches!(refused, Refusal::Foreign(m) if m.contains("another device")), "{refused}");
    // Bob's key under Alice's kid.
    let forged = jws::sign(&bob.key, &alice.id, &req.answer(&to_sign, AUD, 1, vec![alice.sign_digest(&digests[0])]));
    assert!(matches!(service_accepts(&forged, &alice.record(0), &request, NOW), Err(Refusal::Foreign(_))));
    // Alice's own device, but the nonce of another request with this id.
    let mut other_nonce = req.clone();
    other_nonce.nonce = new_nonce();
    let text = alice.send(&other_nonce.answer(&to_sign, AUD, 1, vec![alice.sign_digest(&digests[0])]));
    assert!(matches!(service_accepts(&text, &alice.record(0), &request, NOW), Err(Refusal::Foreign(_))));
    // Alice's own device, for another service.
    let text = alice.send(&req.answer(&to_sign, "https://elsewhere.example", 1, vec![alice.sign_digest(&digests[0])]));
    assert!(matches!(service_accepts(&text, &alice.record(0), &request, NOW), Err(Refusal::Foreign(_))));
    // And the honest answer passes.
    let text = alice.send(&req.answer(&to_sign, AUD, 1, vec![alice.sign_digest(&digests[0])]));
    assert!(matches!(service_accepts(&text, &alice.record(0), &request, NOW), Ok((1, Answer::Signed(_)))));
}

#[test]
fn declines_and_approvals() {
    let device = RustDevice::new("dev_1");
    let digests = vec![sha256(b"doc")];
    let req = sign_request(&digests, NOW + 120);
    let request = outstanding(&req, &device.id, &digests, &device.signing_public);
    let text = device.send(&req.decline(AUD, 3, DeclineReason::UserRefused));
    assert_eq!(service_accepts(&text, &device.record(2), &request, NOW).unwrap(), (3, Answer::Declined(DeclineReason::UserRefused)));
    // A decline after the expiry is late too (the request has already been answered "expired").
    assert_eq!(service_accepts(&text, &device.record(2), &request, NOW + 120).unwrap_err(), Refusal::Late);

    // Approval of an authorization that binds digests: the code must come back.
    let approval = ApprovalRequest {
        v: V1,
        request_id: new_id("req_"),
        nonce: new_nonce(),
        credential_id: Id::new("cred_1").unwrap(),
        num_signatures: 1,
        hash_algorithm_oid: Some(oid::SHA256.into()),
        digests: vec![B64(digests[0].clone())],
        verification_code: VerificationCode::of(&digests),
        application: Some("Example SCA".into()),
        label: None,
        description: Some("Loan agreement".into()),
        issued_at: NOW,
        expires_at: NOW + 300,
    };
    let code = check_approval_request(&approval, NOW).unwrap();
    assert_eq!(code, VerificationCode::of(&digests));
    let pending = Outstanding {
        request_id: &approval.request_id,
        nonce: approval.nonce.as_bytes(),
        device_id: &device.id,
        expires_at: approval.expires_at,
        what: Requested::Approval { digests: &digests },
    };
    let text = device.send(&approval.approve(AUD, 4, code));
    assert_eq!(service_accepts(&text, &device.record(3), &pending, NOW).unwrap(), (4, Answer::Approved));
    // Without the code, or with another: wrong verification code.
    let text = device.send(&approval.approve(AUD, 5, None));
    assert_eq!(service_accepts(&text, &device.record(4), &pending, NOW).unwrap_err(), Refusal::WrongVerificationCode);
    let text = device.send(&approval.approve(
        AUD,
        5,
        VerificationCode::parse("0000").filter(|c| Some(*c) != code).or(VerificationCode::parse("0001")),
    ));
    assert_eq!(service_accepts(&text, &device.record(4), &pending, NOW).unwrap_err(), Refusal::WrongVerificationCode);
    // A signature answer to an approval request, an approval to a signing request: malformed.
    let to_sign = check_sign_request(&req, &device.signing_public, true, NOW).unwrap();
    let mut crossed = req.clone();
    crossed.request_id = approval.request_id.clone();
    crossed.nonce = approval.nonce.clone();
    let text = device.send(&crossed.answer(&to_sign, AUD, 6, vec![device.sign_digest(&digests[0])]));
    assert!(matches!(service_accepts(&text, &device.record(5), &pending, NOW), Err(Refusal::Malformed(_))));
    let mut crossed = approval.clone();
    crossed.request_id = req.request_id.clone();
    crossed.nonce = req.nonce.clone();
    let text = device.send(&crossed.approve(AUD, 6, code));
    assert!(matches!(service_accepts(&text, &device.record(5), &request, NOW), Err(Refusal::Malformed(_))));
    // A hello is not an answer.
    let text = device.send(&DeviceMessage::Hello(Hello { v: V1, aud: AUD.into(), counter: 7, challenge: new_nonce(), agent: None }));
    assert!(matches!(service_accepts(&text, &device.record(6), &request, NOW), Err(Refusal::Malformed(_))));
}

#[test]
fn malformed_messages_never_get_past_parsing() {
    let device = RustDevice::new("dev_1");
    let digests = vec![sha256(b"doc")];
    let req = sign_request(&digests, NOW + 120);
    let request = outstanding(&req, &device.id, &digests, &device.signing_public);
    let good = device.send(&req.decline(AUD, 1, DeclineReason::UserRefused));
    let (h, rest) = good.split_once('.').unwrap();
    let (_, s) = rest.split_once('.').unwrap();
    for bad in [
        String::new(),
        "not a jws".to_string(),
        "{\"type\":\"decline\"}".to_string(),
        format!("{h}.{}.{s}", b64::encode(b"not json")),
        format!("{h}.{}.{s}", b64::encode(b"{\"v\":1}")),
        format!("{good}.extra"),
        good.replace('.', ".."),
        good[..good.len() - 2].to_string(),
    ] {
        let refused = service_accepts(&bad, &device.record(0), &request, NOW).unwrap_err();
        // A body that does not parse is malformed; one whose signature no longer holds (the
        // payload was changed) is foreign. Never accepted, never a panic.
        assert!(matches!(refused, Refusal::Malformed(_) | Refusal::Foreign(_)), "{bad}: {refused}");
    }
    // A payload signed properly but with an unknown member: malformed after the signature holds.
    let payload = json!({ "type": "decline", "v": 1, "aud": AUD, "counter": 1, "requestId": req.request_id.as_str(), "nonce": b64::encode(req.nonce.as_bytes()), "reason": "user_refused", "comment": "x" });
    let input = format!("{h}.{}", b64::encode(payload.to_string().as_bytes()));
    let sig = device.key.sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes()).unwrap();
    let text = format!("{input}.{}", b64::encode(sig.as_ref()));
    let refused = service_accepts(&text, &device.record(0), &request, NOW).unwrap_err();
    assert!(matches!(&refused, Refusal::Malformed(m) if m.contains("unknown field")), "{refused}");
}

// ---------------------------------------------------------------------------------------------
// Device-side checks
// ---------------------------------------------------------------------------------------------

#[test]
fn the_device_checks_a_request_before_showing_it() {
    let device = RustDevice::new("dev_1");
    let digests = vec![sha256(b"doc one"), sha256(b"doc two")];
    let req = sign_request(&digests, NOW + 120);
    assert!(check_sign_request(&req, &device.signing_public, true, NOW).is_ok());
    // The code sent is not the digests': the device declines (and shows nothing).
    let mut wrong = req.clone();
    wrong.verification_code = VerificationCode::of(&[sha256(b"something else")]).unwrap();
    assert_eq!(check_sign_request(&wrong, &device.signing_public, true, NOW).unwrap_err().0, DeclineReason::WrongVerificationCode);
    // Expired.
    assert_eq!(check_sign_request(&req, &device.signing_public, true, NOW + 120).unwrap_err().0, DeclineReason::Expired);
    // A digest of the wrong length for SHA-256.
    let mut wrong = req.clone();
    wrong.digests[0] = B64(vec![0; 48]);
    assert_eq!(check_sign_request(&wrong, &device.signing_public, true, NOW).unwrap_err().0, DeclineReason::InvalidRequest);
    // An algorithm the key does not have (P-256 with SHA-384; RSA).
    let mut wrong = req.clone();
    wrong.sign_algo = oid::ECDSA_WITH_SHA384.into();
    wrong.hash_algorithm_oid = oid::SHA384.into();
    assert_eq!(check_sign_request(&wrong, &device.signing_public, true, NOW).unwrap_err().0, DeclineReason::Unsupported);
    let mut wrong = req.clone();
    wrong.sign_algo = oid::SHA256_WITH_RSA.into();
    assert_eq!(check_sign_request(&wrong, &device.signing_public, true, NOW).unwrap_err().0, DeclineReason::Unsupported);
    // A label that hides its direction.
    let mut wrong = req.clone();
    wrong.label = "invoice\u{202e}fdp.exe".into();
    assert_eq!(check_sign_request(&wrong, &device.signing_public, true, NOW).unwrap_err().0, DeclineReason::InvalidRequest);
    // A device that cannot sign digests needs the DTBS, and they must hash to the digests.
    assert_eq!(check_sign_request(&req, &device.signing_public, false, NOW).unwrap_err().0, DeclineReason::Unsupported);
    let mut with_data = req.clone();
    with_data.dtbs = Some(vec![B64(b"doc one".to_vec()), B64(b"doc two".to_vec())]);
    let to_sign = check_sign_request(&with_data, &device.signing_public, false, NOW).unwrap();
    assert_eq!(to_sign.dtbs.as_ref().unwrap().len(), 2);
    assert_eq!(check_sign_request(&with_data, &device.signing_public, true, NOW).unwrap_err().0, DeclineReason::InvalidRequest);
    let mut lying = with_data.clone();
    lying.dtbs = Some(vec![B64(b"doc one".to_vec()), B64(b"doc three".to_vec())]);
    assert_eq!(check_sign_request(&lying, &device.signing_public, false, NOW).unwrap_err().0, DeclineReason::InvalidRequest);
}

#[test]
fn a_webcrypto_style_device_signs_the_dtbs_and_the_service_verifies_the_digest() {
    // WebCrypto cannot sign a precomputed digest: the phone page gets the DTBS, signs them with
    // ECDSA/SHA-256 (hashing them itself), and the service checks the signature over the digest.
    let keys = oracle("keys", json!({ "signing": "p256" }));
    let device_key = DeviceKey::from_spki(&bytes(&keys["device_spki"])).unwrap();
    let signing_key = PublicKey::from_spki(&bytes(&keys["signing_spki"])).unwrap();
    let id = Id::new("dev_phone").unwrap();
    let device = PythonDevice { keys, pairing_id: id.clone() };
    let dtbs: Vec<Vec<u8>> = vec![b"\x31\x4b signed attributes of document one".to_vec()];
    let digests: Vec<Vec<u8>> = dtbs.iter().map(|d| sha256(d)).collect();
    let mut req = sign_request(&digests, NOW + 120);
    req.dtbs = Some(dtbs.iter().map(|d| B64(d.clone())).collect());
    let to_sign = check_sign_request(&req, &signing_key, false, NOW).unwrap();
    let sigs = oracle(
        "sign_data",
        json!({ "signing_pkcs8": device.keys["signing_pkcs8"], "scheme": "es256", "data": dtbs.iter().map(|d| b64::encode(d)).collect::<Vec<_>>() }),
    );
    let text = device.jws(
        id.as_str(),
        json!({
            "type": "signature", "v": 1, "aud": AUD, "counter": 1,
            "requestId": req.request_id.as_str(), "nonce": b64::encode(req.nonce.as_bytes()),
            "verificationCode": to_sign.verification_code.as_str(),
            "digests": digests.iter().map(|d| b64::encode(d)).collect::<Vec<_>>(),
            "signatures": sigs["signatures"],
        }),
    );
    let record = Device { id: &id, key: &device_key, last_counter: 0 };
    let request = outstanding(&req, &id, &digests, &signing_key);
    assert!(matches!(service_accepts(&text, &record, &request, NOW), Ok((1, Answer::Signed(_)))));
}

#[test]
fn rsa_signatures_pkcs1_and_pss_from_an_independent_card() {
    let keys = oracle("keys", json!({ "signing": "rsa2048" }));
    let signing_key = PublicKey::from_spki(&bytes(&keys["signing_spki"])).unwrap();
    let device = RustDevice::new("dev_card");
    let digests = vec![sha256(b"one"), sha256(b"two")];
    for (scheme, sign_algo, name, pss) in [
        (SignAlgorithm::RsaPkcs1(HashAlgorithm::Sha256), oid::SHA256_WITH_RSA, "rs256", false),
        (SignAlgorithm::RsaPss(HashAlgorithm::Sha256), oid::RSASSA_PSS, "ps256", true),
    ] {
        let mut req = sign_request(&digests, NOW + 120);
        req.sign_algo = sign_algo.into();
        let to_sign = check_sign_request(&req, &signing_key, true, NOW).unwrap();
        assert_eq!(to_sign.scheme, scheme);
        let sigs = oracle(
            "sign_digests",
            json!({ "signing_pkcs8": keys["signing_pkcs8"], "scheme": name, "digests": digests.iter().map(|d| b64::encode(d)).collect::<Vec<_>>() }),
        );
        let sigs: Vec<Vec<u8>> = sigs["signatures"].as_array().unwrap().iter().map(bytes).collect();
        let text = device.send(&req.answer(&to_sign, AUD, 1, sigs.clone()));
        let request = Outstanding {
            what: Requested::Signature { scheme, digests: &digests, signing_key: &signing_key },
            ..outstanding(&req, &device.id, &digests, &signing_key)
        };
        let (_, answer) = service_accepts(&text, &device.record(0), &request, NOW).unwrap();
        assert_eq!(answer, Answer::Signed(sigs.clone()));
        for (sig, d) in sigs.iter().zip(&digests) {
            assert!(openssl_verifies_digest(signing_key.spki(), d, &csc_signature(signing_key.kind(), sig).unwrap(), pss), "{name}");
        }
        // The other RSA scheme does not accept these signatures.
        let other = if pss { SignAlgorithm::RsaPkcs1(HashAlgorithm::Sha256) } else { SignAlgorithm::RsaPss(HashAlgorithm::Sha256) };
        let request = Outstanding { what: Requested::Signature { scheme: other, digests: &digests, signing_key: &signing_key }, ..request };
        assert_eq!(service_accepts(&text, &device.record(0), &request, NOW).unwrap_err(), Refusal::BadSignature(0));
    }
}
