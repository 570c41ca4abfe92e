//! Admin notifications: domain events turned into stored, readable messages.
//!
//! [`DomainEvent`] is what happened (with the ids and figures an admin needs);
//! [`DomainEvent::notification`] says how it reads (French title and message, kind,
//! priority); [`NotificationStore`] keeps them in `notifications`, idempotently per dedupe
//! key, and serves the admin list and the live feed ([`NotificationStore::list_since`]).
//! The important events ([`is_important`]) also go to the admin by mail
//! ([`admin_mail`]).
//!
//! Rows are ordered by `(created_at, id)`. Inserts are serialized (SQLite's single writer;
//! a table lock on PostgreSQL) and each row's `created_at` is strictly after the previous
//! row's, so a subscriber following `list_since(cursor)` never skips a row that commits
//! after it has read a later one.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};

use crate::db::models::{EmailDelivery, Notification};
use crate::db::schema::notifications as n;
use crate::db::{new_id, now, Db, DbError, KeepPreparedDsl};
use crate::mail::{AlertDetail, DeliveryOutcome, MailContent, MailError, Mailer, OutgoingMail};
use crate::money::Cents;
use crate::{with_conn, with_write_tx};

/// What a notification is about, stored uppercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationKind {
    Payment,
    Order,
    Error,
    Account,
    Mail,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 5] = [
        Self::Payment,
        Self::Order,
        Self::Error,
        Self::Account,
        Self::Mail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Payment => "PAYMENT",
            Self::Order => "ORDER",
            Self::Error => "ERROR",
            Self::Account => "ACCOUNT",
            Self::Mail => "MAIL",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Priority {
    Low,
    Normal,
    High,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Self::Low, Self::Normal, Self::High];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "LOW",
            Self::Normal => "NORMAL",
            Self::High => "HIGH",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Something an admin should hear about. Serialized (tagged `event`) into the
/// notification's `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DomainEvent {
    /// A checkout session was paid.
    PaymentReceived {
        commande_id: String,
        customer_name: String,
        customer_email: String,
        amount: Cents,
        order_title: String,
        /// Guest checkout (an account is created for the customer).
        guest: bool,
        stripe_session_id: Option<String>,
        /// Known when the invoice was issued before the event is recorded.
        invoice_id: Option<String>,
        invoice_number: Option<String>,
    },
    InvoiceIssued {
        invoice_id: String,
        invoice_number: String,
        commande_id: String,
        customer_name: String,
        amount: Cents,
    },
    /// A payment did not go through (declined card, failed asynchronous payment).
    PaymentFailed {
        commande_id: Option<String>,
        customer_email: Option<String>,
        amount: Option<Cents>,
        reason: String,
        stripe_session_id: Option<String>,
    },
    AccountActivationSent {
        user_id: String,
        email: String,
        first_name: String,
        commande_id: Option<String>,
    },
    /// A mail could not be delivered (refused, or every attempt failed).
    DeliveryFailed {
        delivery_id: String,
        /// The message kind (`payment_confirmation`...).
        mail_kind: String,
        recipient: String,
        error: String,
        attempts: i32,
        invoice_id: Option<String>,
        commande_id: Option<String>,
    },
    /// An order step gave up after its last attempt (dead-lettered).
    StepFailed {
        commande_id: String,
        step: String,
        attempts: u32,
        error: String,
    },
}

/// How an event reads in the admin's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub kind: NotificationKind,
    pub priority: Priority,
    pub title: String,
    pub message: String,
}

impl DomainEvent {
    /// `DeliveryFailed` for a delivery row (use it when a send ends `failed`).
    pub fn delivery_failed(delivery: &EmailDelivery) -> Self {
        DomainEvent::DeliveryFailed {
            delivery_id: delivery.id.clone(),
            mail_kind: delivery.kind.clone(),
            recipient: delivery.recipient.clone(),
            error: delivery.last_error.clone().unwrap_or_default(),
            attempts: delivery.attempts,
            invoice_id: delivery.invoice_id.clone(),
            commande_id: delivery.commande_id.clone(),
        }
    }

    /// The order the event is about, if any.
    pub fn commande_id(&self) -> Option<&str> {
        match self {
            DomainEvent::PaymentReceived { commande_id, .. }
            | DomainEvent::InvoiceIssued { commande_id, .. }
            | DomainEvent::StepFailed { commande_id, .. } => Some(commande_id),
            DomainEvent::PaymentFailed { commande_id, .. }
            | DomainEvent::AccountActivationSent { commande_id, .. }
            | DomainEvent::DeliveryFailed { commande_id, .. } => commande_id.as_deref(),
        }
    }

    /// The invoice the event is about, if any.
    pub fn invoice_id(&self) -> Option<&str> {
        match self {
            DomainEvent::InvoiceIssued { invoice_id, .. } => Some(invoice_id),
            DomainEvent::PaymentReceived { invoice_id, .. }
            | DomainEvent::DeliveryFailed { invoice_id, .. } => invoice_id.as_deref(),
            _ => None,
        }
    }

    /// The event's name in `data.event`.
    pub fn name(&self) -> &'static str {
        match self {
            DomainEvent::PaymentReceived { .. } => "payment_received",
            DomainEvent::InvoiceIssued { .. } => "invoice_issued",
            DomainEvent::PaymentFailed { .. } => "payment_failed",
            DomainEvent::AccountActivationSent { .. } => "account_activation_sent",
            DomainEvent::DeliveryFailed { .. } => "delivery_failed",
            DomainEvent::StepFailed { .. } => "step_failed",
        }
    }

    /// Kind, priority, French title and message.
    pub fn notification(&self) -> Rendered {
        use NotificationKind as K;
        let (kind, priority, title, message) = match self {
            DomainEvent::PaymentReceived {
                customer_name,
                customer_email,
                amount,
                order_title,
                guest,
                ..
            } => (
                K::Payment,
                Priority::High,
                format!("Paiement reçu : {}", amount.format_fr()),
                format!(
                    "{customer_name} ({customer_email}) a payé {} pour « {order_title} »{}.",
                    amount.format_fr(),
                    if *guest {
                        " — commande en invité, compte créé"
                    } else {
                        ""
                    }
                ),
            ),
            DomainEvent::InvoiceIssued {
                invoice_number,
                customer_name,
                amount,
                ..
            } => (
                K::Order,
                Priority::Normal,
                format!("Facture {invoice_number} émise"),
                format!(
                    "La facture {invoice_number} de {} a été émise pour {customer_name}.",
                    amount.format_fr()
                ),
            ),
            DomainEvent::PaymentFailed {
                customer_email,
                amount,
                reason,
                ..
            } => (
                K::Payment,
                Priority::High,
                "Paiement échoué".to_owned(),
                format!(
                    "Le paiement{}{} n'a pas abouti : {reason}.",
                    amount
                        .map(|a| format!(" de {}", a.format_fr()))
                        .unwrap_or_default(),
                    customer_email
                        .as_ref()
                        .map(|e| format!(" de {e}"))
                        .unwrap_or_default(),
                ),
            ),
            DomainEvent::AccountActivationSent {
                email, first_name, ..
            } => (
                K::Account,
                Priority::Low,
                "Lien d'activation envoyé".to_owned(),
                format!("Un lien d'activation de compte a été envoyé à {first_name} ({email})."),
            ),
            DomainEvent::DeliveryFailed {
                mail_kind,
                recipient,
                error,
                attempts,
                ..
            } => (
                K::Mail,
                Priority::High,
                "E-mail non délivré".to_owned(),
                format!(
                    "Le message « {} » pour {recipient} n'a pas pu être envoyé \
                     ({attempts} tentative{}) : {error}",
                    mail_kind_fr(mail_kind),
                    if *attempts > 1 { "s" } else { "" }
                ),
            ),
            DomainEvent::StepFailed {
                commande_id,
                step,
                attempts,
                error,
            } => (
                K::Error,
                Priority::High,
                format!("Étape « {step} » abandonnée"),
                format!(
                    "L'étape « {step} » de la commande {commande_id} a échoué après \
                     {attempts} tentative{} : {error}",
                    if *attempts > 1 { "s" } else { "" }
                ),
            ),
        };
        Rendered {
            kind,
            priority,
            title,
            message,
        }
    }
}

fn mail_kind_fr(kind: &str) -> &str {
    match kind {
        "payment_confirmation" => "confirmation de paiement",
        "admin_payment" => "nouveau paiement (admin)",
        "account_activation" => "activation de compte",
        "invoice_resent" => "renvoi de facture",
        "admin_alert" => "alerte admin",
        other => other,
    }
}

/// Payments received, payments failed, undelivered mail and abandoned steps are
/// important: they are also mailed to the admin ([`admin_mail`]).
pub fn is_important(event: &DomainEvent) -> bool {
    matches!(
        event,
        DomainEvent::PaymentReceived { .. }
            | DomainEvent::PaymentFailed { .. }
            | DomainEvent::DeliveryFailed { .. }
            | DomainEvent::StepFailed { .. }
    )
}

/// The mail to send to `mail.admin` for an important event: `AdminPayment` for a payment,
/// `AdminAlert` for failures; `None` for the others. A `DeliveryFailed` about a mail to
/// the admin gives `None` too (it would likely fail the same way, and could loop).
pub fn admin_mail(event: &DomainEvent) -> Option<MailContent> {
    let rendered = event.notification();
    let alert = |details: Vec<AlertDetail>, admin_path: Option<String>| MailContent::AdminAlert {
        title: rendered.title.clone(),
        message: rendered.message.clone(),
        details,
        admin_path,
    };
    let order_path = |id: &str| {
        format!(
            "/admin/commandes/{}",
            crate::mail::templates::encode_query(id)
        )
    };
    match event {
        DomainEvent::PaymentReceived {
            commande_id,
            customer_name,
            customer_email,
            amount,
            order_title,
            guest,
            invoice_id,
            invoice_number,
            ..
        } => Some(MailContent::AdminPayment {
            customer_name: customer_name.clone(),
            customer_email: customer_email.clone(),
            amount: *amount,
            order_title: order_title.clone(),
            commande_id: commande_id.clone(),
            invoice_id: invoice_id.clone(),
            invoice_number: invoice_number.clone(),
            guest: *guest,
        }),
        DomainEvent::PaymentFailed {
            commande_id,
            customer_email,
            amount,
            reason,
            stripe_session_id,
        } => {
            let mut details = Vec::new();
            if let Some(email) = customer_email {
                details.push(AlertDetail::new("Client", email));
            }
            if let Some(amount) = amount {
                details.push(AlertDetail::new("Montant", amount.format_fr()));
            }
            details.push(AlertDetail::new("Raison", reason));
            if let Some(session) = stripe_session_id {
                details.push(AlertDetail::new("Session Stripe", session));
            }
            Some(alert(details, commande_id.as_deref().map(order_path)))
        }
        DomainEvent::DeliveryFailed {
            delivery_id,
            mail_kind,
            recipient,
            error,
            attempts,
            commande_id,
            ..
        } => {
            if mail_kind == "admin_payment" || mail_kind == "admin_alert" {
                return None;
            }
            let details = vec![
                AlertDetail::new("Message", mail_kind_fr(mail_kind)),
                AlertDetail::new("Destinataire", recipient),
                AlertDetail::new("Tentatives", attempts.to_string()),
                AlertDetail::new("Erreur", error),
                AlertDetail::new("Envoi", delivery_id),
            ];
            Some(alert(details, commande_id.as_deref().map(order_path)))
        }
        DomainEvent::StepFailed {
            commande_id,
            step,
            attempts,
            error,
        } => {
            let details = vec![
                AlertDetail::new("Commande", commande_id),
                AlertDetail::new("Étape", step),
                AlertDetail::new("Tentatives", attempts.to_string()),
                AlertDetail::new("Erreur", error),
            ];
            Some(alert(details, Some(order_path(commande_id))))
        }
        DomainEvent::InvoiceIssued { .. } | DomainEvent::AccountActivationSent { .. } => None,
    }
}

/// The largest page [`NotificationStore::list`] and [`NotificationStore::list_since`]
/// return.
pub const MAX_PAGE_SIZE: u32 = 200;

/// A position in the feed: the last row a subscriber has seen.
pub type Cursor = (NaiveDateTime, String);

/// What [`NotificationStore::record_and_mail`] did.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub notification: Notification,
    /// False when the dedupe key was already recorded.
    pub created: bool,
    /// The admin mail's outcome, for important events.
    pub admin_mail: Option<DeliveryOutcome>,
}

/// The dedupe key of the admin mail for the notification published under `notice_key`.
pub fn admin_mail_key(notice_key: &str) -> String {
    format!("admin:{notice_key}")
}

/// The row `event` is stored as, not written yet: [`NotificationStore::record`] writes it,
/// or a caller's own transaction with `insert_notification!` (the order pipeline records
/// the payment's notification with the step that announced it).
pub fn prepare(event: &DomainEvent, dedupe_key: Option<&str>) -> Result<Notification, DbError> {
    let rendered = event.notification();
    let data = serde_json::to_string(event)
        .map_err(|e| DbError::Corrupt(format!("notification data: {e}")))?;
    Ok(Notification {
        id: new_id(),
        kind: rendered.kind.as_str().to_owned(),
        title: rendered.title,
        message: rendered.message,
        priority: rendered.priority.as_str().to_owned(),
        data,
        is_read: false,
        dedupe_key: dedupe_key.map(str::to_owned),
        created_at: now(),
    })
}

/// Inside a transaction (either engine; `$postgres` says which): inserts a [`prepare`]d
/// notification with a `created_at` strictly after every stored row's (see the module
/// documentation). Evaluates to `(row, true)`, or, when its dedupe key is used already, to
/// `(existing row, false)` with nothing stored.
macro_rules! insert_notification {
    ($conn:ident, $row:expr, $postgres:expr) => {{
        use $crate::db::schema::notifications as n;
        let row: &$crate::db::models::Notification = $row;
        if $postgres {
            // Serializes inserts so `created_at` order is commit order (see module docs).
            diesel::sql_query("LOCK TABLE notifications IN SHARE ROW EXCLUSIVE MODE")
                .execute($conn)
                .await?;
        }
        let last: Option<chrono::NaiveDateTime> = n::table
            .select(diesel::dsl::max(n::created_at))
            .first($conn)
            .await?;
        let at = $crate::db::now();
        let fresh = $crate::db::models::Notification {
            created_at: match last {
                Some(last) if last >= at => last + chrono::Duration::microseconds(1),
                _ => at,
            },
            ..row.clone()
        };
        // A used dedupe key is found by the insert's conflict, in the same transaction: a
        // separate look-up first would cost every new notification one more round trip.
        let inserted = diesel::insert_into(n::table)
            .values(&fresh)
            .on_conflict(n::dedupe_key)
            .do_nothing()
            .execute($conn)
            .await?;
        if inserted == 1 {
            (fresh, true)
        } else {
            let existing: $crate::db::models::Notification = n::table
                .filter(n::dedupe_key.eq(row.dedupe_key.as_deref()))
                .select($crate::db::models::Notification::as_select())
                .first($conn)
                .await?;
            (existing, false)
        }
    }};
}
pub(crate) use insert_notification;

/// The `notifications` table. Cheap to clone.
#[derive(Clone)]
pub struct NotificationStore {
    db: Db,
}

impl NotificationStore {
    pub fn new(db: Db) -> Self {
        NotificationStore { db }
    }

    /// Stores the notification for `event`. With a dedupe key already used, stores
    /// nothing and returns the existing row with `false`.
    pub async fn record(
        &self,
        event: &DomainEvent,
        dedupe_key: Option<&str>,
    ) -> Result<(Notification, bool), DbError> {
        let row = prepare(event, dedupe_key)?;
        let row = &row;
        let postgres = !self.db.is_sqlite();
        with_write_tx!(self.db, |conn| Ok(insert_notification!(
            conn, row, postgres
        )))
    }

    /// [`record`](Self::record), then, for an important event, mails [`admin_mail`] to
    /// `mail.admin`. The mail's dedupe key is `notification:<notification id>`, so calling
    /// this again with the same `dedupe_key` (a re-driven step) sends it at most once,
    /// and sends it if the first call stopped before mailing.
    pub async fn record_and_mail(
        &self,
        mailer: &Mailer,
        event: &DomainEvent,
        dedupe_key: Option<&str>,
    ) -> Result<Recorded, MailError> {
        let (notification, created) = self.record(event, dedupe_key).await?;
        let admin_mail = match admin_mail(event).filter(|_| is_important(event)) {
            None => None,
            Some(content) => {
                let mut mail = OutgoingMail::new(mailer.admin_address(), content)
                    .dedupe_key(format!("notification:{}", notification.id));
                mail.commande_id = event.commande_id().map(str::to_owned);
                mail.invoice_id = event.invoice_id().map(str::to_owned);
                Some(mailer.send(mail).await?)
            }
        };
        Ok(Recorded {
            notification,
            created,
            admin_mail,
        })
    }

    pub async fn get(&self, id: &str) -> Result<Option<Notification>, DbError> {
        with_conn!(self.db, |conn| {
            n::table
                .find(id)
                .select(Notification::as_select())
                .first(conn)
                .await
                .optional()
        })
        .map_err(DbError::from)
    }

    pub async fn find_by_dedupe_key(&self, key: &str) -> Result<Option<Notification>, DbError> {
        with_conn!(self.db, |conn| {
            n::table
                .filter(n::dedupe_key.eq(key))
                .select(Notification::as_select())
                .first(conn)
                .await
                .optional()
        })
        .map_err(DbError::from)
    }

    /// A page, newest first, and the number of rows matching. `page` starts at 1 (0
    /// counts as 1); `limit` is clamped to 1..=[`MAX_PAGE_SIZE`].
    pub async fn list(
        &self,
        unread_only: bool,
        page: u32,
        limit: u32,
    ) -> Result<(Vec<Notification>, i64), DbError> {
        // `is_read IN (false)` or `IN (false, true)`: one query shape for both cases.
        let states: &[bool] = if unread_only {
            &[false]
        } else {
            &[false, true]
        };
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        let offset = i64::from(page.max(1) - 1) * i64::from(limit);
        let rows = with_conn!(self.db, |conn| {
            n::table
                .filter(n::is_read.eq_any(states))
                .order((n::created_at.desc(), n::id.desc()))
                .limit(i64::from(limit))
                .offset(offset)
                .select(Notification::as_select())
                .load(conn)
                .await
        })?;
        let total: i64 = with_conn!(self.db, |conn| {
            n::table
                .filter(n::is_read.eq_any(states))
                .count()
                .get_result(conn)
                .await
        })?;
        Ok((rows, total))
    }

    pub async fn unread_count(&self) -> Result<i64, DbError> {
        with_conn!(self.db, |conn| {
            n::table
                .filter(n::is_read.eq(false))
                .count()
                .get_result(conn)
                .await
        })
        .map_err(DbError::from)
    }

    /// Marks one notification read; `false` when there is no such notification.
    pub async fn mark_read(&self, id: &str) -> Result<bool, DbError> {
        let updated = with_conn!(self.db, write, |conn| {
            diesel::update(n::table.find(id))
                .set(n::is_read.eq(true))
                .keep_prepared()
                .execute(conn)
                .await
        })?;
        Ok(updated == 1)
    }

    /// Marks every notification read; returns how many were unread.
    pub async fn mark_all_read(&self) -> Result<usize, DbError> {
        with_conn!(self.db, write, |conn| {
            diesel::update(n::table.filter(n::is_read.eq(false)))
                .set(n::is_read.eq(true))
                .keep_prepared()
                .execute(conn)
                .await
        })
    }

    /// Rows after `cursor` (all rows when `None`), oldest first, at most `limit`
    /// (clamped to 1..=[`MAX_PAGE_SIZE`]). Pass the last row's `(created_at, id)` as the
    /// next cursor ([`cursor_of`]).
    pub async fn list_since(
        &self,
        cursor: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Notification>, DbError> {
        let limit = i64::from(limit.clamp(1, MAX_PAGE_SIZE));
        let rows = match &cursor {
            None => with_conn!(self.db, |conn| {
                n::table
                    .order((n::created_at.asc(), n::id.asc()))
                    .limit(limit)
                    .select(Notification::as_select())
                    .load(conn)
                    .await
            })?,
            Some((at, id)) => with_conn!(self.db, |conn| {
                n::table
                    .filter(
                        n::created_at
                            .gt(at)
                            .or(n::created_at.eq(at).and(n::id.gt(id))),
                    )
                    .order((n::created_at.asc(), n::id.asc()))
                    .limit(limit)
                    .select(Notification::as_select())
                    .load(conn)
                    .await
            })?,
        };
        Ok(rows)
    }

    /// The cursor of the newest row, to start a live feed at "now" (`None` when empty).
    pub async fn latest_cursor(&self) -> Result<Option<Cursor>, DbError> {
        let row: Option<(NaiveDateTime, String)> = with_conn!(self.db, |conn| {
            n::table
                .order((n::created_at.desc(), n::id.desc()))
                .select((n::created_at, n::id))
                .first(conn)
                .await
                .optional()
        })?;
        Ok(row)
    }
}

/// The cursor positioned on `row`.
pub fn cursor_of(row: &Notification) -> Cursor {
    (row.created_at, row.id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment() -> DomainEvent {
        DomainEvent::PaymentReceived {
            commande_id: "c1".into(),
            customer_name: "Émilie Durand".into(),
            customer_email: "emilie@example.fr".into(),
            amount: Cents(12_000),
            order_title: "Correction".into(),
            guest: true,
            stripe_session_id: Some("cs_test_1".into()),
            invoice_id: None,
            invoice_number: None,
        }
    }

    #[test]
    fn events_read_in_french() {
        let r = payment().notification();
        assert_eq!(r.kind, NotificationKind::Payment);
        assert_eq!(r.priority, Priority::High);
        assert_eq!(r.title, "Paiement reçu : 120,00\u{a0}€");
        assert!(
            r.message.contains("Émilie Durand (emilie@example.fr)"),
            "{}",
            r.message
        );
        assert!(r.message.contains("invité"), "{}", r.message);
    }

    #[test]
    fn important_events_mail_the_admin() {
        assert!(is_important(&payment()));
        assert!(matches!(
            admin_mail(&payment()),
            Some(MailContent::AdminPayment { guest: true, .. })
        ));
        let issued = DomainEvent::InvoiceIssued {
            invoice_id: "i".into(),
            invoice_number: "FAC-2026-000001".into(),
            commande_id: "c".into(),
            customer_name: "x".into(),
            amount: Cents(1),
        };
        assert!(!is_important(&issued));
        assert_eq!(admin_mail(&issued), None);
        let failed = DomainEvent::PaymentFailed {
            commande_id: Some("c1".into()),
            customer_email: None,
            amount: Some(Cents(500)),
            reason: "card_declined".into(),
            stripe_session_id: None,
        };
        match admin_mail(&failed) {
            Some(MailContent::AdminAlert {
                details,
                admin_path,
                ..
            }) => {
                assert_eq!(admin_path.as_deref(), Some("/admin/commandes/c1"));
                assert!(details.iter().any(|d| d.value == "card_declined"));
            }
            other => panic!("{other:?}"),
        }
        let loop_risk = DomainEvent::DeliveryFailed {
            delivery_id: "d".into(),
            mail_kind: "admin_alert".into(),
            recipient: "admin@example.fr".into(),
            error: "550".into(),
            attempts: 1,
            invoice_id: None,
            commande_id: None,
        };
        assert!(is_important(&loop_risk));
        assert_eq!(admin_mail(&loop_risk), None);
    }

    #[test]
    fn data_is_tagged_json() {
        let json: serde_json::Value = serde_json::to_value(payment()).unwrap();
        assert_eq!(json["event"], "payment_received");
        assert_eq!(json["amount"], 12_000);
        assert_eq!(json["commande_id"], "c1");
        let back: DomainEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, payment());
    }
}
