//! The webhook event log: the durable append behind every acknowledgement, and the
//! claims (leases) that let any process — after a crash, or one of several sharing a
//! PostgreSQL database — pick up events that are not finished.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::models::WebhookEvent;
use crate::db::schema::webhook_events;
use crate::db::{new_id, now, Db, DbError, KeepPreparedDsl};
use crate::{with_conn, with_write_tx};

/// Event status, as stored.
pub mod status {
    pub const RECEIVED: &str = "received";
    pub const PROCESSED: &str = "processed";
    pub const IGNORED: &str = "ignored";
    pub const ORPHAN: &str = "orphan";
    pub const FAILED: &str = "failed";
    pub const ALL: [&str; 5] = [RECEIVED, PROCESSED, IGNORED, ORPHAN, FAILED];
}

/// A verified event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub stripe_event_id: String,
    pub event_type: String,
    pub payload: String,
    pub session_id: Option<String>,
}

/// What the append did with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Stored now, under this row id.
    Inserted(String),
    /// Already stored earlier (Stripe redelivered it).
    Duplicate,
}

/// The columns of a newly received event (either engine).
macro_rules! new_event_row {
    ($event:expr, $id:expr, $received_at:expr) => {{
        let (e, id, received_at): (&NewEvent, &str, chrono::NaiveDateTime) =
            ($event, $id, $received_at);
        (
            webhook_events::id.eq(id),
            webhook_events::stripe_event_id.eq(&e.stripe_event_id),
            webhook_events::event_type.eq(&e.event_type),
            webhook_events::payload.eq(&e.payload),
            webhook_events::received_at.eq(received_at),
            webhook_events::status.eq(status::RECEIVED),
            webhook_events::attempts.eq(0),
            webhook_events::session_id.eq(&e.session_id),
        )
    }};
}

/// Appends a batch of events in ONE durable transaction (group commit): the cost of the
/// commit is shared by every request waiting on it. On SQLite the events go to the
/// acknowledgement journal ([`crate::db::ack_journal`]), in one trip to the connection's
/// thread ([`Db::sqlite_durable_tx`]), and reach `webhook_events` with
/// [`import_acknowledged`]. On PostgreSQL they go to `webhook_events` directly.
pub async fn append_batch(db: &Db, events: &[NewEvent]) -> Result<Vec<Appended>, DbError> {
    if db.is_sqlite() {
        let events = events.to_vec();
        return db
            .sqlite_durable_tx(move |conn| journal::append(conn, &events))
            .await;
    }
    // PostgreSQL: every commit is durable (synchronous_commit).
    let received_at = now();
    with_write_tx!(db, acks, |conn| {
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let id = new_id();
            let inserted = diesel::insert_into(webhook_events::table)
                .values(new_event_row!(e, &id, received_at))
                .on_conflict(webhook_events::stripe_event_id)
                .do_nothing()
                .execute(conn)
                .await?;
            out.push(if inserted == 1 {
                Appended::Inserted(id)
            } else {
                Appended::Duplicate
            });
        }
        Ok(out)
    })
}

/// The journal's statements, on a blocking SQLite connection (diesel's own `RunQueryDsl`,
/// kept apart from diesel-async's).
mod journal {
    use diesel::prelude::*;

    use super::{new_id, now, Appended, DbError, NewEvent};
    use crate::db::ack_journal::acknowledged_events as journal;

    /// Deletes the oldest rows up to `imported` received before `cutoff`, `limit` at most.
    pub(super) fn prune(
        conn: &mut SqliteConnection,
        imported: i64,
        cutoff: chrono::NaiveDateTime,
        limit: i64,
    ) -> Result<usize, DbError> {
        let oldest: Vec<i64> = journal::table
            .filter(journal::seq.le(imported))
            .filter(journal::received_at.lt(cutoff))
            .order(journal::seq.asc())
            .limit(limit)
            .select(journal::seq)
            .load(conn)?;
        Ok(diesel::delete(journal::table.filter(journal::seq.eq_any(oldest))).execute(conn)?)
    }

    /// Inserts each event unless its Stripe id is in the journal already.
    pub(super) fn append(
        conn: &mut SqliteConnection,
        events: &[NewEvent],
    ) -> Result<Vec<Appended>, DbError> {
        let received_at = now();
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let id = new_id();
            let inserted = diesel::insert_into(journal::table)
                .values((
                    journal::id.eq(&id),
                    journal::stripe_event_id.eq(&e.stripe_event_id),
                    journal::event_type.eq(&e.event_type),
                    journal::payload.eq(&e.payload),
                    journal::session_id.eq(&e.session_id),
                    journal::received_at.eq(received_at),
                ))
                .on_conflict(journal::stripe_event_id)
                .do_nothing()
                .execute(conn)?;
            out.push(if inserted == 1 {
                Appended::Inserted(id)
            } else {
                Appended::Duplicate
            });
        }
        Ok(out)
    }
}

/// Acknowledged events copied by one [`import_acknowledged`].
#[derive(Debug, Default)]
pub struct Imported {
    /// The events new to `webhook_events`: (row id, session id), to be processed.
    pub events: Vec<(String, Option<String>)>,
    /// The journal held more than one import takes: import again.
    pub more: bool,
}

/// The last journal row copied into `webhook_events` (0 before the first copy), read on
/// `$conn`: the journal's watermark in `ack_imports`. Evaluates to
/// `Result<i64, diesel::result::Error>`.
macro_rules! imported_up_to {
    ($conn:ident, $journal:expr) => {{
        use $crate::db::schema::ack_imports;
        ack_imports::table
            .find($journal.id())
            .select(ack_imports::seq)
            .first::<i64>($conn)
            .await
            .optional()
            .map(|seq| seq.unwrap_or(0))
    }};
}

/// Copies the acknowledgement journal's new rows (at most `limit`) into `webhook_events`
/// and advances the journal's watermark, in one transaction of the main file (SQLite; on
/// PostgreSQL there is no journal and nothing to do). Safe to run any number of times, by
/// any number of callers: the watermark is read inside the transaction, and a Stripe id
/// already stored is skipped.
pub async fn import_acknowledged(db: &Db, limit: i64) -> Result<Imported, DbError> {
    use crate::db::schema::ack_imports;
    let Some(journal) = db.ack_journal() else {
        return Ok(Imported::default());
    };
    with_write_tx!(db, |conn| {
        let from = imported_up_to!(conn, journal)?;
        let rows = journal.rows_after(from, limit).await?;
        let Some(last) = rows.last().map(|r| r.seq) else {
            return Ok(Imported::default());
        };
        let mut imported = Imported {
            events: Vec::new(),
            more: i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit,
        };
        for row in rows {
            let event = NewEvent {
                stripe_event_id: row.stripe_event_id,
                event_type: row.event_type,
                payload: row.payload,
                session_id: row.session_id,
            };
            let inserted = diesel::insert_into(webhook_events::table)
                .values(new_event_row!(&event, &row.id, row.received_at))
                .on_conflict(webhook_events::stripe_event_id)
                .do_nothing()
                .execute(conn)
                .await?;
            if inserted == 1 {
                imported.events.push((row.id, event.session_id));
            }
        }
        diesel::insert_into(ack_imports::table)
            .values((
                ack_imports::journal_id.eq(journal.id()),
                ack_imports::seq.eq(last),
            ))
            .on_conflict(ack_imports::journal_id)
            .do_update()
            .set(ack_imports::seq.eq(last))
            .keep_prepared()
            .execute(conn)
            .await?;
        Ok(imported)
    })
}

/// How long imported rows stay in the acknowledgement journal, where a redelivery is
/// recognised as a duplicate: Stripe retries an event for up to three days.
pub const JOURNAL_RETENTION: chrono::Duration = chrono::Duration::days(7);

/// Deletes from the acknowledgement journal at most `limit` rows that are imported (their
/// import committed) and older than `older_than`; returns how many (SQLite; 0 on PostgreSQL).
pub async fn prune_journal(
    db: &Db,
    older_than: chrono::Duration,
    limit: i64,
) -> Result<usize, DbError> {
    let Some(journal) = db.ack_journal() else {
        return Ok(0);
    };
    // Read in a write transaction: it returns once committed, so the watermark read is one
    // no failed batch can take back (a read on the pipeline's writer sees its open batch).
    let imported = with_write_tx!(db, |conn| Ok::<_, DbError>(imported_up_to!(conn, journal)?))?;
    if imported == 0 {
        return Ok(0);
    }
    let cutoff = now() - older_than;
    db.sqlite_durable_tx(move |conn| journal::prune(conn, imported, cutoff, limit))
        .await
}

/// How many acknowledged events wait in the journal for their import (SQLite; 0 on
/// PostgreSQL): the first part of the backlog, before `webhook_events`' unfinished ones.
pub async fn count_unimported(db: &Db) -> Result<i64, DbError> {
    let Some(journal) = db.ack_journal() else {
        return Ok(0);
    };
    let imported = with_conn!(db, |conn| imported_up_to!(conn, journal))?;
    journal.count_after(imported).await
}

/// How many events have been acknowledged (committed before their 200): the journal's on
/// SQLite, `webhook_events`' on PostgreSQL.
pub async fn count_acknowledged(db: &Db) -> Result<i64, DbError> {
    match db.ack_journal() {
        Some(journal) => journal.count().await,
        None => count_all(db).await,
    }
}

/// Inside a write transaction: takes the event for `$owner` until `$lease` from now, if it
/// is unfinished and nobody else holds a live claim (on PostgreSQL the row stays locked until
/// the transaction ends, so a second processor waits, then finds it finished). Evaluates to
/// the row when claimed (`Option<WebhookEvent>`).
macro_rules! claim_row {
    ($conn:ident, $id:expr, $owner:expr, $lease:expr) => {{
        use $crate::db::schema::webhook_events;
        let (id, owner, lease): (&str, &str, chrono::Duration) = ($id, $owner, $lease);
        let t = $crate::db::now();
        diesel::update(
            webhook_events::table
                .filter(webhook_events::id.eq(id))
                .filter(webhook_events::status.eq($crate::events::status::RECEIVED))
                .filter(
                    webhook_events::lease_owner
                        .is_null()
                        .or(webhook_events::lease_owner.eq(owner))
                        .or(webhook_events::lease_expires_at.lt(t)),
                ),
        )
        .set((
            webhook_events::lease_owner.eq(owner),
            webhook_events::lease_expires_at.eq(t + lease),
            webhook_events::attempts.eq(webhook_events::attempts + 1),
        ))
        .returning($crate::db::models::WebhookEvent::as_returning())
        .keep_prepared()
        .get_result::<$crate::db::models::WebhookEvent>($conn)
        .await
        .optional()?
    }};
}

/// Inside a write transaction: records how an event ended and releases its claim.
macro_rules! finish_row {
    ($conn:ident, $id:expr, $status:expr, $commande_id:expr, $error:expr) => {{
        use $crate::db::schema::webhook_events;
        let (id, status, commande_id, error): (&str, &str, Option<&str>, Option<&str>) =
            ($id, $status, $commande_id, $error);
        diesel::update(webhook_events::table.find(id))
            .set((
                webhook_events::status.eq(status),
                webhook_events::commande_id.eq(commande_id),
                webhook_events::last_error.eq(error),
                webhook_events::processed_at.eq(Some($crate::db::now())),
                webhook_events::lease_owner.eq(None::<String>),
                webhook_events::lease_expires_at.eq(None::<chrono::NaiveDateTime>),
            ))
            .keep_prepared()
            .execute($conn)
            .await?
    }};
}
pub(crate) use {claim_row, finish_row};

/// Records a failed attempt at an event and gives up any claim on it without finishing (a
/// transient failure: the sweep retries later).
pub async fn release(db: &Db, id: &str, error: &str) -> Result<(), DbError> {
    with_conn!(db, write, |conn| {
        diesel::update(webhook_events::table.find(id))
            .set((
                webhook_events::attempts.eq(webhook_events::attempts + 1),
                webhook_events::last_error.eq(Some(error)),
                webhook_events::lease_owner.eq(None::<String>),
                webhook_events::lease_expires_at.eq(None::<NaiveDateTime>),
            ))
            .keep_prepared()
            .execute(conn)
            .await
    })?;
    Ok(())
}

/// Unfinished events nobody holds a live claim on, oldest first: (row id, session id).
pub async fn unfinished(db: &Db, limit: i64) -> Result<Vec<(String, Option<String>)>, DbError> {
    let t = now();
    Ok(with_conn!(db, |conn| {
        webhook_events::table
            .filter(webhook_events::status.eq(status::RECEIVED))
            .filter(
                webhook_events::lease_owner
                    .is_null()
                    .or(webhook_events::lease_expires_at.lt(t)),
            )
            .order(webhook_events::received_at.asc())
            .select((webhook_events::id, webhook_events::session_id))
            .limit(limit)
            .load(conn)
            .await
    })?)
}

/// Puts finished events back to `received` so they are processed again (`facture replay`).
/// Processing is idempotent, so a replay never creates a second invoice.
pub async fn requeue(
    db: &Db,
    stripe_event_id: Option<&str>,
    failed_only: bool,
) -> Result<usize, DbError> {
    Ok(with_conn!(db, write, |conn| {
        let mut q = diesel::update(webhook_events::table).into_boxed();
        if let Some(evt) = stripe_event_id {
            q = q.filter(webhook_events::stripe_event_id.eq(evt));
        }
        if failed_only {
            q = q.filter(webhook_events::status.eq(status::FAILED));
        }
        q.set((
            webhook_events::status.eq(status::RECEIVED),
            webhook_events::lease_owner.eq(None::<String>),
            webhook_events::lease_expires_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
        .await
    })?)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<WebhookEvent>, DbError> {
    Ok(with_conn!(db, |conn| {
        webhook_events::table
            .find(id)
            .select(WebhookEvent::as_select())
            .first(conn)
            .await
            .optional()
    })?)
}

pub async fn count_by_status(db: &Db, wanted: &str) -> Result<i64, DbError> {
    Ok(with_conn!(db, |conn| {
        webhook_events::table
            .filter(webhook_events::status.eq(wanted))
            .count()
            .get_result(conn)
            .await
    })?)
}

pub async fn count_all(db: &Db) -> Result<i64, DbError> {
    Ok(with_conn!(db, |conn| {
        webhook_events::table.count().get_result(conn).await
    })?)
}
