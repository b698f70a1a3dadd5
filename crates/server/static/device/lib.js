// The device protocol's pure parts for the phone page (docs/device-protocol.md): base64url,
// DER, the PKCS#10 request, ES256 JWS, the verification code, the request checks, and the
// IndexedDB store. No I/O other than WebCrypto and IndexedDB; app.js drives the transport and
// the screen. The functions mirror crates/device (b64.rs, jws.rs, vc.rs, pairing.rs, check.rs).

const te = new TextEncoder();
export const utf8 = (s) => te.encode(s);

// ---- base64url without padding, strict (doc "Encoding"; RFC 4648 §5) ------------------------

const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

export function b64uEncode(bytes) {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64U[n >> 18] + B64U[(n >> 12) & 63] + B64U[(n >> 6) & 63] + B64U[n & 63];
  }
  if (bytes.length - i === 1) {
    const n = bytes[i] << 16;
    out += B64U[n >> 18] + B64U[(n >> 12) & 63];
  } else if (bytes.length - i === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += B64U[n >> 18] + B64U[(n >> 12) & 63] + B64U[(n >> 6) & 63];
  }
  return out;
}

// One spelling per value: no padding, no standard alphabet, no whitespace, no stray bits.
// Returns null when `text` is not strict base64url.
export function b64uDecode(text) {
  if (typeof text !== 'string' || text.length % 4 === 1) return null;
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let j = 0;
  for (let i = 0; i < text.length; i++) {
    const v = B64U.indexOf(text[i]);
    if (v < 0) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (acc >> bits) & 0xff;
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) return null; // non-canonical trailing bits
  return out.subarray(0, j);
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function sameBytes(a, b) {
  return a.length === b.length && compareBytes(a, b) === 0;
}

// ---- DER (X.690), just what a CSR needs --------------------------------------------------------

function derLength(n) {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

export function der(tag, ...content) {
  const body = concat(...content);
  return concat(Uint8Array.of(tag), derLength(body.length), body);
}

// An unsigned big-endian integer as a DER INTEGER: minimal, with a 0x00 before a high bit.
function derUnsigned(bytes) {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const v = bytes.subarray(i);
  return der(0x02, v[0] & 0x80 ? concat(Uint8Array.of(0), v) : v);
}

// WebCrypto's ECDSA signature is r ‖ s (IEEE P1363); X.509 and PKCS#10 carry
// ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 5480 §2.2.3, RFC 3279 §2.2.3).
export function ecdsaRawToDer(raw) {
  const half = raw.length / 2;
  return der(0x30, derUnsigned(raw.subarray(0, half)), derUnsigned(raw.subarray(half)));
}

const OID_COMMON_NAME = Uint8Array.of(0x06, 0x03, 0x55, 0x04, 0x03); // 2.5.4.3
const OID_CHALLENGE_PASSWORD = Uint8Array.of(0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x07); // 1.2.840.113549.1.9.7
const OID_ECDSA_SHA256 = Uint8Array.of(0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02); // 1.2.840.10045.4.3.2

const ES256 = { name: 'ECDSA', hash: 'SHA-256' };

// The PKCS#10 request for the signing key (RFC 2986 §4; doc "Step 2: pair/finish"): subject
// CN=<name> (ignored by the CA, which names the signer), the key's SPKI, one challengePassword
// attribute (RFC 2985 §5.4.1) holding the pairing challenge as base64url in a UTF8String (its
// alphabet has '_', which PrintableString lacks), signed ecdsa-with-SHA256 (parameters absent,
// RFC 5758 §3.2), the signature as DER.
export async function buildCsr(keyPair, challengeB64u, commonName) {
  const spki = new Uint8Array(await crypto.subtle.exportKey('spki', keyPair.publicKey));
  const subject = der(0x30, der(0x31, der(0x30, OID_COMMON_NAME, der(0x0c, utf8(commonName)))));
  const attributes = der(0xa0, der(0x30, OID_CHALLENGE_PASSWORD, der(0x31, der(0x0c, utf8(challengeB64u)))));
  const info = der(0x30, der(0x02, Uint8Array.of(0)), subject, spki, attributes);
  const raw = new Uint8Array(await crypto.subtle.sign(ES256, keyPair.privateKey, info));
  return der(0x30, info, der(0x30, OID_ECDSA_SHA256), der(0x03, Uint8Array.of(0), ecdsaRawToDer(raw)));
}

// ---- keys --------------------------------------------------------------------------------------

// A P-256 key pair whose private key cannot be exported (doc "Keys"): the browser keeps it, and
// IndexedDB stores the CryptoKey as it is (structured clone keeps `extractable: false`).
export function newKeyPair() {
  return crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
}

export async function spkiOf(keyPair) {
  return new Uint8Array(await crypto.subtle.exportKey('spki', keyPair.publicKey));
}

// ---- JWS (doc "Authenticating device messages"; RFC 7515 §7.1, RFC 7518 §3.4) --------------------

// A device message: compact JWS, header exactly {"alg":"ES256","typ":"cloudsign-device+jws",
// "kid":…}, signed over ASCII(b64u(header) '.' b64u(payload)); the signature is r ‖ s, 64
// bytes, as WebCrypto returns it (DER is refused by the service).
export async function signJws(privateKey, kid, payload) {
  const header = JSON.stringify({ alg: 'ES256', typ: 'cloudsign-device+jws', kid });
  const input = `${b64uEncode(utf8(header))}.${b64uEncode(utf8(JSON.stringify(payload)))}`;
  const sig = new Uint8Array(await crypto.subtle.sign(ES256, privateKey, utf8(input)));
  return `${input}.${b64uEncode(sig)}`;
}

// ---- the verification code (doc "Verification code") --------------------------------------------

// code = (256·h[30] + h[31]) mod 10000 with h = SHA-256 of the digests' bytes sorted in
// ascending byte order (duplicates kept), four digits. For one digest: Smart-ID's code.
export async function verificationCode(digests) {
  if (digests.length === 0) return null;
  const sorted = [...digests].sort(compareBytes);
  const h = new Uint8Array(await crypto.subtle.digest('SHA-256', concat(...sorted)));
  return String(((h[30] << 8) | h[31]) % 10000).padStart(4, '0');
}

// ---- the device's checks of a request (doc "signRequest", "Checks and refusals"; check.rs) ------

const HASHES = {
  '2.16.840.1.101.3.4.2.1': { name: 'SHA-256', len: 32 },
  '2.16.840.1.101.3.4.2.2': { name: 'SHA-384', len: 48 },
  '2.16.840.1.101.3.4.2.3': { name: 'SHA-512', len: 64 },
};
// What a P-256 WebCrypto key signs: ECDSA with a SHA-2 digest, the combined OID matching
// hashAlgorithmOID.
const ECDSA_SCHEMES = {
  '1.2.840.10045.4.3.2': '2.16.840.1.101.3.4.2.1',
  '1.2.840.10045.4.3.3': '2.16.840.1.101.3.4.2.2',
  '1.2.840.10045.4.3.4': '2.16.840.1.101.3.4.2.3',
};

export const MAX_DIGESTS = 256;
export const MAX_DTBS_BYTES = 64 * 1024;
export const MAX_LABEL_CHARS = 200;
export const MAX_TEXT_CHARS = 500;
export const MAX_NAME_CHARS = 64;

// C0, DEL, C1 (Rust's char::is_control) and the bidirectional formatting characters of UAX #9
// (doc "Encoding"): they could make a label read as something else.
const HIDDEN = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]/u;

export function displayTextOk(text, max) {
  return typeof text === 'string' && [...text].length <= max && !HIDDEN.test(text);
}

export class Declined extends Error {
  constructor(reason, detail) {
    super(detail);
    this.reason = reason;
  }
}

function decodeDigests(list, len) {
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_DIGESTS) {
    throw new Declined('invalid_request', 'a request has 1 to 256 digests');
  }
  return list.map((d) => {
    const bytes = b64uDecode(d);
    if (!bytes || bytes.length !== len) throw new Declined('invalid_request', 'a digest has the wrong length for its algorithm');
    return bytes;
  });
}

function checkTexts(label, application, description) {
  const ok =
    displayTextOk(label ?? '', MAX_LABEL_CHARS) &&
    (application == null || displayTextOk(application, MAX_NAME_CHARS)) &&
    (description == null || displayTextOk(description, MAX_TEXT_CHARS));
  if (!ok) throw new Declined('invalid_request', 'a text is too long or has control characters');
}

// A signRequest for this device (prehashed: false, so it needs the DTBS): not expired, an
// algorithm the key has, digests of the right length, one DTBS per digest hashing to it, texts
// displayable, and the request's code equal to the one computed here. Returns what to show and
// sign; throws Declined with the decline reason otherwise.
export async function checkSignRequest(req, credentialId, nowSeconds) {
  if (!(Number.isInteger(req.expiresAt) && nowSeconds < req.expiresAt)) throw new Declined('expired', 'the request has expired');
  if (req.credentialId !== credentialId) throw new Declined('unsupported', 'not the credential this phone holds');
  const hashOid = ECDSA_SCHEMES[req.signAlgo];
  if (!hashOid || hashOid !== req.hashAlgorithmOID) throw new Declined('unsupported', 'the key does not sign with this algorithm');
  const hash = HASHES[hashOid];
  const digests = decodeDigests(req.digests, hash.len);
  if (!Array.isArray(req.dtbs)) throw new Declined('unsupported', 'this device needs the data to be signed (dtbs)');
  const dtbs = req.dtbs.map((d) => b64uDecode(d));
  if (dtbs.length !== digests.length || dtbs.some((d) => !d || d.length > MAX_DTBS_BYTES)) {
    throw new Declined('invalid_request', 'one dtbs per digest, each at most 64 KiB');
  }
  for (let i = 0; i < dtbs.length; i++) {
    const h = new Uint8Array(await crypto.subtle.digest(hash.name, dtbs[i]));
    if (!sameBytes(h, digests[i])) throw new Declined('invalid_request', 'the dtbs do not hash to the digests');
  }
  checkTexts(req.label, req.application, req.description);
  const code = await verificationCode(digests);
  if (code !== req.verificationCode) throw new Declined('wrong_verification_code', "the request's verification code is not its digests'");
  return { hash: hash.name, digests, dtbs, code };
}

// An approvalRequest: not expired, at least one signature, texts displayable; with digests,
// the code must be theirs. Returns the code to show (null without digests).
export async function checkApprovalRequest(req, credentialId, nowSeconds) {
  if (!(Number.isInteger(req.expiresAt) && nowSeconds < req.expiresAt)) throw new Declined('expired', 'the request has expired');
  if (req.credentialId !== credentialId) throw new Declined('unsupported', 'not the credential this phone holds');
  if (!(Number.isInteger(req.numSignatures) && req.numSignatures >= 1)) throw new Declined('invalid_request', 'numSignatures is at least 1');
  checkTexts(req.label, req.application, req.description);
  const list = req.digests ?? [];
  if (list.length === 0) {
    if (req.hashAlgorithmOID != null || req.verificationCode != null) {
      throw new Declined('invalid_request', 'hashAlgorithmOID and verificationCode go with digests');
    }
    return null;
  }
  const hash = HASHES[req.hashAlgorithmOID];
  if (!hash) throw new Declined('unsupported', 'unknown hashAlgorithmOID');
  const code = await verificationCode(decodeDigests(list, hash.len));
  if (code !== req.verificationCode) throw new Declined('wrong_verification_code', "the request's verification code is not its digests'");
  return code;
}

// Sign each DTBS with the signing key (WebCrypto hashes it: doc "DTBS and DTBS/R"); raw r ‖ s.
export async function signDtbs(signingKey, hash, dtbs) {
  const out = [];
  for (const d of dtbs) out.push(b64uEncode(new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash }, signingKey, d))));
  return out;
}

// ---- IndexedDB: one record, the paired device ---------------------------------------------------

const DB = 'cloudsign-device';
const STORE = 'state';
const KEY = 'device';

function openDb() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => r.result.createObjectStore(STORE);
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

async function tx(mode, op) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const r = op(t.objectStore(STORE));
      t.oncomplete = () => resolve(r.result);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  } finally {
    db.close();
  }
}

// { deviceKey, signingKey (CryptoKeyPairs), deviceId, credentialId, aud, user, name, counter,
//   serviceCounter, certificates } or undefined before pairing.
export const loadState = () => tx('readonly', (s) => s.get(KEY));
export const saveState = (state) => tx('readwrite', (s) => s.put(state, KEY));
export const clearState = () => tx('readwrite', (s) => s.delete(KEY));

// The counter of the next message (doc "Replay protection" 1): above every counter this device
// used and above the last one the service accepted, stored before the message leaves, so that a
// reload never reuses one. Several tabs share the record: the Web Locks API, where there is one,
// makes the read-increment-write one step.
const locked = (step) => (navigator.locks ? navigator.locks.request('cloudsign-device-counter', step) : step());

export function nextCounter() {
  return locked(async () => {
    const state = await loadState();
    const next = Math.max(state.counter ?? 0, state.serviceCounter ?? 0) + 1;
    if (!Number.isSafeInteger(next)) throw new Error('the counter is exhausted: pair again');
    state.counter = next;
    await saveState(state);
    return next;
  });
}

// The service's last accepted counter (from challenge, ready, ack, error), kept for the next one.
export function noteServiceCounter(n) {
  if (!Number.isSafeInteger(n) || n < 0) return Promise.resolve();
  return locked(async () => {
    const state = await loadState();
    if (state && n > (state.serviceCounter ?? 0)) {
      state.serviceCounter = n;
      await saveState(state);
    }
  });
}
