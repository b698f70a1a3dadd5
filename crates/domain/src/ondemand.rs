//! On-demand credentials (CSC API 2.2.0.0 `credentials/create`, `credentials/delete`).

use serde::Deserialize;

/// The `[on_demand]` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnDemandConfig {}
