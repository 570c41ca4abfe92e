//! What admins ask of the engine through the API: regenerate an invoice's PDF, resend it,
//! retry a failed delivery, replay a stored event. Each goes through the same actors as a
//! payment (renderer pool, StorageWriter, Mailer), never around them.

use chrono::Duration as ChronoDuration;
use facture_core::db::models::{EmailDelivery, Invoice, User};
use facture_core::mail::{Attachment, DeliveryOutcome, MailContent, OutgoingMail};
use facture_core::money::Cents;
use facture_core::pdf::InvoiceDocument;
use facture_core::storage::sha256_hex;
use facture_core::{events, invoices, orders};

use crate::error::EngineError;
use crate::messages::{ProcessEvent, RetryDelivery, SendMail};
use crate::metrics::{self, ActorKind};
use crate::order_actor::{read_stored_pdf, render_pdf, store_pdf};
use crate::Engine;

impl Engine {
    async fn invoice(&self, invoice_id: &str) -> Result<Invoice, EngineError> {
        invoices::find(&self.deps.db, invoice_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("invoice {invoice_id}")))
    }

    async fn customer_of(&self, invoice: &Invoice) -> Result<User, EngineError> {
        let order = orders::find(&self.deps.db, &invoice.commande_id)
            .await?
            .ok_or_else(|| {
                EngineError::Corrupt(format!("invoice {} has no order", invoice.number))
            })?;
        orders::find_user(&self.deps.db, &order.user_id)
            .await?
            .ok_or_else(|| EngineError::Corrupt(format!("order {} has no customer", order.id)))
    }

    /// Renders the invoice again from its stored data (same number, same content) and
    /// replaces the file and its SHA-256. Answers when done.
    pub async fn regenerate(&self, invoice_id: &str) -> Result<Invoice, EngineError> {
        let invoice = self.invoice(invoice_id).await?;
        let (bytes, _) = render_pdf(&self.deps, &invoice).await?;
        store_pdf(&self.deps, &invoice, bytes).await?;
        self.invoice(invoice_id).await
    }

    /// The stored PDF, checked against the SHA-256 on the row.
    pub async fn read_pdf(&self, invoice: &Invoice) -> Result<Vec<u8>, EngineError> {
        read_stored_pdf(&self.deps, invoice)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("the PDF of invoice {}", invoice.number)))
    }

    /// Sends the invoice to its customer again, PDF attached. A new delivery each time.
    pub async fn resend(&self, invoice_id: &str) -> Result<DeliveryOutcome, EngineError> {
        let invoice = self.invoice(invoice_id).await?;
        let customer = self.customer_of(&invoice).await?;
        let pdf = self.read_pdf(&invoice).await?;
        let content = resent_content(&invoice, &customer)?;
        let mail = OutgoingMail::new(customer.email.clone(), content)
            .attachment(Attachment::invoice_pdf(&invoice.number, pdf))
            .invoice_id(invoice.id.clone())
            .commande_id(invoice.commande_id.clone());
        metrics::enqueued(ActorKind::Mailer);
        self.deps.mailer.send(SendMail(mail)).await?
    }

    /// Tries a failed delivery again with the same content rebuilt from the database.
    pub async fn retry_delivery(&self, delivery_id: &str) -> Result<DeliveryOutcome, EngineError> {
        let deliveries = self.core_mailer.deliveries();
        let delivery = deliveries
            .get(delivery_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("delivery {delivery_id}")))?;
        let (content, attachment) = self.rebuild(&delivery).await?;
        metrics::enqueued(ActorKind::Mailer);
        self.deps
            .mailer
            .send(RetryDelivery {
                delivery_id: delivery_id.to_owned(),
                content,
                attachment,
            })
            .await?
    }

    async fn rebuild(
        &self,
        delivery: &EmailDelivery,
    ) -> Result<(MailContent, Option<Attachment>), EngineError> {
        let unsupported = || {
            EngineError::Unsupported(format!(
                "a {} message cannot be rebuilt; the event that produced it can be replayed",
                delivery.kind
            ))
        };
        match delivery.kind.as_str() {
            "payment_confirmation" | "invoice_resent" => {
                let invoice_id = delivery.invoice_id.as_deref().ok_or_else(unsupported)?;
                let invoice = self.invoice(invoice_id).await?;
                let customer = self.customer_of(&invoice).await?;
                let order = orders::find(&self.deps.db, &invoice.commande_id).await?;
                let content = if delivery.kind == "invoice_resent" {
                    resent_content(&invoice, &customer)?
                } else {
                    MailContent::PaymentConfirmation {
                        first_name: customer.prenom.clone(),
                        invoice_number: invoice.number.clone(),
                        amount: Cents(invoice.amount_cents),
                        order_title: order.as_ref().map(|o| o.titre.clone()).unwrap_or_default(),
                        new_account: order.is_some_and(|o| o.is_guest) && !customer.is_active,
                    }
                };
                let pdf = self.read_pdf(&invoice).await?;
                Ok((content, Some(Attachment::invoice_pdf(&invoice.number, pdf))))
            }
            "account_activation" => {
                // The token is only ever stored hashed: a retry carries a fresh one.
                let commande_id = delivery.commande_id.as_deref().ok_or_else(unsupported)?;
                let order = orders::find(&self.deps.db, commande_id)
                    .await?
                    .ok_or_else(unsupported)?;
                let customer = orders::find_user(&self.deps.db, &order.user_id)
                    .await?
                    .ok_or_else(unsupported)?;
                let token = facture_core::random_hex(32);
                let hours = i64::try_from(self.deps.settings.auth.activation_token_lifetime_hours)
                    .unwrap_or(72);
                let expires_at = facture_core::db::now() + ChronoDuration::hours(hours);
                orders::set_activation_token(
                    &self.deps.db,
                    commande_id,
                    &sha256_hex(token.as_bytes()),
                    expires_at,
                )
                .await?;
                Ok((
                    MailContent::AccountActivation {
                        first_name: customer.prenom,
                        email: customer.email,
                        token,
                        expires_at,
                    },
                    None,
                ))
            }
            _ => Err(unsupported()),
        }
    }

    /// Puts a stored event back in the queue and routes it now.
    pub async fn replay_event(&self, event_row_id: &str) -> Result<(), EngineError> {
        let event = events::get(&self.deps.db, event_row_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("webhook event {event_row_id}")))?;
        events::requeue(&self.deps.db, Some(&event.stripe_event_id), false).await?;
        let key = event.session_id.clone().unwrap_or_else(|| event.id.clone());
        metrics::enqueued(ActorKind::OrderRegistry);
        self.registry
            .try_send(ProcessEvent {
                event_id: event.id,
                key,
            })
            .map_err(|e| EngineError::Unavailable(e.to_string()))
    }
}

fn resent_content(invoice: &Invoice, customer: &User) -> Result<MailContent, EngineError> {
    let doc: InvoiceDocument = serde_json::from_str(&invoice.document)
        .map_err(|e| EngineError::Corrupt(format!("invoice {} document: {e}", invoice.number)))?;
    Ok(MailContent::InvoiceResent {
        first_name: customer.prenom.clone(),
        invoice_number: invoice.number.clone(),
        amount: Cents(invoice.amount_cents),
        issued_on: doc.issued_on,
    })
}
