//! A client of CSC remote-signature services, and the signing application built on it.
//!
//! - [`csc`]: the CSC API v1.0.4.0 and v2.0.0.2 calls (`info`, `auth/login` and `auth/revoke`,
//!   `credentials/list`, `info`, `authorize`, `extendTransaction`, `sendOTP`/`getChallenge`,
//!   `signatures/signHash`, `signatures/timestamp`) on the `cloudsign-csc` wire types;
//! - [`oauth`]: the OAuth 2.0 token calls (authorization code with PKCE, client credentials,
//!   refresh token);
//! - [`signer`]: sign local files in any AdES format through a service — only digests travel;
//! - [`auth`]: how to authenticate, chosen from `info`: a given token, OAuth 2.0 (code with PKCE
//!   through a loopback redirect, client credentials, credential scope), `auth/login`;
//! - [`tsa`]: time-stamps from any RFC 3161 TSA;
//! - [`fetch`]: OCSP responses and CRLs for B-LT validation data and online checks.
//!
//! Failures are typed: a [`ClientError`] carries the HTTP status and the CSC
//! `{error, error_description}`, so a caller can tell a missing method from a wrong PIN.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod csc;
pub mod error;
pub mod fetch;
pub mod oauth;
pub mod signer;
pub mod tsa;

pub use csc::{Api, Client};
pub use error::{ClientError, Refusal};
