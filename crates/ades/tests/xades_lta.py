"""Independent check of the XAdES B-LTA archive time-stamps in the samples
`cargo test -p cloudsign-ades xades::tests::write_samples -- --ignored` writes into $XADES_SAMPLES:

    .venv/bin/python crates/ades/tests/xades_lta.py "$XADES_SAMPLES"

For every xadesv141:ArchiveTimeStamp of every *-lta.xml it rebuilds the time-stamp input of
ETSI EN 319 132-1 §5.5.2.2 (TS 101 903 v1.4.1 §8.2.1) from the document with lxml, in place
(no fragments re-parsed), each part canonicalized with the algorithm the ArchiveTimeStamp names:
  1. the output of each ds:Reference of ds:SignedInfo in order (URI="" with the enveloped
     transform: the document without the signature and without comments; "#id": that subtree
     without comments, or its base64 content for the base64 transform; anything else: the
     detached file's bytes) - checked against DigestValue;
  2. ds:SignedInfo, ds:SignatureValue, ds:KeyInfo;
  3. the children of xades:UnsignedSignatureProperties before this ArchiveTimeStamp, in order;
  4. every ds:Object of the signature except the one holding xades:QualifyingProperties.
It hashes the input with the token's messageImprint algorithm, compares with the TSTInfo
messageImprint (asn1crypto), and verifies the token with
`openssl ts -verify -digest <hex> -in <token> -token_in -CAfile ca.pem -untrusted issuing.pem`.
Exit status 1 on any mismatch."""
import base64, glob, hashlib, os, subprocess, sys, tempfile
from lxml import etree
from asn1crypto import cms, tsp

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
XADES141 = "http://uri.etsi.org/01903/v1.4.1#"
ENVELOPED = DS + "enveloped-signature"
BASE64 = DS + "base64"
C14N = {
    "http://www.w3.org/2001/10/xml-exc-c14n#": dict(exclusive=True, with_comments=False),
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments": dict(exclusive=True, with_comments=True),
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315": dict(exclusive=False, with_comments=False),
}
DIGEST = {
    "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
}


def q(ns, name):
    return "{%s}%s" % (ns, name)


def c14n(el, exclusive=True, with_comments=False):
    return etree.tostring(el, method="c14n", exclusive=exclusive, with_comments=with_comments)


def find_signature(root):
    """The signature: the root element, or the last ds:Signature child of the root."""
    return root if root.tag == q(DS, "Signature") else [s for s in root if s.tag == q(DS, "Signature")][-1]


def without(raw):
    """The document without the signature (enveloped-signature transform), canonical without
    comments; from a fresh parse, so the caller's tree keeps its signature."""
    doc = etree.fromstring(raw, etree.XMLParser(resolve_entities=True)).getroottree()
    target = find_signature(doc.getroot())
    parent = target.getparent()
    # The tail text after the signature is the parent's content, not the signature's.
    prev = target.getprevious()
    if target.tail:
        if prev is not None:
            prev.tail = (prev.tail or "") + target.tail
        else:
            parent.text = (parent.text or "") + target.tail
    parent.remove(target)
    return etree.tostring(doc, method="c14n", exclusive=True, with_comments=False)


def reference_output(raw, doc, sig, ref, detached):
    uri = ref.get("URI")
    transforms = [t.get("Algorithm") for t in ref.findall(q(DS, "Transforms") + "/" + q(DS, "Transform"))]
    if uri == "":
        assert transforms[0] == ENVELOPED and transforms[1:] and transforms[-1] in C14N, transforms
        return without(raw)
    if uri.startswith("#"):
        (target,) = doc.getroottree().xpath("//*[@Id=$id]", id=uri[1:])
        if transforms == [BASE64]:
            return base64.b64decode("".join(target.itertext()))
        assert len(transforms) == 1 and transforms[0] in C14N, transforms
        return c14n(target, **C14N[transforms[0]])
    assert not transforms, transforms
    return detached(uri)


def check_file(path, d):
    name = os.path.basename(path)
    raw = open(path, "rb").read()
    parser = etree.XMLParser(resolve_entities=True, remove_blank_text=False)
    root = etree.fromstring(raw, parser)
    sig = find_signature(root)
    detached = lambda uri: open(os.path.join(d, uri.replace("%20", " ")), "rb").read()
    usp = sig.find(".//" + q(XADES, "UnsignedSignatureProperties"))
    props = [p for p in usp if isinstance(p.tag, str)]
    atss = [p for p in props if p.tag == q(XADES141, "ArchiveTimeStamp")]
    assert atss, "no ArchiveTimeStamp"
    ok = True
    for ats in atss:
        method = ats.find(q(DS, "CanonicalizationMethod")).get("Algorithm")
        opts = C14N[method]
        token = base64.b64decode(ats.find(q(XADES, "EncapsulatedTimeStamp")).text)
        tst = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
        imprint = tst["message_imprint"]
        hname = imprint["hash_algorithm"]["algorithm"].native  # 'sha256', ...
        h = hashlib.new(hname)
        parts = []
        for ref in sig.find(q(DS, "SignedInfo")).findall(q(DS, "Reference")):
            out = reference_output(raw, root, sig, ref, detached)
            alg = DIGEST[ref.find(q(DS, "DigestMethod")).get("Algorithm")]
            if base64.b64encode(hashlib.new(alg, out).digest()).decode() != "".join(ref.find(q(DS, "DigestValue")).text.split()):
                print(f"{name:34} FAIL reference {ref.get('URI')!r} digest")
                return False
            parts.append(("ref " + ref.get("URI"), out))
        for tag in ("SignedInfo", "SignatureValue", "KeyInfo"):
            el = sig.find(q(DS, tag))
            if el is not None:
                parts.append((tag, c14n(el, **opts)))
        for p in props:
            if p is ats:
                break
            parts.append((etree.QName(p).localname, c14n(p, **opts)))
        for obj in sig.findall(q(DS, "Object")):
            if obj.find(q(XADES, "QualifyingProperties")) is None:
                parts.append(("Object " + str(obj.get("Id")), c14n(obj, **opts)))
        for _, b in parts:
            h.update(b)
        ours = h.hexdigest()
        theirs = imprint["hashed_message"].native.hex()
        with tempfile.NamedTemporaryFile(suffix=".tst") as f:
            f.write(token)
            f.flush()
            r = subprocess.run(
                ["openssl", "ts", "-verify", "-digest", ours, "-in", f.name, "-token_in",
                 "-CAfile", os.path.join(d, "ca.pem"), "-untrusted", os.path.join(d, "issuing.pem")],
                capture_output=True, text=True)
        verdict = [l for l in (r.stdout + r.stderr).splitlines() if "Verification" in l or "error" in l.lower()]
        good = ours == theirs and r.returncode == 0 and "Verification: OK" in verdict
        ok &= good
        print(f"{name:34} {ats.get('Id').split('-')[-1]} {hname} {'OK  ' if good else 'FAIL'} imprint {'==' if ours == theirs else '!='} TSTInfo; "
              f"openssl: {'; '.join(verdict) or r.returncode}; parts: {', '.join(k for k, _ in parts)}")
    return ok


d = sys.argv[1]
results = [check_file(f, d) for f in sorted(glob.glob(os.path.join(d, "*-lta.xml")))]
print(f"{sum(results)}/{len(results)} files OK")
sys.exit(0 if all(results) else 1)
