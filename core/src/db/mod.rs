//! The database: one set of diesel queries for SQLite (embedded default) and PostgreSQL.
//!
//! [`Db`] holds pooled connections for either engine; [`with_conn!`] and [`with_write_tx!`]
//! run the same query code on whichever arm is live (the macro expands the body once per
//! backend, so each query is written once and type-checked against both).
//!
//! SQLite has one writer: writes go through a pool of size one and `BEGIN IMMEDIATE`, so
//! they queue instead of failing with SQLITE_BUSY; reads use a separate pool (WAL lets them
//! run beside the writer). PostgreSQL uses one pool and row locks.

pub mod ack_journal;
pub mod blocking;
pub mod models;
pub mod prepared;
pub use prepared::KeepPreparedDsl;
pub mod schema;
pub mod write_batch;
pub use write_batch::{Ended, Place, SqliteCheckout};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, Timelike, Utc};
use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::FutureExt;

use crate::config::DatabaseUrl;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

/// SQLite through diesel-async; where its calls run is decided by [`blocking`].
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, blocking::DatabaseThread>;
pub type PgConn = AsyncPgConnection;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("no database connection available: {0}")]
    Pool(String),
    #[error("could not open the database: {0}")]
    Connect(String),
    #[error("migrations failed: {0}")]
    Migration(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("the transaction could not be committed: {0}")]
    Commit(String),
}

impl DbError {
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }

    /// SQLite's write lock is held by another connection (SQLITE_BUSY).
    pub fn is_lock_busy(&self) -> bool {
        matches!(self, DbError::Query(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("database is locked") || info.message().contains("busy"))
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, DbError::Query(diesel::result::Error::NotFound))
    }

    /// Errors worth retrying: the database is unreachable, busy, or a transaction lost a race.
    pub fn is_transient(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            DbError::Pool(_) | DbError::Connect(_) | DbError::Commit(_) => true,
            DbError::Query(Error::DatabaseError(kind, info)) => {
                matches!(
                    kind,
                    DatabaseErrorKind::SerializationFailure
                        | DatabaseErrorKind::ClosedConnection
                        | DatabaseErrorKind::UnableToSendCommand
                ) || {
                    let m = info.message();
                    m.contains("locked") || m.contains("busy") || m.contains("connection")
                }
            }
            DbError::Query(Error::BrokenTransactionManager) => true,
            _ => false,
        }
    }
}

/// Pooled connections to the configured engine. Cheap to clone.
#[derive(Clone)]
pub enum Db {
    Sqlite {
        writer: Pool<SqliteConn>,
        /// The writer of the acknowledgement journal ([`ack_journal`]), a file of its own, so
        /// that an acknowledgement never waits for SQLite's write lock on the main file. Its
        /// commits are made durable by [`Db::sqlite_durable_tx`], after its lock is released.
        acks: Pool<SqliteConn>,
        /// The acknowledgement journal: its file, identity and reader (for the importer).
        journal: Arc<ack_journal::AckJournal>,
        readers: Pool<SqliteConn>,
        path: PathBuf,
        /// Checkpoints the WAL on a thread of its own while any clone of this `Db` lives.
        checkpointer: Arc<Checkpointer>,
        /// Whose turn it is to write the main file, among this process's writes. FIFO, where
        /// polling SQLite's lock let one writer win it again and again.
        turn: Arc<tokio::sync::Mutex<()>>,
        /// How long a writer waits for SQLite's write lock (`database.busy_timeout_ms`).
        patience: Duration,
        /// `readers` is the writer's pool ([`Db::for_pipeline`]).
        reads_on_writer: bool,
        /// The writer's group commit ([`write_batch`]), shared by every clone.
        batches: Arc<write_batch::WriteBatches>,
    },
    Postgres {
        pool: Pool<PgConn>,
        /// A connection reserved for webhook acknowledgements (the WebhookReceiver commits
        /// one batch at a time), as SQLite's `acks`: an acknowledgement never queues behind
        /// the pipeline's and the API's checkouts of `pool`. With one shared pool, an
        /// overloaded pipeline held it and acknowledgements waited (BENCHMARKS.md, sessions
        /// of 2026-12-01).
        acks: Pool<PgConn>,
    },
}

/// A connection checked out of a pool, for either engine.
// Held for one query or transaction and never stored, so the size gap between the
// variants costs nothing worth a heap allocation per checkout.
#[allow(clippy::large_enum_variant)]
pub enum Conn {
    Sqlite(Held<Object<SqliteConn>>),
    Postgres(Object<PgConn>),
}

/// A SQLite connection checked out of a pool, recording how long it was held when dropped
/// (`facture_db_held_seconds{pool}`). With the waits for it (`facture_db_wait_seconds`),
/// this shows whether the single writer connection is busy or merely handed around.
pub struct Held<C> {
    conn: C,
    pool: &'static str,
    since: std::time::Instant,
}

impl<C> Held<C> {
    fn new(conn: C, pool: &'static str) -> Self {
        Held {
            conn,
            pool,
            since: std::time::Instant::now(),
        }
    }
}

impl<C> std::ops::Deref for Held<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.conn
    }
}

impl<C> std::ops::DerefMut for Held<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.conn
    }
}

impl<C> Drop for Held<C> {
    fn drop(&mut self) {
        metrics::histogram!("facture_db_held_seconds", "pool" => self.pool)
            .record(self.since.elapsed());
    }
}

/// Runs `$body` with `$conn` bound to a `&mut` connection of whichever engine is live.
/// `$db.$pool()` chooses the pool: `read()` or `write()`.
///
/// On SQLite, `with_conn!(db, write, ...)` runs its statement in a `BEGIN IMMEDIATE`
/// transaction, so that waiting for the write lock never blocks a thread (see
/// [`Db::sqlite_begin_write`]); the result's error is then a [`DbError`] on both engines.
#[macro_export]
macro_rules! with_conn {
    ($db:expr, write, |$conn:ident| $body:expr) => {{
        match $db.write().await? {
            $crate::db::Conn::Sqlite(mut c) => {
                $crate::__sqlite_write_tx!($db, c, $crate::db::into_db_result, |$conn| $body)
            }
            $crate::db::Conn::Postgres(mut c) => {
                let $conn: &mut $crate::db::PgConn = &mut *c;
                $crate::db::into_db_result($body)
            }
        }
    }};
    ($db:expr, $pool:ident, |$conn:ident| $body:expr) => {{
        match $db.$pool().await? {
            $crate::db::Conn::Sqlite(mut c) => {
                let $conn: &mut $crate::db::SqliteConn = &mut *c;
                $body
            }
            $crate::db::Conn::Postgres(mut c) => {
                let $conn: &mut $crate::db::PgConn = &mut *c;
                $body
            }
        }
    }};
    ($db:expr, |$conn:ident| $body:expr) => {
        $crate::with_conn!($db, read, |$conn| $body)
    };
}

/// Runs `$body` (an expression that may `.await` and use `?`, returning
/// `Result<T, DbError>`) inside one write transaction: `BEGIN IMMEDIATE` on SQLite
/// (the single writer), a normal transaction on PostgreSQL.
///
/// Its SQLite commits use `synchronous = NORMAL`, which a crash of facture itself never
/// loses in WAL mode; what must survive a power cut too (the webhook acknowledgement) goes
/// through [`Db::sqlite_durable_tx`].
///
/// `with_write_tx!(db, acks, |conn| ...)` runs it on the connection reserved for
/// acknowledgements ([`Db::acks`]) instead of the writer.
#[macro_export]
macro_rules! with_write_tx {
    ($db:expr, |$conn:ident| $body:expr) => {
        $crate::with_write_tx!($db, write, |$conn| $body)
    };
    ($db:expr, $pool:ident, |$conn:ident| $body:expr) => {{
        match $db.$pool().await? {
            $crate::db::Conn::Sqlite(mut c) => {
                $crate::__sqlite_write_tx!($db, c, std::convert::identity, |$conn| $body)
            }
            $crate::db::Conn::Postgres(mut c) => {
                use diesel_async::AsyncConnection as _;
                let inner: &mut $crate::db::PgConn = &mut *c;
                inner
                    .transaction(async |$conn: &mut $crate::db::PgConn| $body)
                    .await
            }
        }
    }};
}

/// The SQLite side of [`with_write_tx!`] and `with_conn!(db, write, ...)`: runs `$body` as
/// one write of the writer's group commit ([`write_batch`]) on the checked-out connection
/// `$c`, passes its result through `$into` (to a `Result<_, DbError>`), gives the
/// connection back, and returns once the write is committed (or has failed).
#[doc(hidden)]
#[macro_export]
macro_rules! __sqlite_write_tx {
    ($db:expr, $c:ident, $into:path, |$conn:ident| $body:expr) => {{
        let place = $db.sqlite_begin_write(&mut $c).await?;
        let result = {
            let $conn: &mut $crate::db::SqliteConn = &mut *$c;
            $into(async { $body }.await)
        };
        let ended = $db.sqlite_end_write(&mut $c, place, result).await;
        drop($c);
        ended.committed().await
    }};
}

/// A query's result with its error as a [`DbError`], whatever the body returned (diesel's
/// error or a `DbError` already): the macros' bodies may return either.
pub fn into_db_result<T, E: Into<DbError>>(result: Result<T, E>) -> Result<T, DbError> {
    result.map_err(Into::into)
}

/// Runs `BEGIN IMMEDIATE` once, giving up at once if another connection holds the lock.
/// The writers' connections run with `busy_timeout = 0` (see [`Db::connect`]): SQLite's own
/// busy handler would put the thread to sleep for 1, 2, 5, 10... ms, stalling everything
/// else on the pipeline's thread, so [`Db::sqlite_immediate`] waits instead. Once BEGIN
/// IMMEDIATE holds the lock, no statement of the transaction can meet a busy lock.
///
/// Plain SQL, outside diesel's transaction manager (see [`write_batch`]). A transaction
/// found open already is one whose opener's future was dropped before it could record it:
/// nothing can depend on it, so it is rolled back.
fn try_begin_immediate(c: &mut SqliteConnection) -> Result<(), DbError> {
    match c.batch_execute("BEGIN IMMEDIATE") {
        Err(e) if e.to_string().contains("within a transaction") => {
            c.batch_execute("ROLLBACK")?;
            Ok(c.batch_execute("BEGIN IMMEDIATE")?)
        }
        other => Ok(other?),
    }
}

/// This process's write turn, held from before `BEGIN IMMEDIATE` until the transaction ends.
pub type WriteTurn = Option<tokio::sync::OwnedMutexGuard<()>>;

impl Db {
    /// Opens a `BEGIN IMMEDIATE` transaction on `conn` (one of this database's SQLite
    /// writers), then runs `then` in the same trip to the connection's thread, given the open
    /// transaction and this process's write turn (to keep, or to end with it). BEGIN
    /// IMMEDIATE takes SQLite's write lock now, so the transaction never fails later on a
    /// lock upgrade.
    ///
    /// A write to the main file first takes this process's FIFO write turn
    /// ([`Db::write_turn`]), its wait recorded as `facture_db_wait_seconds{for=<turn_wait>}`;
    /// the journal's writer (`turn_wait` `None`) is alone in its file and takes none. When
    /// another process holds the lock (the CLI, a second server), the BEGIN fails at once;
    /// the turn is given back (so this process's other writes can try too) and taken again a
    /// millisecond later, for up to `database.busy_timeout_ms`.
    async fn sqlite_immediate<R, F>(
        &self,
        conn: &mut SqliteConn,
        turn_wait: Option<&'static str>,
        then: F,
    ) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: Fn(&mut SqliteConnection, WriteTurn) -> R + Send + Sync + 'static,
    {
        let then = Arc::new(then);
        let patience = self.lock_patience();
        let deadline = std::time::Instant::now() + patience;
        loop {
            let turn = match turn_wait {
                Some(what) => {
                    let asked = std::time::Instant::now();
                    let turn = self.write_turn().await;
                    waited(what, asked);
                    turn
                }
                None => None,
            };
            let then = then.clone();
            let began = conn
                .spawn_blocking(move |c| {
                    // A refused BEGIN drops the turn here, so the other writer can try.
                    Ok(try_begin_immediate(c).map(|()| then(c, turn)))
                })
                .await
                .map_err(DbError::from)
                .and_then(|r| r);
            match began {
                Err(e) if e.is_lock_busy() && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                other => return other,
            }
        }
    }
}

/// Records how long a caller waited for `what` (a pool's connection, the write turn) in
/// `facture_db_wait_seconds`: on SQLite these waits, more than the statements, bound the
/// pipeline (BENCHMARKS.md).
fn waited(what: &'static str, since: std::time::Instant) {
    metrics::histogram!("facture_db_wait_seconds", "for" => what).record(since.elapsed());
}

/// Records the wait for a pool's connection when dropped (the checkout resolved or gave up).
struct Waited(&'static str, std::time::Instant);

impl Drop for Waited {
    fn drop(&mut self) {
        waited(self.0, self.1);
    }
}

/// Records how long a SQLite writer held the write lock (and this process's write turn), from
/// `BEGIN IMMEDIATE` to `COMMIT`, in `facture_db_write_lock_seconds`.
#[doc(hidden)]
pub fn held_write_lock(who: &'static str, since: std::time::Instant) {
    metrics::histogram!("facture_db_write_lock_seconds", "by" => who).record(since.elapsed());
}

/// Counts every statement sent to either engine (`facture_db_statements_total`, BEGIN,
/// COMMIT and PRAGMAs included): round trips are what a payment costs the single SQLite
/// writer, so their number per order is watched on `/metrics` and in BENCHMARKS.md.
fn count_statements() -> Option<Box<dyn diesel::connection::Instrumentation>> {
    use diesel::connection::InstrumentationEvent;
    Some(Box::new(|event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            metrics::counter!("facture_db_statements_total").increment(1);
            // `FACTURE_LOG=facture_sql=trace` lists every statement, to see what a payment costs.
            tracing::trace!(target: "facture_sql", "{query}");
        }
    }))
}

impl Db {
    pub async fn connect(
        url: &DatabaseUrl,
        pool_size: usize,
        busy_ms: u64,
    ) -> Result<Self, DbError> {
        // Every connection opened from now on counts its statements.
        diesel::connection::set_default_instrumentation(count_statements)?;
        match url {
            DatabaseUrl::Sqlite(path) => Self::connect_sqlite(path, pool_size, busy_ms),
            DatabaseUrl::Postgres(url) => {
                let build = |size: usize| {
                    let manager = AsyncDieselConnectionManager::<PgConn>::new(url.as_str());
                    Pool::builder(manager)
                        .max_size(size)
                        .wait_timeout(Some(Duration::from_secs(10)))
                        .create_timeout(Some(Duration::from_secs(5)))
                        .runtime(deadpool::Runtime::Tokio1)
                        .build()
                        .map_err(|e| DbError::Connect(e.to_string()))
                };
                // Pools open their connections when first asked: a process that never
                // acknowledges a webhook (the CLI) never opens the reserved one.
                Ok(Db::Postgres {
                    pool: build(pool_size)?,
                    acks: build(1)?,
                })
            }
        }
    }

    fn connect_sqlite(path: &Path, pool_size: usize, busy_ms: u64) -> Result<Self, DbError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| DbError::Connect(format!("{}: {e}", parent.display())))?;
        }
        // Create the files and switch them to WAL once, before any pool opens them.
        open_sqlite_sync(path, busy_ms)?;
        let journal_path = ack_journal::path_for(path);
        let journal_id = ack_journal::prepare(&mut open_sqlite_sync(&journal_path, busy_ms)?)?;
        let build = |path: &Path, size: usize, busy_ms: u64, autocheckpoint: u32| {
            let url = path.to_string_lossy().into_owned();
            let mut config = ManagerConfig::<SqliteConn>::default();
            // A SQLite connection is a file handle, not a socket that can drop: checking it out
            // needs no `SELECT 1` first (that was 11 of a payment's 55 statements, each on the
            // pipeline's single writer). A broken transaction state is still refused.
            config.recycling_method = diesel_async::pooled_connection::RecyclingMethod::Fast;
            config.custom_setup = Box::new(move |url| {
                let url = url.to_owned();
                async move {
                    let mut conn =
                        <SqliteConn as diesel_async::AsyncConnection>::establish(&url).await?;
                    let pragmas = sqlite_pragmas(busy_ms, "NORMAL", autocheckpoint);
                    conn.batch_execute(&pragmas)
                        .await
                        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                    Ok(conn)
                }
                .boxed()
            });
            let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(url, config);
            Pool::builder(manager)
                .max_size(size)
                .wait_timeout(Some(Duration::from_secs(30)))
                .runtime(deadpool::Runtime::Tokio1)
                .build()
                .map_err(|e| DbError::Connect(e.to_string()))
        };
        // Writers wait for the lock asynchronously (Db::sqlite_immediate), never in SQLite:
        // their busy timeout is 0.
        Ok(Db::Sqlite {
            writer: build(path, 1, 0, 1000)?,
            acks: build(&journal_path, 1, 0, 1000)?,
            journal: Arc::new(ack_journal::AckJournal {
                reader: build(&journal_path, 1, busy_ms, 0)?,
                path: journal_path.clone(),
                id: journal_id,
            }),
            readers: build(path, pool_size.max(1), busy_ms, 0)?,
            path: path.to_owned(),
            patience: Duration::from_millis(busy_ms),
            checkpointer: Checkpointer::start(&[path, &journal_path], busy_ms)?,
            turn: Arc::default(),
            reads_on_writer: false,
            batches: Arc::default(),
        })
    }

    /// This database as the order pipeline uses it. On SQLite its reads go through the
    /// pipeline's writer connection as well: the pipeline runs on one thread, one statement
    /// at a time, so a separate reader buys it no parallelism, and a reader's page cache is
    /// thrown away whenever another connection has committed (every pipeline read found it
    /// cold). The writer's cache stays warm between its own transactions. Never hold a
    /// connection of this `Db` while asking for another: there is only one.
    pub fn for_pipeline(&self) -> Db {
        match self {
            Db::Sqlite {
                writer,
                acks,
                journal,
                path,
                patience,
                checkpointer,
                turn,
                batches,
                ..
            } => Db::Sqlite {
                writer: writer.clone(),
                acks: acks.clone(),
                journal: journal.clone(),
                readers: writer.clone(),
                path: path.clone(),
                patience: *patience,
                checkpointer: checkpointer.clone(),
                turn: turn.clone(),
                reads_on_writer: true,
                batches: batches.clone(),
            },
            Db::Postgres { .. } => self.clone(),
        }
    }

    /// How long a SQLite writer waits for the write lock (unused on PostgreSQL).
    pub fn lock_patience(&self) -> Duration {
        match self {
            Db::Sqlite { patience, .. } => *patience,
            Db::Postgres { .. } => Duration::ZERO,
        }
    }

    /// This process's turn to write (SQLite; `None` on PostgreSQL, which locks rows).
    /// Held for the whole transaction, from before `BEGIN IMMEDIATE` to after `COMMIT`.
    pub async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self {
            Db::Sqlite { turn, .. } => Some(turn.clone().lock_owned().await),
            Db::Postgres { .. } => None,
        }
    }

    /// Runs `body` in one durable write transaction on the acknowledgement journal
    /// ([`ack_journal`]; durable against power loss too): `BEGIN IMMEDIATE`, the body, its
    /// `COMMIT` and the journal's WAL sync (see [`sync_wal`]) run in a single call on the
    /// connection's thread. The body runs again only if the BEGIN was refused (another
    /// process writing the journal), never after it began.
    pub async fn sqlite_durable_tx<T, F>(&self, body: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: Fn(&mut SqliteConnection) -> Result<T, DbError> + Send + Sync + 'static,
    {
        let Db::Sqlite { journal, .. } = self else {
            return Err(DbError::Pool("not a SQLite database".into()));
        };
        let path = journal.path.clone();
        let Conn::Sqlite(mut c) = self.acks().await? else {
            return Err(DbError::Pool("not a SQLite connection".into()));
        };
        self.sqlite_immediate(&mut c, None, move |conn, _no_turn| {
            let began = std::time::Instant::now();
            let result = body(conn);
            let ended = conn.batch_execute(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
            // The lock is released: the next batch may begin while the disk flushes.
            held_write_lock("acks", began);
            ended.map_err(DbError::from).and(result).and_then(|value| {
                let synced = std::time::Instant::now();
                sync_wal(&path).map_err(|e| DbError::Commit(format!("WAL sync: {e}")))?;
                waited("wal_sync", synced);
                Ok(value)
            })
        })
        .await?
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Db::Sqlite { .. })
    }

    /// The acknowledgement journal, on SQLite ([`ack_journal`]); `None` on PostgreSQL.
    pub fn ack_journal(&self) -> Option<&ack_journal::AckJournal> {
        match self {
            Db::Sqlite { journal, .. } => Some(journal),
            Db::Postgres { .. } => None,
        }
    }

    /// A connection for reads.
    pub async fn read(&self) -> Result<Conn, DbError> {
        let _waited = Waited("readers", std::time::Instant::now());
        match self {
            Db::Sqlite {
                readers,
                reads_on_writer,
                ..
            } => {
                let pool = if *reads_on_writer {
                    "writer"
                } else {
                    "readers"
                };
                readers
                    .get()
                    .await
                    .map(|c| Conn::Sqlite(Held::new(c, pool)))
            }
            Db::Postgres { pool, .. } => pool.get().await.map(Conn::Postgres),
        }
        .map_err(|e| DbError::Pool(e.to_string()))
    }

    /// The connection reserved for webhook acknowledgements, on either engine. On SQLite it
    /// is the journal's ([`ack_journal`]), written through [`Db::sqlite_durable_tx`], which
    /// also syncs the WAL; a plain [`with_write_tx!`] on it would not.
    pub async fn acks(&self) -> Result<Conn, DbError> {
        let _waited = Waited("acks", std::time::Instant::now());
        match self {
            Db::Sqlite { acks, .. } => acks.get().await.map(|c| Conn::Sqlite(Held::new(c, "acks"))),
            Db::Postgres { acks, .. } => acks.get().await.map(Conn::Postgres),
        }
        .map_err(|e| DbError::Pool(e.to_string()))
    }

    /// A connection for writes (SQLite's single writer).
    pub async fn write(&self) -> Result<Conn, DbError> {
        let _waited = Waited("writer", std::time::Instant::now());
        match self {
            Db::Sqlite { writer, .. } => writer
                .get()
                .await
                .map(|c| Conn::Sqlite(Held::new(c, "writer"))),
            Db::Postgres { pool, .. } => pool.get().await.map(Conn::Postgres),
        }
        .map_err(|e| DbError::Pool(e.to_string()))
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        let check = async {
            with_conn!(self, |conn| conn.batch_execute("SELECT 1").await)?;
            Ok::<(), DbError>(())
        };
        check.await.is_ok()
    }

    /// True when every embedded migration has been applied.
    pub async fn migrations_applied(&self) -> Result<bool, DbError> {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        diesel::table! {
            __diesel_schema_migrations (version) {
                version -> Text,
            }
        }
        let applied: Vec<String> = with_conn!(self, |conn| {
            __diesel_schema_migrations::table
                .select(__diesel_schema_migrations::version)
                .load(conn)
                .await
        })
        .unwrap_or_default();
        let expected =
            diesel::migration::MigrationSource::<diesel::sqlite::Sqlite>::migrations(&MIGRATIONS)
                .map_err(|e| DbError::Migration(e.to_string()))?;
        Ok(expected
            .iter()
            .all(|m| applied.contains(&m.name().version().to_string())))
    }
}

/// Every connection's settings. `cache_size = -4000` (4 MB per connection, ten connections):
/// the page caches were most of the memory a long run grew to (204 MB at 16 MB each); the
/// operating system's cache keeps the rest of the file warm anyway.
///
/// `wal_autocheckpoint`: the [`Checkpointer`] thread copies the WAL back into the file, so
/// that neither an acknowledgement nor the pipeline's thread waits for that copy and its
/// sync. Each file's single writer (the pipeline's, the journal's) keeps SQLite's automatic
/// checkpoint (1,000 pages), which then has little left to copy: a checkpoint run by the
/// connection about to write again is what lets the WAL restart from its beginning, since
/// under steady writes the thread's checkpoints never catch up with the last commit.
/// Without it the WAL never stopped growing under load (2.9 GB after 16,000 orders in the
/// main file, 143 MB after 20,000 events in the journal) and every frame was appended to
/// new blocks of the file.
fn sqlite_pragmas(busy_ms: u64, synchronous: &str, autocheckpoint: u32) -> String {
    format!(
        "PRAGMA busy_timeout = {busy_ms}; PRAGMA foreign_keys = ON; \
         PRAGMA synchronous = {synchronous}; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -4000; \
         PRAGMA wal_autocheckpoint = {autocheckpoint};"
    )
}

/// Runs SQLite's WAL checkpoints on a thread of its own, in place of the automatic
/// checkpoint a commit would otherwise run every 1,000 pages. `PASSIVE`: it copies what no
/// reader still needs and never waits for, nor blocks, readers and writers. Stops when the
/// last clone of its `Db` is dropped (its channel closes).
pub struct Checkpointer {
    _running: std::sync::mpsc::Sender<()>,
}

impl Checkpointer {
    /// How often the WAL is copied back into the database file.
    const EVERY: Duration = Duration::from_millis(100);

    /// Checkpoints each database file in `paths` (the main file and the journal).
    fn start(paths: &[&Path], busy_ms: u64) -> Result<Arc<Checkpointer>, DbError> {
        let mut conns = paths
            .iter()
            .map(|path| open_sqlite_sync(path, busy_ms))
            .collect::<Result<Vec<_>, _>>()?;
        let (running, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Self::EVERY)
                {
                    for conn in &mut conns {
                        if let Err(e) = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
                            tracing::debug!(error = %e, "WAL checkpoint skipped");
                        }
                    }
                }
            })
            .map_err(|e| DbError::Connect(format!("checkpoint thread: {e}")))?;
        Ok(Arc::new(Checkpointer { _running: running }))
    }
}

/// Makes every commit so far durable against power loss: syncs the WAL of the database at
/// `db` (where commits go first) to disk. This is what `synchronous = FULL` does inside
/// `COMMIT`, holding the write lock for the whole flush; [`Db::sqlite_durable_tx`] does it
/// after the lock is released, so the other writers go on meanwhile and concurrent syncs
/// share the flush. Safe with the checkpoints: a frame copied out of the WAL reached the
/// database file, and that file was synced, before the WAL may be reused (SQLite's rule in
/// every synchronous mode but OFF). With no WAL, the database file itself is synced: SQLite
/// removes the WAL only after copying it into the file and syncing that.
fn sync_wal(db: &Path) -> std::io::Result<()> {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    match std::fs::File::open(&wal) {
        Ok(file) => file.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::File::open(db)?.sync_data(),
        Err(e) => Err(e),
    }
}

fn open_sqlite_sync(path: &Path, busy_ms: u64) -> Result<SqliteConnection, DbError> {
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())
        .map_err(|e| DbError::Connect(format!("{}: {e}", path.display())))?;
    conn.batch_execute(&format!(
        "PRAGMA journal_mode = WAL; {}",
        sqlite_pragmas(busy_ms, "NORMAL", 1000)
    ))
    .map_err(DbError::Query)?;
    Ok(conn)
}

/// Applies pending migrations synchronously. Must not run on an async executor thread
/// (diesel's harness blocks; for PostgreSQL it drives its own runtime), so call it
/// before the actix system starts or from `spawn_blocking`.
pub fn run_migrations_blocking(url: &DatabaseUrl, busy_ms: u64) -> Result<usize, DbError> {
    let to_err = |e: Box<dyn std::error::Error + Send + Sync>| DbError::Migration(e.to_string());
    match url {
        DatabaseUrl::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| DbError::Connect(format!("{}: {e}", parent.display())))?;
            }
            let mut conn = open_sqlite_sync(path, busy_ms)?;
            conn.run_pending_migrations(MIGRATIONS)
                .map(|v| v.len())
                .map_err(to_err)
        }
        DatabaseUrl::Postgres(url) => {
            let url = url.clone();
            // The wrapper starts its own runtime; a fresh thread keeps it off any executor.
            std::thread::spawn(move || {
                let mut conn = AsyncConnectionWrapper::<PgConn>::establish(&url)
                    .map_err(|e| DbError::Connect(e.to_string()))?;
                conn.run_pending_migrations(MIGRATIONS)
                    .map(|v| v.len())
                    .map_err(to_err)
            })
            .join()
            .map_err(|_| DbError::Migration("the migration thread panicked".into()))?
        }
    }
}

/// Async wrapper around [`run_migrations_blocking`].
pub async fn run_migrations(url: &DatabaseUrl, busy_ms: u64) -> Result<usize, DbError> {
    let url = url.clone();
    tokio::task::spawn_blocking(move || run_migrations_blocking(&url, busy_ms))
        .await
        .map_err(|e| DbError::Migration(e.to_string()))?
}

/// The current UTC time at the precision both engines store (microseconds).
pub fn now() -> NaiveDateTime {
    let t = Utc::now().naive_utc();
    t.with_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// A fresh row id: a UUID v7 as text, which sorts by creation time (48 bits of milliseconds,
/// then 74 random bits).
///
/// Time-ordered ids keep every table's primary-key index appended at its end. Random ones (v4)
/// put each new row in a random leaf of it: one more page written per index per insert, and
/// half-empty pages. Replaying three real payments' statements on a 60,000-order database
/// (BENCHMARKS.md, fourth session of 2026-12-01), v7 ids wrote 176 WAL frames where v4 ids
/// wrote 208.
///
/// Nothing secret is derived from these ids (activation tokens and password salts come from
/// the random generator), and their 74 random bits still make one impossible to guess; what
/// they add is the creation time, which the rows carry anyway.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{self, NewEvent};

    fn event(id: &str) -> NewEvent {
        NewEvent {
            stripe_event_id: id.into(),
            event_type: "checkout.session.completed".into(),
            payload: "{}".into(),
            session_id: None,
        }
    }

    async fn sqlite_db(dir: &tempfile::TempDir) -> Db {
        let url = DatabaseUrl::Sqlite(dir.path().join("facture.db"));
        run_migrations(&url, 5_000).await.unwrap();
        Db::connect(&url, 2, 5_000).await.unwrap()
    }

    /// What a fresh connection of another process would see in the acknowledgement journal.
    fn stored_event_ids(dir: &tempfile::TempDir) -> Vec<String> {
        use ack_journal::acknowledged_events as journal;
        use diesel::prelude::*;
        let path = ack_journal::path_for(&dir.path().join("facture.db"));
        let mut conn = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
        journal::table
            .select(journal::stripe_event_id)
            .order(journal::stripe_event_id)
            .load(&mut conn)
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_durable_append_is_committed_and_synced_before_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_db(&dir).await;
        let appended = events::append_batch(&db, &[event("evt_a"), event("evt_b")])
            .await
            .unwrap();
        assert_eq!(appended.len(), 2);
        assert_eq!(stored_event_ids(&dir), ["evt_a", "evt_b"]);
        // The file the acknowledgement syncs is the journal's WAL (WAL mode).
        assert!(dir.path().join("facture.db.acks-wal").exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_durable_transaction_leaves_nothing_and_the_next_one_commits() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_db(&dir).await;
        let failed = db
            .sqlite_durable_tx(|conn| {
                use ack_journal::acknowledged_events as journal;
                use diesel::prelude::*;
                diesel::insert_into(journal::table)
                    .values((
                        journal::id.eq("row-1"),
                        journal::stripe_event_id.eq("evt_rolled_back"),
                        journal::event_type.eq("x"),
                        journal::payload.eq("{}"),
                        journal::received_at.eq(now()),
                    ))
                    .execute(conn)?;
                Err::<(), _>(DbError::Corrupt("the body gave up".into()))
            })
            .await;
        assert!(matches!(failed, Err(DbError::Corrupt(_))), "{failed:?}");
        assert!(stored_event_ids(&dir).is_empty(), "rolled back");
        events::append_batch(&db, &[event("evt_after")])
            .await
            .unwrap();
        assert_eq!(stored_event_ids(&dir), ["evt_after"]);
    }

    /// Under a steady stream of acknowledgements the checkpointer thread never catches up with
    /// the journal's writer, so only a checkpoint run by that writer lets its WAL start over.
    /// Without it the WAL grew by every commit (143 MB after 20,000 events).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_journal_wal_starts_over_under_a_steady_stream_of_acknowledgements() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_db(&dir).await;
        for i in 0..3_000 {
            events::append_batch(&db, &[event(&format!("evt_{i}"))])
                .await
                .unwrap();
        }
        let wal = dir.path().join("facture.db.acks-wal");
        let size = std::fs::metadata(&wal).unwrap().len();
        // 1,000 pages of 4 KiB before the writer's checkpoint, and a little slack.
        assert!(
            size < 6 * 1024 * 1024,
            "the journal's WAL grew to {size} bytes"
        );
    }

    #[test]
    fn the_wal_sync_falls_back_to_the_database_file_when_there_is_no_wal() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("plain.db");
        std::fs::write(&db, b"not a wal").unwrap();
        sync_wal(&db).unwrap();
        assert!(sync_wal(&dir.path().join("missing.db")).is_err());
    }

    /// `.cargo/config.toml` builds SQLite with `SQLITE_ENABLE_QPSG`: without it every
    /// `.first()` query (a bound LIMIT) is re-prepared at each execution.
    #[test]
    fn the_bundled_sqlite_keeps_query_plans_stable() {
        use diesel::prelude::*;
        let mut conn = diesel::SqliteConnection::establish(":memory:").unwrap();
        let used: i32 = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
            "sqlite_compileoption_used('ENABLE_QPSG')",
        ))
        .get_result(&mut conn)
        .unwrap();
        assert_eq!(used, 1, "SQLite was built without SQLITE_ENABLE_QPSG");
    }

    #[test]
    fn new_ids_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..1_000).map(|_| new_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(
            ids, sorted,
            "row ids are appended at the end of their index"
        );
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        assert!(ids.iter().all(|id| uuid::Uuid::parse_str(id).is_ok()));
    }
}
