//! Asynchronous signing (CSC API 2.2.0.0, `operationMode: "A"`, `signatures/signPolling`).

use serde::Deserialize;

/// The `[asynchronous]` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsyncConfig {}
