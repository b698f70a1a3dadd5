//! JAdES (ETSI TS 119 182-1) and plain JWS validation, in the order of EN 319 102-1 §5 as
//! [`crate::engine::validate_cms`] does it for CMS: format (compact, flattened or general JSON
//! serialization; `crit` parameters this module does not process are a FORMAT_FAILURE),
//! identification of the signing certificate (`x5c`, checked against `x5t#S256`; without `x5c`,
//! the certificate of `xVals` or the context that `x5t#S256` names), the detached documents of
//! `sigD` (`ObjectIdByURIHash`: `hashV` against the detached file), the signature value, then
//! the signature time-stamp `sigTst` (the best signature time), the archive time-stamp
//! `arcTst`, the certificate path and revocation (`xVals`, `rVals` as embedded data), and the
//! level (B-B, B-T, B-LT, B-LTA).
//!
//! Payloads: attached (base64url), unencoded (`b64: false`, RFC 7797) attached or detached, and
//! detached (RFC 7515 Appendix F): an empty payload is the `detached_payload` given.

use cloudsign_asn1::{HashAlgorithm, b64};
use serde_json::{Map, Value};

use crate::engine::{Context, Indication, SignatureReport, SubIndication};
use crate::engine::{Evidence, conclude, fail, new_report, rfc3339};
use crate::x509::{Certificate, Scheme};
use cloudsign_ades::digest;

use crate::xades::{parse_datetime, verify_value};

const FORMAT: &str = "JAdES";
const OBJECT_ID_BY_URI_HASH: &str = "http://uri.etsi.org/19182/ObjectIdByURIHash";
/// Header parameters this module processes, and so may be listed in `crit`; the others it
/// accepts there are informational (commitments, roles, place) and do not change the result.
const UNDERSTOOD_CRIT: &[&str] = &["b64", "sigT", "sigD", "srCms", "srAts", "sigPl"];

type Failure = (Indication, SubIndication, String);

fn format_err(why: impl Into<String>) -> Failure {
    (Indication::Indeterminate, SubIndication::FormatFailure, why.into())
}

/// One signature of a JWS: the base64url protected header, the unprotected header, the
/// base64url signature.
struct Jws<'a> {
    protected: &'a str,
    header: Option<&'a Map<String, Value>>,
    signature: &'a str,
}

/// Validate a JWS (compact, or JSON flattened or general serialization) as JAdES.
/// `detached_payload` is the payload of a detached JWS (`b64: false` or not), or the document
/// a `sigD` names. One report per signature; input that is not a JWS gives one
/// FORMAT_FAILURE report.
pub fn validate_jades(jws: &[u8], detached_payload: Option<&[u8]>, ctx: &Context<'_>) -> Vec<SignatureReport> {
    let failure = |e: &str| vec![SignatureReport::format_failure("signature 1".to_string(), FORMAT, e.to_string())];
    let Ok(text) = std::str::from_utf8(jws) else { return failure("the JWS is not UTF-8") };
    let text = text.trim();
    let json = match parse_json(text) {
        Ok(j) => j,
        Err(e) => return failure(&e),
    };
    let (payload, signatures) = match split(text, json.as_ref()) {
        Ok(s) => s,
        Err(e) => return failure(&e),
    };
    signatures
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let id = format!("signature {}", i + 1);
            validate_signature(s, payload, detached_payload, &id, ctx)
                .unwrap_or_else(|(ind, sub, e)| fail(new_report(id, FORMAT), ind, sub, e))
        })
        .collect()
}

/// The certificates the signatures of a JWS carry, for an online revocation check: the
/// protected header's `x5c`, the `x509Cert` values of `etsiU`'s `xVals`, and the certificates
/// inside the `sigTst` and `arcTst` time-stamp tokens (the TSAs' status is checked like the
/// signer's). The JWS is read as [`validate_jades`] reads it; anything unreadable is skipped.
pub(crate) fn certificates(jws: &[u8]) -> Vec<Vec<u8>> {
    let Ok(text) = std::str::from_utf8(jws) else { return Vec::new() };
    let text = text.trim();
    let Ok(json) = parse_json(text) else { return Vec::new() };
    let Ok((_, signatures)) = split(text, json.as_ref()) else { return Vec::new() };
    let mut out = Vec::new();
    for jws in &signatures {
        if let Some(protected) = protected_header(jws.protected) {
            // A malformed x5c is a FORMAT_FAILURE for validation; here its readable entries.
            let x5c = protected.get("x5c").and_then(Value::as_array).into_iter().flatten();
            out.extend(x5c.filter_map(|c| c.as_str().and_then(b64::decode_lenient)));
        }
        for (_, item) in etsi_u(jws.header) {
            out.extend(item.get("xVals").into_iter().flat_map(|v| values(Some(v), Some("x509Cert"))));
            for name in ["sigTst", "arcTst"] {
                for token in item.get(name).into_iter().flat_map(|ts| values(ts.get("tstTokens"), None)) {
                    out.extend(cloudsign_pki::x509::cms_certificates(&token));
                }
            }
        }
    }
    out
}

/// The parsed JSON of a JSON serialization (the text starts with `{`); `None` for a compact one.
fn parse_json(text: &str) -> Result<Option<Value>, String> {
    if !text.starts_with('{') {
        return Ok(None);
    }
    serde_json::from_str(text).map(Some).map_err(|e| format!("the JWS JSON cannot be parsed: {e}"))
}

/// The payload and the signatures of a JWS: `json` its JSON serialization (flattened or
/// general, RFC 7515 §7.2), or `None` for the compact serialization `text`.
fn split<'a>(text: &'a str, json: Option<&'a Value>) -> Result<(Option<&'a str>, Vec<Jws<'a>>), String> {
    let Some(json) = json else {
        let parts: Vec<&str> = text.split('.').collect();
        let [protected, payload, signature] = parts.as_slice() else { return Err("a compact JWS has three parts".into()) };
        return Ok((Some(*payload), vec![Jws { protected, header: None, signature }]));
    };
    let Some(o) = json.as_object() else { return Err("the JWS JSON is not an object".into()) };
    let payload = match o.get("payload") {
        None => None,
        Some(Value::String(p)) => Some(p.as_str()),
        Some(_) => return Err("the JWS payload is not a string".into()),
    };
    fn one(s: &Map<String, Value>) -> Option<Jws<'_>> {
        let header = match s.get("header") {
            None => None,
            Some(Value::Object(h)) => Some(h),
            Some(_) => return None,
        };
        Some(Jws { protected: s.get("protected")?.as_str()?, header, signature: s.get("signature")?.as_str()? })
    }
    let signatures: Option<Vec<Jws<'_>>> = match o.get("signatures") {
        Some(Value::Array(list)) if !o.contains_key("signature") => list.iter().map(|s| s.as_object().and_then(one)).collect(),
        None => one(o).map(|s| vec![s]),
        _ => None,
    };
    match signatures {
        Some(s) if !s.is_empty() => Ok((payload, s)),
        _ => Err("the JWS JSON has no well-formed signature (protected, header, signature)".into()),
    }
}

/// The protected header (base64url JSON object), `None` when it is not one.
fn protected_header(protected: &str) -> Option<Map<String, Value>> {
    match serde_json::from_slice(&b64url(protected)?) {
        Ok(Value::Object(o)) => Some(o),
        _ => None,
    }
}

/// The `etsiU` elements of an unprotected header (TS 119 182-1 §5.3.1): each with its
/// base64url text (empty for a clear-JSON element) and its JSON value (`null` when a base64url
/// element does not decode to JSON).
fn etsi_u(header: Option<&Map<String, Value>>) -> Vec<(&str, Value)> {
    header
        .and_then(|h| h.get("etsiU"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|item| match item {
            Value::String(s) => {
                let v = b64url(s).and_then(|j| serde_json::from_slice::<Value>(&j).ok()).unwrap_or(Value::Null);
                (s.as_str(), v)
            }
            other => ("", other.clone()),
        })
        .collect()
}

/// Strict base64url (RFC 7515 §2: no padding, no other alphabet).
fn b64url(text: &str) -> Option<Vec<u8>> {
    text.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_').then(|| b64::decode_lenient(text)).flatten()
}

fn hash_name(name: &str) -> Option<HashAlgorithm> {
    match name {
        "S256" => Some(HashAlgorithm::Sha256),
        "S384" => Some(HashAlgorithm::Sha384),
        "S512" => Some(HashAlgorithm::Sha512),
        _ => None,
    }
}

/// RFC 7518 §3.1 `alg` (and RFC 8037 EdDSA) to a scheme.
fn scheme(alg: &str) -> Result<Scheme, Failure> {
    use HashAlgorithm::*;
    Ok(match alg {
        "ES256" => Scheme::Ecdsa(Sha256),
        "ES384" => Scheme::Ecdsa(Sha384),
        "ES512" => Scheme::Ecdsa(Sha512),
        "RS256" => Scheme::RsaPkcs1(Sha256),
        "RS384" => Scheme::RsaPkcs1(Sha384),
        "RS512" => Scheme::RsaPkcs1(Sha512),
        "PS256" => Scheme::RsaPss(Sha256),
        "PS384" => Scheme::RsaPss(Sha384),
        "PS512" => Scheme::RsaPss(Sha512),
        "EdDSA" => Scheme::Ed25519,
        other => {
            return Err((
                Indication::TotalFailed,
                SubIndication::CryptoConstraintsFailure,
                format!("the JWS algorithm {other:?} is not accepted"),
            ));
        }
    })
}

/// The `val` members of a list of `{"val": base64}` (or `{"x509Cert": {"val": ...}}`) objects.
fn values(list: Option<&Value>, inner: Option<&str>) -> Vec<Vec<u8>> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| match inner {
            Some(key) => item.get(key),
            None => Some(item),
        })
        .filter_map(|v| v.get("val")?.as_str())
        .filter_map(b64::decode_lenient)
        .collect()
}

fn validate_signature(
    jws: &Jws<'_>,
    payload: Option<&str>,
    detached: Option<&[u8]>,
    id: &str,
    ctx: &Context<'_>,
) -> Result<SignatureReport, Failure> {
    let report = new_report(id.to_string(), FORMAT);
    b64url(jws.protected).ok_or_else(|| format_err("the protected header is not base64url"))?;
    let protected = protected_header(jws.protected).ok_or_else(|| format_err("the protected header is not a JSON object"))?;
    let value = b64url(jws.signature).ok_or_else(|| format_err("the signature is not base64url"))?;
    if let Some(h) = jws.header
        && let Some(k) = h.keys().find(|k| protected.contains_key(*k))
    {
        return Err(format_err(format!("header parameter {k:?} both protected and unprotected")));
    }
    let alg = protected.get("alg").and_then(Value::as_str).ok_or_else(|| format_err("no alg in the protected header"))?;
    let scheme = scheme(alg)?;

    // crit (RFC 7515 §4.1.11): a non-empty list of protected parameters this module understands.
    if let Some(crit) = protected.get("crit") {
        let names: Option<Vec<&str>> = crit.as_array().filter(|l| !l.is_empty()).and_then(|l| l.iter().map(Value::as_str).collect());
        let names = names.ok_or_else(|| format_err("crit is not a non-empty list of names"))?;
        for name in names {
            if !UNDERSTOOD_CRIT.contains(&name) {
                return Err(format_err(format!("unsupported critical header parameter {name:?}")));
            }
            if !protected.contains_key(name) {
                return Err(format_err(format!("critical header parameter {name:?} is not in the protected header")));
            }
        }
    }
    let crit_has = |name: &str| protected.get("crit").and_then(Value::as_array).is_some_and(|l| l.iter().any(|v| v.as_str() == Some(name)));
    let b64 = match protected.get("b64") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(format_err("b64 is not a boolean")),
    };
    if !b64 && !crit_has("b64") {
        return Err(format_err("b64: false must be listed in crit (RFC 7797 §6)"));
    }
    let sig_d = protected.get("sigD");

    // The signing input, and the payload as the archive time-stamp covers it.
    let attached = payload.filter(|p| !p.is_empty());
    let mut payload_missing = false;
    let (signed_payload, archive_payload): (Vec<u8>, Vec<u8>) = match (attached, b64) {
        (Some(p), true) => {
            b64url(p).ok_or_else(|| format_err("the payload is not base64url"))?;
            (p.as_bytes().to_vec(), p.as_bytes().to_vec())
        }
        (Some(p), false) => (p.as_bytes().to_vec(), p.as_bytes().to_vec()),
        (None, _) if sig_d.is_some() => (Vec::new(), detached.map(<[u8]>::to_vec).unwrap_or_default()),
        (None, false) => {
            payload_missing = detached.is_none();
            let d = detached.unwrap_or_default().to_vec();
            (d.clone(), d)
        }
        (None, true) => {
            payload_missing = detached.is_none();
            let d = b64::encode_url(detached.unwrap_or_default()).into_bytes();
            (d.clone(), d)
        }
    };

    // Certificates.
    let unprotected = jws.header;
    let etsi_u = etsi_u(unprotected);
    let property = |name: &str| etsi_u.iter().filter_map(move |(_, v)| v.get(name)).collect::<Vec<_>>();
    let x5c: Vec<Vec<u8>> = match protected.get("x5c") {
        None => Vec::new(),
        Some(list) => {
            let certs: Option<Vec<Vec<u8>>> =
                list.as_array().and_then(|l| l.iter().map(|c| c.as_str().and_then(b64::decode_lenient)).collect());
            certs.ok_or_else(|| format_err("x5c is not a list of base64 certificates"))?
        }
    };
    let x_vals: Vec<Vec<u8>> = property("xVals").into_iter().flat_map(|v| values(Some(v), Some("x509Cert"))).collect();
    let mut pool: Vec<Certificate> =
        x5c.iter().chain(&x_vals).chain(ctx.embedded_certificates).filter_map(|c| Certificate::parse(c).ok()).collect();
    pool.extend(ctx.anchors.certificates().iter().cloned());
    let mut crls: Vec<Vec<u8>> = property("rVals").into_iter().flat_map(|r| values(r.get("crlVals"), None)).collect();
    crls.extend(ctx.embedded_crls.iter().cloned());
    let mut ocsps: Vec<Vec<u8>> = property("rVals").into_iter().flat_map(|r| values(r.get("ocspVals"), None)).collect();
    ocsps.extend(ctx.embedded_ocsps.iter().cloned());

    let x5t = match protected.get("x5t#S256") {
        None => None,
        Some(v) => Some(v.as_str().and_then(b64url).ok_or_else(|| format_err("x5t#S256 is not base64url"))?),
    };
    let named = |c: &&Certificate| x5t.as_deref().is_some_and(|t| digest(HashAlgorithm::Sha256, &c.der) == t);
    let cert = match x5c.first() {
        Some(first) => Certificate::parse(first).map_err(|e| format_err(format!("x5c: {e}")))?,
        None => pool.iter().find(named).cloned().ok_or((
            Indication::Indeterminate,
            SubIndication::NoSigningCertificateFound,
            "no x5c, and no certificate x5t#S256 names".to_string(),
        ))?,
    };

    // sigD (TS 119 182-1 §5.2.8): the detached documents by hash.
    if let Some(sig_d) = sig_d {
        let mechanism = sig_d.get("mId").and_then(Value::as_str).unwrap_or_default();
        if mechanism != OBJECT_ID_BY_URI_HASH {
            return Err(format_err(format!("unsupported sigD mechanism {mechanism:?}")));
        }
        let hash = sig_d.get("hashM").and_then(Value::as_str).and_then(hash_name).ok_or_else(|| format_err("sigD: unsupported hashM"))?;
        let hashes: Option<Vec<Vec<u8>>> =
            sig_d.get("hashV").and_then(Value::as_array).and_then(|l| l.iter().map(|v| v.as_str().and_then(b64url)).collect());
        let hashes = hashes.filter(|h| !h.is_empty()).ok_or_else(|| format_err("sigD: no hashV"))?;
        let Some(document) = detached else {
            return Err(format_err("the documents sigD references were not provided"));
        };
        if !hashes.contains(&digest(hash, document)) {
            return Err((Indication::TotalFailed, SubIndication::HashFailure, "the detached document does not match sigD's hashV".into()));
        }
    }

    // The signature value.
    let mut signing_input = format!("{}.", jws.protected).into_bytes();
    signing_input.extend_from_slice(&signed_payload);
    if let Err(e) = verify_value(&cert, scheme, &signing_input, &value) {
        if payload_missing {
            return Err(format_err("a detached JWS, and no detached payload provided"));
        }
        return Err(e);
    }
    if let Some(t) = &x5t
        && digest(HashAlgorithm::Sha256, &cert.der) != *t
    {
        return Err((
            Indication::Indeterminate,
            SubIndication::NoSigningCertificateFound,
            "x5t#S256 does not match the x5c certificate".into(),
        ));
    }
    let mut report = report;
    let claimed = protected.get("sigT").and_then(Value::as_str).and_then(parse_datetime);
    report.claimed_signing_time = claimed.map(rfc3339);
    let ades = x5t.is_some() && claimed.is_some();
    if !ades {
        report.errors.push("plain JWS (no x5t#S256 or no sigT): no AdES level".into());
    }

    // Time-stamps: sigTst over the base64url signature; arcTst over the payload, ".",
    // protected, ".", signature, "." and the etsiU elements before it (TS 119 182-1 §5.3.6.3).
    let mut signature_timestamps = Vec::new();
    let mut archive_timestamps = Vec::new();
    for (k, (raw, item)) in etsi_u.iter().enumerate() {
        if let Some(ts) = item.get("sigTst") {
            for token in values(ts.get("tstTokens"), None) {
                signature_timestamps.push(crate::engine::check_timestamp(
                    &token,
                    &|h| digest(h, jws.signature.as_bytes()),
                    ctx,
                    &pool,
                    (&ocsps, &crls),
                ));
            }
        }
        if let Some(ts) = item.get("arcTst") {
            // Clear-JSON etsiU elements would need a canonicalization: not supported.
            let clear = etsi_u[..k].iter().any(|(r, _)| r.is_empty()) || raw.is_empty();
            let mut input = archive_payload.clone();
            input.extend_from_slice(format!(".{}.{}.", jws.protected, jws.signature).as_bytes());
            for (r, _) in &etsi_u[..k] {
                input.extend_from_slice(r.as_bytes());
            }
            for token in values(ts.get("tstTokens"), None) {
                archive_timestamps.push(if clear {
                    crate::engine::Timestamp::unchecked("clear-JSON etsiU elements need a canonicalization: not supported")
                } else {
                    crate::engine::check_timestamp(&token, &|h| digest(h, &input), ctx, &pool, (&ocsps, &crls))
                });
            }
        }
    }
    Ok(conclude(report, Evidence { cert, pool, crls, ocsps, digest: scheme.hash(), ades, signature_timestamps, archive_timestamps }, ctx))
}
