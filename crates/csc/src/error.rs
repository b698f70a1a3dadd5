//! The CSC error model (CSC v1 §10.1 / v2 §10.1, Table "Error codes"): every failure is an HTTP
//! status plus `{ "error", "error_description" }`.

use serde::Serialize;

/// The `error` member of a CSC error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Missing, duplicated or malformed parameter, and most method-specific refusals.
    InvalidRequest,
    /// Login with wrong credentials (`auth/login`).
    AuthenticationError,
    /// v2 `credentials/authorize`: a value in `authData` is wrong.
    InvalidAuthenticationData,
    /// v1 `credentials/authorize`: wrong PIN.
    InvalidPin,
    /// v1 `credentials/authorize`: wrong OTP.
    InvalidOtp,
    /// The token is not a valid access token.
    InvalidToken,
    /// The token has expired or was revoked.
    ExpiredToken,
    /// The user or the provider refused.
    AccessDenied,
    /// Unexpected condition on the provider's side.
    ServerError,
    /// Overload, maintenance, or a backend that cannot be reached now.
    TemporarilyUnavailable,
    /// The method is not implemented.
    NotImplemented,
}

impl ErrorCode {
    /// Every code, in the order of the spec's table.
    pub const ALL: [Self; 11] = [
        Self::InvalidRequest,
        Self::AuthenticationError,
        Self::InvalidAuthenticationData,
        Self::InvalidPin,
        Self::InvalidOtp,
        Self::InvalidToken,
        Self::ExpiredToken,
        Self::AccessDenied,
        Self::ServerError,
        Self::TemporarilyUnavailable,
        Self::NotImplemented,
    ];

    /// The spelling on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::AuthenticationError => "authentication_error",
            Self::InvalidAuthenticationData => "invalid_authentication_data",
            Self::InvalidPin => "invalid_pin",
            Self::InvalidOtp => "invalid_otp",
            Self::InvalidToken => "invalid_token",
            Self::ExpiredToken => "expired_token",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::NotImplemented => "not_implemented",
        }
    }
}

/// The JSON error body.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = csc::ErrorBody))]
pub struct ErrorBody {
    /// The error code.
    #[cfg_attr(feature = "openapi", schema(schema_with = error_code_schema))]
    pub error: &'static str,
    /// Human-readable text. Never carries a secret.
    pub error_description: String,
}

/// The `error` member as the OpenAPI document describes it: one of the codes the service
/// sends (v1 and v2 together; v1 uses `invalid_pin`/`invalid_otp`, v2
/// `invalid_authentication_data`).
#[cfg(feature = "openapi")]
fn error_code_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(ErrorCode::ALL.map(ErrorCode::as_str)))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_code_once() {
        let mut seen: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), ErrorCode::ALL.len());
    }
}
