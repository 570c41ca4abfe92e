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

/// Inside a write transaction: inserts each event unless its Stripe id is stored already.
/// `$($aw)?` is `await` for an async connection and nothing for a blocking one. Evaluates to
/// `Result<Vec<Appended>, DbError>`.
macro_rules! append_rows {
    ($conn:ident, $events:expr $(, $aw:ident)?) => {{
        let received_at = now();
        let mut out = Vec::with_capacity($events.len());
        for e in $events.iter() {
            let id = new_id();
            let inserted = diesel::insert_into(webhook_events::table)
                .values(new_event_row!(e, &id, received_at))
                .on_conflict(webhook_events::stripe_event_id)
                .do_nothing()
                .execute($conn)
                $(.$aw)??;
            out.push(if inserted == 1 {
                Appended::Inserted(id)
            } else {
                Appended::Duplicate
            });
        }
        Ok::<_, DbError>(out)
    }};
}

/// Appends a batch of events in ONE durable transaction (group commit): the cost of the
/// commit is shared by every request waiting on it. On SQLite the whole transaction is one
/// trip to a blocking thread ([`Db::sqlite_durable_tx`]): the write lock is held for the
/// inserts only, not for a thread handoff per statement.
pub async fn append_batch(db: &Db, events: &[NewEvent]) -> Result<Vec<Appended>, DbError> {
    if db.is_sqlite() {
        let events = events.to_vec();
        return db
            .sqlite_durable_tx(move |conn| blocking::append(conn, &events))
            .await;
    }
    // PostgreSQL: every commit is durable (synchronous_commit).
    with_write_tx!(db, acks, |conn| append_rows!(conn, events, await))
}

/// The statements of [`append_batch`] for a blocking SQLite connection (diesel's own
/// `RunQueryDsl`, kept apart from diesel-async's).
mod blocking {
    use diesel::prelude::*;

    use super::{new_id, now, status, webhook_events, Appended, DbError, NewEvent};

    pub(super) fn append(
        conn: &mut SqliteConnection,
        events: &[NewEvent],
    ) -> Result<Vec<Appended>, DbError> {
        append_rows!(conn, events)
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
