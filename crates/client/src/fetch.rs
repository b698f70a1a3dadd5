//! Revocation data from the network: OCSP responses and CRLs fetched from the URLs a
//! certificate names (RFC 5280 §4.2.1.13, §4.2.2.1), or from a cloudsign service's own
//! endpoints. Shared by the signer (B-LT data to embed) and `cloudsign verify` (online
//! revocation checks).

use cloudsign_ades::cades::ValidationData;

/// Revocation data that cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL or the answer is not what was asked for, or the status is not good.
    #[error("{0}")]
    Refused(String),
    /// The request did not get through.
    #[error("{what}")]
    Transport {
        /// What was being fetched, and from where.
        what: String,
        /// What the HTTP client said.
        #[source]
        source: reqwest::Error,
    },
}

/// `error: cause: cause`, as a report of a failure that is not fatal.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

macro_rules! bail {
    ($($arg:tt)*) => { return Err(FetchError::Refused(format!($($arg)*))) };
}

/// Long-term validation data for `certs` (the signer's chain and the TSA's): every
/// certificate, and for each one not self-issued its revocation status — OCSP for end-entity
/// certificates, the CRL for CA certificates (or the CRL when there is no OCSP responder).
/// They come from the URLs the certificate names, which works for any CA; a certificate that
/// names none is asked about at the service's own endpoints (`/ocsp`, `/arl`: cloudsign
/// publishes them whether or not its certificates carry URLs).
pub async fn gather_validation(http: &reqwest::Client, service: &str, certs: &[Vec<u8>]) -> Result<ValidationData, FetchError> {
    use cloudsign_pki::x509;
    // Revocation data must be issued after the signature time-stamp (EN 319 102-1 §5.2.5.4,
    // freshness against the best signature time); responders state thisUpdate to the second,
    // so ask only once the second of the time-stamp has passed.
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_millis()).unwrap_or(0);
    tokio::time::sleep(std::time::Duration::from_millis(u64::from(1000 - millis) + 20)).await;
    let mut unique: Vec<Vec<u8>> = Vec::new();
    for c in certs {
        if !unique.contains(c) {
            unique.push(c.clone());
        }
    }
    let service = service.trim_end_matches('/');
    let mut v = ValidationData::default();
    for cert in &unique {
        if x509::is_self_issued(cert) {
            continue;
        }
        let name = subject_text(cert);
        let is_ca = unique.iter().any(|other| other != cert && x509::find_issuer(other, std::slice::from_ref(cert)).is_some());
        let (ocsp_urls, crl_urls) = (x509::ocsp_urls(cert), x509::crl_urls(cert));
        let (ocsp_url, crl_url) = match (ocsp_urls.first(), crl_urls.first()) {
            (None, None) if is_ca => (None, Some(format!("{service}/arl"))),
            // Both: validators that only consult what a certificate declares (pyHanko) use the
            // CRL for a certificate without URLs; EN 319 102-1 validators take either.
            (None, None) => (Some(format!("{service}/ocsp")), Some(format!("{service}/crl"))),
            (o, c) => (o.cloned(), c.cloned()),
        };
        if !is_ca
            && let Some(issuer) = x509::find_issuer(cert, &unique)
            && let Some(url) = &ocsp_url
        {
            v.ocsp.push(fetch_ocsp(http, url, cert, issuer, &name).await?);
            // The CRL too when the certificate names one: validators that read only CRLs
            // (openssl `-crl_check_all`) need it, as the service's own B-LT (signDoc) has it.
            if crl_url.is_none() {
                continue;
            }
        }
        let Some(url) = crl_url else { bail!("{name} names no OCSP responder or CRL") };
        let crl = fetch(http, &url, None, &format!("the CRL for {name}")).await?;
        // A CertificateList: SEQUENCE { tbsCertList SEQUENCE, ... }.
        let is_crl =
            cloudsign_asn1::der::Reader::new(&crl).expect(0x30).and_then(|b| cloudsign_asn1::der::Reader::new(b).expect(0x30)).is_some();
        if !is_crl {
            bail!("{url} did not return a CRL for {name}");
        }
        if !v.crls.contains(&crl) {
            v.crls.push(crl);
        }
    }
    v.certificates = unique;
    Ok(v)
}

/// Revocation data and CRLs are small; anything bigger is not what was asked for.
const MAX_FETCH: usize = 16 << 20;

/// GET or POST `url` (http or https only: the URL comes from a certificate), bounded in size.
pub async fn fetch(http: &reqwest::Client, url: &str, ocsp_request: Option<Vec<u8>>, what: &str) -> Result<Vec<u8>, FetchError> {
    let Ok(parsed) = reqwest::Url::parse(url) else { bail!("{what}: {url:?} is not a URL") };
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("{what}: only http(s) URLs are fetched, not {url}");
    }
    let request = match ocsp_request {
        Some(body) => http.post(parsed).header("Content-Type", "application/ocsp-request").body(body),
        None => http.get(parsed),
    };
    let transport = |source| FetchError::Transport { what: format!("cannot fetch {what} from {url}"), source };
    let mut resp = request.send().await.map_err(transport)?;
    if !resp.status().is_success() {
        bail!("cannot fetch {what} from {url} (HTTP {})", resp.status());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_FETCH {
            bail!("{what} from {url} is larger than {MAX_FETCH} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An OCSP response that says `good` about `cert`: SHA-256 CertID first, then SHA-1 (RFC 5019
/// responders know only SHA-1). A revoked certificate is an error: nothing is signed with it.
pub async fn fetch_ocsp(http: &reqwest::Client, url: &str, cert: &[u8], issuer: &[u8], name: &str) -> Result<Vec<u8>, FetchError> {
    use cloudsign_pki::x509::{CertIdHash, OcspStatus, ocsp_request, ocsp_status};
    let what = format!("the OCSP status of {name}");
    let mut last = None;
    for hash in [CertIdHash::Sha256, CertIdHash::Sha1] {
        let Some(request) = ocsp_request(cert, issuer, hash) else { bail!("cannot build an OCSP request") };
        let body = fetch(http, url, Some(request), &what).await?;
        match ocsp_status(&body, cert) {
            Some(OcspStatus::Good) => return Ok(body),
            Some(OcspStatus::Revoked) => bail!("{name} is revoked (OCSP responder {url})"),
            Some(OcspStatus::Unknown) => last = Some("unknown"),
            None => last = Some("no usable response"),
        }
    }
    bail!("the OCSP responder {url} gave {} for {name}", last.unwrap_or("no usable response"))
}

/// A readable certificate name for messages (the subject's DER, hex, when not printable).
pub fn subject_text(cert: &[u8]) -> String {
    let Some((subject, _)) = cloudsign_pki::x509::subject_and_issuer(cert) else { return "a certificate".into() };
    // The last printable run in the Name is usually its CN.
    let text: String = subject.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '\u{1}' }).collect();
    let best = text.split('\u{1}').rfind(|s| s.len() > 2).unwrap_or("a certificate");
    format!("certificate \"{best}\"")
}

/// Whatever revocation data the URLs in `certs` give (OCSP for end-entity certificates, CRLs
/// otherwise or as a fallback): for an online check. Failures are reported, not fatal — the
/// validation then says what it could not establish.
pub async fn fetch_available(http: &reqwest::Client, certs: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<String>) {
    use cloudsign_pki::x509;
    let (mut ocsps, mut crls, mut problems) = (Vec::new(), Vec::new(), Vec::new());
    for cert in certs {
        if x509::is_self_issued(cert) {
            continue;
        }
        let name = subject_text(cert);
        let mut got = false;
        if let Some(issuer) = x509::find_issuer(cert, certs) {
            for url in x509::ocsp_urls(cert) {
                match fetch_ocsp(http, &url, cert, issuer, &name).await {
                    Ok(r) => {
                        ocsps.push(r);
                        got = true;
                        break;
                    }
                    Err(e) => problems.push(chain(&e)),
                }
            }
        }
        if got {
            continue;
        }
        for url in x509::crl_urls(cert) {
            match fetch(http, &url, None, &format!("the CRL for {name}")).await {
                Ok(crl) => {
                    if !crls.contains(&crl) {
                        crls.push(crl);
                    }
                    break;
                }
                Err(e) => problems.push(chain(&e)),
            }
        }
    }
    (ocsps, crls, problems)
}
