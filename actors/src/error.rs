//! The engine's error: what a step can fail with, and whether retrying may help.

use facture_core::db::DbError;
use facture_core::mail::MailError;
use facture_core::pdf::PdfError;
use facture_core::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("rendering failed: {0}")]
    Render(#[from] PdfError),
    #[error("the renderer panicked: {0}")]
    RenderPanic(String),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("mail: {0}")]
    Mail(#[from] MailError),
    #[error("mail not delivered: {0}")]
    NotDelivered(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("an actor is unavailable: {0}")]
    Unavailable(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Unsupported(String),
    /// A test hook stopped the pipeline here (see `engine.halt_before`).
    #[error("halted before step {0}")]
    Halted(String),
}

impl EngineError {
    /// Worth another attempt later.
    pub fn is_transient(&self) -> bool {
        match self {
            EngineError::Db(e) => e.is_transient(),
            EngineError::Storage(e) => e.is_transient(),
            EngineError::Mail(MailError::Db(e)) => e.is_transient(),
            EngineError::NotDelivered(_) | EngineError::Unavailable(_) => true,
            _ => false,
        }
    }
}

impl From<actix::MailboxError> for EngineError {
    fn from(e: actix::MailboxError) -> Self {
        EngineError::Unavailable(e.to_string())
    }
}

impl facture_core::mail::retry::Transience for EngineError {
    fn is_transient(&self) -> bool {
        EngineError::is_transient(self)
    }
}
