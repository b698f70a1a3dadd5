"""Sign with pyHanko's CSCSigner against a live cloudsign (CSC API v1.0.4.0).

pyHanko is a CSC client nobody here wrote; this script drives it, the Rust test validates what
comes out with independent tools (pyhanko validate, pdfsig, openssl cms).

usage: pyhanko_csc.py URL USER CREDENTIAL_ID MODE OUT IN [IN2 OUT2]
  MODE: pades-b-b | pades-b-t | batch | cms
  The password and PIN come from CLOUDSIGN_PASSWORD and CLOUDSIGN_PIN (never argv).
"""

import asyncio
import os
import sys

import aiohttp
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.signers import csc_signer
from pyhanko.sign.timestamps import HTTPTimeStamper


class PinAuthorizationManager(csc_signer.CSCAuthorizationManager):
    """Sends the PIN (and, for SCAL 2, the hashes) to credentials/authorize."""

    def __init__(self, session_info, credential_info, http, pin):
        super().__init__(session_info, credential_info)
        self.http = http
        self.pin = pin

    async def authorize_signature(self, hash_b64s):
        pinned = hash_b64s if self.credential_info.hash_pinning_required else None
        req = self.format_csc_auth_request(num_signatures=len(hash_b64s), pin=self.pin, hash_b64s=pinned)
        url = self.csc_session_info.endpoint_url("credentials/authorize")
        async with self.http.post(url, json=req, headers=self.csc_session_info.auth_headers, raise_for_status=True) as resp:
            return self.parse_csc_auth_response(await resp.json())


async def main(argv):
    url, user, credential, mode, out, inp = argv[:6]
    extra = argv[6:]
    password = os.environ["CLOUDSIGN_PASSWORD"]
    pin = os.environ["CLOUDSIGN_PIN"]
    async with aiohttp.ClientSession() as http:
        basic = {"Authorization": aiohttp.encode_basic_auth(user, password)}
        async with http.post(f"{url}/csc/v1/auth/login", json={}, headers=basic, raise_for_status=True) as resp:
            token = (await resp.json())["access_token"]
        session_info = csc_signer.CSCServiceSessionInfo(url, credential, oauth_token=token)
        credential_info = await csc_signer.fetch_certs_in_csc_credential(http, session_info)
        auth = PinAuthorizationManager(session_info, credential_info, http, pin)
        signer = csc_signer.CSCSigner(http, auth, batch_size=2 if mode == "batch" else 1)
        meta = signers.PdfSignatureMetadata(field_name="Signature1", subfilter=SigSeedSubFilter.PADES, md_algorithm="sha256")
        if mode == "cms":
            with open(inp, "rb") as f:
                data = f.read()
            signed = await signer.async_sign_general_data(data, "sha256", detached=True)
            with open(out, "wb") as f:
                f.write(signed.dump())
        elif mode in ("pades-b-b", "pades-b-t"):
            timestamper = HTTPTimeStamper(f"{url}/tsa") if mode == "pades-b-t" else None
            with open(inp, "rb") as f:
                writer = IncrementalPdfFileWriter(f)
                result = await signers.async_sign_pdf(writer, meta, signer=signer, timestamper=timestamper)
                with open(out, "wb") as o:
                    o.write(result.getvalue())
        elif mode == "batch":
            # Two documents, one signHash call, one SAD (batch_size=2).
            in2, out2 = extra
            with open(inp, "rb") as f1, open(in2, "rb") as f2:
                w1, w2 = IncrementalPdfFileWriter(f1), IncrementalPdfFileWriter(f2)
                r1, r2 = await asyncio.gather(
                    signers.async_sign_pdf(w1, meta, signer=signer),
                    signers.async_sign_pdf(w2, meta, signer=signer),
                )
                for path, result in ((out, r1), (out2, r2)):
                    with open(path, "wb") as o:
                        o.write(result.getvalue())
        else:
            raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
