//! CSC API 2.2.0.0 on-demand credentials: `credentials/create`, `credentials/delete`.

use axum::Router;

use crate::AppState;

/// The methods this module adds to `info.methods`.
#[allow(dead_code)] // listed by `info` once the methods exist
pub(crate) const METHODS: &[&str] = &[];

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
}
