//! Signature Version 4 against AWS's published examples.
//!
//! - IAM User Guide, "Derive a signing key" example (secret `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`,
//!   20120215, us-east-1, iam).
//! - The Signature Version 4 test suite (`aws-sig-v4-test-suite`), `get-vanilla` and
//!   `get-vanilla-query-order-key-case`: credentials AKIDEXAMPLE, 20150830T123600Z, service `service`.
//! - Amazon S3 API Reference, "Examples: Signature Calculations" under "Authenticating Requests:
//!   Using the Authorization Header": GET Object (with Range), PUT Object, GET Bucket lifecycle,
//!   ListObjects — bucket `examplebucket`, 20130524T000000Z, AKIAIOSFODNN7EXAMPLE.

use cloudsign_storage::sigv4::{self, EMPTY_SHA256, Request, Signer};

const S3_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const S3_DATE: &str = "20130524T000000Z";
const S3_HOST: &str = "examplebucket.s3.amazonaws.com";

fn s3_signer() -> Signer<'static> {
    Signer { access_key_id: "AKIAIOSFODNN7EXAMPLE", secret_access_key: S3_SECRET, region: "us-east-1", service: "s3" }
}

fn signature(auth: &str) -> &str {
    auth.rsplit("Signature=").next().unwrap()
}

#[test]
fn signing_key_example() {
    let k = sigv4::signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam");
    assert_eq!(hex::encode(k), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

#[test]
fn test_suite_get_vanilla() {
    let signer = Signer {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region: "us-east-1",
        service: "service",
    };
    let headers = [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")];
    let req = Request { method: "GET", path: "/", query: &[], headers: &headers, payload_sha256: EMPTY_SHA256 };
    let (creq, _) = sigv4::canonical_request(&req);
    assert_eq!(creq, format!("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{EMPTY_SHA256}"));
    let auth = sigv4::authorization(&signer, &req, "20150830T123600Z");
    assert_eq!(
        auth,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
    // get-vanilla-query-order-key-case: `Param2=value2&Param1=value1` sorts to Param1 first.
    let q = [("Param2", "value2"), ("Param1", "value1")];
    let req = Request { method: "GET", path: "/", query: &q, headers: &headers, payload_sha256: EMPTY_SHA256 };
    assert_eq!(
        signature(&sigv4::authorization(&signer, &req, "20150830T123600Z")),
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
    );
}

#[test]
fn s3_get_object() {
    let headers = [("Host", S3_HOST), ("Range", "bytes=0-9"), ("x-amz-content-sha256", EMPTY_SHA256), ("x-amz-date", S3_DATE)];
    let req = Request { method: "GET", path: "/test.txt", query: &[], headers: &headers, payload_sha256: EMPTY_SHA256 };
    let auth = sigv4::authorization(&s3_signer(), &req, S3_DATE);
    assert_eq!(
        auth,
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    );
}

#[test]
fn s3_put_object() {
    let payload = sigv4::hex_sha256(b"Welcome to Amazon S3.");
    assert_eq!(payload, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    let headers = [
        ("Host", S3_HOST),
        ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
        ("x-amz-date", S3_DATE),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("x-amz-content-sha256", payload.as_str()),
    ];
    // The key `test$file.text`: `$` is encoded in the canonical URI.
    let req = Request { method: "PUT", path: "/test$file.text", query: &[], headers: &headers, payload_sha256: &payload };
    let (creq, signed) = sigv4::canonical_request(&req);
    assert!(creq.starts_with("PUT\n/test%24file.text\n\n"), "{creq}");
    assert_eq!(signed, "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class");
    assert_eq!(
        signature(&sigv4::authorization(&s3_signer(), &req, S3_DATE)),
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
    );
}

#[test]
fn s3_get_bucket_lifecycle_and_list_objects() {
    let headers = [("Host", S3_HOST), ("x-amz-content-sha256", EMPTY_SHA256), ("x-amz-date", S3_DATE)];
    let q = [("lifecycle", "")];
    let req = Request { method: "GET", path: "/", query: &q, headers: &headers, payload_sha256: EMPTY_SHA256 };
    assert_eq!(
        signature(&sigv4::authorization(&s3_signer(), &req, S3_DATE)),
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
    );
    let q = [("max-keys", "2"), ("prefix", "J")];
    let req = Request { method: "GET", path: "/", query: &q, headers: &headers, payload_sha256: EMPTY_SHA256 };
    assert_eq!(
        signature(&sigv4::authorization(&s3_signer(), &req, S3_DATE)),
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
    );
}

#[test]
fn uri_encoding_and_date() {
    assert_eq!(sigv4::uri_encode("a b/c~d+e*", true), "a%20b/c~d%2Be%2A");
    assert_eq!(sigv4::uri_encode("a/b", false), "a%2Fb");
    let t = time::macros::datetime!(2013-05-24 00:00:00 UTC);
    assert_eq!(sigv4::amz_date(t), S3_DATE);
}
