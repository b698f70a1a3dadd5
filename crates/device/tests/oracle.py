"""An independent device for the protocol tests: Python's hashlib and `cryptography`, not our code.

Usage: oracle.py COMMAND < args.json > result.json. Binary values are base64url without padding,
as in the protocol. Commands:

  vc            {digests}                        -> {code}      the verification code (hashlib)
  keys          {signing: p256|rsa2048, challenge?, same_key?}
                                                 -> {device_pkcs8, device_spki, signing_pkcs8,
                                                     signing_spki, csr?}
  jws           {device_pkcs8, kid, payload}     -> {jws}       compact JWS, ES256 r||s
  verify_jws    {spki, jws}                      -> {ok, payload}
  sign_digests  {signing_pkcs8, scheme, digests} -> {signatures} over precomputed digests
  sign_data     {signing_pkcs8, scheme, data}    -> {signatures} over data (what WebCrypto does)
  cert          {signing_pkcs8}                  -> {cert}      a self-signed certificate
"""

import base64
import datetime
import hashlib
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import AttributeOID, NameOID


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def load(pkcs8_b64u):
    return serialization.load_der_private_key(unb64u(pkcs8_b64u), password=None)


def pkcs8(key):
    return b64u(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def spki(key):
    return b64u(key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


def raw_ecdsa(key, der_sig):
    r, s = utils.decode_dss_signature(der_sig)
    n = (key.curve.key_size + 7) // 8
    return r.to_bytes(n, "big") + s.to_bytes(n, "big")


def sign(key, scheme, value, prehashed):
    """scheme: es256, es384, rs256, ps256, ..."""
    h = HASHES["sha" + scheme[2:]]()
    alg = utils.Prehashed(h) if prehashed else h
    if scheme.startswith("es"):
        return raw_ecdsa(key, key.sign(value, ec.ECDSA(alg)))
    if scheme.startswith("rs"):
        return key.sign(value, padding.PKCS1v15(), alg)
    if scheme.startswith("ps"):
        return key.sign(value, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), alg)
    raise ValueError(scheme)


def main():
    cmd = sys.argv[1]
    args = json.loads(sys.stdin.read() or "{}")
    out = {}
    if cmd == "vc":
        ds = sorted(unb64u(d) for d in args["digests"])
        h = hashlib.sha256(b"".join(ds)).digest()
        out["code"] = "%04d" % (int.from_bytes(h[-2:], "big") % 10000)
    elif cmd == "keys":
        device = ec.generate_private_key(ec.SECP256R1())
        if args.get("same_key"):
            signing = device
        elif args["signing"] == "rsa2048":
            signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            signing = ec.generate_private_key(ec.SECP256R1())
        out.update(device_pkcs8=pkcs8(device), device_spki=spki(device), signing_pkcs8=pkcs8(signing), signing_spki=spki(signing))
        if "challenge" in args:
            builder = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")]))
                # RFC 2985 §5.4.1; cryptography writes it as a UTF8String.
                .add_attribute(AttributeOID.CHALLENGE_PASSWORD, args["challenge"].encode())
            )
            csr = builder.sign(signing, hashes.SHA256())
            out["csr"] = b64u(csr.public_bytes(serialization.Encoding.DER))
    elif cmd == "jws":
        key = load(args["device_pkcs8"])
        header = {"alg": "ES256", "typ": "cloudsign-device+jws", "kid": args["kid"]}
        h = b64u(json.dumps(header, separators=(",", ":")).encode())
        p = b64u(json.dumps(args["payload"], separators=(",", ":"), ensure_ascii=False).encode())
        sig = sign(key, "es256", f"{h}.{p}".encode(), prehashed=False)
        out["jws"] = f"{h}.{p}.{b64u(sig)}"
    elif cmd == "verify_jws":
        public = serialization.load_der_public_key(unb64u(args["spki"]))
        h, p, s = args["jws"].split(".")
        raw = unb64u(s)
        der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        try:
            public.verify(der, f"{h}.{p}".encode(), ec.ECDSA(hashes.SHA256()))
            out["ok"] = True
        except Exception:
            out["ok"] = False
        out["header"] = json.loads(unb64u(h))
        out["payload"] = json.loads(unb64u(p))
    elif cmd == "sign_digests":
        key = load(args["signing_pkcs8"])
        out["signatures"] = [b64u(sign(key, args["scheme"], unb64u(d), prehashed=True)) for d in args["digests"]]
    elif cmd == "sign_data":
        key = load(args["signing_pkcs8"])
        out["signatures"] = [b64u(sign(key, args["scheme"], unb64u(d), prehashed=False)) for d in args["data"]]
    elif cmd == "cert":
        key = load(args["signing_pkcs8"])
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "card holder")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        out["cert"] = b64u(cert.public_bytes(serialization.Encoding.DER))
    else:
        raise SystemExit(f"unknown command {cmd}")
    json.dump(out, sys.stdout)


main()
