//! Outgoing mail: templates, transports, the delivery log and retries.
//!
//! - [`templates`]: minijinja templates embedded in the binary (overridable from
//!   `mail.templates_dir`), rendered from a typed [`MailContent`].
//! - [`transport`]: SMTP (lettre, pooled) or `.eml` files in `mail.outbox`.
//! - [`retry`]: the backoff loop shared with the engine.
//! - [`deliveries`]: the `email_deliveries` rows (one per message) and their queries.
//! - [`mailer`]: [`Mailer::send`] ties them together.

pub mod deliveries;
pub mod mailer;
pub mod retry;
pub mod smtp_pool;
pub mod templates;
pub mod transport;

pub use deliveries::{Deliveries, DeliveryStatus, Finished, StoredDelivery};
pub use mailer::{Attachment, Deferred, DeliveryOutcome, Mailer, OutgoingMail};
pub use retry::{Attempted, RetryPolicy};
pub use templates::{AlertDetail, MailContent, RenderedMail, Templates};
pub use transport::{SendError, Transport};

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// A setting is unusable (address, SMTP URL, templates folder).
    #[error("mail configuration: {0}")]
    Config(String),
    /// A template does not compile or does not render (e.g. an undefined variable).
    #[error("mail template {name}: {message}")]
    Template { name: String, message: String },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("no email delivery with id {0}")]
    NotFound(String),
    /// `retry_delivery` was given content of another kind than the stored delivery.
    #[error("email delivery {id} is a {stored} message, not {given}")]
    KindMismatch {
        id: String,
        stored: String,
        given: &'static str,
    },
}
