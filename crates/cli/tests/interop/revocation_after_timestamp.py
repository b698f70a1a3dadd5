"""Independent check (pyHanko's PDF reader, asn1crypto) that the validation data a PAdES B-LT
signature carries in its DSS was made after the signature time-stamp: every OCSP response's
producedAt and every CRL's thisUpdate is at or after the time-stamp's genTime (EN 319 102-1
freshness against the best-signature-time).

usage: revocation_after_timestamp.py SIGNED.pdf
"""
import sys

from asn1crypto import crl, ocsp
from pyhanko.pdf_utils.reader import PdfFileReader

with open(sys.argv[1], "rb") as f:
    reader = PdfFileReader(f)
    signature = reader.embedded_regular_signatures[0]
    attrs = signature.signer_info["unsigned_attrs"]
    tokens = [a["values"][0] for a in attrs if a["type"].native == "signature_time_stamp_token"]
    assert tokens, "no signature time-stamp"
    gen_time = tokens[0]["content"]["encap_content_info"]["content"].parsed["gen_time"].native
    dss = reader.root["/DSS"]
    produced = [ocsp.OCSPResponse.load(s.get_object().data).basic_ocsp_response["tbs_response_data"]["produced_at"].native
                for s in dss["/OCSPs"]]
    updated = [crl.CertificateList.load(s.get_object().data)["tbs_cert_list"]["this_update"].native for s in dss["/CRLs"]]
    assert produced and updated, "the DSS holds no OCSP response or no CRL"
    for t in produced + updated:
        assert t >= gen_time, f"validation data from {t} predates the signature time-stamp {gen_time}"
    print(f"fresh: time-stamp {gen_time}, OCSP {produced}, CRLs {updated}")
