//! The engine's error: what a step can fail with, and whether retrying may help.

use facture_core::db::DbError;
use facture_core::mail::{DeliveryOutcome, MailError};
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
    #[error("mail not delivered: {error}")]
    NotDelivered { error: String, permanent: bool },
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
    /// A mail whose delivery ended unsent: its last error, and whether retrying may help.
    pub fn not_delivered(outcome: DeliveryOutcome) -> Self {
        EngineError::NotDelivered {
            error: outcome.last_error.unwrap_or_else(|| "not sent".into()),
            permanent: outcome.permanent,
        }
    }

    /// Worth another attempt later.
    pub fn is_transient(&self) -> bool {
        match self {
            EngineError::Db(e) => e.is_transient(),
            EngineError::Storage(e) => e.is_transient(),
            EngineError::Mail(MailError::Db(e)) => e.is_transient(),
            EngineError::NotDelivered { permanent, .. } => !permanent,
            EngineError::Unavailable(_) => true,
            _ => false,
        }
    }

    /// Caused by the environment and curable by an operator without touching the data:
    /// the mail server unreachable, storage unwritable (even refused: a permission or a
    /// missing mount is fixed, not worked around), the database down. A pipeline step that
    /// fails so is parked and retried later, indefinitely, rather than dead-lettered.
    pub fn is_environmental(&self) -> bool {
        match self {
            EngineError::Storage(StorageError::Io { .. }) => true,
            other => other.is_transient(),
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
