//! `meta`: small key/value settings (`schema_version`, `kek_check`, the CA's names).

use crate::db::P;
use crate::{Result, Store};

impl Store {
    /// Read a metadata value.
    pub async fn meta(&self, key: &str) -> Result<Option<String>> {
        let row = self.db.read().await?.opt("SELECT v FROM meta WHERE k = $1", &[P::S(key)]).await?;
        row.map(|r| r.str("v")).transpose()
    }

    /// Set a metadata value unless one exists; returns the value now stored.
    pub async fn meta_insert_if_absent(&self, key: &str, value: &str) -> Result<String> {
        self.db
            .write()
            .await?
            .exec("INSERT INTO meta (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING", &[P::S(key), P::S(value)])
            .await?;
        Ok(self.meta(key).await?.unwrap_or_default())
    }
}
