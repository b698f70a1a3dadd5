#!/usr/bin/env python3
"""Independent check of CAdES archive-time-stamp-v3 attributes (ETSI EN 319 122-1 V1.3.1 §5.5.2-§5.5.3).

For every archive-time-stamp-v3 (0.4.0.1733.2.4) of the first SignerInfo of a CMS, this script
recomputes, with asn1crypto and hashlib only (nothing from the Rust code), the ATSv3 message imprint

    H( eContentType ‖ H(signed data) ‖ version ‖ sid ‖ digestAlgorithm ‖ signedAttrs ‖
       signatureAlgorithm ‖ signature ‖ ATSHashIndexV3 )

with H the time-stamp's messageImprint algorithm, and compares it with the token's TSTInfo. It checks
that the token carries exactly one ats-hash-index-v3 (0.4.0.19122.1.5) unsigned attribute with one
DER value, that every entry of the index names an existing certificate / RevocationInfoChoice /
(attrType ‖ AttributeValue) (§5.5.2 validity), and, for the latest archive time-stamp, that the
index is exactly the one of the current CMS. With --ca it runs
`openssl ts -verify -digest <recomputed imprint> -token_in` on every archive token and
`openssl cms -verify` on the whole signature.

usage: cades_ats_check.py SIGNATURE.p7s [CONTENT] [--ca ROOT.pem] [--openssl openssl]
Exit status 0 when every check passes.

Samples (root.pem, content.bin, detached-lta.p7s, detached-lta2.p7s, attached-lta2.p7s,
detached-t-to-lta.p7s) come from
    CADES_SAMPLES=/tmp/cades cargo test -p cloudsign-ades cades::tests::write_samples -- --ignored
then, e.g.
    .venv/bin/python crates/ades/tests/cades_ats_check.py /tmp/cades/detached-lta2.p7s /tmp/cades/content.bin --ca /tmp/cades/root.pem
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile

from asn1crypto import algos, cms, core, tsp

ATS_V3 = "0.4.0.1733.2.4"
ATS_HASH_INDEX_V3 = "0.4.0.19122.1.5"
SIGNATURE_TIME_STAMP = "1.2.840.113549.1.9.16.2.14"


class HashAlgorithmIdentifier(core.Sequence):
    # asn1crypto's DigestAlgorithm writes NULL parameters for SHA-2; RFC 5754 §2 says to generate
    # them absent (and to accept both), which this encodes when re-building the index.
    _fields = [("algorithm", algos.DigestAlgorithmId), ("parameters", core.Any, {"optional": True})]


class ATSHashIndexV3(core.Sequence):
    # Annex D of EN 319 122-1: hashIndAlgorithm has no DEFAULT.
    _fields = [
        ("hash_ind_algorithm", HashAlgorithmIdentifier),
        ("certificates_hash_index", core.SequenceOf, {"spec": core.OctetString}),
        ("crls_hash_index", core.SequenceOf, {"spec": core.OctetString}),
        ("unsigned_attr_values_hash_index", core.SequenceOf, {"spec": core.OctetString}),
    ]


def tlvs(data):
    """Split DER content into whole TLV encodings (definite lengths, single-byte tags)."""
    out, i = [], 0
    while i < len(data):
        start = i
        i += 1
        first = data[i]
        i += 1
        if first < 0x80:
            length = first
        else:
            n = first & 0x7F
            length = int.from_bytes(data[i : i + n], "big")
            i += n
        i += length
        if i > len(data):
            raise ValueError("truncated element")
        out.append(data[start:i])
    return out


def attribute_values(attr):
    """(attrType TLV, [AttributeValue TLVs]) of a parsed Attribute, from its original bytes."""
    seq = tlvs(attr.dump())[0]
    inner = tlvs(seq[2 + (seq[1] & 0x7F if seq[1] & 0x80 else 0) :])
    attr_type, values = inner
    values_body = values[2 + (values[1] & 0x7F if values[1] & 0x80 else 0) :]
    return attr_type, tlvs(values_body)


failures = []


def check(ok, what):
    print(("  OK    " if ok else "  FAIL  ") + what)
    if not ok:
        failures.append(what)
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("signature")
    ap.add_argument("content", nargs="?")
    ap.add_argument("--ca", help="trust anchor (PEM) for openssl")
    ap.add_argument("--openssl", default="openssl")
    args = ap.parse_args()

    raw = open(args.signature, "rb").read()
    ci = cms.ContentInfo.load(raw)
    check(ci["content_type"].native == "signed_data", "ContentInfo is SignedData")
    sd = ci["content"]
    eci = sd["encap_content_info"]
    content_type_tlv = eci["content_type"].dump()
    econtent = eci["content"].native if eci["content"].native is not None else None
    content = open(args.content, "rb").read() if args.content else None
    if econtent is not None and content is not None:
        check(econtent == content, "encapsulated content equals the given file")
    signed_content = econtent if econtent is not None else content
    if signed_content is None:
        sys.exit("detached signature: give the content file")
    print(f"{args.signature}: {'attached' if econtent is not None else 'detached'}, {len(signed_content)} content octets")

    certs = [] if isinstance(sd["certificates"], core.Void) else tlvs(sd["certificates"].contents)
    crls = [] if isinstance(sd["crls"], core.Void) else tlvs(sd["crls"].contents)
    si = sd["signer_infos"][0]
    unsigned = [] if isinstance(si["unsigned_attrs"], core.Void) else list(si["unsigned_attrs"])
    print(f"  certificates: {len(certs)}, RevocationInfoChoices: {len(crls)}, unsigned attributes: "
          + ", ".join(a["type"].dotted for a in unsigned))

    # Step 3 fields, each with its original tag, length and value.
    signer_fields = b"".join(
        si[f].dump() for f in ("version", "sid", "digest_algorithm", "signed_attrs", "signature_algorithm", "signature")
    )
    check(si.contents.startswith(signer_fields), "SignerInfo fields version..signature are the start of the SignerInfo")
    digest_algorithms = {a["algorithm"].native for a in sd["digest_algorithms"]}

    # The signature time-stamp covers the signature value (B-T, §5.3), for good measure.
    for attr in unsigned:
        if attr["type"].dotted == SIGNATURE_TIME_STAMP:
            tok = cms.ContentInfo.load(attribute_values(attr)[1][0])
            mi = tok["content"]["encap_content_info"]["content"].parsed["message_imprint"]
            alg = mi["hash_algorithm"]["algorithm"].native
            check(hashlib.new(alg, si["signature"].native).digest() == mi["hashed_message"].native,
                  "signature-time-stamp imprint is the hash of the signature value")

    ats_positions = [i for i, a in enumerate(unsigned) if a["type"].dotted == ATS_V3]
    check(len(ats_positions) > 0, "at least one archive-time-stamp-v3")
    tmp = tempfile.mkdtemp(prefix="ats-check-")
    for n, pos in enumerate(ats_positions):
        attr = unsigned[pos]
        attr_type, values = attribute_values(attr)
        print(f"archive-time-stamp-v3 #{n + 1} (unsigned attribute {pos}):")
        check(len(values) == 1, "exactly one AttributeValue")
        token_der = values[0]
        token = cms.ContentInfo.load(token_der)
        tsd = token["content"]
        tst = tsd["encap_content_info"]["content"].parsed
        check(isinstance(tst, tsp.TSTInfo), "token content is a TSTInfo")
        mi = tst["message_imprint"]
        alg = mi["hash_algorithm"]["algorithm"].native
        print(f"    hash {alg}, genTime {tst['gen_time'].native}, TSTInfo imprint {mi['hashed_message'].native.hex()}")
        H = lambda b: hashlib.new(alg, b).digest()  # noqa: E731
        if alg not in digest_algorithms:
            print(f"  NOTE  {alg} is not in SignedData.digestAlgorithms (a 'should' of §5.5.3 step 2)")

        tsi = tsd["signer_infos"][0]
        t_unsigned = [] if isinstance(tsi["unsigned_attrs"], core.Void) else list(tsi["unsigned_attrs"])
        idx_attrs = [a for a in t_unsigned if a["type"].dotted == ATS_HASH_INDEX_V3]
        if not check(len(idx_attrs) == 1, "token SignerInfo has exactly one ats-hash-index-v3 unsigned attribute"):
            continue
        _, idx_values = attribute_values(idx_attrs[0])
        check(len(idx_values) == 1, "ats-hash-index-v3 has exactly one value")
        index_der = idx_values[0]
        index = ATSHashIndexV3.load(index_der)
        check(index.dump(force=True) == index_der, "ATSHashIndexV3 is DER (re-encodes identically)")
        check(index["hash_ind_algorithm"]["algorithm"].native == alg, "hashIndAlgorithm is the imprint's algorithm")
        got_certs = [o.native for o in index["certificates_hash_index"]]
        got_crls = [o.native for o in index["crls_hash_index"]]
        got_attrs = [o.native for o in index["unsigned_attr_values_hash_index"]]
        print(f"    index: {len(got_certs)} certificate, {len(got_crls)} revocation, {len(got_attrs)} attribute value hashes")

        # §5.5.2 validity: every entry names an element present now.
        all_attr_hashes = []
        for a in unsigned:
            t, vs = attribute_values(a)
            all_attr_hashes += [H(t + v) for v in vs]
        check(all(h in {H(c) for c in certs} for h in got_certs), "every certificatesHashIndex entry matches a certificate")
        check(all(h in {H(c) for c in crls} for h in got_crls), "every crlsHashIndex entry matches a RevocationInfoChoice")
        check(all(h in all_attr_hashes for h in got_attrs), "every unsignedAttrValuesHashIndex entry matches attrType||value")
        check(H(attr_type + token_der) not in got_attrs, "the index does not cover its own archive time-stamp")
        # The attributes before this one are all covered.
        before = []
        for a in unsigned[:pos]:
            t, vs = attribute_values(a)
            before += [H(t + v) for v in vs]
        check(got_attrs[: len(before)] == before, "the index covers every attribute value before this archive time-stamp, in order")
        if n == len(ats_positions) - 1:
            check(got_certs == [H(c) for c in certs], "latest: certificatesHashIndex is exactly SignedData.certificates")
            check(got_crls == [H(c) for c in crls], "latest: crlsHashIndex is exactly SignedData.crls")
            others = []
            for i, a in enumerate(unsigned):
                if i != pos:
                    t, vs = attribute_values(a)
                    others += [H(t + v) for v in vs]
            check(got_attrs == others, "latest: unsignedAttrValuesHashIndex is exactly every other attribute value, in order")
            expected_index = ATSHashIndexV3(
                {
                    "hash_ind_algorithm": {"algorithm": alg},
                    "certificates_hash_index": [H(c) for c in certs],
                    "crls_hash_index": [H(c) for c in crls],
                    "unsigned_attr_values_hash_index": others,
                }
            ).dump()
            check(expected_index == index_der, "latest: the index re-built from the CMS equals the token's, byte for byte")

        # §5.5.3 message imprint, steps 1-4.
        imprint = H(content_type_tlv + H(signed_content) + signer_fields + index_der)
        print(f"    recomputed imprint {imprint.hex()}")
        check(imprint == mi["hashed_message"].native, "recomputed ATSv3 message imprint equals TSTInfo.messageImprint")

        if args.ca:
            path = os.path.join(tmp, f"ats{n + 1}.tst")
            open(path, "wb").write(token_der)
            cmd = [args.openssl, "ts", "-verify", "-digest", imprint.hex(), "-token_in", "-in", path, "-CAfile", args.ca]
            r = subprocess.run(cmd, capture_output=True, text=True)
            print("    $ " + " ".join(cmd))
            print("      " + (r.stdout + r.stderr).strip().replace("\n", "\n      "))
            check(r.returncode == 0 and "Verification: OK" in r.stdout, "openssl ts -verify of the archive token over the recomputed imprint")

    if args.ca:
        cmd = [args.openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", args.signature, "-CAfile", args.ca,
               "-purpose", "any", "-out", os.devnull]
        if econtent is None:
            cmd[4:4] = ["-content", args.content]
        r = subprocess.run(cmd, capture_output=True, text=True)
        print("$ " + " ".join(cmd))
        print("  " + (r.stdout + r.stderr).strip().replace("\n", "\n  "))
        check(r.returncode == 0 and "Verification successful" in r.stderr, "openssl cms -verify of the B-LTA signature")

    print(f"{args.signature}: {'FAILED: ' + '; '.join(failures) if failures else 'all checks passed'}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
