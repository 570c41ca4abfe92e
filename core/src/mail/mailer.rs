//! [`Mailer`]: renders a [`MailContent`], logs it in `email_deliveries`, sends it with
//! retries, and records the outcome.
//!
//! A send returns `Ok` whenever the outcome could be recorded: a message the server
//! refused is `Ok` with [`DeliveryStatus::Failed`] and the server's answer in
//! `last_error`. `Err` means the message could not be rendered or the database failed.
//!
//! Re-sending a failed delivery ([`Mailer::retry_delivery`]) needs the content again:
//! rendered bodies and attachments are not stored (the log keeps only what an admin reads:
//! kind, recipient, subject, links, status). [`MailContent`] is serializable, so a caller
//! that wants to retry later without rebuilding it can persist it next to its own state;
//! the invoice PDF is re-read from storage.

use std::sync::Arc;

use lettre::address::Envelope;
use lettre::message::header::ContentType;
use lettre::message::{Attachment as MimeAttachment, Mailbox, MultiPart};
use lettre::Message;

use super::deliveries::{
    Deliveries, DeliveryStatus, Finished, NewDelivery, Opened, StoredDelivery,
};
use super::retry::{self, RetryPolicy};
use super::templates::{MailContent, RenderedMail, Templates};
use super::transport::{FileLabel, SendError, Transport};
use super::MailError;
use crate::config::{AppSettings, MailSettings};
use crate::db::models::EmailDelivery;
use crate::db::{now, Db};

/// A file sent with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl Attachment {
    /// The invoice PDF, named after its number: `FAC-2026-000001.pdf`.
    pub fn invoice_pdf(number: &str, bytes: Vec<u8>) -> Self {
        Attachment {
            filename: format!("{number}.pdf"),
            content_type: "application/pdf".to_owned(),
            bytes,
        }
    }
}

/// A message to send.
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    /// `client@example.fr` or `Émilie Durand <client@example.fr>`.
    pub to: String,
    pub content: MailContent,
    pub attachment: Option<Attachment>,
    pub invoice_id: Option<String>,
    pub commande_id: Option<String>,
    /// At most one delivery is ever *sent* per key (see [`Mailer::send`]).
    pub dedupe_key: Option<String>,
    /// The row stored under `dedupe_key`, if the caller read it already.
    pub stored: StoredDelivery,
}

impl OutgoingMail {
    pub fn new(to: impl Into<String>, content: MailContent) -> Self {
        OutgoingMail {
            to: to.into(),
            content,
            attachment: None,
            invoice_id: None,
            commande_id: None,
            dedupe_key: None,
            stored: StoredDelivery::Unknown,
        }
    }

    pub fn attachment(mut self, attachment: Attachment) -> Self {
        self.attachment = Some(attachment);
        self
    }

    pub fn invoice_id(mut self, id: impl Into<String>) -> Self {
        self.invoice_id = Some(id.into());
        self
    }

    pub fn commande_id(mut self, id: impl Into<String>) -> Self {
        self.commande_id = Some(id.into());
        self
    }

    pub fn dedupe_key(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    /// What the caller read under the dedupe key (see [`StoredDelivery::Read`]).
    pub fn stored(mut self, stored: StoredDelivery) -> Self {
        self.stored = stored;
        self
    }
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryOutcome {
    pub delivery_id: String,
    pub status: DeliveryStatus,
    /// Attempts recorded on the delivery, all sends included.
    pub attempts: u32,
    pub last_error: Option<String>,
    /// The failure cannot be cured by trying again (the server refused the message, or it
    /// could not be built); false for a sent message or a transient failure.
    pub permanent: bool,
    /// The dedupe key's delivery was already sent: nothing was sent this time.
    pub already_sent: bool,
    /// The row as stored.
    pub delivery: EmailDelivery,
}

impl DeliveryOutcome {
    fn from_row(delivery: EmailDelivery, already_sent: bool) -> Self {
        DeliveryOutcome {
            delivery_id: delivery.id.clone(),
            status: DeliveryStatus::parse(&delivery.status).unwrap_or(DeliveryStatus::Failed),
            attempts: u32::try_from(delivery.attempts).unwrap_or(0),
            last_error: delivery.last_error.clone(),
            permanent: false,
            already_sent,
            delivery,
        }
    }

    pub fn is_sent(&self) -> bool {
        self.status == DeliveryStatus::Sent
    }
}

/// How a [`Mailer::send_deferred`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Deferred {
    /// Sent now, not recorded: the caller writes it (`Deliveries::write`, or with the
    /// step that sent it).
    Sent(Finished),
    /// Nothing left to record: sent before (`already_sent`), or failed and recorded.
    Recorded(DeliveryOutcome),
}

/// Sends mail. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    templates: Templates,
    transport: Transport,
    from: Mailbox,
    admin: String,
    policy: RetryPolicy,
    deliveries: Deliveries,
}

/// Retries for the final database update after a send (the message is out; losing its
/// outcome to a busy database would send it twice on the next re-drive).
const RECORD_POLICY: RetryPolicy = RetryPolicy {
    initial: std::time::Duration::from_millis(50),
    max: std::time::Duration::from_secs(2),
    max_attempts: 5,
};

impl Mailer {
    /// Checks the addresses, compiles the templates and sets up the transport.
    ///
    /// With the SMTP transport, call it inside a Tokio runtime: lettre's connection pool
    /// spawns its clean-up task there. Pooled connections are driven by the runtime that
    /// opened them, so share one `Mailer` within one runtime (e.g. behind one actor)
    /// rather than across independent runtimes.
    pub fn new(mail: &MailSettings, app: &AppSettings, db: Db) -> Result<Mailer, MailError> {
        let from: Mailbox = mail
            .from
            .parse()
            .map_err(|e| MailError::Config(format!("mail.from `{}`: {e}", mail.from)))?;
        mail.admin
            .parse::<Mailbox>()
            .map_err(|e| MailError::Config(format!("mail.admin `{}`: {e}", mail.admin)))?;
        Ok(Mailer {
            inner: Arc::new(Inner {
                templates: Templates::new(mail, app)?,
                transport: Transport::from_settings(mail)?,
                from,
                admin: mail.admin.clone(),
                policy: RetryPolicy::from_mail(mail),
                deliveries: Deliveries::new(db),
            }),
        })
    }

    /// `mail.admin`.
    pub fn admin_address(&self) -> &str {
        &self.inner.admin
    }

    pub fn templates(&self) -> &Templates {
        &self.inner.templates
    }

    pub fn deliveries(&self) -> &Deliveries {
        &self.inner.deliveries
    }

    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    pub fn policy(&self) -> RetryPolicy {
        self.inner.policy
    }

    /// Renders, logs and sends `mail`, retrying transient failures up to
    /// `mail.max_attempts` times with exponential backoff.
    ///
    /// With a dedupe key: if that key's delivery is already `sent`, nothing is sent and
    /// its outcome is returned with `already_sent`; if it exists unsent (failed, or
    /// interrupted), the same row is reused and the message sent. The row is written once
    /// the send is over. Two concurrent sends with the same unsent key may both send (the
    /// second result is recorded on the same row); callers re-driving one order step at a
    /// time never do that.
    pub async fn send(&self, mail: OutgoingMail) -> Result<DeliveryOutcome, MailError> {
        let (rendered, opened) = self.render_and_open(&mail).await?;
        match opened {
            Opened::AlreadySent(row) => Ok(DeliveryOutcome::from_row(row, true)),
            Opened::Ready(row) => self.deliver(row, &rendered, mail.attachment.as_ref()).await,
        }
    }

    /// Renders `mail` and opens the row it will be recorded under ([`Deliveries::open`]).
    async fn render_and_open(
        &self,
        mail: &OutgoingMail,
    ) -> Result<(RenderedMail, Opened), MailError> {
        let rendered = self.inner.templates.render(&mail.content)?;
        let opened = self
            .inner
            .deliveries
            .open(NewDelivery {
                kind: mail.content.kind(),
                recipient: &mail.to,
                subject: &rendered.subject,
                invoice_id: mail.invoice_id.as_deref(),
                commande_id: mail.commande_id.as_deref(),
                dedupe_key: mail.dedupe_key.as_deref(),
                stored: &mail.stored,
            })
            .await?;
        Ok((rendered, opened))
    }

    /// Sends a delivery that is not `sent` again (e.g. from the admin API after a
    /// failure), to its recorded recipient, with the same row (attempts accumulate).
    /// The caller passes the content and attachment again (they are not stored); it must
    /// be of the delivery's kind. A delivery already sent is returned as is.
    pub async fn retry_delivery(
        &self,
        id: &str,
        content: &MailContent,
        attachment: Option<Attachment>,
    ) -> Result<DeliveryOutcome, MailError> {
        let existing = self
            .inner
            .deliveries
            .get(id)
            .await?
            .ok_or_else(|| MailError::NotFound(id.to_owned()))?;
        if existing.kind != content.kind() {
            return Err(MailError::KindMismatch {
                id: id.to_owned(),
                stored: existing.kind,
                given: content.kind(),
            });
        }
        let rendered = self.inner.templates.render(content)?;
        match self.inner.deliveries.reopen(id, &rendered.subject).await? {
            None => Err(MailError::NotFound(id.to_owned())),
            Some(Opened::AlreadySent(row)) => Ok(DeliveryOutcome::from_row(row, true)),
            Some(Opened::Ready(row)) => self.deliver(row, &rendered, attachment.as_ref()).await,
        }
    }

    /// [`send`](Self::send), except that a message sent now is not recorded here: its row
    /// comes back in [`Deferred::Sent`] for the caller to write in its own transaction,
    /// with the state change the mail stands for (the order pipeline's step). Until that
    /// commits, a re-drive sends the message again: at least once, never lost. Failures
    /// are recorded at once, as by [`send`](Self::send).
    pub async fn send_deferred(&self, mail: OutgoingMail) -> Result<Deferred, MailError> {
        let (rendered, opened) = self.render_and_open(&mail).await?;
        let row = match opened {
            Opened::AlreadySent(row) => {
                return Ok(Deferred::Recorded(DeliveryOutcome::from_row(row, true)))
            }
            Opened::Ready(row) => row,
        };
        let (finished, permanent) = self
            .attempt(&row, &rendered, mail.attachment.as_ref())
            .await;
        if finished.delivery().status == DeliveryStatus::Sent.as_str() {
            return Ok(Deferred::Sent(finished));
        }
        self.record(&finished, permanent)
            .await
            .map(Deferred::Recorded)
    }

    /// Sends `row`'s message and records how it went.
    async fn deliver(
        &self,
        row: EmailDelivery,
        rendered: &RenderedMail,
        attachment: Option<&Attachment>,
    ) -> Result<DeliveryOutcome, MailError> {
        let (finished, permanent) = self.attempt(&row, rendered, attachment).await;
        self.record(&finished, permanent).await
    }

    /// Sends `row`'s message, retrying transient failures, and says how it ended (not
    /// recorded yet) and whether a failure is permanent.
    async fn attempt(
        &self,
        row: &EmailDelivery,
        rendered: &RenderedMail,
        attachment: Option<&Attachment>,
    ) -> (Finished, bool) {
        let (status, attempts, last_error, permanent) = match self.build(row, rendered, attachment)
        {
            // Nothing a retry could fix; no attempt was made.
            Err(e) => (DeliveryStatus::Failed, 0, Some(e.message), true),
            Ok((envelope, raw)) => {
                let label = FileLabel {
                    at: now(),
                    recipient: &row.recipient,
                    kind: &row.kind,
                    delivery_id: &row.id,
                };
                let transport = &self.inner.transport;
                let done = retry::retry_notify(
                    &self.inner.policy,
                    || transport.send(&envelope, &raw, &label),
                    |e, attempt, delay| {
                        tracing::warn!(
                            delivery = %row.id, kind = %row.kind, attempt,
                            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                            error = %e, "mail not sent yet, retrying"
                        );
                    },
                )
                .await;
                match done.result {
                    Ok(()) => (DeliveryStatus::Sent, done.attempts, None, false),
                    Err(failure) => (
                        DeliveryStatus::Failed,
                        done.attempts,
                        Some(failure.error().message.clone()),
                        failure.is_permanent(),
                    ),
                }
            }
        };
        match &last_error {
            None => tracing::info!(delivery = %row.id, kind = %row.kind, attempts, "mail sent"),
            Some(error) => tracing::error!(
                delivery = %row.id, kind = %row.kind, attempts, %error, "mail failed"
            ),
        }
        let finished = Finished::new(row, status, attempts, last_error.as_deref());
        (finished, permanent)
    }

    /// Writes a finished send's row, retrying a busy database: the message is out (or
    /// failed for good), and losing its outcome would send it twice on the next re-drive.
    async fn record(
        &self,
        finished: &Finished,
        permanent: bool,
    ) -> Result<DeliveryOutcome, MailError> {
        let deliveries = &self.inner.deliveries;
        let recorded = retry::retry(&RECORD_POLICY, || deliveries.write(finished)).await;
        let stored = recorded.into_result()?;
        Ok(DeliveryOutcome {
            permanent,
            ..DeliveryOutcome::from_row(stored, false)
        })
    }

    /// The envelope and the formatted message: multipart/alternative (text, HTML),
    /// inside multipart/mixed with the attachment when there is one. The Message-ID is
    /// derived from the delivery id, so every retry of one delivery carries the same id.
    fn build(
        &self,
        row: &EmailDelivery,
        rendered: &RenderedMail,
        attachment: Option<&Attachment>,
    ) -> Result<(Envelope, Vec<u8>), SendError> {
        let to: Mailbox = row.recipient.parse().map_err(|e| {
            SendError::permanent(format!(
                "invalid recipient address `{}`: {e}",
                row.recipient
            ))
        })?;
        let body = MultiPart::alternative_plain_html(rendered.text.clone(), rendered.html.clone());
        let builder = Message::builder()
            .from(self.inner.from.clone())
            .to(to)
            .subject(rendered.subject.clone())
            .message_id(Some(format!(
                "<{}@{}>",
                row.id,
                self.inner.from.email.domain()
            )));
        let message = match attachment {
            None => builder.multipart(body),
            Some(a) => {
                let content_type = ContentType::parse(&a.content_type).map_err(|e| {
                    SendError::permanent(format!(
                        "invalid attachment content type `{}`: {e}",
                        a.content_type
                    ))
                })?;
                builder.multipart(MultiPart::mixed().multipart(body).singlepart(
                    MimeAttachment::new(a.filename.clone()).body(a.bytes.clone(), content_type),
                ))
            }
        }
        .map_err(|e| SendError::permanent(format!("cannot build the message: {e}")))?;
        Ok((message.envelope().clone(), message.formatted()))
    }
}
