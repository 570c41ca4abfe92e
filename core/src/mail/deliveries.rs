//! The delivery log: one `email_deliveries` row per message (kind, recipient, subject,
//! invoice, order, status, attempts, last error, sent time), and the queries the admin
//! API lists them with.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};

use crate::db::models::EmailDelivery;
use crate::db::schema::email_deliveries as ed;
use crate::db::{new_id, now, Db, DbError, KeepPreparedDsl};
use crate::{with_conn, with_write_tx};

/// A delivery's state, stored lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Put back for a retry from the admin API and being sent (or interrupted while sending:
    /// re-sending it is safe). A new message's row is written only when its send is over.
    Queued,
    Sent,
    /// Permanently refused, or every attempt failed; `last_error` says why.
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 3] = [Self::Queued, Self::Sent, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The largest page [`Deliveries::list`] returns.
pub const MAX_PAGE_SIZE: u32 = 200;

/// Queries on `email_deliveries`. Cheap to clone.
#[derive(Clone)]
pub struct Deliveries {
    db: Db,
}

/// The fields of a delivery about to be sent.
#[derive(Debug, Clone)]
pub(crate) struct NewDelivery<'a> {
    pub kind: &'a str,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub invoice_id: Option<&'a str>,
    pub commande_id: Option<&'a str>,
    pub dedupe_key: Option<&'a str>,
    /// The row under `dedupe_key`, when the caller read it already.
    pub stored: &'a StoredDelivery,
}

/// What a sender knows of the delivery stored under its mail's dedupe key.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum StoredDelivery {
    /// Nothing: the mailer reads it before sending.
    #[default]
    Unknown,
    /// Read by the caller in the transaction that led to this send (this row, or none):
    /// the order pipeline reads it with the step before the mail, and spares its single
    /// SQLite connection one more turn.
    Read(Option<Box<EmailDelivery>>),
}

/// The row to send with, or the proof it was already sent.
#[derive(Debug, Clone)]
pub(crate) enum Opened {
    Ready(EmailDelivery),
    AlreadySent(EmailDelivery),
}

impl Deliveries {
    pub fn new(db: Db) -> Self {
        Deliveries { db }
    }

    pub async fn get(&self, id: &str) -> Result<Option<EmailDelivery>, DbError> {
        with_conn!(self.db, |conn| {
            ed::table
                .find(id)
                .select(EmailDelivery::as_select())
                .first(conn)
                .await
                .optional()
        })
        .map_err(DbError::from)
    }

    pub async fn find_by_dedupe_key(&self, key: &str) -> Result<Option<EmailDelivery>, DbError> {
        with_conn!(self.db, |conn| {
            ed::table
                .filter(ed::dedupe_key.eq(key))
                .select(EmailDelivery::as_select())
                .first(conn)
                .await
                .optional()
        })
        .map_err(DbError::from)
    }

    /// A page of deliveries, newest first, optionally with one status, and the number of
    /// rows matching. `page` starts at 1 (0 counts as 1); `limit` is clamped to
    /// 1..=[`MAX_PAGE_SIZE`].
    pub async fn list(
        &self,
        status: Option<DeliveryStatus>,
        page: u32,
        limit: u32,
    ) -> Result<(Vec<EmailDelivery>, i64), DbError> {
        let statuses: Vec<&'static str> = match status {
            Some(s) => vec![s.as_str()],
            None => DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect(),
        };
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        let offset = i64::from(page.max(1) - 1) * i64::from(limit);
        let statuses = &statuses;
        let rows = with_conn!(self.db, |conn| {
            ed::table
                .filter(ed::status.eq_any(statuses))
                .order((ed::created_at.desc(), ed::id.desc()))
                .limit(i64::from(limit))
                .offset(offset)
                .select(EmailDelivery::as_select())
                .load(conn)
                .await
        })?;
        let total: i64 = with_conn!(self.db, |conn| {
            ed::table
                .filter(ed::status.eq_any(statuses))
                .count()
                .get_result(conn)
                .await
        })?;
        Ok((rows, total))
    }

    /// Every delivery of an order, oldest first.
    pub async fn list_for_commande(
        &self,
        commande_id: &str,
    ) -> Result<Vec<EmailDelivery>, DbError> {
        with_conn!(self.db, |conn| {
            ed::table
                .filter(ed::commande_id.eq(commande_id))
                .order((ed::created_at.asc(), ed::id.asc()))
                .select(EmailDelivery::as_select())
                .load(conn)
                .await
        })
        .map_err(DbError::from)
    }

    /// The row a new message will be recorded under (status `queued`), not yet written:
    /// [`write`](Self::write) writes it once the send is over ([`Finished`]), in one
    /// statement. With a
    /// dedupe key whose row exists: returns it as already sent if it is `sent`; otherwise
    /// takes it over (describes the new message, attempts kept).
    ///
    /// Writing the row only at the end costs each mail one write transaction instead of
    /// two. A crash during the send leaves no row, only the unfinished step that asked
    /// for the mail; re-driving it sends again (at least once, as before).
    pub(crate) async fn open(&self, new: NewDelivery<'_>) -> Result<Opened, DbError> {
        let at = now();
        let described = |base: EmailDelivery| EmailDelivery {
            kind: new.kind.to_owned(),
            recipient: new.recipient.to_owned(),
            subject: new.subject.to_owned(),
            invoice_id: new.invoice_id.map(str::to_owned),
            commande_id: new.commande_id.map(str::to_owned),
            status: DeliveryStatus::Queued.as_str().to_owned(),
            updated_at: at,
            ..base
        };
        let existing = match (new.dedupe_key, new.stored) {
            (None, _) => None,
            (Some(key), StoredDelivery::Read(row))
                if row
                    .as_ref()
                    .is_none_or(|r| r.dedupe_key.as_deref() == Some(key)) =>
            {
                row.as_deref().cloned()
            }
            (Some(key), _) => self.find_by_dedupe_key(key).await?,
        };
        Ok(match existing {
            Some(row) if row.status == DeliveryStatus::Sent.as_str() => Opened::AlreadySent(row),
            Some(row) => Opened::Ready(described(row)),
            None => Opened::Ready(described(EmailDelivery {
                id: new_id(),
                kind: String::new(),
                recipient: String::new(),
                subject: String::new(),
                invoice_id: None,
                commande_id: None,
                status: String::new(),
                attempts: 0,
                last_error: None,
                dedupe_key: new.dedupe_key.map(str::to_owned),
                sent_at: None,
                created_at: at,
                updated_at: at,
            })),
        })
    }

    /// Puts an unsent delivery back to `queued` with a fresh subject, for a retry;
    /// returns it as already sent if it is `sent`.
    pub(crate) async fn reopen(&self, id: &str, subject: &str) -> Result<Option<Opened>, DbError> {
        let at = now();
        with_write_tx!(self.db, |conn| {
            let Some(existing) = ed::table
                .find(id)
                .select(EmailDelivery::as_select())
                .first(conn)
                .await
                .optional()?
            else {
                return Ok(None);
            };
            if existing.status == DeliveryStatus::Sent.as_str() {
                return Ok(Some(Opened::AlreadySent(existing)));
            }
            diesel::update(ed::table.find(id))
                .set((
                    ed::subject.eq(subject),
                    ed::status.eq(DeliveryStatus::Queued.as_str()),
                    ed::updated_at.eq(at),
                ))
                .keep_prepared()
                .execute(conn)
                .await?;
            Ok(Some(Opened::Ready(EmailDelivery {
                subject: subject.to_owned(),
                status: DeliveryStatus::Queued.as_str().to_owned(),
                updated_at: at,
                ..existing
            })))
        })
    }

    /// Writes a finished delivery in a transaction of its own.
    pub async fn write(&self, finished: &Finished) -> Result<EmailDelivery, DbError> {
        with_conn!(self.db, write, |conn| Ok::<_, DbError>(upsert_delivery!(
            conn, finished
        )))
    }
}

/// A delivery whose send is over, not written yet: [`Deliveries::write`] writes it, or a
/// caller's own transaction with `upsert_delivery!` (the order pipeline records a mail with
/// the step that sent it, in one commit).
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The row as inserted when none is stored yet.
    pub(crate) row: EmailDelivery,
    /// Attempts this send made, added to a stored row's.
    pub(crate) added: i32,
}

impl Finished {
    /// `row` (from [`Deliveries::open`] or [`Deliveries::reopen`]) once its send ended: final
    /// status, `attempts` more attempts, the last error (cleared on success), `sent_at` when
    /// sent.
    pub(crate) fn new(
        row: &EmailDelivery,
        status: DeliveryStatus,
        attempts: u32,
        last_error: Option<&str>,
    ) -> Self {
        let at = now();
        let added = i32::try_from(attempts).unwrap_or(i32::MAX);
        Finished {
            row: EmailDelivery {
                status: status.as_str().to_owned(),
                attempts: row.attempts.saturating_add(added),
                last_error: last_error.map(str::to_owned),
                sent_at: (status == DeliveryStatus::Sent).then_some(at),
                updated_at: at,
                ..row.clone()
            },
            added,
        }
    }

    /// The delivery as it will be stored (its attempts counted from the row it was opened
    /// with).
    pub fn delivery(&self) -> &EmailDelivery {
        &self.row
    }
}

/// Inside a transaction (either engine): writes a [`Finished`] delivery. Inserts the row,
/// or updates the stored one: the one with the same dedupe key (whoever created it), or,
/// for a delivery without a key, the one with the same id (a retried delivery). Evaluates
/// to the row as stored.
macro_rules! upsert_delivery {
    ($conn:ident, $finished:expr) => {{
        use $crate::db::schema::email_deliveries as ed;
        let finished: &$crate::mail::deliveries::Finished = $finished;
        let row = &finished.row;
        let update = (
            ed::kind.eq(&row.kind),
            ed::recipient.eq(&row.recipient),
            ed::subject.eq(&row.subject),
            ed::invoice_id.eq(&row.invoice_id),
            ed::commande_id.eq(&row.commande_id),
            ed::status.eq(&row.status),
            ed::attempts.eq(ed::attempts + finished.added),
            ed::last_error.eq(&row.last_error),
            ed::sent_at.eq(row.sent_at),
            ed::updated_at.eq(row.updated_at),
        );
        let insert = diesel::insert_into(ed::table).values(row);
        if row.dedupe_key.is_some() {
            $crate::mail::deliveries::upsert_delivery_on!($conn, insert, ed::dedupe_key, update)
        } else {
            $crate::mail::deliveries::upsert_delivery_on!($conn, insert, ed::id, update)
        }
    }};
}

/// `upsert_delivery!`'s statement on one conflict target (the targets' types differ).
macro_rules! upsert_delivery_on {
    ($conn:ident, $insert:ident, $target:expr, $update:ident) => {
        $insert
            .on_conflict($target)
            .do_update()
            .set($update)
            .returning($crate::db::models::EmailDelivery::as_returning())
            .keep_prepared()
            .get_result($conn)
            .await?
    };
}
pub(crate) use {upsert_delivery, upsert_delivery_on};
