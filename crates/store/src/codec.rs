//! Typed values at the SQL boundary. The schema has only BIGINT and TEXT (one script for SQLite
//! and PostgreSQL), so binary values are TEXT holding standard base64 with padding, and enums
//! are TEXT holding their names. Rows carry bytes and enums; this module is the only place
//! that converts, so the stored form stays what earlier versions wrote.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose::STANDARD};

use crate::db::Row;
use crate::{Result, StoreError};

/// Standard alphabet, padding optional on input: what every stored value uses.
const STANDARD_LENIENT: GeneralPurpose =
    GeneralPurpose::new(&alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent));
/// The URL-safe alphabet, accepted on input in case a record was written with it.
const URL_SAFE_LENIENT: GeneralPurpose =
    GeneralPurpose::new(&alphabet::URL_SAFE, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent));

/// Bytes as stored: standard base64 with padding (what `cloudsign_asn1::b64::encode` wrote
/// before rows carried bytes, so that equality in SQL, e.g. on `key_handle`, still holds).
pub(crate) fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Stored text back to bytes; `col` names the column in the error.
pub(crate) fn decode(col: &str, text: &str) -> Result<Vec<u8>> {
    STANDARD_LENIENT
        .decode(text)
        .or_else(|_| URL_SAFE_LENIENT.decode(text))
        .map_err(|_| StoreError::Db(format!("column {col}: not base64")))
}

/// A TEXT column that holds one of an enum's names.
pub(crate) trait StoredName: Sized + Copy {
    /// The stored name.
    fn stored(self) -> &'static str;
    /// The value of a stored name.
    fn from_stored(name: &str) -> Option<Self>;
}

impl StoredName for cloudsign_keys::KeyBackendKind {
    fn stored(self) -> &'static str {
        self.as_str()
    }
    fn from_stored(name: &str) -> Option<Self> {
        Self::parse(name)
    }
}

impl StoredName for cloudsign_asn1::KeyAlgorithm {
    fn stored(self) -> &'static str {
        self.name()
    }
    fn from_stored(name: &str) -> Option<Self> {
        Self::from_name(name)
    }
}

impl Row {
    /// A base64 TEXT column as bytes.
    pub(crate) fn bytes(&self, col: &str) -> Result<Vec<u8>> {
        decode(col, &self.str(col)?)
    }

    /// A nullable base64 TEXT column as bytes.
    pub(crate) fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>> {
        self.opt_str(col)?.map(|t| decode(col, &t)).transpose()
    }

    /// A TEXT column holding an enum's name; an unknown name is an error, not a default (a
    /// record this version cannot interpret must not be treated as something else).
    pub(crate) fn name<T: StoredName>(&self, col: &str) -> Result<T> {
        let text = self.str(col)?;
        T::from_stored(&text).ok_or_else(|| StoreError::Db(format!("column {col}: unknown value {text:?}")))
    }

    /// A nullable TEXT column holding an enum's name.
    pub(crate) fn opt_name<T: StoredName>(&self, col: &str) -> Result<Option<T>> {
        self.opt_str(col)?
            .map(|text| T::from_stored(&text).ok_or_else(|| StoreError::Db(format!("column {col}: unknown value {text:?}"))))
            .transpose()
    }
}
