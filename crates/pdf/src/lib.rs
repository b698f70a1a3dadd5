//! A minimal PDF reader and incremental-update writer (ISO 32000-1 §7), enough to add a
//! signature to any PDF without loading it, and to read one back: the reader seeks to the few
//! objects a signature touches (trailer, catalog, AcroForm, first page), from classic
//! cross-reference tables, xref streams, hybrid files and object streams. The original bytes
//! are never rewritten: an incremental update (§7.5.6) appends the new and changed objects, so
//! existing signatures stay valid and memory does not grow with the file.
//!
//! - [`Obj`] and [`Dict`]: the object model (§7.3) and its serialization;
//! - [`Pdf`]: an open file, its merged cross-reference and the current version of each object;
//! - [`Update`]: an incremental update being written, closed by [`Pdf::finish`];
//! - [`Prefix`]: the file as it was at an earlier revision (what a signature covers);
//! - [`date`]: PDF date strings (§7.9.4).
//!
//! PAdES signing (`cloudsign-ades`) and validation (`cloudsign-validation`) both stand on this
//! crate; neither knows how the file is laid out.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod appearance;
pub mod date;
mod object;
mod reader;
mod update;

pub use object::{Dict, Obj, hex_upper};
pub use reader::{Page, Pdf, Prefix};
pub use update::Update;

/// A PDF that cannot be read or updated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PDF: {0}")]
pub struct PdfError(String);

impl PdfError {
    /// An error with this explanation.
    pub fn new(msg: impl Into<String>) -> Self {
        PdfError(msg.into())
    }

    /// The explanation, without the `PDF:` prefix the `Display` form adds.
    pub fn message(&self) -> &str {
        &self.0
    }
}

fn err(msg: impl Into<String>) -> PdfError {
    PdfError::new(msg)
}
