//! Every message the actor tree exchanges: the tree's public API, in one place.

use actix::prelude::*;
use facture_core::db::models::Notification;
use facture_core::events::{Appended, NewEvent};
use facture_core::mail::{
    Attachment, Deferred, DeliveryOutcome, Finished, MailContent, OutgoingMail, StoredDelivery,
};
use facture_core::notifications::DomainEvent;
use facture_core::pdf::InvoiceDocument;
use facture_core::storage::StoredFile;

use crate::error::EngineError;

/// HTTP → WebhookReceiver: append a verified event durably. The outcome goes to `reply`
/// once the event's batch has committed (see [`crate::webhook_receiver::append`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AppendEvent {
    pub event: NewEvent,
    pub reply: tokio::sync::oneshot::Sender<Result<Appended, EngineError>>,
}

/// WebhookReceiver → OrderRegistry (SQLite): events were acknowledged in the journal; copy
/// them into `webhook_events` and process them (`facture_core::events::import_acknowledged`).
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct ImportAcknowledged;

/// WebhookReceiver (PostgreSQL) / importer / sweep → OrderRegistry → OrderActor: process a
/// stored event.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct ProcessEvent {
    /// The webhook_events row id.
    pub event_id: String,
    /// Routing key: the Checkout Session id when known (one actor per order).
    pub key: String,
}

/// Sweep / admin → OrderRegistry → OrderActor: drive an order's invoice pipeline.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct DrivePipeline {
    pub commande_id: String,
    pub key: String,
}

/// OrderActor → OrderRegistry: this actor stopped (idle).
#[derive(Message)]
#[rtype(result = "()")]
pub struct OrderStopped {
    pub key: String,
    /// Which of the key's actors stopped (the registry's start count when it began).
    pub generation: u64,
}

/// How many OrderActors are alive now (at most `engine.max_live_orders`).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct LiveOrders;

/// OrderRegistry's periodic (and start-up) search for unfinished work.
#[derive(Message)]
#[rtype(result = "Result<SweepReport, EngineError>")]
pub struct Sweep;

/// What a sweep found and routed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub events: usize,
    pub pipelines: usize,
}

/// → InvoiceRenderer pool: PDF bytes for an invoice (CPU only, no I/O).
#[derive(Message)]
#[rtype(result = "Result<Vec<u8>, EngineError>")]
pub struct Render(pub Box<InvoiceDocument>);

/// → StorageWriter: store an invoice PDF atomically under `invoices/<uuid>.pdf`.
#[derive(Message)]
#[rtype(result = "Result<StoredFile, EngineError>")]
pub struct StoreInvoice {
    pub invoice_id: uuid::Uuid,
    pub bytes: Vec<u8>,
}

/// → StorageWriter: read a stored invoice back, checking its SHA-256.
#[derive(Message)]
#[rtype(result = "Result<Vec<u8>, EngineError>")]
pub struct ReadInvoice {
    pub relative_path: String,
    pub sha256: String,
}

/// → Mailer: send one message (retries inside, per the mail settings).
#[derive(Message)]
#[rtype(result = "Result<DeliveryOutcome, EngineError>")]
pub struct SendMail(pub OutgoingMail);

/// OrderActor / NotificationBus → Mailer: send one message, leaving a successful send's
/// delivery row to the caller, who writes it with the pipeline step that sent it.
#[derive(Message)]
#[rtype(result = "Result<Deferred, EngineError>")]
pub struct SendDeferred(pub OutgoingMail);

/// → Mailer: send a failed delivery again with its content rebuilt by the caller.
#[derive(Message)]
#[rtype(result = "Result<DeliveryOutcome, EngineError>")]
pub struct RetryDelivery {
    pub delivery_id: String,
    pub content: MailContent,
    pub attachment: Option<Attachment>,
}

/// → NotificationBus: record a domain event for the admins (and mail the important ones).
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct Publish {
    pub event: DomainEvent,
    /// Makes publishing idempotent when a step is re-driven.
    pub dedupe_key: Option<String>,
}

/// OrderActor → NotificationBus: prepare an event's notification and mail the admins (if
/// it is important); the order's step then records both with its advance, and sends
/// [`Announce`]. When the mail fails, the notification is recorded at once anyway (the
/// admins see it in the app while mail is down) and the mail's failure comes back.
#[derive(Message)]
#[rtype(result = "Result<Notice, EngineError>")]
pub struct PrepareNotice {
    pub event: DomainEvent,
    pub dedupe_key: String,
    /// The admin mail's stored delivery, if the caller read it already.
    pub stored: StoredDelivery,
}

/// What [`PrepareNotice`] leaves to record.
#[derive(Debug, Clone)]
pub struct Notice {
    /// Not stored yet.
    pub notification: Notification,
    /// The admin mail, sent and not recorded yet; `None` when there was none to send or
    /// it was sent before.
    pub delivery: Option<Finished>,
}

/// OrderActor → NotificationBus: a notification stored with a step; tell live listeners.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Announce(pub Notification);
