//! CSC API v2 `signatures/*` request and response bodies (§11.10, §11.11, §11.13).

use serde::{Deserialize, Serialize};

/// §11.10 `signatures/signHash` request.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::SignHashRequest))]
pub struct SignHashRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// Signature activation data.
    #[serde(rename = "SAD", skip_serializing_if = "Option::is_none")]
    pub sad: Option<String>,
    /// Base64 digests.
    pub hashes: Vec<String>,
    /// Digest algorithm, when `signAlgo` does not imply one.
    #[serde(rename = "hashAlgorithmOID", skip_serializing_if = "Option::is_none")]
    pub hash_algorithm_oid: Option<String>,
    /// Signature algorithm OID.
    #[serde(rename = "signAlgo")]
    pub sign_algo: String,
    /// Base64 DER parameters (RSASSA-PSS-params).
    #[serde(rename = "signAlgoParams", skip_serializing_if = "Option::is_none")]
    pub sign_algo_params: Option<String>,
    /// `S` (default) or `A`.
    #[serde(rename = "operationMode", skip_serializing_if = "Option::is_none")]
    pub operation_mode: Option<String>,
    /// Asynchronous only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validity_period: Option<u64>,
    /// Asynchronous only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_uri: Option<String>,
    /// Opaque client data.
    #[serde(rename = "clientData", skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// §11.10 `signatures/signHash` response.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::SignHashResponse))]
pub struct SignHashResponse {
    /// Base64 signature values in the order of `hashes`.
    pub signatures: Vec<String>,
}

/// §11.13 `signatures/timestamp` request (the same in v1 §11.10).
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::TimestampRequest))]
pub struct TimestampRequest {
    /// Base64 digest.
    pub hash: String,
    /// Digest algorithm OID. v2.0.0.2 appears to keep v1's name; `hashAlgorithmOID` is
    /// accepted too (csc-api.md §3.14).
    #[serde(rename = "hashAlgo", alias = "hashAlgorithmOID")]
    pub hash_algo: String,
    /// Hex nonce, echoed in the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Opaque client data.
    #[serde(rename = "clientData", skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// §11.13 `signatures/timestamp` response.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::TimestampResponse))]
pub struct TimestampResponse {
    /// Base64 DER TimeStampToken.
    pub timestamp: String,
}

/// §11.11 `signatures/signDoc` request.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::SignDocRequest))]
pub struct SignDocRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: Option<String>,
    /// Alternative to `credentialID` (not supported by cloudsign).
    #[serde(rename = "signatureQualifier")]
    pub signature_qualifier: Option<String>,
    /// Signature activation data.
    #[serde(rename = "SAD")]
    pub sad: Option<String>,
    /// Digests of signature data representations.
    #[serde(rename = "documentDigests")]
    pub document_digests: Option<Vec<DocumentDigests>>,
    /// Whole documents.
    pub documents: Option<Vec<Document>>,
    /// `S` (default) or `A`.
    #[serde(rename = "operationMode")]
    pub operation_mode: Option<String>,
    /// Opaque client data.
    #[serde(rename = "clientData")]
    pub client_data: Option<String>,
    /// Ask for `validationInfo`.
    #[serde(rename = "returnValidationInfo", alias = "returnValidationInformation")]
    pub return_validation_info: Option<bool>,
}

/// A `documentDigests` element.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::DocumentDigests))]
pub struct DocumentDigests {
    /// Base64 digests (a bare string is accepted).
    #[serde(default, deserialize_with = "crate::v1::one_or_many")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::v1::one_or_many_schema))]
    pub hashes: Option<Vec<String>>,
    /// Their algorithm.
    #[serde(rename = "hashAlgorithmOID")]
    pub hash_algorithm_oid: Option<String>,
    /// Common signing options.
    #[serde(flatten)]
    pub options: SignatureOptions,
}

/// A `documents` element.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::Document))]
pub struct Document {
    /// Base64 document.
    pub document: String,
    /// Common signing options.
    #[serde(flatten)]
    pub options: SignatureOptions,
}

/// What `documentDigests` and `documents` elements share.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::SignatureOptions))]
pub struct SignatureOptions {
    /// `C`, `X`, `P` or `J`.
    pub signature_format: String,
    /// `Ades-B-B` (default), `Ades-B-T`, ...
    pub conformance_level: Option<String>,
    /// Signature algorithm OID.
    #[serde(rename = "signAlgo")]
    pub sign_algo: String,
    /// Base64 DER parameters.
    #[serde(rename = "signAlgoParams")]
    pub sign_algo_params: Option<String>,
    /// Extra signed attributes.
    pub signed_props: Option<serde_json::Value>,
    /// `Detached`, `Attached`, ...
    pub signed_envelope_property: Option<String>,
}

/// §11.11 `signatures/signDoc` response.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::SignDocResponse))]
pub struct SignDocResponse {
    /// Documents with their signature inside (attached CAdES).
    #[serde(rename = "DocumentWithSignature", skip_serializing_if = "Option::is_none")]
    pub document_with_signature: Option<Vec<String>>,
    /// Detached signatures.
    #[serde(rename = "SignatureObject", skip_serializing_if = "Option::is_none")]
    pub signature_object: Option<Vec<String>>,
    /// Validation material not inside the signatures.
    #[serde(rename = "validationInfo", skip_serializing_if = "Option::is_none")]
    pub validation_info: Option<serde_json::Value>,
}
