//! CAdES (ETSI EN 319 122-1) detached signatures: CMS SignedData (RFC 5652) without
//! encapsulated content, with the signed attributes content-type, signing-time, message-digest
//! and signing-certificate-v2 (RFC 5035), and for B-T an unsigned signature-time-stamp
//! (id-aa-signatureTimeStampToken, RFC 3161 token over the signature value).
//!
//! B-LTA adds archive-time-stamp-v3 attributes to a finished B-LT CMS, again in two steps so the
//! time-stamp can come from anywhere: [`archive_imprint`] computes the message imprint
//! (EN 319 122-1 §5.5.3) and [`ArchivePrepared::finish`] embeds the token, carrying the
//! ats-hash-index-v3 (§5.5.2) as an unsigned attribute of the token's SignerInfo.

use cloudsign_asn1::{HashAlgorithm, SignAlgorithm};
use cloudsign_pki::cms::{
    ID_CONTENT_TYPE, ID_DATA, ID_MESSAGE_DIGEST, ID_RI_OCSP_RESPONSE, ID_SIGNATURE_TIME_STAMP, ID_SIGNED_DATA, ID_SIGNING_CERTIFICATE_V2,
    ID_SIGNING_TIME,
};

/// Validation material for B-LT (ETSI EN 319 122-1 §5.5): the certificates up to the trust
/// anchor and the revocation data, carried in SignedData's `certificates` and `crls` fields
/// (CRLs as such, OCSP responses as `id-ri-ocsp-response`, RFC 5940).
#[derive(Default)]
pub struct ValidationData {
    /// Certificates not already in the chain (e.g. the root, the TSA's).
    pub certificates: Vec<Vec<u8>>,
    /// DER CertificateLists.
    pub crls: Vec<Vec<u8>>,
    /// DER OCSPResponses.
    pub ocsp: Vec<Vec<u8>>,
}
use cloudsign_asn1::der;

pub use crate::Params;
use crate::{AdesError, digest};

/// The signed attributes, waiting for their signature value.
pub struct Prepared {
    scheme: SignAlgorithm,
    certificates: Vec<u8>,
    issuer_and_serial: Vec<u8>,
    /// `[0] IMPLICIT` SignedAttributes as they go into the SignerInfo.
    signed_attrs: Vec<u8>,
    /// The digest the signer signs: the hash of the DER SET OF the signed attributes
    /// (RFC 5652 §5.4).
    pub to_be_signed: Vec<u8>,
}

/// Build the signed attributes over `content_digest` (the document's digest with the scheme's
/// hash algorithm) and the digest to sign.
pub fn prepare(content_digest: &[u8], p: &Params<'_>) -> Result<Prepared, AdesError> {
    prepare_with(content_digest, p, true)
}

/// The CMS of a PAdES signature: as [`prepare`] but without the signing-time attribute, which
/// ETSI EN 319 142-1 §6.3 excludes (the time is the `/M` entry of the signature dictionary).
pub fn prepare_pades(content_digest: &[u8], p: &Params<'_>) -> Result<Prepared, AdesError> {
    prepare_with(content_digest, p, false)
}

fn prepare_with(content_digest: &[u8], p: &Params<'_>, signing_time_attribute: bool) -> Result<Prepared, AdesError> {
    let hash = p.scheme.hash();
    if content_digest.len() != hash.len() {
        return Err(AdesError::DigestLength(hash.name()));
    }
    let (issuer, serial) = cloudsign_asn1::cert::issuer_and_serial(p.certificate).ok_or(AdesError::Certificate)?;
    // RFC 5035 ESSCertIDv2: the certificate hash with its algorithm (omitted when SHA-256, the
    // default), and the issuer and serial as a GeneralNames/serial pair.
    let cert_hash = digest(hash, p.certificate);
    let issuer_serial = der::seq(&[&der::seq(&[&der::explicit(4, &issuer)]), &serial]);
    let ess_cert_id = if hash == HashAlgorithm::Sha256 {
        der::seq(&[&der::octets(&cert_hash), &issuer_serial])
    } else {
        der::seq(&[&der::algorithm(hash.oid()), &der::octets(&cert_hash), &issuer_serial])
    };
    let signing_certificate_v2 = der::seq(&[&der::seq(&[&ess_cert_id])]);
    let mut attrs = vec![
        der::seq(&[&der::oid(ID_CONTENT_TYPE), &der::set_of(&[&der::oid(ID_DATA)])]),
        der::seq(&[&der::oid(ID_MESSAGE_DIGEST), &der::set_of(&[&der::octets(content_digest)])]),
        der::seq(&[&der::oid(ID_SIGNING_CERTIFICATE_V2), &der::set_of(&[&signing_certificate_v2])]),
    ];
    if signing_time_attribute {
        attrs.insert(1, der::seq(&[&der::oid(ID_SIGNING_TIME), &der::set_of(&[&signing_time(p.signing_time)])]));
    }
    let refs: Vec<&[u8]> = attrs.iter().map(Vec::as_slice).collect();
    let set = der::set_of(&refs);
    let to_be_signed = digest(hash, &set);
    // The same content under the context tag [0] IMPLICIT in the SignerInfo.
    let mut signed_attrs = set;
    signed_attrs[0] = 0xA0;
    let certificates: Vec<u8> = std::iter::once(p.certificate).chain(p.chain.iter().map(Vec::as_slice)).flatten().copied().collect();
    Ok(Prepared {
        scheme: p.scheme,
        certificates: der::tlv(0xA0, &certificates),
        issuer_and_serial: der::seq(&[&issuer, &serial]),
        signed_attrs,
        to_be_signed,
    })
}

/// RFC 5652 §11.3: UTCTime for 1950–2049, GeneralizedTime otherwise.
fn signing_time(unix: i64) -> Vec<u8> {
    let g = cloudsign_pki::generalized_time(unix);
    let year: i64 = g[..4].parse().unwrap_or(2000);
    if (1950..2050).contains(&year) { der::tlv(0x17, &g.as_bytes()[2..]) } else { der::tlv(0x18, g.as_bytes()) }
}

impl Prepared {
    /// The data to be signed (ETSI TS 119 432's DTBS) whose hash is [`to_be_signed`](Self::to_be_signed):
    /// the DER of the signed attributes as a `SET OF` (tag 0x31), not as the `[0] IMPLICIT`
    /// they are written with (RFC 5652 §5.4). For a signer that hashes what it signs (a
    /// WebCrypto key); a few hundred bytes, copied with the tag changed back.
    pub fn data_to_be_signed(&self) -> Vec<u8> {
        let mut set = self.signed_attrs.clone();
        if let Some(tag) = set.first_mut() {
            *tag = 0x31;
        }
        set
    }

    /// The message imprint a B-T time-stamp is requested for: the hash of the signature value
    /// (ETSI EN 319 122-1 §5.3).
    pub fn timestamp_imprint(&self, signature: &[u8]) -> (HashAlgorithm, Vec<u8>) {
        let hash = self.scheme.hash();
        (hash, digest(hash, signature))
    }

    /// The DER ContentInfo: detached, or with `content` encapsulated (attached); with
    /// `validation` data for B-LT.
    pub fn finish(
        self,
        signature: &[u8],
        timestamp_token: Option<&[u8]>,
        content: Option<&[u8]>,
        validation: Option<&ValidationData>,
    ) -> Vec<u8> {
        let unsigned = match timestamp_token {
            Some(token) => der::tlv(0xA1, &der::seq(&[&der::oid(ID_SIGNATURE_TIME_STAMP), &der::set_of(&[token])])),
            None => Vec::new(),
        };
        let signer_info = der::seq(&[
            &der::small_uint(1),
            &self.issuer_and_serial,
            &der::algorithm(self.scheme.hash().oid()),
            &self.signed_attrs,
            &signature_algorithm(self.scheme),
            &der::octets(signature),
            &unsigned,
        ]);
        let mut certificates = self.certificates;
        let mut revocation = Vec::new();
        if let Some(v) = validation {
            // The [0] IMPLICIT SET of certificates grows by the extra ones.
            let mut body = der::Reader::new(&certificates).expect(0xA0).unwrap_or_default().to_vec();
            for c in &v.certificates {
                body.extend_from_slice(c);
            }
            certificates = der::tlv(0xA0, &body);
            let mut items: Vec<u8> = v.crls.concat();
            for o in &v.ocsp {
                // RevocationInfoChoice `other [1] IMPLICIT OtherRevocationInfoFormat`.
                items.extend_from_slice(&der::tlv(0xA1, &[der::oid(ID_RI_OCSP_RESPONSE), o.clone()].concat()));
            }
            if !items.is_empty() {
                revocation = der::tlv(0xA1, &items);
            }
        }
        // RFC 5652 §5.1: version 5 when an `other` revocation format is present.
        let version = if validation.is_some_and(|v| !v.ocsp.is_empty()) { 5 } else { 1 };
        let signed_data = der::seq(&[
            &der::small_uint(version),
            &der::set_of(&[&der::algorithm(self.scheme.hash().oid())]),
            &match content {
                Some(c) => der::seq(&[&der::oid(ID_DATA), &der::explicit(0, &der::octets(c))]),
                None => der::seq(&[&der::oid(ID_DATA)]),
            },
            &certificates,
            &revocation,
            &der::set_of(&[&signer_info]),
        ]);
        der::seq(&[&der::oid(ID_SIGNED_DATA), &der::explicit(0, &signed_data)])
    }
}

/// The SignerInfo's signatureAlgorithm: ecdsa-with-SHA* carry no parameters (RFC 5758);
/// sha*WithRSAEncryption a NULL (RFC 4055); RSASSA-PSS its parameters.
fn signature_algorithm(scheme: SignAlgorithm) -> Vec<u8> {
    match scheme {
        SignAlgorithm::Ecdsa(_) => der::seq(&[&der::oid(scheme.oid())]),
        SignAlgorithm::RsaPkcs1(_) => der::seq(&[&der::oid(scheme.oid()), &[0x05, 0x00]]),
        SignAlgorithm::RsaPss(h) => {
            let hash_alg = der::algorithm(h.oid());
            let mgf = der::seq(&[&der::oid("1.2.840.113549.1.1.8"), &hash_alg]);
            let params =
                der::seq(&[&der::explicit(0, &hash_alg), &der::explicit(1, &mgf), &der::explicit(2, &der::small_uint(h.len() as u64))]);
            der::seq(&[&der::oid("1.2.840.113549.1.1.10"), &params])
        }
    }
}

/// id-aa-ets-archiveTimestampV3: the archive-time-stamp-v3 unsigned attribute (ETSI EN 319 122-1
/// §5.5.3, annex D).
pub const ID_ARCHIVE_TIME_STAMP_V3: &str = "0.4.0.1733.2.4";
/// id-aa-ATSHashIndex-v3: the ats-hash-index-v3 unsigned attribute of an archive time-stamp
/// token (ETSI EN 319 122-1 §5.5.2).
pub const ID_ATS_HASH_INDEX_V3: &str = "0.4.0.19122.1.5";
/// id-ct-TSTInfo (RFC 3161 §2.4.2).
const ID_CT_TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";

/// A B-LT (or B-LTA, for a renewal) CMS waiting for an archive time-stamp over
/// [`ArchivePrepared::imprint`].
pub struct ArchivePrepared {
    hash: HashAlgorithm,
    /// The SignedData fields before signerInfos (version to crls) as they go out: the input's,
    /// grown by any added validation data and the time-stamp's hash in digestAlgorithms.
    head: Vec<u8>,
    /// The archived (first) SignerInfo: version to signature, unchanged.
    signed_fields: Vec<u8>,
    /// Its unsigned attributes, unchanged and in order.
    unsigned_attrs: Vec<Vec<u8>>,
    /// The other SignerInfos, unchanged.
    other_signers: Vec<Vec<u8>>,
    /// The DER ATSHashIndexV3 value.
    index: Vec<u8>,
    imprint: Vec<u8>,
}

/// Prepare an archive-time-stamp-v3 (B-LTA, ETSI EN 319 122-1 §5.5.3) for the first signer of
/// `cms_der`, a finished CAdES ContentInfo (detached or attached; B-LT, or B-LTA to renew).
///
/// `content_digest` is the hash of the signed data computed with `hash`, the time-stamp's hash
/// algorithm (stream a large detached file through it); it is required when the content is
/// detached, optional (and then checked) when it is encapsulated. When `hash` is also the
/// signer's digest algorithm, the digest must match the signed message-digest attribute.
///
/// Errors: [`AdesError::DigestLength`] for a digest of the wrong length;
/// [`AdesError::Signature`] for a CMS that cannot be read (only definite-length encodings are),
/// a missing detached digest, or a digest that is not the signed content's.
pub fn archive_imprint(cms_der: &[u8], content_digest: Option<&[u8]>, hash: HashAlgorithm) -> Result<ArchivePrepared, AdesError> {
    archive_imprint_with(cms_der, content_digest, hash, None)
}

/// As [`archive_imprint`], first adding `validation` data not already present (by exact
/// encoding) to SignedData.certificates and SignedData.crls, as §5.5.3 requires before a new
/// archive time-stamp: e.g. the chain and revocation data of the previous archive time-stamp's
/// TSA when renewing. OCSP responses go in as `id-ri-ocsp-response` (RFC 5940), which makes the
/// SignedData version 5.
pub fn archive_imprint_with(
    cms_der: &[u8],
    content_digest: Option<&[u8]>,
    hash: HashAlgorithm,
    validation: Option<&ValidationData>,
) -> Result<ArchivePrepared, AdesError> {
    let sd = parse_signed_data(cms_der).ok_or(AdesError::Signature)?;
    let signer = parse_signer_info(sd.signer_infos[0]).ok_or(AdesError::Signature)?;
    if content_digest.is_some_and(|d| d.len() != hash.len()) {
        return Err(AdesError::DigestLength(hash.name()));
    }
    // Step 2: the hash of the signed data (what message-digest covers) with the ATS's algorithm.
    let content_hash = match (sd.econtent, content_digest) {
        (Some(content), given) => {
            let d = digest(hash, content);
            if given.is_some_and(|g| g != d.as_slice()) {
                return Err(AdesError::Signature);
            }
            d
        }
        (None, Some(d)) => d.to_vec(),
        (None, None) => return Err(AdesError::Signature),
    };
    let hash_oid = der::oid(hash.oid());
    if algorithm_oid(signer.digest_algorithm) == Some(hash_oid.as_slice()) {
        let signed_digest = signer.signed_attrs.and_then(message_digest).ok_or(AdesError::Signature)?;
        if signed_digest != content_hash.as_slice() {
            return Err(AdesError::Signature);
        }
    }

    // The SignedData grown by the validation data and the ATS hash algorithm (§5.5.3 step 2:
    // "should be included in the SignedData.digestAlgorithms set").
    let owned = |list: &[&[u8]]| list.iter().map(|e| e.to_vec()).collect::<Vec<_>>();
    let mut version = sd.version.to_vec();
    let mut digest_algorithms = owned(&sd.digest_algorithms);
    if !sd.digest_algorithms.iter().any(|a| algorithm_oid(a) == Some(hash_oid.as_slice())) {
        digest_algorithms.push(der::algorithm(hash.oid()));
    }
    let mut certificates = sd.certificates.as_deref().map(owned);
    let mut crls = sd.crls.as_deref().map(owned);
    if let Some(v) = validation {
        let add = |field: &mut Option<Vec<Vec<u8>>>, item: Vec<u8>| {
            let list = field.get_or_insert_with(Vec::new);
            if !list.contains(&item) {
                list.push(item);
            }
        };
        for c in &v.certificates {
            add(&mut certificates, c.clone());
        }
        for c in &v.crls {
            add(&mut crls, c.clone());
        }
        for o in &v.ocsp {
            // RevocationInfoChoice `other [1] IMPLICIT OtherRevocationInfoFormat` (RFC 5940).
            add(&mut crls, der::tlv(0xA1, &[der::oid(ID_RI_OCSP_RESPONSE), o.clone()].concat()));
        }
        // RFC 5652 §5.1: version 5 with an `other` revocation format.
        let old = der::Reader::new(sd.version).expect(0x02).unwrap_or_default();
        if !v.ocsp.is_empty() && old.len() == 1 && old[0] < 5 {
            version = der::small_uint(5);
        }
    }
    let mut head = [version, der::set_of(&digest_algorithms.iter().map(Vec::as_slice).collect::<Vec<_>>()), sd.encap.to_vec()].concat();
    if let Some(c) = &certificates {
        head.extend_from_slice(&der::tlv(0xA0, &c.concat()));
    }
    if let Some(c) = &crls {
        head.extend_from_slice(&der::tlv(0xA1, &c.concat()));
    }

    // §5.5.2 ATSHashIndexV3: the hash of every CertificateChoices, of every RevocationInfoChoice
    // and of every unsigned attribute value (attrType ‖ AttributeValue), each as encoded, in
    // order of appearance; hashIndAlgorithm (no DEFAULT in annex D) is the imprint's algorithm.
    let h = |data: &[u8]| der::octets(&digest(hash, data));
    let hashes = |list: &Option<Vec<Vec<u8>>>| der::tlv(0x30, &list.iter().flatten().map(|e| h(e)).collect::<Vec<_>>().concat());
    let mut attr_hashes = Vec::new();
    for attribute in &signer.unsigned_attrs {
        let (attr_type, values) = parse_attribute(attribute).ok_or(AdesError::Signature)?;
        for value in values {
            attr_hashes.extend_from_slice(&h(&[attr_type, value].concat()));
        }
    }
    let index = der::seq(&[&der::algorithm(hash.oid()), &hashes(&certificates), &hashes(&crls), &der::tlv(0x30, &attr_hashes)]);
    // §5.5.3 message imprint input, in order: 1) eContentType, 2) the signed data's hash,
    // 3) the SignerInfo's version, sid, digestAlgorithm, signedAttrs, signatureAlgorithm and
    // signature as encoded, 4) the ATSHashIndexV3 value.
    let imprint = digest(hash, &[sd.content_type, &content_hash, signer.signed_fields, &index].concat());
    Ok(ArchivePrepared {
        hash,
        head,
        signed_fields: signer.signed_fields.to_vec(),
        unsigned_attrs: owned(&signer.unsigned_attrs),
        other_signers: owned(&sd.signer_infos[1..]),
        index,
        imprint,
    })
}

impl ArchivePrepared {
    /// The time-stamp's hash algorithm.
    pub fn hash(&self) -> HashAlgorithm {
        self.hash
    }

    /// The message imprint to request the archive time-stamp for (hash algorithm: [`Self::hash`]).
    pub fn imprint(&self) -> &[u8] {
        &self.imprint
    }

    /// The DER ContentInfo with `token` (an RFC 3161 TimeStampToken over [`Self::imprint`]) added
    /// as an archive-time-stamp-v3 unsigned attribute of the signer, the token carrying the
    /// ats-hash-index-v3 as an unsigned attribute of its own SignerInfo (§5.5.3). Everything
    /// else keeps its encoding.
    ///
    /// Errors: [`AdesError::Signature`] when the token cannot be read, is not over this imprint
    /// with this hash algorithm, or already has an ats-hash-index-v3.
    pub fn finish(self, token: &[u8]) -> Result<Vec<u8>, AdesError> {
        let tsd = parse_signed_data(token).ok_or(AdesError::Signature)?;
        let tst_info = tsd.econtent.filter(|_| tsd.content_type == der::oid(ID_CT_TST_INFO)).ok_or(AdesError::Signature)?;
        let (algorithm, hashed) = tst_imprint(tst_info).ok_or(AdesError::Signature)?;
        if algorithm != der::oid(self.hash.oid()) || hashed != self.imprint.as_slice() {
            return Err(AdesError::Signature);
        }
        let tsigner = parse_signer_info(tsd.signer_infos[0]).ok_or(AdesError::Signature)?;
        let index_oid = der::oid(ID_ATS_HASH_INDEX_V3);
        if tsigner.unsigned_attrs.iter().any(|a| parse_attribute(a).is_some_and(|(t, _)| t == index_oid.as_slice())) {
            return Err(AdesError::Signature);
        }
        // The token's SignerInfo with the index appended to its unsigned attributes (which its
        // signature does not cover); the rest of the token as it came.
        let index_attr = der::seq(&[&index_oid, &der::set_of(&[&self.index])]);
        let tsigner_info = der::seq(&[tsigner.signed_fields, &der::tlv(0xA1, &[tsigner.unsigned_attrs.concat(), index_attr].concat())]);
        let tsigners: Vec<&[u8]> = std::iter::once(tsigner_info.as_slice()).chain(tsd.signer_infos[1..].iter().copied()).collect();
        let token = signed_data_info(tsd.head, &tsigners);

        let ats = der::seq(&[&der::oid(ID_ARCHIVE_TIME_STAMP_V3), &der::set_of(&[&token])]);
        let unsigned = [self.unsigned_attrs.concat(), ats].concat();
        let signer_info = der::seq(&[&self.signed_fields, &der::tlv(0xA1, &unsigned)]);
        let signers: Vec<&[u8]> = std::iter::once(signer_info.as_slice()).chain(self.other_signers.iter().map(Vec::as_slice)).collect();
        Ok(signed_data_info(&self.head, &signers))
    }
}

/// A ContentInfo of SignedData from its fields before signerInfos and the SignerInfos (in
/// the given order).
fn signed_data_info(head: &[u8], signer_infos: &[&[u8]]) -> Vec<u8> {
    let signed_data = der::tlv(0x30, &[head, &der::tlv(0x31, &signer_infos.concat())].concat());
    der::seq(&[&der::oid(ID_SIGNED_DATA), &der::explicit(0, &signed_data)])
}

/// The parts of a SignedData ContentInfo, borrowed from its encoding.
struct SignedDataParts<'a> {
    /// The whole content before signerInfos (version to crls).
    head: &'a [u8],
    /// The version INTEGER.
    version: &'a [u8],
    /// The AlgorithmIdentifiers of digestAlgorithms.
    digest_algorithms: Vec<&'a [u8]>,
    /// The EncapsulatedContentInfo.
    encap: &'a [u8],
    /// eContentType, the OID's whole encoding.
    content_type: &'a [u8],
    /// eContent's octets when encapsulated.
    econtent: Option<&'a [u8]>,
    /// The CertificateChoices of `certificates` when present.
    certificates: Option<Vec<&'a [u8]>>,
    /// The RevocationInfoChoices of `crls` when present.
    crls: Option<Vec<&'a [u8]>>,
    /// The SignerInfos, at least one.
    signer_infos: Vec<&'a [u8]>,
}

/// The whole encodings of the elements in `content`.
fn elements(content: &[u8]) -> Option<Vec<&[u8]>> {
    let mut r = der::Reader::new(content);
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(r.next()?.2);
    }
    Some(out)
}

fn parse_signed_data(content_info: &[u8]) -> Option<SignedDataParts<'_>> {
    let mut outer = der::Reader::new(content_info);
    let mut ci = der::Reader::new(outer.expect(0x30)?);
    if !outer.is_empty() || ci.next()?.2 != der::oid(ID_SIGNED_DATA).as_slice() {
        return None;
    }
    let mut explicit = der::Reader::new(ci.expect(0xA0)?);
    let body = explicit.expect(0x30)?;
    if !ci.is_empty() || !explicit.is_empty() {
        return None;
    }
    let mut sd = der::Reader::new(body);
    let (t, _, version) = sd.next()?;
    if t != 0x02 {
        return None;
    }
    let digest_algorithms = elements(sd.expect(0x31)?)?;
    let (t, encap_content, encap) = sd.next()?;
    if t != 0x30 {
        return None;
    }
    let mut e = der::Reader::new(encap_content);
    let (t, _, content_type) = e.next()?;
    if t != 0x06 {
        return None;
    }
    let econtent = if e.is_empty() {
        None
    } else {
        // Definite-length primitive OCTET STRING only (DER).
        let mut x = der::Reader::new(e.expect(0xA0)?);
        let octets = x.expect(0x04)?;
        if !x.is_empty() || !e.is_empty() {
            return None;
        }
        Some(octets)
    };
    let certificates = if sd.peek_tag() == Some(0xA0) { Some(elements(sd.expect(0xA0)?)?) } else { None };
    let crls = if sd.peek_tag() == Some(0xA1) { Some(elements(sd.expect(0xA1)?)?) } else { None };
    let head = &body[..body.len() - sd.rest().len()];
    let signer_infos = elements(sd.expect(0x31)?)?;
    if !sd.is_empty() || signer_infos.is_empty() {
        return None;
    }
    Some(SignedDataParts { head, version, digest_algorithms, encap, content_type, econtent, certificates, crls, signer_infos })
}

/// The parts of a SignerInfo.
struct SignerInfoParts<'a> {
    /// version, sid, digestAlgorithm, signedAttrs, signatureAlgorithm and signature, as encoded.
    signed_fields: &'a [u8],
    /// digestAlgorithm.
    digest_algorithm: &'a [u8],
    /// The content of signedAttrs when present.
    signed_attrs: Option<&'a [u8]>,
    /// The Attributes of unsignedAttrs.
    unsigned_attrs: Vec<&'a [u8]>,
}

fn parse_signer_info(encoded: &[u8]) -> Option<SignerInfoParts<'_>> {
    let mut outer = der::Reader::new(encoded);
    let content = outer.expect(0x30)?;
    let mut r = der::Reader::new(content);
    r.expect(0x02)?;
    r.next()?; // sid: IssuerAndSerialNumber or [0] SubjectKeyIdentifier
    let (t, _, digest_algorithm) = r.next()?;
    if t != 0x30 || !outer.is_empty() {
        return None;
    }
    let signed_attrs = if r.peek_tag() == Some(0xA0) { Some(r.expect(0xA0)?) } else { None };
    r.expect(0x30)?; // signatureAlgorithm
    r.expect(0x04)?; // signature
    let signed_fields = &content[..content.len() - r.rest().len()];
    let unsigned_attrs = if r.is_empty() { Vec::new() } else { elements(r.expect(0xA1)?)? };
    r.is_empty().then_some(SignerInfoParts { signed_fields, digest_algorithm, signed_attrs, unsigned_attrs })
}

/// An Attribute's attrType (whole OID encoding) and its AttributeValues (whole encodings).
fn parse_attribute(encoded: &[u8]) -> Option<(&[u8], Vec<&[u8]>)> {
    let mut outer = der::Reader::new(encoded);
    let mut r = der::Reader::new(outer.expect(0x30)?);
    let (t, _, attr_type) = r.next()?;
    let values = elements(r.expect(0x31)?)?;
    (t == 0x06 && r.is_empty() && outer.is_empty()).then_some((attr_type, values))
}

/// The OID (whole encoding) of an AlgorithmIdentifier.
fn algorithm_oid(algorithm: &[u8]) -> Option<&[u8]> {
    let mut r = der::Reader::new(der::Reader::new(algorithm).expect(0x30)?);
    let (t, _, oid) = r.next()?;
    (t == 0x06).then_some(oid)
}

/// The value of the message-digest attribute among the signed attributes (content of [0]).
fn message_digest(signed_attrs: &[u8]) -> Option<&[u8]> {
    let oid = der::oid(ID_MESSAGE_DIGEST);
    let attrs = elements(signed_attrs)?;
    let (_, values) = attrs.iter().filter_map(|a| parse_attribute(a)).find(|(t, _)| *t == oid.as_slice())?;
    der::Reader::new(values.first().copied()?).expect(0x04)
}

/// TSTInfo's messageImprint: the hash algorithm's OID (whole encoding) and the hashed message.
fn tst_imprint(tst_info: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut r = der::Reader::new(der::Reader::new(tst_info).expect(0x30)?);
    r.expect(0x02)?; // version
    r.expect(0x06)?; // policy
    let mut imprint = der::Reader::new(r.expect(0x30)?);
    let (t, _, algorithm) = imprint.next()?;
    let hashed = imprint.expect(0x04)?;
    if t != 0x30 {
        return None;
    }
    Some((algorithm_oid(algorithm)?, hashed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudsign_asn1::KeyAlgorithm;
    use cloudsign_keys::software::SoftwareKeystore;
    use cloudsign_keys::{KeyBackend, SigningKey};
    use cloudsign_pki::ocsp::CertStatus;
    use cloudsign_pki::{CaNames, IssuingCa};
    use std::sync::Arc;

    const T: i64 = 1_750_000_000;
    const SCHEME: SignAlgorithm = SignAlgorithm::Ecdsa(HashAlgorithm::Sha256);

    /// A root and issuing CA from the project's PKI, a TSA and a signer.
    struct Pki {
        ca: IssuingCa,
        tsa: cloudsign_pki::tsa::Tsa,
        key: Arc<dyn SigningKey>,
        cert: Vec<u8>,
    }

    impl Pki {
        fn new() -> Pki {
            let keystore = SoftwareKeystore::new(&[9u8; 32]).unwrap();
            let names = CaNames { organization: "CAdES test".into(), country: Some("SE".into()) };
            let (root, issuing) = cloudsign_pki::create_hierarchy(&keystore, &names).unwrap();
            let key = keystore.load(cloudsign_pki::CA_KEY, &issuing.key_handle, &cloudsign_pki::ca_key_binding("issuing")).unwrap();
            let ca = IssuingCa::new(&names, key, &issuing.cert, root.cert.der.clone(), None);
            let tsa_key = keystore.generate(KeyAlgorithm::EcdsaP256, "tsa").unwrap().key;
            let tsa_cert = ca.issue_tsa_cert(&names, tsa_key.as_ref(), 30).unwrap();
            let tsa = cloudsign_pki::tsa::Tsa::new(tsa_key, tsa_cert.der, ca.issuing_der.clone(), "1.2.3.4.1").unwrap();
            let key = keystore.generate(KeyAlgorithm::EcdsaP256, "signer").unwrap().key;
            let cert = ca.issue_signing_cert(&names, "Alice Signer", key.as_ref(), 30).unwrap().der;
            Pki { ca, tsa, key, cert }
        }

        fn token(&self, hash: HashAlgorithm, imprint: &[u8], at: i64) -> Vec<u8> {
            let req = cloudsign_pki::tsa::Request { hash, digest: imprint.to_vec(), nonce: None, cert_req: true };
            self.tsa.token(&req, i128::from(at) * 1000).unwrap()
        }

        /// A B-T (no `validation`) or B-LT signature over `content`, detached or attached.
        fn sign(&self, content: &[u8], attached: bool, validation: Option<&ValidationData>) -> Vec<u8> {
            let chain = [self.ca.issuing_der.clone()];
            let p = Params { scheme: SCHEME, certificate: &self.cert, chain: &chain, signing_time: T };
            let prepared = prepare(&digest(HashAlgorithm::Sha256, content), &p).unwrap();
            let signature = self.key.sign_digest(SCHEME, &prepared.to_be_signed).unwrap();
            let (hash, imprint) = prepared.timestamp_imprint(&signature);
            let token = self.token(hash, &imprint, T);
            prepared.finish(&signature, Some(&token), attached.then_some(content), validation)
        }

        /// The B-LT validation data: root and TSA certificates, the CA's CRL and an OCSP
        /// response for the signer.
        fn validation(&self) -> ValidationData {
            let req = cloudsign_pki::ocsp::Request::for_certificate(&self.cert, &self.ca).unwrap();
            ValidationData {
                certificates: vec![self.ca.root_der.clone(), self.tsa.certificate().to_vec()],
                crls: vec![self.ca.crl(&[], T, 86_400, 1).unwrap()],
                ocsp: vec![self.ca.ocsp_response(&req, &[CertStatus::Good], T, 86_400).unwrap()],
            }
        }

        /// Add an archive time-stamp with `hash` at `at`.
        fn archive(&self, cms: &[u8], content_digest: Option<&[u8]>, hash: HashAlgorithm, at: i64) -> Vec<u8> {
            let prepared = archive_imprint(cms, content_digest, hash).unwrap();
            let token = self.token(prepared.hash(), prepared.imprint(), at);
            prepared.finish(&token).unwrap()
        }
    }

    const CONTENT: &[u8] = b"CAdES B-LTA test document: a detached file whose digest the caller streams.\n\
        Long enough that its DER lengths take more than one octet when encapsulated..............\n";

    fn attribute_types(signer: &SignerInfoParts<'_>) -> Vec<String> {
        signer.unsigned_attrs.iter().map(|a| cloudsign_asn1::oid::decode_oid(&parse_attribute(a).unwrap().0[2..]).unwrap()).collect()
    }

    /// The archive-time-stamp-v3 tokens of the first signer, in order.
    fn archive_tokens(cms: &[u8]) -> Vec<Vec<u8>> {
        let sd = parse_signed_data(cms).unwrap();
        let signer = parse_signer_info(sd.signer_infos[0]).unwrap();
        let ats = der::oid(ID_ARCHIVE_TIME_STAMP_V3);
        let attrs = signer.unsigned_attrs.iter().map(|a| parse_attribute(a).unwrap());
        attrs.filter(|(t, _)| *t == ats.as_slice()).map(|(_, v)| v[0].to_vec()).collect()
    }

    /// A token's ats-hash-index-v3 value and its messageImprint.
    fn index_and_imprint(token: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let tsd = parse_signed_data(token).unwrap();
        let tsigner = parse_signer_info(tsd.signer_infos[0]).unwrap();
        let index_oid = der::oid(ID_ATS_HASH_INDEX_V3);
        let found: Vec<_> = tsigner.unsigned_attrs.iter().map(|a| parse_attribute(a).unwrap()).filter(|(t, _)| *t == index_oid).collect();
        assert_eq!(found.len(), 1, "exactly one ats-hash-index-v3");
        assert_eq!(found[0].1.len(), 1, "exactly one value");
        (found[0].1[0].to_vec(), tst_imprint(tsd.econtent.unwrap()).unwrap().1.to_vec())
    }

    /// The four lists of an ATSHashIndexV3: algorithm, certificate, revocation and attribute
    /// value hashes.
    fn index_lists(index: &[u8]) -> (Vec<u8>, usize, usize, Vec<Vec<u8>>) {
        let mut r = der::Reader::new(der::Reader::new(index).expect(0x30).unwrap());
        let algorithm = r.next().unwrap().2.to_vec();
        let certs = elements(r.expect(0x30).unwrap()).unwrap().len();
        let crls = elements(r.expect(0x30).unwrap()).unwrap().len();
        let attrs = elements(r.expect(0x30).unwrap()).unwrap().iter().map(|e| e.to_vec()).collect();
        assert!(r.is_empty());
        (algorithm, certs, crls, attrs)
    }

    /// The DTBS a hashing signer gets is the SET OF signed attributes (tag 0x31) that hashes
    /// to `to_be_signed`, and the SignerInfo's `[0] IMPLICIT` attributes otherwise.
    #[test]
    fn data_to_be_signed_is_the_signed_attributes_set() {
        let pki = Pki::new();
        let chain = [pki.ca.issuing_der.clone()];
        let p = Params { scheme: SCHEME, certificate: &pki.cert, chain: &chain, signing_time: T };
        let content = digest(HashAlgorithm::Sha256, b"content");
        for prepared in [prepare(&content, &p).unwrap(), prepare_pades(&content, &p).unwrap()] {
            let dtbs = prepared.data_to_be_signed();
            assert_eq!(dtbs[0], 0x31);
            assert_eq!(digest(HashAlgorithm::Sha256, &dtbs), prepared.to_be_signed);
            let signature = pki.key.sign_digest(SCHEME, &prepared.to_be_signed).unwrap();
            let cms = prepared.finish(&signature, None, None, None);
            let signer = parse_signer_info(parse_signed_data(&cms).unwrap().signer_infos[0]).unwrap();
            assert_eq!(der::tlv(0x31, signer.signed_attrs.unwrap()), dtbs);
        }
    }

    #[test]
    fn detached_b_lta() {
        let pki = Pki::new();
        let lt = pki.sign(CONTENT, false, Some(&pki.validation()));
        let d = digest(HashAlgorithm::Sha256, CONTENT);
        // A detached signature needs the digest, of the right length and of the signed content.
        assert!(matches!(archive_imprint(&lt, None, HashAlgorithm::Sha256), Err(AdesError::Signature)));
        assert!(matches!(archive_imprint(&lt, Some(&d[1..]), HashAlgorithm::Sha256), Err(AdesError::DigestLength(_))));
        let other = digest(HashAlgorithm::Sha256, b"another document");
        assert!(matches!(archive_imprint(&lt, Some(&other), HashAlgorithm::Sha256), Err(AdesError::Signature)));
        // A token over something else is refused.
        let prepared = archive_imprint(&lt, Some(&d), HashAlgorithm::Sha256).unwrap();
        let wrong = pki.token(HashAlgorithm::Sha256, &[0; 32], T);
        assert!(matches!(prepared.finish(&wrong), Err(AdesError::Signature)));
        let prepared = archive_imprint(&lt, Some(&d), HashAlgorithm::Sha256).unwrap();
        let wrong_hash = pki.token(HashAlgorithm::Sha384, &[0; 48], T);
        assert!(matches!(prepared.finish(&wrong_hash), Err(AdesError::Signature)));

        let prepared = archive_imprint(&lt, Some(&d), HashAlgorithm::Sha256).unwrap();
        let imprint = prepared.imprint().to_vec();
        let token = pki.token(HashAlgorithm::Sha256, &imprint, T + 60);
        let lta = prepared.finish(&token).unwrap();

        // Everything but the new attribute keeps its encoding.
        let (before, after) = (parse_signed_data(&lt).unwrap(), parse_signed_data(&lta).unwrap());
        assert_eq!(before.head, after.head);
        let (s0, s1) = (parse_signer_info(before.signer_infos[0]).unwrap(), parse_signer_info(after.signer_infos[0]).unwrap());
        assert_eq!(s0.signed_fields, s1.signed_fields);
        assert_eq!(s0.unsigned_attrs[..], s1.unsigned_attrs[..1]);
        assert_eq!(attribute_types(&s1), [ID_SIGNATURE_TIME_STAMP, ID_ARCHIVE_TIME_STAMP_V3]);
        // The token: the imprint asked for, the index as its single unsigned attribute, the rest
        // of the token untouched.
        let tokens = archive_tokens(&lta);
        assert_eq!(tokens.len(), 1);
        let (index, tst) = index_and_imprint(&tokens[0]);
        assert_eq!(tst, imprint);
        let (t0, t1) = (parse_signed_data(&token).unwrap(), parse_signed_data(&tokens[0]).unwrap());
        assert_eq!(t0.head, t1.head);
        assert_eq!(
            parse_signer_info(t0.signer_infos[0]).unwrap().signed_fields,
            parse_signer_info(t1.signer_infos[0]).unwrap().signed_fields
        );
        // Signer, issuing CA, root, TSA; CRL and OCSP; the signature time-stamp.
        let (algorithm, certs, crls, attrs) = index_lists(&index);
        assert_eq!(algorithm, der::algorithm(HashAlgorithm::Sha256.oid()));
        assert_eq!((certs, crls, attrs.len()), (4, 2, 1));
        let sig_ts = parse_attribute(s1.unsigned_attrs[0]).unwrap();
        assert_eq!(attrs[0], der::octets(&digest(HashAlgorithm::Sha256, &[sig_ts.0, sig_ts.1[0]].concat())));
        // The imprint by hand, §5.5.3 steps 1 to 4.
        let input = [der::oid(ID_DATA), d.clone(), s1.signed_fields.to_vec(), index].concat();
        assert_eq!(imprint, digest(HashAlgorithm::Sha256, &input));

        // Renewal: the next index covers the first archive time-stamp as an attribute value.
        let renewal = archive_imprint(&lta, Some(&d), HashAlgorithm::Sha256).unwrap();
        let (_, _, _, attrs) = index_lists(&renewal.index);
        let ats = der::oid(ID_ARCHIVE_TIME_STAMP_V3);
        assert_eq!(attrs[1], der::octets(&digest(HashAlgorithm::Sha256, &[ats.as_slice(), &tokens[0]].concat())));
        // The token already carries an index: refused.
        assert!(matches!(renewal.finish(&tokens[0]), Err(AdesError::Signature)));
    }

    #[test]
    fn attached_b_lta_renewed_with_other_hashes() {
        let pki = Pki::new();
        let lt = pki.sign(CONTENT, true, Some(&pki.validation()));
        // Encapsulated content: the digest is optional, and checked when given.
        let bad = digest(HashAlgorithm::Sha384, b"another document");
        assert!(matches!(archive_imprint(&lt, Some(&bad), HashAlgorithm::Sha384), Err(AdesError::Signature)));
        let lta1 = pki.archive(&lt, Some(&digest(HashAlgorithm::Sha384, CONTENT)), HashAlgorithm::Sha384, T + 60);
        // Before the renewal: a newer CRL joins SignedData.crls; the TSA certificate is already there.
        let renewal_data = ValidationData {
            certificates: vec![pki.tsa.certificate().to_vec()],
            crls: vec![pki.ca.crl(&[], T + 3600, 86_400, 2).unwrap()],
            ocsp: vec![],
        };
        let prepared = archive_imprint_with(&lta1, None, HashAlgorithm::Sha512, Some(&renewal_data)).unwrap();
        let token = pki.token(HashAlgorithm::Sha512, prepared.imprint(), T + 7200);
        let lta2 = prepared.finish(&token).unwrap();

        let sd = parse_signed_data(&lta2).unwrap();
        assert_eq!(sd.econtent, Some(CONTENT));
        assert_eq!(sd.version, der::small_uint(5));
        let algorithms: Vec<_> = sd.digest_algorithms.iter().map(|a| a.to_vec()).collect();
        for h in [HashAlgorithm::Sha256, HashAlgorithm::Sha384, HashAlgorithm::Sha512] {
            assert!(algorithms.contains(&der::algorithm(h.oid())), "{h:?} in digestAlgorithms");
        }
        assert_eq!((sd.certificates.as_ref().unwrap().len(), sd.crls.as_ref().unwrap().len()), (4, 3));
        let signer = parse_signer_info(sd.signer_infos[0]).unwrap();
        assert_eq!(attribute_types(&signer), [ID_SIGNATURE_TIME_STAMP, ID_ARCHIVE_TIME_STAMP_V3, ID_ARCHIVE_TIME_STAMP_V3]);
        // The first archive time-stamp is unchanged; the second covers it.
        let first = &parse_signer_info(parse_signed_data(&lta1).unwrap().signer_infos[0]).unwrap().unsigned_attrs[1].to_vec();
        assert_eq!(signer.unsigned_attrs[1], first.as_slice());
        let tokens = archive_tokens(&lta2);
        let (index1, _) = index_and_imprint(&tokens[0]);
        let (index2, _) = index_and_imprint(&tokens[1]);
        let (alg1, c1, r1, a1) = index_lists(&index1);
        let (alg2, c2, r2, a2) = index_lists(&index2);
        assert_eq!((alg1, c1, r1, a1.len()), (der::algorithm(HashAlgorithm::Sha384.oid()), 4, 2, 1));
        assert_eq!((alg2, c2, r2, a2.len()), (der::algorithm(HashAlgorithm::Sha512.oid()), 4, 3, 2));
    }

    #[test]
    fn b_t_augmented_to_b_lta() {
        // No certificates beyond the chain and no crls field yet: the archive step adds them,
        // OCSP making the SignedData version 5.
        let pki = Pki::new();
        let t = pki.sign(CONTENT, false, None);
        let before = parse_signed_data(&t).unwrap();
        assert!(before.crls.is_none());
        assert_eq!(before.version, der::small_uint(1));
        let d = digest(HashAlgorithm::Sha256, CONTENT);
        let prepared = archive_imprint_with(&t, Some(&d), HashAlgorithm::Sha256, Some(&pki.validation())).unwrap();
        let token = pki.token(HashAlgorithm::Sha256, prepared.imprint(), T + 60);
        let lta = prepared.finish(&token).unwrap();
        let after = parse_signed_data(&lta).unwrap();
        assert_eq!(after.version, der::small_uint(5));
        assert_eq!((after.certificates.unwrap().len(), after.crls.unwrap().len()), (4, 2));
        assert_eq!(after.encap, before.encap);
    }

    /// Writes B-LTA samples for `tests/cades_ats_check.py` and `openssl cms -verify` into
    /// `$CADES_SAMPLES`: `CADES_SAMPLES=dir cargo test -p cloudsign-ades cades::tests::write_samples -- --ignored`.
    #[test]
    #[ignore]
    fn write_samples() {
        let Ok(dir) = std::env::var("CADES_SAMPLES") else { return };
        let dir = std::path::Path::new(&dir);
        std::fs::create_dir_all(dir).unwrap();
        let pki = Pki::new();
        std::fs::write(dir.join("root.pem"), cloudsign_pki::pem_certificate(&pki.ca.root_der)).unwrap();
        std::fs::write(dir.join("content.bin"), CONTENT).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let d = digest(HashAlgorithm::Sha256, CONTENT);
        let lt = pki.sign(CONTENT, false, Some(&pki.validation()));
        std::fs::write(dir.join("detached-lt.p7s"), &lt).unwrap();
        let lta = pki.archive(&lt, Some(&d), HashAlgorithm::Sha256, now);
        std::fs::write(dir.join("detached-lta.p7s"), &lta).unwrap();
        let lta2 = pki.archive(&lta, Some(&digest(HashAlgorithm::Sha512, CONTENT)), HashAlgorithm::Sha512, now + 1);
        std::fs::write(dir.join("detached-lta2.p7s"), &lta2).unwrap();
        let attached = pki.sign(CONTENT, true, Some(&pki.validation()));
        let attached = pki.archive(&attached, None, HashAlgorithm::Sha384, now);
        let renewal_data = ValidationData { certificates: vec![], crls: vec![pki.ca.crl(&[], now, 86_400, 2).unwrap()], ocsp: vec![] };
        let prepared = archive_imprint_with(&attached, None, HashAlgorithm::Sha256, Some(&renewal_data)).unwrap();
        let token = pki.token(HashAlgorithm::Sha256, prepared.imprint(), now + 1);
        std::fs::write(dir.join("attached-lta2.p7s"), prepared.finish(&token).unwrap()).unwrap();
        let t = pki.sign(CONTENT, false, None);
        let prepared = archive_imprint_with(&t, Some(&d), HashAlgorithm::Sha256, Some(&pki.validation())).unwrap();
        let token = pki.token(HashAlgorithm::Sha256, prepared.imprint(), now);
        std::fs::write(dir.join("detached-t-to-lta.p7s"), prepared.finish(&token).unwrap()).unwrap();
    }
}
