//! Wire types of `credentials/authorizeCheck` (CSC 2.0.0.2 §11.7) and the 202 answer of
//! `credentials/authorize`.
//!
//! The member name `handle` comes from the transcription of the spec and its sequence diagram
//! (csc-api.md §3.6, §3.7); no public client was seen to poll, so there is nothing else to be
//! lenient about. Once approved, authorizeCheck answers as authorize does (`SadResponse`).

use serde::{Deserialize, Serialize};

/// §11.7 `credentials/authorizeCheck` request.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::AuthorizeCheckRequest))]
pub struct AuthorizeCheckRequest {
    /// The handle of the 202 answer of `credentials/authorize`.
    pub handle: String,
    /// Opaque client data.
    #[serde(rename = "clientData", skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// The 202 answer of `credentials/authorize` (§11.6) and of `credentials/authorizeCheck`
/// (§11.7): the authorization is still waiting for the signer; poll `authorizeCheck`.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::AuthorizePendingResponse))]
pub struct AuthorizePendingResponse {
    /// Opaque handle for `credentials/authorizeCheck`.
    pub handle: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names() {
        let req: AuthorizeCheckRequest = crate::json::parse(br#"{"handle":"h1","clientData":"x","vendor":1}"#).unwrap();
        assert_eq!((req.handle.as_str(), req.client_data.as_deref()), ("h1", Some("x")));
        assert!(crate::json::parse::<AuthorizeCheckRequest>(b"{}").unwrap_err().contains("handle"));
        assert_eq!(serde_json::to_string(&AuthorizePendingResponse { handle: "h".into() }).unwrap(), r#"{"handle":"h"}"#);
    }
}
