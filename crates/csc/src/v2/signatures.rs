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
    /// Asynchronous only: how long the result is kept, milliseconds (v2.0.0.2 §11.10).
    /// `validityPeriod` (the spelling of one client) is accepted too (csc-api-2.2.md §10).
    #[serde(alias = "validityPeriod", skip_serializing_if = "Option::is_none")]
    pub validity_period: Option<u64>,
    /// Asynchronous only: where to say the result is ready (`responseURI`, the Data Model's
    /// spelling, is accepted too).
    #[serde(alias = "responseURI", skip_serializing_if = "Option::is_none")]
    pub response_uri: Option<String>,
    /// Opaque client data.
    #[serde(rename = "clientData", skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// The answer to signHash or signDoc in `operationMode` `A`: the handle for
/// `signatures/signPolling`.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::AsyncResponse))]
pub struct AsyncResponse {
    /// The handle of the request.
    #[serde(rename = "responseID")]
    pub response_id: String,
}

/// CSC API 2.2.0.0 §11.15 `signatures/signPolling` request. The member's name is not
/// settled (csc-api-2.2.md §11): `responseID`, what signHash returned, or `requestID`, what one
/// provider's client sends.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::SignPollingRequest))]
pub struct SignPollingRequest {
    /// The handle signHash or signDoc returned.
    #[serde(rename = "responseID", alias = "requestID", alias = "responseId", alias = "requestId")]
    pub response_id: String,
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
    /// CSC API 2.2.0.0 §11.14 form: one object or an array of them (the reference does not
    /// settle which, csc-api-2.2.md §11), beside the 2.0 `documentDigests`/`documents`.
    #[serde(rename = "signatureCreationRequest", alias = "signatureCreationRequests", default, deserialize_with = "one_or_many_requests")]
    pub signature_creation_request: Option<Vec<SignatureCreationRequest>>,
    /// 2.2: the signature algorithm for elements that name none.
    #[serde(rename = "signAlgo")]
    pub sign_algo: Option<String>,
    /// 2.2: the digest algorithm of `hashes` for elements that name none.
    #[serde(rename = "hashAlgorithmOID")]
    pub hash_algorithm_oid: Option<String>,
    /// `S` (default) or `A`.
    #[serde(rename = "operationMode")]
    pub operation_mode: Option<String>,
    /// Asynchronous only: how long the result is kept, milliseconds.
    #[serde(alias = "validityPeriod")]
    pub validity_period: Option<u64>,
    /// Asynchronous only: where to say the result is ready.
    #[serde(alias = "responseURI")]
    pub response_uri: Option<String>,
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

/// A `signatureCreationRequest` (CSC Data Model 1.0.0 §9.3, ETSI TS 119 432 clause 7): one
/// flat object with one document form (content `document`, reference `href` + `checksum`, or
/// representations `hashes`), the AdES parameters (flat, or in `adesParameters` as TS 119 432
/// has them) and the signing algorithm.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::SignatureCreationRequest))]
pub struct SignatureCreationRequest {
    /// A label for the document.
    pub label: Option<String>,
    /// Base64 document content.
    pub document: Option<String>,
    /// `sod` or `sfd`.
    #[serde(rename = "documentType")]
    pub document_type: Option<String>,
    /// Base64 circumstantial data.
    #[serde(rename = "circumstantialData")]
    pub circumstantial_data: Option<String>,
    /// How to fetch `href`.
    pub access: Option<serde_json::Value>,
    /// The document by reference.
    pub href: Option<String>,
    /// The referenced document's digest, `sha256-<base64>`.
    pub checksum: Option<String>,
    /// Base64 digests (document representations).
    #[serde(default, deserialize_with = "crate::v1::one_or_many")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::v1::one_or_many_schema))]
    pub hashes: Option<Vec<String>>,
    /// Their algorithm.
    #[serde(rename = "hashAlgorithmOID")]
    pub hash_algorithm_oid: Option<String>,
    /// TS 119 432's grouping of the AdES parameters.
    #[serde(rename = "adesParameters", alias = "AdESParameters")]
    pub ades_parameters: Option<AdesParameters>,
    /// The AdES parameters, flat (Data Model).
    #[serde(flatten)]
    pub flat: AdesParameters,
    /// Signature algorithm OID.
    #[serde(rename = "signAlgo")]
    pub sign_algo: Option<String>,
    /// Base64 DER parameters.
    #[serde(rename = "signAlgoParams")]
    pub sign_algo_params: Option<String>,
}

/// `adesParameters`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::AdesParameters))]
pub struct AdesParameters {
    /// `C`, `X`, `P` or `J`.
    pub signature_format: Option<String>,
    /// `AdES-B-B` (default), `AdES-B-T`, ...
    pub conformance_level: Option<String>,
    /// `Detached`, `Attached`, ...
    pub signed_envelope_property: Option<String>,
    /// Extra signed attributes.
    pub signed_props: Option<serde_json::Value>,
    /// XAdES: the reference URI.
    #[serde(rename = "referenceUri")]
    pub reference_uri: Option<String>,
}

fn one_or_many_requests<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<SignatureCreationRequest>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<SignatureCreationRequest>),
        One(Box<SignatureCreationRequest>),
    }
    Ok(Option::<OneOrMany>::deserialize(d)?.map(|v| match v {
        OneOrMany::One(s) => vec![*s],
        OneOrMany::Many(v) => v,
    }))
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
