//! The OpenAPI 3.1 document of the whole HTTP API, served at `GET /openapi.json` (and at the
//! validation API's old address, `/validation/v1/openapi.json`).
//!
//! The schemas are generated from the wire types (`utoipa::ToSchema`, derived in
//! `cloudsign_csc` behind its `openapi` feature and on the validation request), so a member
//! renamed or retyped there changes the contract. The operations are the table below: one entry
//! per route of `lib.rs`, `v1.rs`, `v2.rs` and `oauth/`, with the statuses each really answers.
//! `crates/cli/tests/schemathesis.rs` runs schemathesis against a live server to keep the two in
//! step.

use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use cloudsign_csc::{error, oauth, v1, v2};
use serde_json::{Map, Value, json};
use utoipa::OpenApi as _;

/// The components: every wire type a request or response carries.
#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(
    error::ErrorBody,
    v1::InfoResponse,
    v1::ListRequest,
    v1::ListResponse,
    v1::InfoCredentialRequest,
    v1::CredentialInfo,
    v1::AuthorizeRequest,
    v1::SendOtpRequest,
    v1::ExtendTransactionRequest,
    v1::SignHashRequest,
    v2::InfoRequest,
    v2::InfoResponse,
    v2::OAuth2Server,
    v2::LoginRequest,
    v2::LoginResponse,
    v2::RevokeRequest,
    v2::ListRequest,
    v2::ListResponse,
    v2::InfoCredentialRequest,
    v2::CredentialInfo,
    v2::AuthorizeRequest,
    v2::SadResponse,
    v2::AuthorizePendingResponse,
    v2::AuthorizeCheckRequest,
    v2::ExtendTransactionRequest,
    v2::GetChallengeRequest,
    v2::SignHashRequest,
    v2::SignHashResponse,
    v2::TimestampRequest,
    v2::TimestampResponse,
    v2::SignDocRequest,
    v2::SignDocResponse,
    v2::AsyncResponse,
    v2::SignPollingRequest,
    v2::SignatureCreationRequest,
    v2::AdesParameters,
    oauth::ErrorResponse,
    oauth::AuthorizeRequest,
    oauth::TokenRequest,
    oauth::RevocationRequest,
    oauth::TokenResponse,
    oauth::PushedAuthorizationResponse,
    oauth::AuthorizationServerMetadata,
    crate::validation::VerifyRequest,
)))]
struct Components;

/// The document, rendered once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| document().to_string());

/// `GET /openapi.json`.
pub(crate) async fn openapi() -> Response {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT.as_str()).into_response()
}

/// Who may call an operation.
#[derive(Clone, Copy)]
enum Auth {
    /// Anyone.
    Public,
    /// `auth/login`: HTTP Basic with the user's name and password, or a refresh token in the
    /// body (CSC v2 §11.2).
    Login,
    /// `Authorization: Bearer` with an access token (CSC v2 §8.1).
    Bearer,
    /// The OAuth client: HTTP Basic (`client_secret_basic`), or its id and secret in the form
    /// (`client_secret_post`), or a public client's id alone (RFC 6749 §2.3).
    Client,
}

/// What a successful call answers.
enum Success {
    /// 200 with a JSON body of this schema.
    Json(&'static str),
    /// 204 without a body.
    NoContent,
    /// 200 with a JSON body of any of these schemas (the synchronous result, or the
    /// `responseID` of CSC 2.2 asynchronous mode; signPolling's result is the original
    /// method's).
    AnyOf(&'static [&'static str]),
    /// 200 with a JSON body of the first schema, or 202 with one of the second: the
    /// authorization waits for the signer (CSC v2 §11.6, §11.7).
    OrPending(&'static str, &'static str),
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn binary(media_type: &str) -> Value {
    json!({media_type: {"schema": {"type": "string", "contentMediaType": media_type}}})
}

fn html() -> Value {
    json!({"text/html; charset=utf-8": {"schema": {"type": "string"}}})
}

/// An error response of the CSC API (CSC v2 §10.1: `{error, error_description}`), with the
/// headers the status carries.
fn csc_error(status: u16) -> Value {
    let description = match status {
        400 => {
            "Missing or invalid parameter, or a refusal of the method (`invalid_request`, `authentication_error`, `invalid_pin`, `invalid_otp`, `invalid_authentication_data`; `access_denied` when the signer denied an out-of-band authorization)."
        }
        401 => {
            "No, a malformed, unknown or expired access token (`invalid_request`, `invalid_token`, `expired_token`); at `auth/login`, a malformed Basic header."
        }
        413 => "The body is larger than the configured limit (`body_limit`).",
        415 => "The body is not `application/json`.",
        429 => "Too many requests: come back after `Retry-After` seconds.",
        503 => "The store or a key backend cannot be reached now (`temporarily_unavailable`).",
        _ => "Error.",
    };
    let mut response = json!({
        "description": description,
        "content": {"application/json": {"schema": schema_ref("csc.ErrorBody")}},
    });
    add_error_headers(&mut response, status, "Bearer");
    response
}

/// An OAuth error response (RFC 6749 §5.2).
fn oauth_error(status: u16) -> Value {
    let description = match status {
        400 => "Invalid request or grant (RFC 6749 §5.2).",
        401 => "Client authentication failed (`invalid_client`, RFC 6749 §5.2).",
        429 => "Too many requests: come back after `Retry-After` seconds.",
        503 => "The store cannot be reached now (`temporarily_unavailable`).",
        _ => "Error.",
    };
    let mut response = json!({
        "description": description,
        "content": {"application/json": {"schema": schema_ref("oauth.ErrorResponse")}},
    });
    add_error_headers(&mut response, status, "Basic realm=\"cloudsign\"");
    response
}

/// RFC 6750 §3 / RFC 9110 §11.6.1: a 401 names the scheme; RFC 6585 §4 and RFC 9110 §10.2.3:
/// a 429 says when to come back.
fn add_error_headers(response: &mut Value, status: u16, scheme: &str) {
    let header = match status {
        401 => ("WWW-Authenticate", json!({"required": true, "schema": {"type": "string"}, "example": scheme})),
        429 => ("Retry-After", json!({"required": true, "schema": {"type": "integer", "minimum": 0}})),
        _ => return,
    };
    response["headers"] = json!({header.0: header.1});
}

fn security(auth: Auth) -> Value {
    match auth {
        Auth::Public => json!([]),
        // A refresh token in the body replaces the Basic header.
        Auth::Login => json!([{"basic": []}, {}]),
        Auth::Bearer => json!([{"bearer": []}]),
        Auth::Client => json!([{"clientBasic": []}, {}]),
    }
}

/// One CSC method: `POST /csc/{version}/{method}` with a JSON body.
fn csc_method(version: &str, method: &str, request: Option<&str>, success: Success, auth: Auth, errors: &[u16]) -> (String, Value) {
    let mut responses = Map::new();
    match success {
        Success::Json(schema) => {
            responses.insert("200".into(), json!({"description": "OK", "content": {"application/json": {"schema": schema_ref(schema)}}}))
        }
        Success::NoContent => responses.insert("204".into(), json!({"description": "Done; no body."})),
        Success::AnyOf(schemas) => {
            let any: Vec<Value> = schemas.iter().map(|s| schema_ref(s)).collect();
            responses.insert("200".into(), json!({"description": "OK", "content": {"application/json": {"schema": {"anyOf": any}}}}))
        }
        Success::OrPending(done, pending) => {
            responses.insert("200".into(), json!({"description": "OK", "content": {"application/json": {"schema": schema_ref(done)}}}));
            responses.insert(
                "202".into(),
                json!({"description": "The signer approves out of band: poll `credentials/authorizeCheck` with the handle.", "content": {"application/json": {"schema": schema_ref(pending)}}}),
            )
        }
    };
    for status in errors {
        responses.insert(status.to_string(), csc_error(*status));
    }
    let mut operation = json!({
        "tags": [format!("CSC {version}")],
        "operationId": format!("csc_{version}_{}", method.replace('/', "_")),
        "summary": format!("CSC {version} {method}"),
        "security": security(auth),
        "responses": responses,
    });
    if let Some(schema) = request {
        // An empty body is read as `{}` (csc-api.md: `info` is often sent bare).
        operation["requestBody"] = json!({"required": false, "content": {"application/json": {"schema": schema_ref(schema)}}});
    }
    (format!("/csc/{version}/{method}"), json!({"post": operation}))
}

/// The CSC v1 and v2 operations.
fn csc_paths(paths: &mut Map<String, Value>) {
    use Auth::{Bearer, Login, Public};
    use Success::{AnyOf, Json, NoContent, OrPending};
    // Every bearer call authenticates against the store first: 401 before anything else, 503
    // when the store is down; every JSON body may be too large or of another type.
    const BEARER: &[u16] = &[400, 401, 413, 415, 503];
    const LOGIN: &[u16] = &[400, 401, 413, 415, 429, 503];
    let v2_methods = [
        ("info", Some("v2.InfoRequest"), Json("v2.InfoResponse"), Public, &[400, 413, 415][..]),
        ("auth/login", Some("v2.LoginRequest"), Json("v2.LoginResponse"), Login, LOGIN),
        ("auth/revoke", Some("v2.RevokeRequest"), NoContent, Bearer, BEARER),
        ("credentials/list", Some("v2.ListRequest"), Json("v2.ListResponse"), Bearer, BEARER),
        ("credentials/info", Some("v2.InfoCredentialRequest"), Json("v2.CredentialInfo"), Bearer, BEARER),
        ("credentials/authorize", Some("v2.AuthorizeRequest"), OrPending("v2.SadResponse", "v2.AuthorizePendingResponse"), Bearer, BEARER),
        (
            "credentials/authorizeCheck",
            Some("v2.AuthorizeCheckRequest"),
            OrPending("v2.SadResponse", "v2.AuthorizePendingResponse"),
            Bearer,
            BEARER,
        ),
        ("credentials/extendTransaction", Some("v2.ExtendTransactionRequest"), Json("v2.SadResponse"), Bearer, BEARER),
        ("credentials/getChallenge", Some("v2.GetChallengeRequest"), NoContent, Bearer, BEARER),
        ("signatures/signHash", Some("v2.SignHashRequest"), AnyOf(&["v2.SignHashResponse", "v2.AsyncResponse"]), Bearer, BEARER),
        ("signatures/signDoc", Some("v2.SignDocRequest"), AnyOf(&["v2.SignDocResponse", "v2.AsyncResponse"]), Bearer, BEARER),
        ("signatures/signPolling", Some("v2.SignPollingRequest"), AnyOf(&["v2.SignHashResponse", "v2.SignDocResponse"]), Bearer, BEARER),
        ("signatures/timestamp", Some("v2.TimestampRequest"), Json("v2.TimestampResponse"), Bearer, BEARER),
    ];
    for (method, request, success, auth, errors) in v2_methods {
        let (path, item) = csc_method("v2", method, request, success, auth, errors);
        paths.insert(path, item);
    }
    let v1_methods = [
        // v1 `info` reads no body.
        ("info", None, Json("v1.InfoResponse"), Public, &[][..]),
        ("auth/login", Some("v2.LoginRequest"), Json("v2.LoginResponse"), Login, LOGIN),
        ("auth/revoke", Some("v2.RevokeRequest"), NoContent, Bearer, BEARER),
        ("credentials/list", Some("v1.ListRequest"), Json("v1.ListResponse"), Bearer, BEARER),
        ("credentials/info", Some("v1.InfoCredentialRequest"), Json("v1.CredentialInfo"), Bearer, BEARER),
        ("credentials/authorize", Some("v1.AuthorizeRequest"), Json("v2.SadResponse"), Bearer, BEARER),
        ("credentials/sendOTP", Some("v1.SendOtpRequest"), NoContent, Bearer, BEARER),
        ("credentials/extendTransaction", Some("v1.ExtendTransactionRequest"), Json("v2.SadResponse"), Bearer, BEARER),
        ("signatures/signHash", Some("v1.SignHashRequest"), Json("v2.SignHashResponse"), Bearer, BEARER),
        ("signatures/timestamp", Some("v2.TimestampRequest"), Json("v2.TimestampResponse"), Bearer, BEARER),
    ];
    for (method, request, success, auth, errors) in v1_methods {
        let (path, item) = csc_method("v1", method, request, success, auth, errors);
        paths.insert(path, item);
    }
    // `info` also answers GET (csc-api.md §1.1), without a body.
    for (version, schema) in [("v1", "v1.InfoResponse"), ("v2", "v2.InfoResponse")] {
        let get = json!({
            "tags": [format!("CSC {version}")],
            "operationId": format!("csc_{version}_info_get"),
            "summary": format!("CSC {version} info (GET)"),
            "security": [],
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref(schema)}}}},
        });
        paths[&format!("/csc/{version}/info")]["get"] = get;
    }
}

fn form(schema: Value) -> Value {
    json!({"required": false, "content": {"application/x-www-form-urlencoded": {"schema": schema}}})
}

fn with(mut responses: Map<String, Value>, statuses: &[u16], error: fn(u16) -> Value) -> Value {
    for status in statuses {
        responses.insert(status.to_string(), error(*status));
    }
    Value::Object(responses)
}

fn ok(status: &str, description: &str, content: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(status.into(), json!({"description": description, "content": content}));
    m
}

fn redirect(status: &str, description: &str) -> (String, Value) {
    (status.into(), json!({"description": description, "headers": {"Location": {"required": true, "schema": {"type": "string"}}}}))
}

/// The OAuth 2.0 authorization server (CSC v2 §8.3, RFC 6749, RFC 7009, RFC 9126, RFC 8414)
/// and the signer's pages.
fn oauth_paths(paths: &mut Map<String, Value>) {
    let client = security(Auth::Client);
    let json_of = |name: &str| json!({"application/json": {"schema": schema_ref(name)}});
    paths.insert(
        "/oauth2/token".into(),
        json!({"post": {
            "tags": ["OAuth 2.0"], "operationId": "oauth2_token", "summary": "Token endpoint (RFC 6749 §3.2: authorization_code, client_credentials, refresh_token)",
            "security": client, "requestBody": form(schema_ref("oauth.TokenRequest")),
            "responses": with(ok("200", "The token (RFC 6749 §5.1), never cached.", json_of("oauth.TokenResponse")), &[400, 401, 429, 503], oauth_error),
        }}),
    );
    let mut revoked = Map::new();
    revoked.insert("204".into(), json!({"description": "Revoked, or unknown (RFC 7009 §2.2)."}));
    paths.insert(
        "/oauth2/revoke".into(),
        json!({"post": {
            "tags": ["OAuth 2.0"], "operationId": "oauth2_revoke", "summary": "Token revocation (RFC 7009)",
            "security": client, "requestBody": form(schema_ref("oauth.RevocationRequest")),
            "responses": with(revoked, &[400, 401, 429, 503], oauth_error),
        }}),
    );
    paths.insert(
        "/oauth2/pushed_authorize".into(),
        json!({"post": {
            "tags": ["OAuth 2.0"], "operationId": "oauth2_pushed_authorize", "summary": "Pushed authorization request (RFC 9126)",
            "security": client, "requestBody": form(schema_ref("oauth.AuthorizeRequest")),
            "responses": with(ok("201", "The request_uri (RFC 9126 §2.2).", json_of("oauth.PushedAuthorizationResponse")), &[400, 401, 429, 503], oauth_error),
        }}),
    );
    paths.insert(
        "/.well-known/oauth-authorization-server".into(),
        json!({"get": {
            "tags": ["OAuth 2.0"], "operationId": "oauth2_metadata", "summary": "Authorization server metadata (RFC 8414)", "security": [],
            "responses": with(ok("200", "The metadata.", json_of("oauth.AuthorizationServerMetadata")), &[429], csc_error),
        }}),
    );
    // The signer's pages: HTML, their refusals HTML too (RFC 6749 §4.1.2.1: an unverified
    // redirect URI gets a page, never a redirect).
    let page_errors = |mut m: Map<String, Value>, statuses: &[u16]| {
        for s in statuses {
            let description = match s {
                400 => "The request, or the flow, is invalid or over (a page says why).",
                403 => "The form is not valid for this session (CSRF check).",
                429 => "Too many requests: come back after `Retry-After` seconds.",
                _ => "The service is temporarily unavailable (a page says so).",
            };
            let mut r = json!({"description": description, "content": html()});
            if *s == 429 {
                r = csc_error(429);
            }
            m.insert(s.to_string(), r);
        }
        Value::Object(m)
    };
    let mut authorize = Map::new();
    let (s, r) = redirect("302", "The authorization ends: back to the client's redirect_uri with `code` or `error` (RFC 6749 §4.1.2).");
    authorize.insert(s, r);
    authorize.insert(
        "303".into(),
        json!({"description": "The flow starts: a cookie holds its handle, on to `/oauth2/flow`.", "headers": {
            "Location": {"required": true, "schema": {"type": "string"}},
            "Set-Cookie": {"required": true, "schema": {"type": "string"}},
        }}),
    );
    paths.insert(
        "/oauth2/authorize".into(),
        json!({"get": {
            "tags": ["OAuth 2.0"], "operationId": "oauth2_authorize", "summary": "Authorization request (RFC 6749 §4.1.1; CSC v2 §8.3.2)", "security": [],
            "parameters": [{"name": "request", "in": "query", "style": "form", "explode": true, "schema": schema_ref("oauth.AuthorizeRequest")}],
            "responses": page_errors(authorize, &[400, 429]),
        }}),
    );
    let cookie = json!([{"name": "cloudsign_flow", "in": "cookie", "required": false, "schema": {"type": "string"}}]);
    let mut flow_page = ok("200", "The login or consent page.", html());
    let (s, r) = redirect("302", "The flow ended: back to the client.");
    flow_page.insert(s, r);
    paths.insert(
        "/oauth2/flow".into(),
        json!({"get": {
            "tags": ["OAuth 2.0"], "operationId": "oauth2_flow", "summary": "The current step of an authorization (login or consent page)", "security": [],
            "parameters": cookie,
            "responses": page_errors(flow_page, &[400, 429, 503]),
        }}),
    );
    let login_form = json!({"type": "object", "properties": {"username": {"type": "string"}, "password": {"type": "string"}, "csrf": {"type": "string"}}});
    let consent_form = json!({"type": "object", "properties": {
        "decision": {"type": "string", "enum": ["approve", "deny"]}, "pin": {"type": "string"}, "otp": {"type": "string"}, "csrf": {"type": "string"},
    }});
    for (step, schema) in [("login", login_form), ("consent", consent_form)] {
        let mut responses = ok("200", "The page again, with what to correct.", html());
        let (s, r) = redirect("302", "The flow ended: back to the client.");
        responses.insert(s, r);
        let (s, r) = redirect("303", "On to the next step (`/oauth2/flow`).");
        responses.insert(s, r);
        paths.insert(
            format!("/oauth2/flow/{step}"),
            json!({"post": {
                "tags": ["OAuth 2.0"], "operationId": format!("oauth2_flow_{step}"), "summary": format!("The signer's {step} form"), "security": [],
                "parameters": cookie, "requestBody": form(schema),
                "responses": page_errors(responses, &[400, 403, 429, 503]),
            }}),
        );
    }
    // The out-of-band approval page (`approval.rs`): the one-time token in the query, then in
    // the form; no cookie.
    let token = json!({"name": "t", "in": "query", "required": false, "description": "The one-time token of the link the service sent.", "schema": {"type": "string"}});
    paths.insert(
        "/oauth2/approve".into(),
        json!({
            "get": {
                "tags": ["OAuth 2.0"], "operationId": "oauth2_approve_page", "summary": "The signer's approval page of an out-of-band authorization (CSC v2 §11.6 202 answer)", "security": [],
                "parameters": [token],
                "responses": page_errors(ok("200", "What is being authorized, with Approve and Deny.", html()), &[400, 429, 503]),
            },
            "post": {
                "tags": ["OAuth 2.0"], "operationId": "oauth2_approve", "summary": "The signer's decision (once per link)", "security": [],
                "requestBody": form(json!({"type": "object", "properties": {"t": {"type": "string"}, "decision": {"type": "string", "enum": ["approve", "deny"]}}})),
                "responses": page_errors(ok("200", "Recorded: approved or denied.", html()), &[400, 429, 503]),
            },
        }),
    );
    paths.insert(
        "/oauth2/assets/style.css".into(),
        json!({"get": {
            "tags": ["OAuth 2.0"], "operationId": "oauth2_style", "summary": "The pages' stylesheet", "security": [],
            "responses": with(ok("200", "CSS.", json!({"text/css; charset=utf-8": {"schema": {"type": "string"}}})), &[429], csc_error),
        }}),
    );
    paths.insert(
        "/oauth2/assets/logo.svg".into(),
        json!({"get": {
            "tags": ["OAuth 2.0"], "operationId": "oauth2_logo", "summary": "The service logo (`info.logo`)", "security": [],
            "responses": with(ok("200", "SVG.", json!({"image/svg+xml": {"schema": {"type": "string"}}})), &[429], csc_error),
        }}),
    );
}

/// The PKI endpoints (RFC 3161, RFC 6960, RFC 5280) and the validation API.
fn pki_paths(paths: &mut Map<String, Value>) {
    // Unauthenticated: rate limited per client; a store fault is a CSC error.
    let errors = |m: Map<String, Value>| with(m, &[429, 503], csc_error);
    paths.insert(
        "/tsa".into(),
        json!({"post": {
            "tags": ["PKI"], "operationId": "tsa", "summary": "RFC 3161 time-stamp protocol over HTTP (§3.4)", "security": [],
            "requestBody": {"required": true, "content": binary("application/timestamp-query")},
            "responses": errors(ok("200", "A TimeStampResp (DER); refusals are `rejection` responses, not HTTP errors.", binary("application/timestamp-reply"))),
        }}),
    );
    let ocsp_ok = || {
        ok(
            "200",
            "An OCSPResponse (DER); a malformed request gets `malformedRequest` (RFC 6960 §2.3).",
            binary("application/ocsp-response"),
        )
    };
    paths.insert(
        "/ocsp".into(),
        json!({"post": {
            "tags": ["PKI"], "operationId": "ocsp_post", "summary": "OCSP over HTTP POST (RFC 6960 Appendix A.1)", "security": [],
            "requestBody": {"required": true, "content": binary("application/ocsp-request")},
            "responses": errors(ocsp_ok()),
        }}),
    );
    paths.insert(
        "/ocsp/{request}".into(),
        json!({"get": {
            "tags": ["PKI"], "operationId": "ocsp_get", "summary": "OCSP over HTTP GET (RFC 6960 Appendix A.1)", "security": [],
            "parameters": [{"name": "request", "in": "path", "required": true, "description": "The DER OCSPRequest, base64 then URL-encoded.", "schema": {"type": "string"}}],
            "responses": errors(ocsp_ok()),
        }}),
    );
    for (path, summary) in [("/crl", "The issuing CA's CRL (RFC 5280 §5), always current"), ("/arl", "The root's CRL (ARL)")] {
        paths.insert(
            path.into(),
            json!({"get": {
                "tags": ["PKI"], "operationId": path.trim_start_matches('/'), "summary": summary, "security": [],
                "responses": errors(ok("200", "A DER CRL.", binary("application/pkix-crl"))),
            }}),
        );
    }
    paths.insert(
        "/validation/v1/verify".into(),
        json!({"post": {
            "tags": ["Validation"], "operationId": "validation_verify", "summary": "Validate the signatures of a document (ETSI EN 319 102-1)", "security": [],
            "description": "Trust anchors: the service's own root plus those the request gives. Revocation data: what the signatures embed and, for certificates the service issued, its own status. Nothing is fetched from URLs a request supplies.",
            "requestBody": {"required": true, "content": {"application/json": {"schema": schema_ref("validation.VerifyRequest")}}},
            "responses": with(
                ok("200", "One report per signature.", json!({"application/json": {"schema": schema_ref("validation.Report")}})),
                &[400, 413, 429],
                csc_error,
            ),
        }}),
    );
    for (path, id) in [("/openapi.json", "openapi"), ("/validation/v1/openapi.json", "openapi_validation")] {
        paths.insert(
            path.into(),
            json!({"get": {
                "tags": ["Meta"], "operationId": id, "summary": "This document", "security": [],
                // The old address is under the rate-limited `/validation/`.
                "responses": with(ok("200", "OpenAPI 3.1.", json!({"application/json": {"schema": {"type": "object"}}})), if id == "openapi" { &[][..] } else { &[429][..] }, csc_error),
            }}),
        );
    }
}

/// The whole document.
pub(crate) fn document() -> Value {
    let mut doc = serde_json::to_value(Components::openapi()).unwrap_or_else(|_| json!({}));
    let mut paths = Map::new();
    csc_paths(&mut paths);
    oauth_paths(&mut paths);
    pki_paths(&mut paths);
    doc["info"] = json!({
        "title": "cloudsign",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "A remote signature service: the Cloud Signature Consortium API v1.0.4.0 (`/csc/v1`) and v2.0.0.2 (`/csc/v2`), its OAuth 2.0 authorization server, time-stamping (RFC 3161), OCSP and CRLs, and signature validation. CSC errors are `{error, error_description}` (CSC v2 §10.1); OAuth errors follow RFC 6749 §5.2. Every response carries `Cache-Control: no-store`; a known path called with another method answers 405, an unknown path 404, both as CSC errors.",
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    });
    doc["paths"] = Value::Object(paths);
    let schemas = &mut doc["components"]["schemas"];
    for (name, schema) in crate::validation::report_schemas() {
        schemas[name] = schema;
    }
    doc["components"]["securitySchemes"] = json!({
        "basic": {"type": "http", "scheme": "basic", "description": "The user's name and password, at `auth/login` only (CSC v2 §11.2)."},
        "bearer": {"type": "http", "scheme": "bearer", "description": "An access token from `auth/login` or `oauth2/token` (service scope)."},
        "clientBasic": {"type": "http", "scheme": "basic", "description": "OAuth client authentication, `client_secret_basic` (RFC 6749 §2.3.1)."},
    });
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` points at a schema the document defines.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_closed() {
        // schemathesis validates it as OpenAPI 3.1 (`crates/cli/tests/schemathesis.rs`); here,
        // what it must hold.
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut all = Vec::new();
        refs(&doc, &mut all);
        for r in all {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{r}"));
            assert!(doc["components"]["schemas"][name].is_object(), "{r} is not defined");
        }
        // The wire names, not the Rust ones.
        let sign_hash = &doc["components"]["schemas"]["v2.SignHashRequest"];
        assert!(sign_hash["properties"]["credentialID"].is_object(), "{sign_hash}");
        assert_eq!(sign_hash["required"], json!(["credentialID", "hashes", "signAlgo"]));
        // CSC v2 §11.6: authorize may answer 202 with a handle, as authorizeCheck does.
        for method in ["authorize", "authorizeCheck"] {
            let responses = &doc["paths"][format!("/csc/v2/credentials/{method}")]["post"]["responses"];
            assert_eq!(
                responses["202"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/v2.AuthorizePendingResponse"
            );
            assert_eq!(responses["200"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/v2.SadResponse");
        }
        assert_eq!(doc["components"]["schemas"]["v2.AuthorizeCheckRequest"]["required"], json!(["handle"]));
        let error = &doc["components"]["schemas"]["csc.ErrorBody"];
        assert!(error["properties"]["error"]["enum"].as_array().is_some_and(|a| a.contains(&json!("invalid_request"))), "{error}");
        for path in [
            "/csc/v1/signatures/signHash",
            "/csc/v2/signatures/signDoc",
            "/csc/v2/credentials/authorizeCheck",
            "/oauth2/approve",
            "/oauth2/token",
            "/tsa",
            "/ocsp/{request}",
            "/crl",
            "/validation/v1/verify",
        ] {
            assert!(doc["paths"][path].is_object(), "{path}");
        }
    }
}
