//! OrderActor: one per order (keyed by its Checkout Session), spawned on demand by the
//! OrderRegistry and stopped when idle. It applies the order's Stripe events and drives its
//! invoice pipeline, one message at a time, each step recorded in the database before the
//! next starts:
//!
//! `activation` (guests with a new account) → `invoice` (number + row) → `render` (PDF on
//! the pool, stored with its SHA-256) → `mail` (to the customer, PDF attached; invoice SENT)
//! → `notify` (admin notification + mail) → `done`.
//!
//! All state lives in the database; the actor holds none between messages, so a restart,
//! a crash or another process can take over at any step. Work is claimed with a lease.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Duration as ChronoDuration;
use facture_core::config::Settings;
use facture_core::db::models::{Commande, Invoice, User};
use facture_core::db::Db;
use facture_core::events;
use facture_core::invoices::{self, NewInvoice};
use facture_core::mail::retry::{retry_notify, RetryPolicy};
use facture_core::mail::{
    Attachment, Deferred, DeliveryOutcome, MailContent, OutgoingMail, StoredDelivery,
};
use facture_core::money::Cents;
use facture_core::notifications::{self, DomainEvent};
use facture_core::orders::{self, step, Claimed, Effect, StepRecord};
use facture_core::pdf::{Buyer, InvoiceDocument, PaymentInfo};
use facture_core::storage::sha256_hex;

use crate::error::EngineError;
use crate::invoice_renderer::{InvoiceRenderer, RenderPermits};
use crate::mailer::Mailer;
use crate::messages::{
    Announce, DrivePipeline, OrderStopped, PrepareNotice, ProcessEvent, Publish, Render,
    SendDeferred, SendMail, StoreInvoice,
};
use crate::metrics::{self, ActorKind};
use crate::notification_bus::NotificationBus;
use crate::order_registry::OrderRegistry;
use crate::storage_writer::StorageWriter;

/// What every OrderActor shares.
pub struct OrderDeps {
    pub db: Db,
    pub settings: Settings,
    pub node_id: String,
    pub renderer: Addr<InvoiceRenderer>,
    pub permits: RenderPermits,
    pub storage: Addr<StorageWriter>,
    pub mailer: Addr<Mailer>,
    pub bus: Addr<NotificationBus>,
    pub policy: RetryPolicy,
    /// `engine.max_active_orders` turns: one per order being worked on.
    pub active: Arc<tokio::sync::Semaphore>,
}

impl OrderDeps {
    fn lease(&self) -> ChronoDuration {
        ChronoDuration::seconds(i64::try_from(self.settings.engine.lease_secs).unwrap_or(60))
    }
}

pub struct OrderActor {
    key: String,
    /// The OrderRegistry's number for this actor, returned in `OrderStopped`.
    generation: u64,
    deps: Arc<OrderDeps>,
    registry: Addr<OrderRegistry>,
    /// Messages the registry has queued to this actor that it has not begun to handle.
    queued: Arc<AtomicUsize>,
    last_active: Instant,
    busy: bool,
}

impl OrderActor {
    pub fn new(
        key: String,
        generation: u64,
        deps: Arc<OrderDeps>,
        registry: Addr<OrderRegistry>,
        queued: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            key,
            generation,
            deps,
            registry,
            queued,
            last_active: Instant::now(),
            busy: false,
        }
    }

    fn has_queued_work(&self) -> bool {
        self.queued.load(Ordering::Relaxed) > 0
    }

    /// A message begins: no longer counted as queued.
    fn begin(&mut self) {
        metrics::dequeued(ActorKind::Order);
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        self.busy = true;
    }

    /// A message is done. With nothing more queued the actor stops now: the order's state
    /// is in the database, and an idle actor would only hold one of the
    /// `engine.max_live_orders` places that orders waiting in the database need. Waiting for
    /// `engine.order_idle_secs` instead held them for 2 s after each order: under a backlog
    /// the registry sat at its cap and the pipeline ran dry (510 paid orders/s at 2,000/s
    /// offered; 653 with a cap eight times larger, BENCHMARKS.md).
    fn end(&mut self, ctx: &mut Context<Self>) {
        self.busy = false;
        self.last_active = Instant::now();
        if !self.has_queued_work() {
            ctx.stop();
        }
    }
}

impl Actor for OrderActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.deps.settings.engine.mailbox_capacity);
        let idle = Duration::from_secs(self.deps.settings.engine.order_idle_secs.max(1));
        ctx.run_interval(idle / 2, move |act, ctx| {
            if !act.busy && act.last_active.elapsed() >= idle {
                ctx.stop();
            }
        });
    }

    /// A message counted by the registry but not yet begun keeps the actor alive (the
    /// registry and its actors share one thread, so the count cannot change meanwhile).
    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        if self.has_queued_work() {
            Running::Continue
        } else {
            Running::Stop
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.registry.do_send(OrderStopped {
            key: self.key.clone(),
            generation: self.generation,
        });
    }
}

impl Handler<ProcessEvent> for OrderActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: ProcessEvent, _: &mut Self::Context) -> Self::Result {
        self.begin();
        let deps = self.deps.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let _turn = deps.active.acquire().await;
                let started = Instant::now();
                let result = process_event(&deps, &msg.event_id).await;
                if let Err(e) = &result {
                    tracing::warn!(event = %msg.event_id, error = %e, "event not processed; the sweep will retry");
                }
                metrics::handled(ActorKind::Order, started.elapsed(), result.is_ok());
            }
            .into_actor(self)
            .map(|_, act, ctx| act.end(ctx)),
        ))
    }
}

impl Handler<DrivePipeline> for OrderActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: DrivePipeline, _: &mut Self::Context) -> Self::Result {
        self.begin();
        let deps = self.deps.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let _turn = deps.active.acquire().await;
                let started = Instant::now();
                let result = drive_pipeline(&deps, &msg.commande_id).await;
                metrics::handled(ActorKind::Order, started.elapsed(), result.is_ok());
            }
            .into_actor(self)
            .map(|_, act, ctx| act.end(ctx)),
        ))
    }
}

/// Applies one stored event (claimed, applied and finished in one transaction), then
/// drives the order it paid.
async fn process_event(deps: &OrderDeps, event_id: &str) -> Result<(), EngineError> {
    let allowed = &deps.settings.stripe.allowed_sources;
    let processed = retry_step(deps, "apply_event", || async {
        orders::process_stored_event(&deps.db, event_id, &deps.node_id, deps.lease(), allowed)
            .await
            .map_err(EngineError::from)
    })
    .await;
    let orders::Processed {
        row,
        event,
        effect,
        claimed,
    } = match processed {
        Ok(Some(processed)) => processed,
        Ok(None) => return Ok(()), // finished already, or another process has it
        Err(e) => {
            // Nothing was applied (the transaction rolled back); the sweep retries.
            events::release(&deps.db, event_id, &e.to_string()).await?;
            return Err(e);
        }
    };
    metrics::event_claimed(row.session_id.as_deref(), row.received_at);
    tracing::info!(event = %row.stripe_event_id, r#type = %row.event_type, outcome = effect.event_status(), commande = ?effect.commande_id(), "event processed");
    match (effect, event) {
        (Effect::Paid { .. }, _) => match claimed {
            Some(claimed) => drive_claimed(deps, claimed).await,
            None => Ok(()), // nothing left to drive, or another process drives it
        },
        (Effect::PaymentFailed { commande_id }, Some(event)) => {
            let order = orders::find(&deps.db, &commande_id).await?;
            publish(
                deps,
                DomainEvent::PaymentFailed {
                    commande_id: Some(commande_id.clone()),
                    customer_email: event.object.customer_email.clone(),
                    amount: order.map(|o| Cents(o.amount_cents)),
                    reason: event.event_type.clone(),
                    stripe_session_id: event.session_id().map(str::to_owned),
                },
                format!("payment-failed:{}", event.id),
            )
            .await
        }
        _ => Ok(()),
    }
}

/// Runs the order's pipeline from its recorded step to `done`.
pub async fn drive_pipeline(deps: &OrderDeps, commande_id: &str) -> Result<(), EngineError> {
    match orders::claim_pipeline(&deps.db, commande_id, &deps.node_id, deps.lease()).await? {
        Some(claimed) => drive_claimed(deps, claimed).await,
        None => Ok(()),
    }
}

/// Runs the pipeline of an order this process has just claimed, and gives the claim back
/// if it stops before `done`.
async fn drive_claimed(deps: &OrderDeps, claimed: Claimed) -> Result<(), EngineError> {
    let Claimed {
        mut order,
        customer,
    } = claimed;
    let commande_id = order.id.clone();
    let started = Instant::now();
    let result = match customer {
        Some(customer) => run_steps(deps, &mut order, &customer).await,
        None => Err(EngineError::Corrupt(format!(
            "order {} has no customer",
            order.id
        ))),
    };
    if let Err(e) = &result {
        if !matches!(e, EngineError::Halted(_)) {
            tracing::warn!(commande = %commande_id, error = %e, "pipeline stopped");
        }
    } else {
        metrics::pipeline_latency(started.elapsed());
    }
    if result.is_err() {
        // Reaching `done` released the claim already; parking or failing a step did too,
        // but a halt or a database error may not have.
        orders::release_pipeline(&deps.db, &commande_id).await?;
    }
    match result {
        Err(EngineError::Halted(_)) => Ok(()),
        other => other,
    }
}

async fn run_steps(
    deps: &OrderDeps,
    order: &mut Commande,
    customer: &User,
) -> Result<(), EngineError> {
    // The order's invoice, read once and then kept up to date here: each step after
    // `invoice` needs it, and a read is one more wait for the pipeline's connection.
    let mut invoice: Option<Invoice> = None;
    // The PDF rendered in this run, for the mail step: reading it back from storage would
    // cost two more actor hand-offs and a file read.
    let mut pdf: Option<Vec<u8>> = None;
    // The delivery under the next step's mail key, read with the advance that led to it.
    let mut peeked = StoredDelivery::Unknown;
    loop {
        let current: &'static str = match order.pipeline.as_deref() {
            Some(s) => step::ORDER
                .iter()
                .copied()
                .find(|x| *x == s)
                .unwrap_or(step::DONE),
            None => step::DONE,
        };
        if current == step::DONE {
            return Ok(());
        }
        if deps.settings.engine.halt_before.as_deref() == Some(current) {
            tracing::warn!(commande = %order.id, step = current, "halted by engine.halt_before");
            return Err(EngineError::Halted(current.into()));
        }
        if invoice.is_none() && step::needs_invoice(current) {
            invoice = invoices::find_by_commande(&deps.db, &order.id).await?;
        }
        // Good for the first attempt only: a failed attempt records its delivery.
        let mut stored = Some(std::mem::take(&mut peeked));
        let outcome = retry_step(deps, current, || {
            run_step(
                deps,
                current,
                order,
                customer,
                invoice.as_ref(),
                pdf.as_deref(),
                stored.take().unwrap_or_default(),
            )
        })
        .await;
        match outcome {
            Ok(finished) => {
                let next = match finished {
                    Finished::Issued(issued) => {
                        invoice = Some(issued);
                        step::next(current)
                    }
                    Finished::Record(record) => {
                        let (next, read) =
                            advance(deps, order, current, &record, invoice.as_mut()).await?;
                        peeked = read;
                        next
                    }
                    Finished::Stored { record, bytes } => {
                        pdf = Some(bytes);
                        let (next, read) =
                            advance(deps, order, current, &record, invoice.as_mut()).await?;
                        peeked = read;
                        next
                    }
                };
                order.pipeline = Some(next.to_owned());
                metrics::step_done(current, order);
            }
            Err(e) if e.is_environmental() => {
                park(deps, order, current, &e).await?;
                return Err(e);
            }
            Err(e) => {
                let error = e.to_string();
                orders::fail_step(
                    &deps.db,
                    &order.id,
                    current,
                    deps.policy.max_attempts,
                    &error,
                )
                .await?;
                metrics::dead_lettered(current);
                let _ = publish(
                    deps,
                    DomainEvent::StepFailed {
                        commande_id: order.id.clone(),
                        step: current.into(),
                        attempts: deps.policy.max_attempts,
                        error: error.clone(),
                    },
                    format!("step-failed:{}:{current}", order.id),
                )
                .await;
                return Err(e);
            }
        }
    }
}

/// Records the finished step with what it leaves, on the database and on the invoice read
/// before it, retrying a busy database: a mail the step sent is recorded only here, and a
/// lost record means sending it again on the next re-drive. Returns the next step, and the
/// delivery stored under its mail's dedupe key (read in the same transaction).
async fn advance(
    deps: &OrderDeps,
    order: &Commande,
    current: &'static str,
    record: &StepRecord,
    invoice: Option<&mut Invoice>,
) -> Result<(&'static str, StoredDelivery), EngineError> {
    let peek = next_mail_key(step::next(current), order, invoice.as_deref());
    let advanced = retry_step(deps, current, || async {
        orders::advance(&deps.db, &order.id, current, record, peek.as_deref())
            .await
            .map_err(EngineError::from)
    })
    .await?;
    if let Some(invoice) = invoice {
        record.apply_to(invoice);
    }
    if let Some(notification) = advanced.announced {
        metrics::enqueued(ActorKind::NotificationBus);
        deps.bus.do_send(Announce(notification));
    }
    Ok((advanced.next, advanced.peeked))
}

/// The dedupe key of the mail step `next` sends, if it sends one.
fn next_mail_key(next: &str, order: &Commande, invoice: Option<&Invoice>) -> Option<String> {
    match next {
        step::MAIL => invoice.map(customer_mail_key),
        step::NOTIFY => Some(notifications::admin_mail_key(&payment_notice_key(order))),
        _ => None,
    }
}

/// The customer's invoice mail: sent once per invoice.
fn customer_mail_key(invoice: &Invoice) -> String {
    format!("invoice:{}", invoice.id)
}

/// The admins' notice of the order's payment (and, through it, their mail).
fn payment_notice_key(order: &Commande) -> String {
    format!("payment:{}", order.id)
}

/// Leaves a step that the environment made fail (mail server, storage, database) for the
/// sweep to retry after `engine.retry_max_ms`, as many times as it takes: the data is
/// fine, so giving up would only turn an outage into lost invoices or mails.
async fn park(
    deps: &OrderDeps,
    order: &Commande,
    current: &'static str,
    error: &EngineError,
) -> Result<(), EngineError> {
    let delay = i64::try_from(deps.settings.engine.retry_max_ms).unwrap_or(30_000);
    let retry_at = facture_core::db::now() + ChronoDuration::milliseconds(delay);
    orders::park_step(&deps.db, &order.id, current, &error.to_string(), retry_at).await?;
    metrics::parked(current);
    tracing::warn!(commande = %order.id, step = current, %error, %retry_at, "step parked until the environment recovers");
    Ok(())
}

/// Retries one step's transient failures with backoff; the last error comes back.
async fn retry_step<T, F, Fut>(deps: &OrderDeps, name: &str, op: F) -> Result<T, EngineError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, EngineError>>,
{
    retry_notify(&deps.policy, op, |e, attempt, delay| {
        metrics::retried(ActorKind::Order);
        tracing::warn!(step = name, attempt, ?delay, error = %e, "step failed, retrying");
    })
    .await
    .into_result()
}

/// How a step ended.
enum Finished {
    /// The invoice was issued, and the pipeline moved on in the same transaction.
    Issued(Invoice),
    /// The pipeline moves on with this recorded in the same transaction.
    Record(StepRecord),
    /// The PDF was rendered and stored: recorded like `Record`, and its bytes kept.
    Stored { record: StepRecord, bytes: Vec<u8> },
}

async fn run_step(
    deps: &OrderDeps,
    current: &str,
    order: &Commande,
    customer: &User,
    invoice: Option<&Invoice>,
    pdf: Option<&[u8]>,
    stored: StoredDelivery,
) -> Result<Finished, EngineError> {
    let nothing = |()| Finished::Record(StepRecord::Nothing);
    let invoice_of = || {
        invoice.ok_or_else(|| EngineError::Corrupt(format!("order {} has no invoice", order.id)))
    };
    match current {
        step::ACTIVATION => send_activation(deps, order, customer).await.map(nothing),
        step::INVOICE => issue_invoice(deps, order, customer)
            .await
            .map(Finished::Issued),
        step::RENDER => render_and_store(deps, invoice_of()?)
            .await
            .map(|(record, bytes)| Finished::Stored { record, bytes }),
        step::MAIL => mail_customer(deps, order, customer, invoice_of()?, pdf, stored)
            .await
            .map(Finished::Record),
        step::NOTIFY => notify_admins(deps, order, customer, invoice, stored)
            .await
            .map(Finished::Record),
        other => Err(EngineError::Corrupt(format!(
            "unknown pipeline step {other}"
        ))),
    }
}

async fn send_activation(
    deps: &OrderDeps,
    order: &Commande,
    customer: &User,
) -> Result<(), EngineError> {
    let key = format!("activation:{}", order.id);
    let deliveries = facture_core::mail::Deliveries::new(deps.db.clone());
    if let Some(d) = deliveries.find_by_dedupe_key(&key).await? {
        if d.status == "sent" {
            return Ok(()); // sent before a crash: do not replace the token it carries
        }
    }
    let token = facture_core::random_hex(32);
    let hours = i64::try_from(deps.settings.auth.activation_token_lifetime_hours).unwrap_or(72);
    let expires_at = facture_core::db::now() + ChronoDuration::hours(hours);
    orders::set_activation_token(
        &deps.db,
        &order.id,
        &sha256_hex(token.as_bytes()),
        expires_at,
    )
    .await?;
    let mail = OutgoingMail::new(
        customer.email.clone(),
        MailContent::AccountActivation {
            first_name: customer.prenom.clone(),
            email: customer.email.clone(),
            token,
            expires_at,
        },
    )
    .commande_id(order.id.clone())
    .dedupe_key(key);
    send_mail(deps, mail).await?;
    publish(
        deps,
        DomainEvent::AccountActivationSent {
            user_id: customer.id.clone(),
            email: customer.email.clone(),
            first_name: customer.prenom.clone(),
            commande_id: Some(order.id.clone()),
        },
        format!("activation:{}", order.id),
    )
    .await
}

async fn issue_invoice(
    deps: &OrderDeps,
    order: &Commande,
    customer: &User,
) -> Result<Invoice, EngineError> {
    let company = &deps.settings.company;
    let rate = company.vat_rate();
    let split = Cents(order.amount_cents).split_ttc(rate);
    let new = NewInvoice {
        commande_id: order.id.clone(),
        amount_cents: order.amount_cents,
        tax_cents: split.tva.0,
        tax_rate_bp: i32::try_from(rate.0).unwrap_or(0),
        paid_at: order.paid_at,
        due_days: deps.settings.invoice.due_days,
    };
    let document = |number: &str, issued_at: chrono::NaiveDateTime| {
        let doc = InvoiceDocument::single_line(
            number.to_owned(),
            issued_at.date(),
            Buyer {
                name: format!("{} {}", customer.prenom, customer.nom),
                email: customer.email.clone(),
                address: customer.adresse.clone(),
                siren: None,
                vat_number: None,
                is_business: false,
            },
            order.titre.clone(),
            order.description.clone(),
            Cents(order.amount_cents),
            rate,
            Some(PaymentInfo {
                paid_on: order.paid_at.unwrap_or(issued_at).date(),
                method: "carte bancaire (Stripe)".into(),
                reference: order
                    .stripe_payment_intent
                    .clone()
                    .or_else(|| order.stripe_session_id.clone())
                    .unwrap_or_default(),
            }),
        );
        serde_json::to_string(&doc)
            .map_err(|e| facture_core::db::DbError::Corrupt(format!("invoice document: {e}")))
    };
    let prefix = &deps.settings.invoice.prefix;
    let issued = invoices::issue_and_advance(&deps.db, prefix, new, document).await?;
    if issued.created {
        metrics::invoice_issued();
        tracing::info!(commande = %order.id, number = %issued.invoice.number, "invoice issued");
    }
    Ok(issued.invoice)
}

/// Renders the invoice on the pool and stores it; path and SHA-256 go on the row with the
/// step's advance.
async fn render_and_store(
    deps: &OrderDeps,
    invoice: &Invoice,
) -> Result<(StepRecord, Vec<u8>), EngineError> {
    let (bytes, _) = render_pdf(deps, invoice).await?;
    let stored = store_pdf_file(deps, invoice, bytes.clone()).await?;
    let record = StepRecord::PdfStored {
        invoice_id: invoice.id.clone(),
        path: stored.relative_path,
        sha256: stored.sha256,
        size: i64::try_from(stored.size).unwrap_or(i64::MAX),
    };
    Ok((record, bytes))
}

/// PDF bytes for a stored invoice, through the renderer pool (with a permit).
pub async fn render_pdf(
    deps: &OrderDeps,
    invoice: &Invoice,
) -> Result<(Vec<u8>, InvoiceDocument), EngineError> {
    let doc: InvoiceDocument = serde_json::from_str(&invoice.document)
        .map_err(|e| EngineError::Corrupt(format!("invoice {} document: {e}", invoice.number)))?;
    let _permit = deps.permits.acquire().await;
    metrics::enqueued(ActorKind::InvoiceRenderer);
    let bytes = deps.renderer.send(Render(Box::new(doc.clone()))).await??;
    Ok((bytes, doc))
}

/// Stores the PDF through the StorageWriter and records it on the invoice row.
pub async fn store_pdf(
    deps: &OrderDeps,
    invoice: &Invoice,
    bytes: Vec<u8>,
) -> Result<(), EngineError> {
    let stored = store_pdf_file(deps, invoice, bytes).await?;
    invoices::record_pdf(
        &deps.db,
        &invoice.id,
        &stored.relative_path,
        &stored.sha256,
        i64::try_from(stored.size).unwrap_or(i64::MAX),
    )
    .await?;
    Ok(())
}

/// Writes the PDF under `uploads/` (atomically, with its SHA-256) through the StorageWriter.
async fn store_pdf_file(
    deps: &OrderDeps,
    invoice: &Invoice,
    bytes: Vec<u8>,
) -> Result<facture_core::storage::StoredFile, EngineError> {
    let id = uuid::Uuid::parse_str(&invoice.id)
        .map_err(|e| EngineError::Corrupt(format!("invoice id {}: {e}", invoice.id)))?;
    metrics::enqueued(ActorKind::StorageWriter);
    deps.storage
        .send(StoreInvoice {
            invoice_id: id,
            bytes,
        })
        .await?
}

async fn mail_customer(
    deps: &OrderDeps,
    order: &Commande,
    customer: &User,
    invoice: &Invoice,
    rendered: Option<&[u8]>,
    stored: StoredDelivery,
) -> Result<StepRecord, EngineError> {
    let pdf = match rendered {
        Some(bytes) => bytes.to_vec(),
        // A pipeline resumed at this step, after a restart.
        None => read_stored_pdf(deps, invoice).await?.ok_or_else(|| {
            EngineError::Corrupt(format!("invoice {} has no stored PDF", invoice.number))
        })?,
    };
    let mail = OutgoingMail::new(
        customer.email.clone(),
        MailContent::PaymentConfirmation {
            first_name: customer.prenom.clone(),
            invoice_number: invoice.number.clone(),
            amount: Cents(invoice.amount_cents),
            order_title: order.titre.clone(),
            new_account: order.is_guest && !customer.is_active,
        },
    )
    .attachment(Attachment::invoice_pdf(&invoice.number, pdf))
    .invoice_id(invoice.id.clone())
    .commande_id(order.id.clone())
    .dedupe_key(customer_mail_key(invoice))
    .stored(stored);
    metrics::enqueued(ActorKind::Mailer);
    let delivery = match deps.mailer.send(SendDeferred(mail)).await?? {
        Deferred::Sent(delivery) => Some(delivery),
        Deferred::Recorded(outcome) => {
            sent_or_failed(deps, outcome).await?;
            None
        }
    };
    Ok(StepRecord::InvoiceSent {
        invoice_id: invoice.id.clone(),
        delivery,
    })
}

/// The invoice's stored PDF through the StorageWriter, checked against the SHA-256 on the
/// row; `None` when no PDF is recorded.
pub async fn read_stored_pdf(
    deps: &OrderDeps,
    invoice: &Invoice,
) -> Result<Option<Vec<u8>>, EngineError> {
    let (Some(path), Some(sha)) = (&invoice.pdf_path, &invoice.pdf_sha256) else {
        return Ok(None);
    };
    metrics::enqueued(ActorKind::StorageWriter);
    let bytes = deps
        .storage
        .send(crate::messages::ReadInvoice {
            relative_path: path.clone(),
            sha256: sha.clone(),
        })
        .await??;
    Ok(Some(bytes))
}

/// Mails the admins and prepares their notification; both are recorded with the step's
/// advance.
async fn notify_admins(
    deps: &OrderDeps,
    order: &Commande,
    customer: &User,
    invoice: Option<&Invoice>,
    stored: StoredDelivery,
) -> Result<StepRecord, EngineError> {
    let event = DomainEvent::PaymentReceived {
        commande_id: order.id.clone(),
        customer_name: format!("{} {}", customer.prenom, customer.nom),
        customer_email: customer.email.clone(),
        amount: Cents(order.amount_cents),
        order_title: order.titre.clone(),
        guest: order.is_guest,
        stripe_session_id: order.stripe_session_id.clone(),
        invoice_id: invoice.map(|i| i.id.clone()),
        invoice_number: invoice.map(|i| i.number.clone()),
    };
    metrics::enqueued(ActorKind::NotificationBus);
    let notice = deps
        .bus
        .send(PrepareNotice {
            event,
            dedupe_key: payment_notice_key(order),
            stored,
        })
        .await??;
    Ok(StepRecord::Notified {
        notification: notice.notification,
        delivery: notice.delivery,
    })
}

async fn send_mail(deps: &OrderDeps, mail: OutgoingMail) -> Result<(), EngineError> {
    metrics::enqueued(ActorKind::Mailer);
    let outcome = deps.mailer.send(SendMail(mail)).await??;
    sent_or_failed(deps, outcome).await
}

/// `Ok` for a mail sent; otherwise the admins are told (once per delivery) and the
/// failure comes back.
async fn sent_or_failed(deps: &OrderDeps, outcome: DeliveryOutcome) -> Result<(), EngineError> {
    if outcome.is_sent() {
        return Ok(());
    }
    // Tell the admins once per delivery: during an outage the step is retried (and parked)
    // many times, and an alert per attempt would bury them (and each is a mail that fails too).
    let event = DomainEvent::delivery_failed(&outcome.delivery);
    let key = format!("delivery-failed:{}", outcome.delivery_id);
    if let Err(e) = publish(deps, event, key).await {
        tracing::warn!(error = %e, "delivery failure not notified");
    }
    Err(EngineError::not_delivered(outcome))
}

async fn publish(deps: &OrderDeps, event: DomainEvent, key: String) -> Result<(), EngineError> {
    metrics::enqueued(ActorKind::NotificationBus);
    deps.bus
        .send(Publish {
            event,
            dedupe_key: Some(key),
        })
        .await?
}
