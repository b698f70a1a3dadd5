//! CAdES B-LTA (ETSI EN 319 122-1 §5.5.3): the archive-time-stamp-v3 attributes of a CMS
//! signature, each checked against the ats-hash-index-v3 its token carries.

use cloudsign_ades::cades::{ID_ARCHIVE_TIME_STAMP_V3, ID_ATS_HASH_INDEX_V3};
use cloudsign_ades::digest;
use cloudsign_asn1::HashAlgorithm;
use cloudsign_asn1::der::Reader;
use cloudsign_asn1::oid::decode_oid;

use crate::cms::{self, SignedData};
use crate::engine::{Context, Timestamp, check_timestamp};
use crate::x509::Certificate;

/// An ATSHashIndexV3 (EN 319 122-1 §5.5.2): the hash algorithm of its lists, the hashes of the
/// certificates, of the revocation data and of the unsigned attribute values it covers.
struct HashIndex {
    hash: HashAlgorithm,
    certificates: Vec<Vec<u8>>,
    crls: Vec<Vec<u8>>,
    attribute_values: Vec<Vec<u8>>,
}

fn parse_index(value: &[u8]) -> Option<HashIndex> {
    let mut r = Reader::new(Reader::new(value).expect(0x30)?);
    // hashIndAlgorithm: an AlgorithmIdentifier (a SEQUENCE starting with an OID); absent means
    // SHA-256 (annex A.2.5's DEFAULT).
    let first_is_algorithm = Reader::new(r.rest()).expect(0x30).is_some_and(|b| Reader::new(b).peek_tag() == Some(0x06));
    let hash = if first_is_algorithm {
        let mut alg = Reader::new(r.expect(0x30)?);
        HashAlgorithm::from_oid(&decode_oid(alg.expect(0x06)?)?)?
    } else {
        HashAlgorithm::Sha256
    };
    let mut list = || -> Option<Vec<Vec<u8>>> {
        let mut l = Reader::new(r.expect(0x30)?);
        let mut out = Vec::new();
        while !l.is_empty() {
            out.push(l.expect(0x04)?.to_vec());
        }
        Some(out)
    };
    let (certificates, crls, attribute_values) = (list()?, list()?, list()?);
    r.is_empty().then_some(HashIndex { hash, certificates, crls, attribute_values })
}

/// Each archive-time-stamp-v3 of the first signer of `sd`, checked: its ats-hash-index-v3 names
/// only certificates, revocation data and unsigned attribute values the signature still has
/// (§5.5.3: later additions are allowed, removals are not), and its token's message imprint is
/// the hash of eContentType, the signed content's hash, the SignerInfo's fields but the
/// unsigned attributes, and the index, each as encoded; then the token as any time-stamp
/// ([`check_timestamp`]). `content_digest` gives the detached content's digest.
pub(crate) fn archive_timestamps(
    sd: &SignedData,
    content_digest: &dyn Fn(HashAlgorithm) -> Option<Vec<u8>>,
    ctx: &Context<'_>,
    pool: &[Certificate],
    embedded: (&[Vec<u8>], &[Vec<u8>]),
) -> Vec<Timestamp> {
    let Some(si) = sd.signers.first() else { return Vec::new() };
    let mut out = Vec::new();
    for token in si.unsigned(ID_ARCHIVE_TIME_STAMP_V3) {
        let index = cms::parse(token).ok().and_then(|t| {
            let values = t.signers.first()?.unsigned(ID_ATS_HASH_INDEX_V3).into_iter().map(<[u8]>::to_vec).collect::<Vec<_>>();
            (values.len() == 1).then(|| values[0].clone())
        });
        let Some(index_der) = index else {
            out.push(Timestamp::unchecked("the archive-time-stamp-v3 token has no single ats-hash-index-v3 (EN 319 122-1 §5.5.3)"));
            continue;
        };
        let Some(index) = parse_index(&index_der) else {
            out.push(Timestamp::unchecked("the ats-hash-index-v3 does not parse"));
            continue;
        };
        let h = |data: &[u8]| digest(index.hash, data);
        let certs: Vec<Vec<u8>> = sd.certificate_choices.iter().map(|c| h(c)).collect();
        let crls: Vec<Vec<u8>> = sd.revocation_choices.iter().map(|c| h(c)).collect();
        let attrs: Vec<Vec<u8>> = si
            .unsigned_attrs_raw
            .iter()
            .flat_map(|(t, values)| values.iter().map(move |v| [t.as_slice(), v].concat()))
            .map(|a| h(&a))
            .collect();
        let missing = [
            ("certificate", &index.certificates, &certs),
            ("revocation data", &index.crls, &crls),
            ("unsigned attribute", &index.attribute_values, &attrs),
        ]
        .into_iter()
        .find(|(_, listed, present)| listed.iter().any(|x| !present.contains(x)));
        if let Some((what, _, _)) = missing {
            out.push(Timestamp::hash_failure(format!(
                "the ats-hash-index-v3 covers a {what} the signature no longer has: the archived data was changed"
            )));
            continue;
        }
        let imprint_input = |hash: HashAlgorithm| {
            let content = content_digest(hash).or_else(|| sd.content.as_ref().map(|c| digest(hash, c))).unwrap_or_default();
            [sd.content_type_der.as_slice(), &content, &si.signed_fields, &index_der].concat()
        };
        out.push(check_timestamp(token, &|hash| digest(hash, &imprint_input(hash)), ctx, pool, embedded));
    }
    out
}
