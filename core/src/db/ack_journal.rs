//! The acknowledgement journal (SQLite only): a second database file, `<database>.acks`,
//! where the WebhookReceiver commits each event before Stripe gets its 200.
//!
//! Why a file of its own: SQLite has one write lock per file. When the acknowledgements
//! shared the main file's lock with the order pipeline, an acknowledgement waited for the
//! pipeline's transaction in progress, and for the batch before it (BENCHMARKS.md, eighth
//! session: the slowest 1 % spent 3.7 of their 5 ms in those two waits). In a file of its
//! own, the receiver is the only writer: an acknowledgement waits for nothing but its disk.
//!
//! The journal is then copied into `webhook_events` in the main file by the importer
//! ([`crate::events::import_acknowledged`], on the pipeline's thread, right after each
//! acknowledgement and at every sweep). How far it has copied is a watermark in the main
//! file (`ack_imports`), advanced in the same transaction as the copy, so a crash between
//! the two files loses nothing and copies nothing twice (`webhook_events.stripe_event_id`
//! is unique besides). The watermark is kept per journal identity, a UUID the file gets at
//! creation: a journal deleted and created again starts from its first row, never below a
//! stale watermark.
//!
//! `seq` is `AUTOINCREMENT`: a number is never reused, even after the rows above it are
//! deleted, so a new row always sorts past the watermark.
//!
//! PostgreSQL has row locks, not a file lock: there the receiver writes `webhook_events`
//! directly, on its reserved connection.

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel::{ExpressionMethods, QueryDsl, Queryable, Selectable, SelectableHelper};

use diesel_async::pooled_connection::deadpool::{Object, Pool};

use super::{DbError, SqliteConn};

diesel::table! {
    /// Every acknowledged event, in the order they were committed.
    acknowledged_events (seq) {
        seq -> BigInt,
        id -> Text,
        stripe_event_id -> Text,
        event_type -> Text,
        payload -> Text,
        session_id -> Nullable<Text>,
        received_at -> Timestamp,
    }
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS journal (id TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS acknowledged_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL,
        stripe_event_id TEXT NOT NULL UNIQUE,
        event_type TEXT NOT NULL,
        payload TEXT NOT NULL,
        session_id TEXT,
        received_at TIMESTAMP NOT NULL
    );";

/// One acknowledged event as the journal holds it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = acknowledged_events, check_for_backend(diesel::sqlite::Sqlite))]
pub struct JournalRow {
    pub seq: i64,
    pub id: String,
    pub stripe_event_id: String,
    pub event_type: String,
    pub payload: String,
    pub session_id: Option<String>,
    pub received_at: chrono::NaiveDateTime,
}

/// The journal beside the database file at `database`.
pub fn path_for(database: &Path) -> PathBuf {
    let mut path = database.as_os_str().to_owned();
    path.push(".acks");
    PathBuf::from(path)
}

/// Creates the journal's tables if needed, on a connection to its file, and returns the
/// journal's identity (made now for a new file).
pub(super) fn prepare(conn: &mut SqliteConnection) -> Result<String, DbError> {
    use diesel::{OptionalExtension, RunQueryDsl};
    conn.batch_execute(SCHEMA)?;
    diesel::table! {
        journal (id) {
            id -> Text,
        }
    }
    conn.immediate_transaction(|conn| {
        let id = journal::table
            .select(journal::id)
            .first::<String>(conn)
            .optional()?;
        match id {
            Some(id) => Ok(id),
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                diesel::insert_into(journal::table)
                    .values(journal::id.eq(&id))
                    .execute(conn)?;
                Ok(id)
            }
        }
    })
}

/// An open journal: its file, its identity, and the connection the importer reads it with.
pub struct AckJournal {
    pub(super) path: PathBuf,
    pub(super) id: String,
    pub(super) reader: Pool<SqliteConn>,
}

impl AckJournal {
    /// The journal's identity, the key of its watermark in `ack_imports`.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn reader(&self) -> Result<Object<SqliteConn>, DbError> {
        self.reader
            .get()
            .await
            .map_err(|e| DbError::Pool(e.to_string()))
    }

    /// The rows committed after `seq`, oldest first, at most `limit` of them.
    pub async fn rows_after(&self, seq: i64, limit: i64) -> Result<Vec<JournalRow>, DbError> {
        use diesel_async::RunQueryDsl;
        let mut conn = self.reader().await?;
        Ok(acknowledged_events::table
            .filter(acknowledged_events::seq.gt(seq))
            .order(acknowledged_events::seq.asc())
            .limit(limit)
            .select(JournalRow::as_select())
            .load(&mut *conn)
            .await?)
    }

    /// How many events the journal holds.
    pub async fn count(&self) -> Result<i64, DbError> {
        self.count_after(0).await
    }

    /// How many events the journal holds after `seq`.
    pub async fn count_after(&self, seq: i64) -> Result<i64, DbError> {
        use diesel_async::RunQueryDsl;
        let mut conn = self.reader().await?;
        Ok(acknowledged_events::table
            .filter(acknowledged_events::seq.gt(seq))
            .count()
            .get_result(&mut *conn)
            .await?)
    }
}
