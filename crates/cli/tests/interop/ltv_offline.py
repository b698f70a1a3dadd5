"""Offline long-term validation with pyHanko, and the altered copies of a PAdES file that the
ltv_public_url tests need.

usage:
  ltv_offline.py adesverify [pyhanko sign adesverify options] FILE
      `pyhanko sign adesverify` exactly as the CLI runs it (same policy, same output), but told
      to use only the validation data it has: the file's DSS and the signatures' own. The CLI
      has no switch for that: its adesverify fetches revocation data online for the validation
      at the current time (RevocationInfoGatheringSpec's default NO_HISTORICAL_FETCH,
      pyhanko/sign/validation/policy_decl.py), and for OCSP it fetches first:
      pyhanko-certvalidator's RevinfoManager.async_retrieve_ocsps (revinfo/manager.py) asks the
      responder named in the certificate and, when that fails, raises OCSPFetchError before the
      locally known responses (the DSS's) are looked at. (CRLs it takes from the DSS first,
      revinfo/validate_crl.py.) So offline, a certificate whose only embedded status is an OCSP
      response has "no revocation information". Here fetching is off (LOCAL_ONLY), and any
      attempt at an HTTP connection fails the run, so a TRUSTED result can only come from
      embedded data.
  ltv_offline.py strip-dss IN OUT
      Append an incremental update that removes /DSS from the catalog.
  ltv_offline.py replace-revinfo IN OUT [--ocsp FILE]... [--crl FILE]...
      Append an incremental update whose DSS keeps the certificates but holds only the given
      OCSP responses and CRLs (DER): revocation data of other certificates.
  ltv_offline.py drop-crls IN OUT
      Append an incremental update whose DSS keeps the certificates and OCSP responses but no
      CRL: nothing is left about the CA certificates, which name only a CRL.
  ltv_offline.py drop-tsa-revinfo IN OUT
      Append an incremental update whose DSS keeps the certificates, and the OCSP responses and
      CRLs but those about a time-stamping authority's certificate (the signer certificates of
      the signature time-stamp tokens and document time-stamps): its OCSP responses and the
      CRLs of its issuer. The signer's OCSP response and the root's CRL stay, so the signer's
      revocation data is all there, the TSA's is not.
"""
import sys


def adesverify(args):
    import aiohttp

    def no_network(*_a, **_k):
        raise RuntimeError("ltv_offline: an HTTP connection was attempted in an offline validation")

    aiohttp.ClientSession.__init__ = no_network

    import pyhanko.cli.commands.validation.validate as cli_validate
    from pyhanko.sign.validation.policy_decl import (
        RevinfoOnlineFetchingRule,
        RevocationInfoGatheringSpec,
        SignatureValidationSpec,
    )

    def offline_spec(*a, **k):
        k["revinfo_gathering_policy"] = RevocationInfoGatheringSpec(RevinfoOnlineFetchingRule.LOCAL_ONLY)
        return SignatureValidationSpec(*a, **k)

    cli_validate.SignatureValidationSpec = offline_spec
    from pyhanko.cli import cli_root

    sys.argv = ["pyhanko", "sign", "adesverify"] + args
    cli_root()


def rewrite(src, dst, change):
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    with open(src, "rb") as f:
        writer = IncrementalPdfFileWriter(f)
        change(writer)
        writer.update_root()
        with open(dst, "wb") as out:
            writer.write(out)


def strip_dss(writer):
    assert "/DSS" in writer.root, "the file has no DSS"
    del writer.root["/DSS"]


def replace_revinfo(ocsps, crls):
    from pyhanko.pdf_utils import generic

    def change(writer):
        old = writer.root["/DSS"]
        streams = lambda items: generic.ArrayObject(
            writer.add_object(generic.StreamObject(stream_data=open(p, "rb").read())) for p in items
        )
        dss = generic.DictionaryObject({generic.NameObject("/Certs"): old["/Certs"]})
        dss[generic.NameObject("/OCSPs")] = streams(ocsps)
        dss[generic.NameObject("/CRLs")] = streams(crls)
        writer.root[generic.NameObject("/DSS")] = writer.add_object(dss)

    return change


def drop_crls(writer):
    from pyhanko.pdf_utils import generic

    old = writer.root["/DSS"]
    assert len(old["/CRLs"]) > 0, "the DSS has no CRL"
    dss = generic.DictionaryObject({generic.NameObject(k): old.raw_get(k) for k in ("/Certs", "/OCSPs")})
    writer.root[generic.NameObject("/DSS")] = writer.add_object(dss)


def drop_tsa_revinfo(writer):
    from asn1crypto import cms, crl, ocsp
    from pyhanko.pdf_utils import generic

    tsa_serials, tsa_issuers = set(), set()

    def add_signer(signer):
        sid = signer["sid"].chosen
        if isinstance(sid, cms.IssuerAndSerialNumber):
            tsa_serials.add(sid["serial_number"].native)
            tsa_issuers.add(sid["issuer"].dump())

    def add_token(token):
        for signer in token["content"]["signer_infos"]:
            add_signer(signer)

    for sig in writer.prev.embedded_signatures:
        if sig.sig_object.get("/Type") == "/DocTimeStamp":
            add_signer(sig.signer_info)
        else:
            for attr in sig.signer_info["unsigned_attrs"] or []:
                if attr["type"].native == "signature_time_stamp_token":
                    for token in attr["values"]:
                        add_token(token)
    assert tsa_serials, "the file has no time-stamp"
    old = writer.root["/DSS"]
    kept = []
    for ref in old["/OCSPs"]:
        data = ref.get_object().data
        basic = ocsp.OCSPResponse.load(data)["response_bytes"]["response"].parsed
        serials = {r["cert_id"]["serial_number"].native for r in basic["tbs_response_data"]["responses"]}
        if not serials & tsa_serials:
            kept.append(data)
    # (signDoc's DSS may have no OCSP response for the TSA: its issuer's CRL answers then.)
    crls = [ref.get_object().data for ref in old["/CRLs"]]
    kept_crls = [d for d in crls if crl.CertificateList.load(d)["tbs_cert_list"]["issuer"].dump() not in tsa_issuers]
    assert len(kept_crls) < len(crls), "the DSS has no CRL of the TSA's issuer"
    dss = generic.DictionaryObject({generic.NameObject("/Certs"): old.raw_get("/Certs")})
    for key, items in (("/OCSPs", kept), ("/CRLs", kept_crls)):
        dss[generic.NameObject(key)] = generic.ArrayObject(
            writer.add_object(generic.StreamObject(stream_data=d)) for d in items
        )
    writer.root[generic.NameObject("/DSS")] = writer.add_object(dss)


def main():
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "adesverify":
        adesverify(rest)
    elif cmd == "strip-dss":
        rewrite(rest[0], rest[1], strip_dss)
        print("stripped")
    elif cmd == "drop-tsa-revinfo":
        rewrite(rest[0], rest[1], drop_tsa_revinfo)
        print("dropped")
    elif cmd == "drop-crls":
        rewrite(rest[0], rest[1], drop_crls)
        print("dropped")
    elif cmd == "replace-revinfo":
        ocsps, crls, i = [], [], 2
        while i < len(rest):
            (ocsps if rest[i] == "--ocsp" else crls).append(rest[i + 1])
            i += 2
        rewrite(rest[0], rest[1], replace_revinfo(ocsps, crls))
        print("replaced")
    else:
        sys.exit(__doc__)


main()
