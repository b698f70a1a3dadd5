"""PAdES B-LT files made by pyHanko over a PKI made here (cryptography), whose DSS holds one OCSP
response for the signer with chosen thisUpdate/nextUpdate: the freshness cases of EN 319 102-1
§5.2.5 that the service itself cannot produce (its responder always answers "now").

usage: stale_revinfo.py IN.pdf DIR
  Writes DIR/root.pem (the trust anchor) and, each signed with a signature time-stamp made
  now (pyHanko's DummyTimeStamper, its TSA's OCSP response in the DSS and fresh):
    DIR/stale.pdf  the signer's OCSP response is from 10 days ago, nextUpdate 9 days ago: issued
                   before the best-signature-time minus its own update interval (stale);
    DIR/fresh.pdf  the OCSP response is from after the time-stamp, nextUpdate in a day.
"""
import datetime
import io
import sys

from asn1crypto import keys as asn1_keys, ocsp as asn1_ocsp, x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
DAY = datetime.timedelta(days=1)


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "stale-test")])


def certificate(cn, key, issuer_cert, issuer_key, extensions):
    b = (
        x509.CertificateBuilder()
        .subject_name(name(cn))
        .issuer_name(issuer_cert.subject if issuer_cert else name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - 60 * DAY)
        .not_valid_after(NOW + 60 * DAY)
    )
    for ext, critical in extensions:
        b = b.add_extension(ext, critical=critical)
    return b.sign(issuer_key or key, hashes.SHA256())


def main():
    src, out = sys.argv[1], sys.argv[2]
    root_key, signer_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    # pyHanko's DummyTimeStamper signs with RSA only.
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ocsp_aia = x509.AuthorityInformationAccess(
        [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier("http://127.0.0.1:9/ocsp"))]
    )
    root = certificate(
        "stale-test root",
        root_key,
        None,
        None,
        [
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (x509.KeyUsage(False, False, False, False, False, True, True, False, False), True),
        ],
    )
    signer = certificate(
        "stale-test signer",
        signer_key,
        root,
        root_key,
        [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.KeyUsage(True, True, False, False, False, False, False, False, False), True),
            (ocsp_aia, False),
        ],
    )
    tsa = certificate(
        "stale-test TSA",
        tsa_key,
        root,
        root_key,
        [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.KeyUsage(True, False, False, False, False, False, False, False, False), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), True),
            (ocsp_aia, False),
        ],
    )
    with open(f"{out}/root.pem", "wb") as f:
        f.write(root.public_bytes(serialization.Encoding.PEM))

    def a_cert(c):
        return asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))

    def a_key(k):
        der = k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        return asn1_keys.PrivateKeyInfo.load(der)

    def ocsp_response(cert, this_update, next_update):
        r = (
            ocsp.OCSPResponseBuilder()
            .add_response(cert, root, hashes.SHA1(), ocsp.OCSPCertStatus.GOOD, this_update, next_update, None, None)
            .responder_id(ocsp.OCSPResponderEncoding.HASH, root)
            .sign(root_key, hashes.SHA256())
        )
        return asn1_ocsp.OCSPResponse.load(r.public_bytes(serialization.Encoding.DER))

    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
    from pyhanko.sign.validation.dss import DocumentSecurityStore
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    # The TSA's status: good, issued after the time-stamps (both files).
    tsa_ocsp = ocsp_response(tsa, NOW + datetime.timedelta(seconds=5), NOW + DAY)
    for label, this_update, next_update in [
        ("stale", NOW - 10 * DAY, NOW - 9 * DAY),
        ("fresh", NOW + datetime.timedelta(seconds=5), NOW + DAY),
    ]:
        signer_obj = signers.SimpleSigner(
            signing_cert=a_cert(signer),
            signing_key=a_key(signer_key),
            cert_registry=SimpleCertificateStore.from_certs([a_cert(root)]),
        )
        stamper = DummyTimeStamper(tsa_cert=a_cert(tsa), tsa_key=a_key(tsa_key), certs_to_embed=[a_cert(root)])
        meta = signers.PdfSignatureMetadata(field_name="Signature1", subfilter=fields.SigSeedSubFilter.PADES)
        with open(src, "rb") as f:
            signed = signers.PdfSigner(meta, signer_obj, timestamper=stamper).sign_pdf(IncrementalPdfFileWriter(f))
        buf = io.BytesIO(signed.getvalue())
        DocumentSecurityStore.add_dss(
            buf, None, certs=[a_cert(signer), a_cert(root), a_cert(tsa)], ocsps=[ocsp_response(signer, this_update, next_update), tsa_ocsp]
        )
        with open(f"{out}/{label}.pdf", "wb") as f:
            f.write(buf.getvalue())
    print("made")


main()
