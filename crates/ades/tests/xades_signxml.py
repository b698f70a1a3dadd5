"""signxml XAdES check of the samples `cargo test -p cloudsign-ades xades::tests::write_samples -- --ignored` writes
into $XADES_SAMPLES: python crates/ades/tests/xades_signxml.py "$XADES_SAMPLES" (signxml 5.2.0).
Known: tricky1 (DTD entities) is refused by signxml; tricky3 (PIs outside the root) fails in signxml
only, which drops top-level PIs from URI="" (xmlsec1 and lxml C14N agree with us).
The *-lta.xml samples (B-LTA) are checked here as XMLDSig/XAdES signatures; their archive
time-stamps by xades_lta.py (signxml does not check xadesv141:ArchiveTimeStamp)."""
import sys, glob, os
from signxml.xades import XAdESVerifier
from signxml import SignatureConfiguration, SignatureMethod
d = sys.argv[1]
ca = os.path.join(d, "ca.pem")
for f in sorted(glob.glob(os.path.join(d, "*-*-*.xml"))):
    name = os.path.basename(f)
    alg = name.split("-")[0]
    cert = open(os.path.join(d, f"{alg}-signer.pem")).read()
    data = open(f, "rb").read()
    resolver = None
    if "-detached-" in name:
        resolver = lambda uri: open(os.path.join(d, uri.replace("%20", " ")), "rb").read()
    try:
        res = XAdESVerifier().verify(data, x509_cert=cert, ca_pem_file=ca, expect_references=2, uri_resolver=resolver)
        kinds = [type(r).__name__ for r in res]
        print(f"{name:28} OK {kinds}")
    except Exception as e:
        print(f"{name:28} FAIL {type(e).__name__}: {e}")
