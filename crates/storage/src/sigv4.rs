//! AWS Signature Version 4, header form, as the S3 backend uses it.
//!
//! Followed: AWS Identity and Access Management User Guide, "AWS Signature Version 4 for API
//! requests" — "Create a canonical request" (method, canonical URI, canonical query string,
//! canonical headers, signed headers, hashed payload), "Create a string to sign"
//! (`AWS4-HMAC-SHA256`, timestamp, credential scope, hashed canonical request), "Derive a signing
//! key" (HMAC-SHA256 chain over date, region, service, `aws4_request`), "Calculate the signature"
//! and "Add the signature to the request" (the `Authorization` header). S3 specifics from the
//! Amazon S3 API Reference, "Authenticating Requests: Using the Authorization Header (AWS
//! Signature Version 4)": the URI path is encoded once (not twice as for other services) with `/`
//! kept, and `x-amz-content-sha256` carries the payload's SHA-256 and is signed.
//! Checked against the published examples in `tests/sigv4_vectors.rs`.

use aws_lc_rs::{digest, hmac};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// SHA-256 of the empty payload.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// `UriEncode` of the S3 reference: every byte but the unreserved `A-Z a-z 0-9 - . _ ~` as `%XX`
/// (upper-case hex); `/` kept when `keep_slash` (object key paths).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn hex_sha256(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().to_vec()
}

/// What is signed. `path` is the raw (unencoded) absolute path; `query` raw name/value pairs;
/// `headers` every header to sign (names any case; `host` and `x-amz-date` must be among them).
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(&'a str, &'a str)],
    pub headers: &'a [(&'a str, &'a str)],
    pub payload_sha256: &'a str,
}

/// The scope and keys a signature is made with.
pub struct Signer<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// The canonical query string: names and values URI-encoded, sorted by name then value.
pub fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut q: Vec<(String, String)> = query.iter().map(|(k, v)| (uri_encode(k, false), uri_encode(v, false))).collect();
    q.sort();
    q.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// (canonical headers, signed headers): lower-case names, values trimmed with inner runs of
/// spaces collapsed, sorted by name; repeated names joined with `,`.
pub fn canonical_headers(headers: &[(&str, &str)]) -> (String, String) {
    let mut h: Vec<(String, String)> =
        headers.iter().map(|(k, v)| (k.trim().to_ascii_lowercase(), v.split_whitespace().collect::<Vec<_>>().join(" "))).collect();
    h.sort_by(|a, b| a.0.cmp(&b.0));
    let mut merged: Vec<(String, String)> = Vec::new();
    for (k, v) in h {
        match merged.last_mut() {
            Some((lk, lv)) if *lk == k => {
                lv.push(',');
                lv.push_str(&v);
            }
            _ => merged.push((k, v)),
        }
    }
    let canonical = merged.iter().map(|(k, v)| format!("{k}:{v}\n")).collect::<String>();
    let signed = merged.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
    (canonical, signed)
}

/// The canonical request (S3 form: the path encoded once, `/` kept).
pub fn canonical_request(req: &Request<'_>) -> (String, String) {
    let (headers, signed) = canonical_headers(req.headers);
    let path = if req.path.is_empty() { "/".to_string() } else { uri_encode(req.path, true) };
    let text = format!("{}\n{}\n{}\n{}\n{}\n{}", req.method, path, canonical_query(req.query), headers, signed, req.payload_sha256);
    (text, signed)
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = zeroize::Zeroizing::new(format!("AWS4{secret}").into_bytes());
    let k_date = hmac(&k, date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// The string to sign for `amz_date` (`YYYYMMDD'T'HHMMSS'Z'`).
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", hex_sha256(canonical_request.as_bytes()))
}

/// The `Authorization` header value for `req` at `amz_date` (which must equal the signed
/// `x-amz-date` header).
pub fn authorization(signer: &Signer<'_>, req: &Request<'_>, amz_date: &str) -> String {
    let date = &amz_date[..amz_date.len().min(8)];
    let scope = format!("{date}/{}/{}/aws4_request", signer.region, signer.service);
    let (creq, signed) = canonical_request(req);
    let sts = string_to_sign(amz_date, &scope, &creq);
    let key = zeroize::Zeroizing::new(signing_key(signer.secret_access_key, date, signer.region, signer.service));
    let sig = hex::encode(hmac(&key, sts.as_bytes()));
    format!("{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed}, Signature={sig}", signer.access_key_id)
}

/// `x-amz-date` for a time: basic ISO 8601 in UTC.
pub fn amz_date(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}
