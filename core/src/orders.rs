//! Orders: customers, commandes, the guest checkout, and what a Stripe event does to them.
//!
//! [`process_stored_event`] is the one place where a payment changes an order. It runs in one write
//! transaction and is idempotent and monotonic: a second `completed` changes nothing, a late
//! failure never un-pays an order. After it, a paid order carries a `pipeline` step name
//! that the engine drives to `done` (see [`step`]).

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::models::{
    Commande, EmailDelivery, Invoice, Notification, OrderStep, PendingCommande, User, WebhookEvent,
};
use crate::db::schema::{commandes, files, order_steps, pending_commandes, users};
use crate::db::{new_id, now, Db, DbError, KeepPreparedDsl};
use crate::mail::{Finished, StoredDelivery};
use crate::stripe::{EventKind, StripeEvent};
use crate::{with_conn, with_write_tx};

/// The invoice pipeline of a paid order, in order. Each step is recorded before the next.
pub mod step {
    pub const ACTIVATION: &str = "activation";
    pub const INVOICE: &str = "invoice";
    pub const RENDER: &str = "render";
    pub const MAIL: &str = "mail";
    pub const NOTIFY: &str = "notify";
    pub const DONE: &str = "done";

    pub const ORDER: [&str; 6] = [ACTIVATION, INVOICE, RENDER, MAIL, NOTIFY, DONE];

    /// The step after `current`.
    pub fn next(current: &str) -> &'static str {
        let i = ORDER
            .iter()
            .position(|s| *s == current)
            .unwrap_or(ORDER.len() - 1);
        ORDER[(i + 1).min(ORDER.len() - 1)]
    }

    /// True for the steps that work on the order's invoice (every step after `invoice`).
    pub fn needs_invoice(current: &str) -> bool {
        matches!(current, RENDER | MAIL | NOTIFY)
    }
}

pub mod statut {
    pub const EN_ATTENTE: &str = "EN_ATTENTE";
    pub const PAYEE: &str = "PAYEE";
    pub const EN_COURS: &str = "EN_COURS";
}

pub mod payment {
    pub const PENDING: &str = "pending";
    pub const PAID: &str = "paid";
    pub const FAILED: &str = "failed";
    pub const EXPIRED: &str = "expired";
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The order is paid (now or already); its pipeline needs driving.
    Paid { commande_id: String, new_user: bool },
    /// A payment failed on an unpaid order.
    PaymentFailed { commande_id: String },
    /// Nothing to do for this event (already handled, unhandled type, filtered source...).
    Ignored(String),
    /// The event names a session or payment no order knows.
    Orphan(String),
    /// The stored payload no longer decodes (it did when it was acknowledged).
    Malformed(String),
}

impl Effect {
    /// The webhook_events status this effect leaves.
    pub fn event_status(&self) -> &'static str {
        use crate::events::status;
        match self {
            Effect::Paid { .. } | Effect::PaymentFailed { .. } => status::PROCESSED,
            Effect::Ignored(_) => status::IGNORED,
            Effect::Orphan(_) => status::ORPHAN,
            Effect::Malformed(_) => status::FAILED,
        }
    }

    /// Why nothing was done, kept with the event.
    pub fn note(&self) -> Option<&str> {
        match self {
            Effect::Ignored(why) | Effect::Orphan(why) | Effect::Malformed(why) => Some(why),
            Effect::Paid { .. } | Effect::PaymentFailed { .. } => None,
        }
    }

    pub fn commande_id(&self) -> Option<&str> {
        match self {
            Effect::Paid { commande_id, .. } | Effect::PaymentFailed { commande_id } => {
                Some(commande_id)
            }
            _ => None,
        }
    }
}

/// A customer account about to be created.
struct NewCustomer<'a> {
    prenom: &'a str,
    nom: &'a str,
    email: &'a str,
    active: bool,
    adresse: Option<&'a str>,
    telephone: Option<&'a str>,
}

impl NewCustomer<'_> {
    fn user(&self, t: NaiveDateTime) -> User {
        User {
            id: new_id(),
            prenom: self.prenom.to_owned(),
            nom: self.nom.to_owned(),
            email: self.email.to_owned(),
            password_hash: None,
            role: "USER".into(),
            is_active: self.active,
            adresse: self.adresse.map(str::to_owned),
            telephone: self.telephone.map(str::to_owned),
            created_at: t,
            updated_at: t,
        }
    }
}

/// Inside a transaction: the id of the account with `$user`'s email, inserting `$user` when
/// there is none. Evaluates to `(id, created)`.
macro_rules! customer_id_for {
    ($conn:ident, $user:expr) => {{
        let user: User = $user;
        let existing: Option<User> = users::table
            .filter(users::email.eq(&user.email))
            .select(User::as_select())
            .first($conn)
            .await
            .optional()?;
        match existing {
            Some(found) => (found.id, false),
            None => {
                diesel::insert_into(users::table)
                    .values(&user)
                    .execute($conn)
                    .await?;
                (user.id, true)
            }
        }
    }};
}

/// Inside a transaction: marks the order of `$session` paid, or creates the guest's account
/// and order from its pending checkout. Evaluates to `Result<Effect, DbError>`.
macro_rules! mark_paid_rows {
    ($conn:ident, $session:expr, $intent:expr) => {
        async {
            let conn = &mut *$conn;
            let (session, intent): (&str, Option<&str>) = ($session, $intent);
            let t = now();
            let existing: Option<Commande> = commandes::table
                .filter(commandes::stripe_session_id.eq(session))
                .select(Commande::as_select())
                .first(conn)
                .await
                .optional()?;
            if let Some(c) = existing {
                if c.payment_status != payment::PAID {
                    diesel::update(commandes::table.find(&c.id))
                        .set((
                            commandes::payment_status.eq(payment::PAID),
                            commandes::statut.eq(statut::EN_COURS),
                            commandes::paid_at.eq(Some(t)),
                            commandes::stripe_payment_intent.eq(intent),
                            commandes::pipeline.eq(Some(step::INVOICE)),
                            commandes::updated_at.eq(t),
                        ))
                        .keep_prepared()
                        .execute(conn)
                        .await?;
                }
                return Ok::<Effect, DbError>(Effect::Paid {
                    commande_id: c.id,
                    new_user: false,
                });
            }
            let pending: Option<PendingCommande> = pending_commandes::table
                .filter(pending_commandes::stripe_session_id.eq(session))
                .select(PendingCommande::as_select())
                .first(conn)
                .await
                .optional()?;
            let Some(p) = pending else {
                return Ok::<Effect, DbError>(Effect::Orphan(format!(
                    "no order has session {session}"
                )));
            };
            // A guest's account stays inactive until they set a password (activation mail).
            let guest = NewCustomer {
                prenom: &p.prenom,
                nom: &p.nom,
                email: &p.email,
                active: false,
                adresse: p.adresse.as_deref(),
                telephone: p.telephone.as_deref(),
            };
            let (user_id, new_user) = customer_id_for!(conn, guest.user(t));
            // The guest's order is created paid: the checkout's unpaid order, moved on.
            let first_step = if new_user {
                step::ACTIVATION
            } else {
                step::INVOICE
            };
            let commande = Commande {
                statut: statut::PAYEE.into(),
                payment_status: payment::PAID.into(),
                stripe_payment_intent: intent.map(str::to_owned),
                is_guest: true,
                paid_at: Some(t),
                pipeline: Some(first_step.into()),
                ..unpaid_commande(
                    new_id(),
                    user_id.clone(),
                    p.titre.clone(),
                    p.description.clone(),
                    p.amount_cents,
                    session.to_owned(),
                    t,
                )
            };
            diesel::insert_into(commandes::table)
                .values(&commande)
                .execute(conn)
                .await?;
            diesel::update(pending_commandes::table.find(&p.id))
                .set((
                    pending_commandes::is_processed.eq(true),
                    pending_commandes::status.eq("processed"),
                    pending_commandes::user_id.eq(Some(&user_id)),
                    pending_commandes::commande_id.eq(Some(&commande.id)),
                    pending_commandes::updated_at.eq(t),
                ))
                .keep_prepared()
                .execute(conn)
                .await?;
            diesel::update(files::table.filter(files::pending_commande_id.eq(&p.id)))
                .set(files::commande_id.eq(Some(&commande.id)))
                .keep_prepared()
                .execute(conn)
                .await?;
            Ok::<Effect, DbError>(Effect::Paid {
                commande_id: commande.id,
                new_user,
            })
        }
        .await
    };
}

/// Inside a transaction: marks the unpaid order of a failed payment failed.
macro_rules! mark_failed_rows {
    ($conn:ident, $session:expr, $intent:expr) => {
        async {
            let conn = &mut *$conn;
            let (session, intent): (Option<&str>, Option<&str>) = ($session, $intent);
            let mut q = commandes::table.into_boxed();
            q = match (session, intent) {
                (Some(s), Some(i)) => q.filter(
                    commandes::stripe_session_id
                        .eq(s)
                        .or(commandes::stripe_payment_intent.eq(i)),
                ),
                (Some(s), None) => q.filter(commandes::stripe_session_id.eq(s)),
                (None, Some(i)) => q.filter(commandes::stripe_payment_intent.eq(i)),
                (None, None) => {
                    return Ok::<Effect, DbError>(Effect::Orphan(
                        "no session or payment intent".into(),
                    ))
                }
            };
            let found: Option<Commande> = q
                .select(Commande::as_select())
                .first(conn)
                .await
                .optional()?;
            let Some(c) = found else {
                return Ok::<Effect, DbError>(Effect::Orphan(
                    "no order matches the failed payment".into(),
                ));
            };
            if c.payment_status == payment::PAID {
                return Ok::<Effect, DbError>(Effect::Ignored(
                    "order already paid: a late failure never un-pays it".into(),
                ));
            }
            diesel::update(commandes::table.find(&c.id))
                .set((
                    commandes::payment_status.eq(payment::FAILED),
                    commandes::updated_at.eq(now()),
                ))
                .keep_prepared()
                .execute(conn)
                .await?;
            Ok::<Effect, DbError>(Effect::PaymentFailed { commande_id: c.id })
        }
        .await
    };
}

/// Inside a transaction: marks the unpaid order (or pending checkout) of `$session` expired.
macro_rules! mark_expired_rows {
    ($conn:ident, $session:expr) => {
        async {
            let conn = &mut *$conn;
            let session: &str = $session;
            let t = now();
            let pending = diesel::update(
                pending_commandes::table
                    .filter(pending_commandes::stripe_session_id.eq(session))
                    .filter(pending_commandes::is_processed.eq(false)),
            )
            .set((
                pending_commandes::status.eq("expired"),
                pending_commandes::updated_at.eq(t),
            ))
            .keep_prepared()
            .execute(conn)
            .await?;
            let unpaid = diesel::update(
                commandes::table
                    .filter(commandes::stripe_session_id.eq(session))
                    .filter(commandes::payment_status.ne(payment::PAID)),
            )
            .set((
                commandes::payment_status.eq(payment::EXPIRED),
                commandes::updated_at.eq(t),
            ))
            .keep_prepared()
            .execute(conn)
            .await?;
            Ok::<Effect, DbError>(if pending + unpaid > 0 {
                Effect::Ignored("unpaid order marked expired".into())
            } else {
                Effect::Ignored("session expired after payment or unknown: nothing to do".into())
            })
        }
        .await
    };
}

/// Inside a transaction: what `$event` does to the orders (see [`process_stored_event`]).
/// Evaluates to `Result<Effect, DbError>`.
macro_rules! effect_of {
    ($conn:ident, $event:expr, $allowed_sources:expr) => {{
        let (event, allowed_sources): (&StripeEvent, &[String]) = ($event, $allowed_sources);
        let source = event.metadata("source").unwrap_or("");
        if !allowed_sources.is_empty() && !allowed_sources.iter().any(|s| s == source) {
            Ok(Effect::Ignored(format!("source `{source}` is not allowed")))
        } else {
            match event.kind {
                EventKind::CheckoutCompleted if !event.is_paid() => Ok(Effect::Ignored(
                    "session completed but not paid yet (async payment)".into(),
                )),
                EventKind::CheckoutCompleted | EventKind::AsyncPaymentSucceeded => {
                    match event.session_id() {
                        Some(session) => {
                            mark_paid_rows!($conn, session, event.payment_intent_id())
                        }
                        None => Ok(Effect::Ignored("no checkout session in the event".into())),
                    }
                }
                EventKind::AsyncPaymentFailed | EventKind::PaymentIntentFailed => {
                    mark_failed_rows!($conn, event.session_id(), event.payment_intent_id())
                }
                EventKind::CheckoutExpired => match event.session_id() {
                    Some(session) => mark_expired_rows!($conn, session),
                    None => Ok(Effect::Ignored("no checkout session in the event".into())),
                },
                EventKind::Other => Ok(Effect::Ignored(format!(
                    "event type {} is not handled",
                    event.event_type
                ))),
            }
        }
    }};
}

/// A stored webhook event, applied.
#[derive(Debug)]
pub struct Processed {
    pub row: WebhookEvent,
    /// The decoded event (`None`: its payload no longer decodes, see [`Effect::Malformed`]).
    pub event: Option<StripeEvent>,
    pub effect: Effect,
    /// The paid order's pipeline, claimed for the caller in the same transaction (`None`
    /// when nothing is left to drive or another process holds it).
    pub claimed: Option<Claimed>,
}

/// An order whose pipeline this process claimed, with its customer, read in the claim's
/// transaction: the pipeline needs both, and on SQLite every separate read is one more
/// wait for the pipeline's single connection.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub order: Commande,
    /// `None` only if the order's user is gone (a corrupt database).
    pub customer: Option<User>,
}

/// Inside a write transaction (either engine): takes the order's pipeline for `$owner`
/// until `$lease` from now. Evaluates to the claimed order with its customer
/// (`Option<Claimed>`): `None` when another process holds it, or when there is nothing to
/// drive.
macro_rules! claim_pipeline_row {
    ($conn:ident, $commande_id:expr, $owner:expr, $lease:expr) => {{
        let (commande_id, owner, lease): (&str, &str, Duration) = ($commande_id, $owner, $lease);
        let t = now();
        let claimed: Option<Commande> = diesel::update(
            commandes::table
                .filter(commandes::id.eq(commande_id))
                .filter(commandes::pipeline.is_not_null())
                .filter(commandes::pipeline.ne(step::DONE))
                .filter(
                    commandes::lease_owner
                        .is_null()
                        .or(commandes::lease_owner.eq(owner))
                        .or(commandes::lease_expires_at.lt(t)),
                ),
        )
        .set((
            commandes::lease_owner.eq(Some(owner)),
            commandes::lease_expires_at.eq(Some(t + lease)),
        ))
        .returning(Commande::as_returning())
        .keep_prepared()
        .get_result(&mut *$conn)
        .await
        .optional()?;
        match claimed {
            Some(order) => {
                let customer: Option<User> = users::table
                    .find(&order.user_id)
                    .select(User::as_select())
                    .first(&mut *$conn)
                    .await
                    .optional()?;
                Some(Claimed { order, customer })
            }
            None => None,
        }
    }};
}

/// Claims a stored webhook event, applies it to the orders and records how it ended
/// (`webhook_events.status`), all in one transaction: a crash at any point leaves the event
/// unapplied and unfinished, for the sweep. `None` when it is finished already or another
/// process holds a live claim on it.
///
/// Applying is idempotent and monotonic: a second `completed` changes nothing, a late failure
/// never un-pays an order.
pub async fn process_stored_event(
    db: &Db,
    event_id: &str,
    owner: &str,
    lease: Duration,
    allowed_sources: &[String],
) -> Result<Option<Processed>, DbError> {
    with_write_tx!(db, |conn| {
        let Some(row) = crate::events::claim_row!(conn, event_id, owner, lease) else {
            return Ok(None);
        };
        let (event, effect) = match crate::stripe::decode_event(row.payload.as_bytes()) {
            Ok(event) => {
                let effect = effect_of!(conn, &event, allowed_sources)?;
                (Some(event), effect)
            }
            Err(e) => (None, Effect::Malformed(e.to_string())),
        };
        crate::events::finish_row!(
            conn,
            event_id,
            effect.event_status(),
            effect.commande_id(),
            effect.note()
        );
        // The pipeline's claim joins this commit: one transaction fewer per payment.
        let claimed = match &effect {
            Effect::Paid { commande_id, .. } => {
                claim_pipeline_row!(conn, commande_id.as_str(), owner, lease)
            }
            _ => None,
        };
        Ok(Some(Processed {
            row,
            event,
            effect,
            claimed,
        }))
    })
}

/// Upserts the order_steps row of one step (inside a transaction, on either engine).
macro_rules! record_step {
    ($conn:ident, $commande:expr, $step:expr, $status:expr, $error:expr, $t:expr) => {{
        use $crate::db::schema::order_steps;
        diesel::insert_into(order_steps::table)
            .values((
                order_steps::id.eq($crate::db::new_id()),
                order_steps::commande_id.eq($commande),
                order_steps::step.eq($step),
                order_steps::status.eq($status),
                order_steps::attempts.eq(1),
                order_steps::last_error.eq($error),
                order_steps::started_at.eq($t),
                order_steps::finished_at.eq(Some($t)),
            ))
            .on_conflict((order_steps::commande_id, order_steps::step))
            .do_update()
            .set((
                order_steps::status.eq($status),
                order_steps::attempts.eq(order_steps::attempts + 1),
                order_steps::last_error.eq($error),
                order_steps::finished_at.eq(Some($t)),
            ))
            .keep_prepared()
            .execute($conn)
            .await?
    }};
}

/// Claims the order's pipeline for `owner` until the lease ends. `None` when another
/// process holds it, or when there is nothing to drive.
pub async fn claim_pipeline(
    db: &Db,
    commande_id: &str,
    owner: &str,
    lease: Duration,
) -> Result<Option<Claimed>, DbError> {
    with_conn!(db, write, |conn| Ok::<_, DbError>(claim_pipeline_row!(
        conn,
        commande_id,
        owner,
        lease
    )))
}

/// Inside a transaction (either engine): records that step `$current` finished and moves
/// the pipeline to the next step, only if the order is still at `$current` (a re-driven
/// step never moves it twice). Reaching `done` releases the claim in the same statement.
/// Evaluates to the next step.
macro_rules! advance_rows {
    ($conn:ident, $commande:expr, $current:expr) => {{
        use $crate::db::schema::commandes;
        let (commande, current): (&str, &str) = ($commande, $current);
        let next = $crate::orders::step::next(current);
        let t = $crate::db::now();
        let at_current = commandes::table
            .filter(commandes::id.eq(commande))
            .filter(commandes::pipeline.eq(current));
        let moved = (
            commandes::pipeline.eq(Some(next)),
            commandes::pipeline_attempts.eq(0),
            commandes::pipeline_error.eq(None::<String>),
            commandes::next_attempt_at.eq(None::<chrono::NaiveDateTime>),
            commandes::updated_at.eq(t),
        );
        if next == $crate::orders::step::DONE {
            // The last step gives the claim back: nothing is left to drive.
            diesel::update(at_current)
                .set((
                    moved,
                    commandes::lease_owner.eq(None::<String>),
                    commandes::lease_expires_at.eq(None::<chrono::NaiveDateTime>),
                ))
                .keep_prepared()
                .execute($conn)
                .await?
        } else {
            diesel::update(at_current)
                .set(moved)
                .keep_prepared()
                .execute($conn)
                .await?
        };
        $crate::orders::record_step!($conn, commande, current, "done", None::<&str>, t);
        next
    }};
}
pub(crate) use {advance_rows, record_step};

/// What a finished step leaves, recorded by [`advance`] in the transaction that moves the
/// pipeline on: one commit per step instead of two or three.
#[derive(Debug, Clone, PartialEq)]
pub enum StepRecord {
    /// Nothing beyond the step itself.
    Nothing,
    /// The PDF is stored: its path, SHA-256 and size go on the invoice.
    PdfStored {
        invoice_id: String,
        path: String,
        sha256: String,
        size: i64,
    },
    /// The customer was sent the invoice: GENERATED becomes SENT (a status an admin set
    /// meanwhile, PAID, CANCELLED..., stays), and the mail's delivery is written (`None`
    /// when it was sent and recorded before).
    InvoiceSent {
        invoice_id: String,
        delivery: Option<Finished>,
    },
    /// The admins were told: the notification (from [`crate::notifications::prepare`]) and
    /// their mail's delivery (`None` when there was no mail or it was recorded before).
    Notified {
        notification: Notification,
        delivery: Option<Finished>,
    },
}

impl StepRecord {
    /// Brings an invoice read before the step up to date with what [`advance`] recorded
    /// (except a SENT status, which [`advance`] sets only if no admin changed it meanwhile).
    pub fn apply_to(&self, invoice: &mut Invoice) {
        if let StepRecord::PdfStored {
            invoice_id,
            path,
            sha256,
            size,
        } = self
        {
            if invoice.id == *invoice_id {
                invoice.pdf_path = Some(path.clone());
                invoice.pdf_sha256 = Some(sha256.clone());
                invoice.pdf_size = Some(*size);
            }
        }
    }
}

/// What [`advance`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Advanced {
    /// The step the pipeline is at now.
    pub next: &'static str,
    /// The notification of a [`StepRecord::Notified`], when it was stored now (not before,
    /// under the same dedupe key): the one to announce to live listeners.
    pub announced: Option<Notification>,
    /// The delivery stored under the dedupe key `advance` was asked to peek at.
    pub peeked: StoredDelivery,
}

/// Records that `current` finished, with what it leaves (`record`), and moves the pipeline
/// to the next step, in one transaction (see `advance_rows!`). With `peek`, also reads the
/// delivery stored under that dedupe key: the next step's mail, whose sender then need not.
pub async fn advance(
    db: &Db,
    commande_id: &str,
    current: &str,
    record: &StepRecord,
    peek: Option<&str>,
) -> Result<Advanced, DbError> {
    use crate::db::schema::invoices;
    use crate::invoices::InvoiceStatus;
    use crate::mail::deliveries::upsert_delivery;
    use crate::notifications::insert_notification;
    let postgres = !db.is_sqlite();
    with_write_tx!(db, |conn| {
        match record {
            StepRecord::Nothing => {}
            StepRecord::PdfStored {
                invoice_id,
                path,
                sha256,
                size,
            } => {
                diesel::update(invoices::table.find(invoice_id))
                    .set((
                        invoices::pdf_path.eq(path),
                        invoices::pdf_sha256.eq(sha256),
                        invoices::pdf_size.eq(size),
                        invoices::updated_at.eq(now()),
                    ))
                    .keep_prepared()
                    .execute(conn)
                    .await?;
            }
            StepRecord::InvoiceSent {
                invoice_id,
                delivery,
            } => {
                if let Some(delivery) = delivery {
                    upsert_delivery!(conn, delivery);
                }
                diesel::update(
                    invoices::table
                        .find(invoice_id)
                        .filter(invoices::status.eq(InvoiceStatus::Generated.as_str())),
                )
                .set((
                    invoices::status.eq(InvoiceStatus::Sent.as_str()),
                    invoices::updated_at.eq(now()),
                ))
                .keep_prepared()
                .execute(conn)
                .await?;
            }
            StepRecord::Notified { delivery, .. } => {
                if let Some(delivery) = delivery {
                    upsert_delivery!(conn, delivery);
                }
            }
        }
        let next = advance_rows!(conn, commande_id, current);
        let peeked = match peek {
            None => StoredDelivery::Unknown,
            Some(key) => {
                use crate::db::schema::email_deliveries as ed;
                let row: Option<EmailDelivery> = ed::table
                    .filter(ed::dedupe_key.eq(key))
                    .select(EmailDelivery::as_select())
                    .first(conn)
                    .await
                    .optional()?;
                StoredDelivery::Read(row.map(Box::new))
            }
        };
        // Last: on PostgreSQL the insert locks the notifications table until the commit (see
        // `notifications`), so every other notification waits for the rest of this one.
        let announced = match record {
            StepRecord::Notified { notification, .. } => {
                let (stored, created) = insert_notification!(conn, notification, postgres);
                created.then_some(stored)
            }
            _ => None,
        };
        Ok(Advanced {
            next,
            announced,
            peeked,
        })
    })
}

/// Records a step that gave up after its retries: the order stays at that step with its
/// error (a dead letter, visible to admins) until replayed.
pub async fn fail_step(
    db: &Db,
    commande_id: &str,
    current: &str,
    attempts: u32,
    error: &str,
) -> Result<(), DbError> {
    let attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
    leave_step(db, commande_id, current, error, Left::Failed { attempts }).await
}

/// Parks a step that failed for a reason outside the data (mail server, storage, database
/// unavailable): the claim is released and the sweep drives it again from `retry_at`, for
/// as long as it takes. Unlike [`fail_step`] it is not a dead letter.
pub async fn park_step(
    db: &Db,
    commande_id: &str,
    current: &str,
    error: &str,
    retry_at: NaiveDateTime,
) -> Result<(), DbError> {
    leave_step(db, commande_id, current, error, Left::Parked { retry_at }).await
}

/// How an unfinished step was left.
enum Left {
    Failed { attempts: i32 },
    Parked { retry_at: NaiveDateTime },
}

/// Leaves the order at `current` with its error, claim released, and the step's row says
/// why: `failed` (a dead letter, `pipeline_error` set) or `retrying` (due at `retry_at`).
async fn leave_step(
    db: &Db,
    commande_id: &str,
    current: &str,
    error: &str,
    left: Left,
) -> Result<(), DbError> {
    let t = now();
    let released = (
        commandes::lease_owner.eq(None::<String>),
        commandes::lease_expires_at.eq(None::<NaiveDateTime>),
        commandes::updated_at.eq(t),
    );
    let order = commandes::table.find(commande_id);
    with_write_tx!(db, |conn| {
        let status = match left {
            Left::Failed { attempts } => {
                diesel::update(order)
                    .set((
                        commandes::pipeline_attempts.eq(attempts),
                        commandes::pipeline_error.eq(Some(error)),
                        released,
                    ))
                    .keep_prepared()
                    .execute(conn)
                    .await?;
                "failed"
            }
            Left::Parked { retry_at } => {
                diesel::update(order)
                    .set((
                        commandes::pipeline_attempts.eq(commandes::pipeline_attempts + 1),
                        commandes::next_attempt_at.eq(Some(retry_at)),
                        released,
                    ))
                    .keep_prepared()
                    .execute(conn)
                    .await?;
                "retrying"
            }
        };
        record_step!(conn, commande_id, current, status, Some(error), t);
        Ok(())
    })
}

/// Releases the claim (the pipeline finished, or the process is stopping).
pub async fn release_pipeline(db: &Db, commande_id: &str) -> Result<(), DbError> {
    with_conn!(db, write, |conn| {
        diesel::update(commandes::table.find(commande_id))
            .set((
                commandes::lease_owner.eq(None::<String>),
                commandes::lease_expires_at.eq(None::<NaiveDateTime>),
            ))
            .keep_prepared()
            .execute(conn)
            .await
    })?;
    Ok(())
}

/// Orders whose pipeline is unfinished, not dead-lettered, and not claimed by anyone alive:
/// (commande id, session id).
pub async fn unfinished_pipelines(
    db: &Db,
    limit: i64,
) -> Result<Vec<(String, Option<String>)>, DbError> {
    let t = now();
    Ok(with_conn!(db, |conn| {
        commandes::table
            .filter(commandes::pipeline.is_not_null())
            .filter(commandes::pipeline.ne(step::DONE))
            .filter(commandes::pipeline_error.is_null())
            .filter(
                commandes::next_attempt_at
                    .is_null()
                    .or(commandes::next_attempt_at.le(t)),
            )
            .filter(
                commandes::lease_owner
                    .is_null()
                    .or(commandes::lease_expires_at.lt(t)),
            )
            .order(commandes::updated_at.asc())
            .select((commandes::id, commandes::stripe_session_id))
            .limit(limit)
            .load(conn)
            .await
    })?)
}

/// Clears dead-lettered steps, and makes parked ones due now, so the sweep drives them
/// again (`facture replay --failed`).
pub async fn requeue_failed_pipelines(db: &Db) -> Result<usize, DbError> {
    Ok(with_conn!(db, write, |conn| {
        diesel::update(
            commandes::table.filter(
                commandes::pipeline_error
                    .is_not_null()
                    .or(commandes::next_attempt_at.is_not_null()),
            ),
        )
        .set((
            commandes::pipeline_error.eq(None::<String>),
            commandes::pipeline_attempts.eq(0),
            commandes::next_attempt_at.eq(None::<NaiveDateTime>),
        ))
        .keep_prepared()
        .execute(conn)
        .await
    })?)
}

/// The recorded steps of an order's pipeline, in the order they were first started.
pub async fn steps_of(db: &Db, commande_id: &str) -> Result<Vec<OrderStep>, DbError> {
    Ok(with_conn!(db, |conn| {
        order_steps::table
            .filter(order_steps::commande_id.eq(commande_id))
            .order(order_steps::started_at.asc())
            .select(OrderStep::as_select())
            .load(conn)
            .await
    })?)
}

pub async fn count_unfinished_pipelines(db: &Db) -> Result<i64, DbError> {
    Ok(with_conn!(db, |conn| {
        commandes::table
            .filter(commandes::pipeline.is_not_null())
            .filter(commandes::pipeline.ne(step::DONE))
            .count()
            .get_result(conn)
            .await
    })?)
}

pub async fn find(db: &Db, id: &str) -> Result<Option<Commande>, DbError> {
    Ok(with_conn!(db, |conn| {
        commandes::table
            .find(id)
            .select(Commande::as_select())
            .first(conn)
            .await
            .optional()
    })?)
}

pub async fn find_by_session(db: &Db, session: &str) -> Result<Option<Commande>, DbError> {
    Ok(with_conn!(db, |conn| {
        commandes::table
            .filter(commandes::stripe_session_id.eq(session))
            .select(Commande::as_select())
            .first(conn)
            .await
            .optional()
    })?)
}

pub async fn find_user(db: &Db, id: &str) -> Result<Option<User>, DbError> {
    Ok(with_conn!(db, |conn| {
        users::table
            .find(id)
            .select(User::as_select())
            .first(conn)
            .await
            .optional()
    })?)
}

/// A customer order waiting for payment, as checkout (or `facture orders create`) makes it.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub email: String,
    pub prenom: String,
    pub nom: String,
    pub titre: String,
    pub description: String,
    pub amount_cents: i64,
    pub session_id: String,
}

/// Creates the order (and its customer when the email is new), unpaid.
pub async fn create_order(db: &Db, new: &NewOrder) -> Result<Commande, DbError> {
    with_write_tx!(db, |conn| {
        let t = now();
        let customer = NewCustomer {
            prenom: &new.prenom,
            nom: &new.nom,
            email: &new.email,
            active: true,
            adresse: None,
            telephone: None,
        };
        let (user_id, _) = customer_id_for!(conn, customer.user(t));
        let c = unpaid_commande(
            new_id(),
            user_id,
            new.titre.clone(),
            new.description.clone(),
            new.amount_cents,
            new.session_id.clone(),
            t,
        );
        diesel::insert_into(commandes::table)
            .values(&c)
            .execute(conn)
            .await?;
        Ok(c)
    })
}

/// A signed-in customer's order as checkout creates it: unpaid, with its session.
pub fn unpaid_commande(
    id: String,
    user_id: String,
    titre: String,
    description: String,
    amount_cents: i64,
    session_id: String,
    t: NaiveDateTime,
) -> Commande {
    Commande {
        id,
        user_id,
        titre,
        description,
        statut: statut::EN_ATTENTE.into(),
        payment_status: payment::PENDING.into(),
        stripe_session_id: Some(session_id),
        stripe_payment_intent: None,
        amount_cents,
        currency: "eur".into(),
        is_guest: false,
        paid_at: None,
        pipeline: None,
        pipeline_attempts: 0,
        pipeline_error: None,
        next_attempt_at: None,
        lease_owner: None,
        lease_expires_at: None,
        created_at: t,
        updated_at: t,
    }
}

/// A guest checkout waiting for payment.
#[derive(Debug, Clone)]
pub struct NewPendingOrder {
    pub prenom: String,
    pub nom: String,
    pub email: String,
    pub telephone: Option<String>,
    pub adresse: Option<String>,
    pub titre: String,
    pub description: String,
    pub amount_cents: i64,
    pub nombre_pages: Option<i32>,
    pub session_id: String,
}

pub async fn create_pending_order(
    db: &Db,
    new: &NewPendingOrder,
) -> Result<PendingCommande, DbError> {
    insert_pending_order(db, new_id(), new, None).await
}

/// Inserts a guest order under `id`, with the SHA-256 of an activation token and its
/// expiry when given (checkout chooses the id first because Stripe receives it).
pub async fn insert_pending_order(
    db: &Db,
    id: String,
    new: &NewPendingOrder,
    token: Option<(String, NaiveDateTime)>,
) -> Result<PendingCommande, DbError> {
    let t = now();
    let (activation_token, token_expires_at) = token.unzip();
    let p = PendingCommande {
        id,
        prenom: new.prenom.clone(),
        nom: new.nom.clone(),
        email: new.email.clone(),
        telephone: new.telephone.clone(),
        adresse: new.adresse.clone(),
        titre: new.titre.clone(),
        description: new.description.clone(),
        amount_cents: new.amount_cents,
        nombre_pages: new.nombre_pages,
        stripe_session_id: Some(new.session_id.clone()),
        activation_token,
        token_expires_at,
        status: "open".into(),
        is_processed: false,
        user_id: None,
        commande_id: None,
        created_at: t,
        updated_at: t,
    };
    with_conn!(db, write, |conn| {
        diesel::insert_into(pending_commandes::table)
            .values(&p)
            .execute(conn)
            .await
    })?;
    Ok(p)
}

/// Stores a fresh activation token (its SHA-256; the token itself only goes in the mail)
/// on the guest order that created `commande_id`. Returns the pending order.
pub async fn set_activation_token(
    db: &Db,
    commande_id: &str,
    token_sha256: &str,
    expires_at: NaiveDateTime,
) -> Result<Option<PendingCommande>, DbError> {
    with_write_tx!(db, |conn| {
        diesel::update(
            pending_commandes::table.filter(pending_commandes::commande_id.eq(commande_id)),
        )
        .set((
            pending_commandes::activation_token.eq(Some(token_sha256)),
            pending_commandes::token_expires_at.eq(Some(expires_at)),
            pending_commandes::updated_at.eq(now()),
        ))
        .keep_prepared()
        .execute(conn)
        .await?;
        Ok(pending_commandes::table
            .filter(pending_commandes::commande_id.eq(commande_id))
            .select(PendingCommande::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}
