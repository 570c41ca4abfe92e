//! Group commit for SQLite's writer: the write transactions that queue for the single
//! writer connection while one is open share its `BEGIN IMMEDIATE … COMMIT`.
//!
//! Why: a SQLite commit writes one page per B-tree the transaction touched, however few rows
//! changed in it, so a payment's pipeline (six small transactions, each on the same dozen
//! tables as every other order's) wrote about 59 WAL pages. Replaying real payments'
//! statements with the same step of three orders in one transaction wrote 77 pages where
//! separate transactions wrote 176 (BENCHMARKS.md, `benches/replay_frames.py`).
//!
//! How:
//! - The first write to find no batch open takes this process's write turn, runs
//!   `BEGIN IMMEDIATE`, and spawns the batch's committer, which asks for the writer
//!   connection like any write. The pool hands the connection out in FIFO order, so every
//!   write that was queued before the committer joins the batch, and the committer commits
//!   it when its own turn comes. Under load batches grow with the queue; alone, a write
//!   commits as soon as it ends, as before.
//! - Each write runs in a `SAVEPOINT` of the batch: a write that fails is rolled back to it,
//!   alone, and the others go on.
//! - A write returns only once its batch has committed, so "recorded before the next step"
//!   holds exactly as with a transaction of its own. If the commit fails, every write of
//!   the batch fails with a transient error and is retried by its caller: nothing of it
//!   was kept.
//! - A batch holds the write turn, which every other write of the main file waits for (the
//!   admin API's, the import of acknowledged events), so it is kept short: the write that brings it to `database.write_batch_max` members, or that ends
//!   after `database.write_batch_max_ms`, commits it at once.
//!
//! The transaction and its savepoints are opened with plain SQL, not diesel's transaction
//! manager: the connection goes back to the pool between the writes of a batch, and the
//! pool would discard a connection that diesel knew to be inside a transaction.
//!
//! Reads through the writer connection ([`Db::for_pipeline`]) see the open batch's writes.
//! They would be lost only with the batch's commit, the same as a crash just before it;
//! every step after such a read is written to be redone.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool::managed::ObjectId;
use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel_async::pooled_connection::deadpool::Object;
use tokio::sync::watch;

use super::{held_write_lock, Conn, Db, DbError, Held, SqliteConn, WriteTurn};

/// A SQLite writer connection checked out of its pool.
pub type SqliteCheckout = Held<Object<SqliteConn>>;

/// How a batch ended: `Err` carries the commit's error, given to each of its writes.
type Outcome = Option<Result<(), Arc<str>>>;

/// The savepoint each write of a batch runs in.
const SAVEPOINT: &str = "SAVEPOINT facture_write";
const RELEASE: &str = "RELEASE facture_write";
const ROLLBACK_TO: &str = "ROLLBACK TO facture_write; RELEASE facture_write";

/// Members per batch and age of a batch before a write commits it without waiting for the
/// committer. These are `database.write_batch_max` and `database.write_batch_max_ms`'s
/// defaults (config/default.toml), used where no settings are loaded (tests, tools).
pub const DEFAULT_MAX_MEMBERS: usize = 32;
pub const DEFAULT_MAX_AGE: Duration = Duration::from_millis(2);

/// The writer connection's batches: at most one open at a time, since there is one writer.
/// Shared by every clone of a SQLite [`Db`].
pub struct WriteBatches {
    open: Mutex<Option<OpenBatch>>,
    next_id: AtomicU64,
    commits: AtomicU64,
    max_members: AtomicUsize,
    max_age_us: AtomicU64,
}

struct OpenBatch {
    id: u64,
    /// The pooled connection whose transaction this is: if the pool ever replaced it, the
    /// transaction went with it.
    conn: ObjectId,
    /// A write of it was abandoned half-way (its future dropped, or a panic): the batch can
    /// only be rolled back.
    poisoned: bool,
    turn: WriteTurn,
    members: usize,
    opened: Instant,
    outcome: watch::Sender<Outcome>,
}

/// A write's place in a batch, from [`Db::sqlite_begin_write`] to [`Db::sqlite_end_write`].
/// Dropped before its end (the caller's future dropped mid-write, or a panic), it poisons
/// the batch: the write's statements so far cannot be told apart from the others', so none
/// may be committed.
pub struct Place {
    batch: u64,
    batches: Arc<WriteBatches>,
    /// Taken when the write ends.
    outcome: Option<watch::Receiver<Outcome>>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if self.outcome.is_some() {
            self.batches.poison(self.batch);
        }
    }
}

/// A write's result, to be returned once its batch's fate is known.
pub enum Ended<T> {
    /// Known now: the write failed (and was rolled back), or its batch is over.
    Now(Result<T, DbError>),
    /// The write is in a batch not yet committed.
    WhenCommitted(T, watch::Receiver<Outcome>),
}

impl<T> Ended<T> {
    /// The write's result, once its batch has committed (or failed to).
    pub async fn committed(self) -> Result<T, DbError> {
        match self {
            Ended::Now(result) => result,
            Ended::WhenCommitted(value, mut outcome) => {
                let ended = outcome
                    .wait_for(Option::is_some)
                    .await
                    .map(|o| o.clone())
                    .map_err(|_| DbError::Commit("the write batch was dropped".into()))?;
                match ended {
                    Some(Ok(())) => Ok(value),
                    Some(Err(e)) => Err(DbError::Commit(e.to_string())),
                    None => Err(DbError::Commit("the write batch never ended".into())),
                }
            }
        }
    }
}

impl Default for WriteBatches {
    fn default() -> Self {
        Self {
            open: Mutex::new(None),
            next_id: AtomicU64::new(1),
            commits: AtomicU64::new(0),
            max_members: AtomicUsize::new(DEFAULT_MAX_MEMBERS),
            max_age_us: AtomicU64::new(micros(DEFAULT_MAX_AGE)),
        }
    }
}

impl WriteBatches {
    fn max_members(&self) -> usize {
        self.max_members.load(Ordering::Relaxed).max(1)
    }

    /// Whether the write ending now commits `batch` rather than leave it to its committer.
    fn is_full(&self, batch: &OpenBatch) -> bool {
        batch.poisoned
            || batch.members >= self.max_members()
            || micros(batch.opened.elapsed()) >= self.max_age_us.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<OpenBatch>> {
        // The state is a few plain fields, consistent at every step: a panic elsewhere while
        // it was held leaves nothing half-done.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks batch `id`, if still open, as one that can only be rolled back.
    fn poison(&self, id: u64) {
        if let Some(b) = self.lock().as_mut().filter(|b| b.id == id) {
            b.poisoned = true;
        }
    }

    /// The open batch if it is `id`, taken out of the state: whoever takes it ends it.
    fn take(&self, id: u64) -> Option<OpenBatch> {
        let mut open = self.lock();
        if open.as_ref().is_some_and(|b| b.id == id) {
            open.take()
        } else {
            None
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn object_id(c: &SqliteCheckout) -> ObjectId {
    Object::id(&c.conn)
}

/// Runs `sql` on the checked-out connection's thread.
async fn execute(c: &mut SqliteCheckout, sql: &'static str) -> Result<(), DbError> {
    let conn: &mut SqliteConn = c;
    conn.spawn_blocking(move |c: &mut SqliteConnection| c.batch_execute(sql))
        .await
        .map_err(DbError::from)
}

impl Db {
    pub(super) fn write_batches(&self) -> Result<&Arc<WriteBatches>, DbError> {
        match self {
            Db::Sqlite { batches, .. } => Ok(batches),
            Db::Postgres { .. } => Err(DbError::Pool("not a SQLite database".into())),
        }
    }

    /// Sets how large and how old a batch of SQLite writes may grow before a write commits
    /// it (`database.write_batch_max`, `database.write_batch_max_ms`). `max_members = 1`
    /// gives every write a transaction of its own. No effect on PostgreSQL.
    pub fn set_write_batch_limits(&self, max_members: usize, max_age: Duration) {
        if let Ok(b) = self.write_batches() {
            b.max_members.store(max_members.max(1), Ordering::Relaxed);
            b.max_age_us.store(micros(max_age), Ordering::Relaxed);
        }
    }

    /// SQLite write transactions committed by this process's writer so far (each a batch of
    /// one write or more); 0 on PostgreSQL.
    pub fn sqlite_write_commits(&self) -> u64 {
        self.write_batches()
            .map(|b| b.commits.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Starts a write on the checked-out writer connection `c`: joins the open batch, or
    /// opens one, then opens the write's savepoint. Used by [`with_write_tx!`] and
    /// `with_conn!(db, write, ...)`.
    pub async fn sqlite_begin_write(&self, c: &mut SqliteCheckout) -> Result<Place, DbError> {
        let batches = self.write_batches()?.clone();
        let conn = object_id(c);
        let joined = {
            let mut open = batches.lock();
            match open.as_mut() {
                Some(b) if b.conn == conn && !b.poisoned => {
                    b.members += 1;
                    Some(Ok(Place {
                        batch: b.id,
                        batches: batches.clone(),
                        outcome: Some(b.outcome.subscribe()),
                    }))
                }
                // Poisoned, or open on a connection the pool replaced: it can only fail.
                Some(b) => Some(Err(b.id)),
                None => None,
            }
        };
        match joined {
            Some(Ok(mut place)) => match execute(c, SAVEPOINT).await {
                Ok(()) => Ok(place),
                Err(e) => {
                    place.outcome = None;
                    self.abandon_batch(c, place.batch).await;
                    Err(e)
                }
            },
            Some(Err(failed)) => {
                self.abandon_batch(c, failed).await;
                self.open_batch(c, &batches, conn).await
            }
            None => self.open_batch(c, &batches, conn).await,
        }
    }

    async fn open_batch(
        &self,
        c: &mut SqliteCheckout,
        batches: &Arc<WriteBatches>,
        conn: ObjectId,
    ) -> Result<Place, DbError> {
        let turn = self
            .sqlite_immediate(c, Some("write_turn"), |c, turn| {
                match c.batch_execute(SAVEPOINT) {
                    Ok(()) => Ok(turn),
                    Err(e) => {
                        // Not expected right after BEGIN; leave no transaction behind.
                        let _ = c.batch_execute("ROLLBACK");
                        Err(DbError::from(e))
                    }
                }
            })
            .await??;
        let id = batches.next_id.fetch_add(1, Ordering::Relaxed);
        let (outcome, watcher) = watch::channel(None);
        *batches.lock() = Some(OpenBatch {
            id,
            conn,
            poisoned: false,
            turn,
            members: 1,
            opened: Instant::now(),
            outcome,
        });
        if batches.max_members() > 1 {
            tokio::spawn(self.clone().commit_in_turn(id));
        }
        // With batches of one, the write commits itself when it ends (`is_full`).
        Ok(Place {
            batch: id,
            batches: batches.clone(),
            outcome: Some(watcher),
        })
    }

    /// Ends a write begun by [`Db::sqlite_begin_write`] with the body's `result`: releases its
    /// savepoint, or rolls back to it; commits the batch now if it is full. The caller gives
    /// the connection back, then awaits [`Ended::committed`].
    pub async fn sqlite_end_write<T>(
        &self,
        c: &mut SqliteCheckout,
        mut place: Place,
        result: Result<T, DbError>,
    ) -> Ended<T> {
        let end = if result.is_ok() { RELEASE } else { ROLLBACK_TO };
        let ended = execute(c, end).await;
        // From here the write is whole, committed or not with the rest.
        let Some(outcome) = place.outcome.take() else {
            return Ended::Now(result);
        };
        if let Err(e) = ended {
            self.abandon_batch(c, place.batch).await;
            return Ended::Now(result.and(Err(e)));
        }
        let batches = &place.batches;
        let full = batches
            .lock()
            .as_ref()
            .is_some_and(|b| b.id == place.batch && batches.is_full(b));
        if full {
            self.commit_batch(c, place.batch).await;
        }
        match result {
            Ok(value) => Ended::WhenCommitted(value, outcome),
            // Rolled back to its savepoint: nothing of it waits on the commit.
            Err(e) => Ended::Now(Err(e)),
        }
    }

    /// The batch's committer: waits for the writer connection behind the writes queued for
    /// it now, which join the batch, then commits it (if no write did first).
    async fn commit_in_turn(self, id: u64) {
        let Ok(batches) = self.write_batches().cloned() else {
            return;
        };
        let orphan = Orphaned { batches, id };
        loop {
            match self.write().await {
                Ok(Conn::Sqlite(mut c)) => return self.commit_batch(&mut c, id).await,
                Ok(Conn::Postgres(_)) => return,
                Err(e) => {
                    // The pool's wait timed out: a write is holding the connection very long.
                    if orphan.batches.lock().as_ref().is_none_or(|b| b.id != id) {
                        return;
                    }
                    tracing::warn!(error = %e, "write batch still waiting for the writer");
                }
            }
        }
    }

    /// Commits batch `id` on `c` if it is still open, gives the write turn back and tells
    /// its writes how it went. COMMIT and the telling run in one call on the connection's
    /// thread, which runs to its end even if this future is dropped: a batch committed is
    /// always reported so.
    async fn commit_batch(&self, c: &mut SqliteCheckout, id: u64) {
        let Ok(batches) = self.write_batches().cloned() else {
            return;
        };
        let Some(batch) = batches.take(id) else {
            return; // committed already
        };
        if batch.conn != object_id(c) {
            return finish(batch, Err("the writer connection was replaced".into()));
        }
        let conn: &mut SqliteConn = c;
        let _ = conn
            .spawn_blocking(move |c: &mut SqliteConnection| {
                let committed = if batch.poisoned {
                    Err("the write batch was abandoned".into())
                } else {
                    c.batch_execute("COMMIT")
                        .map_err(|e| Arc::<str>::from(e.to_string()))
                };
                if committed.is_err() {
                    let _ = c.batch_execute("ROLLBACK");
                } else {
                    batches.commits.fetch_add(1, Ordering::Relaxed);
                }
                finish(batch, committed);
                Ok(())
            })
            .await;
    }

    /// Ends batch `id`, which can only fail: a statement of its transaction failed where none
    /// should (a savepoint: SQLite may have rolled the whole transaction back already), a
    /// write of it was abandoned, or its connection was replaced. [`Db::commit_batch`] rolls
    /// a poisoned batch back; every write of it fails, to be retried.
    async fn abandon_batch(&self, c: &mut SqliteCheckout, id: u64) {
        let Ok(batches) = self.write_batches() else {
            return;
        };
        batches.poison(id);
        self.commit_batch(c, id).await;
    }
}

/// Dropped with a committer that never committed its batch (its runtime shut down): the
/// batch is given up, so that nothing waits for it. Its writes learn that it was dropped;
/// its transaction, left open on the connection, is rolled back by the next write
/// ([`super::try_begin_immediate`]) or when the connection closes.
struct Orphaned {
    batches: Arc<WriteBatches>,
    id: u64,
}

impl Drop for Orphaned {
    fn drop(&mut self) {
        drop(self.batches.take(self.id));
    }
}

/// Gives the write turn back and tells the batch's writes its outcome.
fn finish(batch: OpenBatch, outcome: Result<(), Arc<str>>) {
    held_write_lock("writer", batch.opened);
    metrics::histogram!("facture_db_write_batch_size").record(batch.members as f64);
    drop(batch.turn);
    // No write waiting any more is fine: it was dropped, and its caller gone.
    let _ = batch.outcome.send(Some(outcome));
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::Text;
    use diesel::Connection;
    use diesel_async::RunQueryDsl;

    use super::*;
    use crate::config::DatabaseUrl;
    use crate::db::{blocking, run_migrations};
    use crate::with_write_tx;

    /// A database whose writes this thread runs itself, as the pipeline's thread does: a
    /// write then never yields unless it waits, so which writes share a batch is exact.
    async fn database(dir: &tempfile::TempDir) -> Db {
        blocking::mark_current_thread_for_database_work();
        let url = DatabaseUrl::Sqlite(dir.path().join("facture.db"));
        run_migrations(&url, 5_000).await.unwrap();
        let db = Db::connect(&url, 2, 5_000).await.unwrap();
        // Only the size limit decides here, however slow this build runs.
        db.set_write_batch_limits(DEFAULT_MAX_MEMBERS, Duration::from_secs(60));
        create_notes(&db).await.unwrap();
        db
    }

    async fn create_notes(db: &Db) -> Result<usize, DbError> {
        with_write_tx!(db, |conn| {
            diesel::sql_query("CREATE TABLE notes (body TEXT NOT NULL)")
                .execute(conn)
                .await
                .map_err(DbError::from)
        })
    }

    /// Writes `body` as one write transaction; `fail` makes the write fail after its insert.
    async fn note(db: &Db, body: &str, fail: bool) -> Result<(), DbError> {
        with_write_tx!(db, |conn| {
            diesel::sql_query("INSERT INTO notes (body) VALUES (?)")
                .bind::<Text, _>(body)
                .execute(conn)
                .await?;
            if fail {
                return Err(DbError::Corrupt(format!("{body} refused")));
            }
            Ok(())
        })
    }

    /// The notes another process sees on disk now.
    fn committed_notes(dir: &tempfile::TempDir) -> Vec<String> {
        #[derive(diesel::QueryableByName)]
        struct Note {
            #[diesel(sql_type = Text)]
            body: String,
        }
        let mut conn =
            SqliteConnection::establish(&dir.path().join("facture.db").to_string_lossy()).unwrap();
        let query = diesel::sql_query("SELECT body FROM notes");
        let mut notes: Vec<String> = diesel::RunQueryDsl::load::<Note>(query, &mut conn)
            .unwrap()
            .into_iter()
            .map(|n| n.body)
            .collect();
        notes.sort();
        notes
    }

    /// Writes a note, then checks that another process can already read it.
    async fn note_then_check(
        db: &Db,
        dir: &tempfile::TempDir,
        body: String,
    ) -> Result<(), DbError> {
        note(db, &body, false).await?;
        assert!(
            committed_notes(dir).contains(&body),
            "{body} returned before it was committed"
        );
        Ok(())
    }

    #[tokio::test]
    async fn writes_queued_together_share_one_commit_and_each_returns_once_committed() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(&dir).await;
        let before = db.sqlite_write_commits();
        let bodies: Vec<String> = (0..20).map(|i| format!("note {i:02}")).collect();
        let results = futures_util::future::join_all(
            bodies.iter().map(|b| note_then_check(&db, &dir, b.clone())),
        )
        .await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(db.sqlite_write_commits() - before, 1);
        assert_eq!(committed_notes(&dir), bodies);
    }

    #[tokio::test]
    async fn a_batch_is_committed_when_it_reaches_its_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(&dir).await;
        for (limit, commits) in [(5, 4), (1, 20)] {
            db.set_write_batch_limits(limit, Duration::from_secs(60));
            let before = db.sqlite_write_commits();
            let results = futures_util::future::join_all(
                (0..20).map(|i| note_then_check(&db, &dir, format!("limit {limit} note {i}"))),
            )
            .await;
            assert!(results.iter().all(Result::is_ok), "{results:?}");
            assert_eq!(
                db.sqlite_write_commits() - before,
                commits,
                "batches of at most {limit}"
            );
        }
        assert_eq!(committed_notes(&dir).len(), 40);
    }

    #[tokio::test]
    async fn a_failed_write_is_rolled_back_alone_and_its_batch_commits_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(&dir).await;
        let before = db.sqlite_write_commits();
        let (first, failed, last) = tokio::join!(
            note(&db, "first", false),
            note(&db, "failed", true),
            note(&db, "last", false),
        );
        assert!(first.is_ok() && last.is_ok(), "{first:?} {last:?}");
        assert!(
            matches!(&failed, Err(DbError::Corrupt(m)) if m == "failed refused"),
            "{failed:?}"
        );
        assert_eq!(db.sqlite_write_commits() - before, 1, "one shared commit");
        assert_eq!(committed_notes(&dir), ["first", "last"]);
        // The connection is fine for the next batch.
        note(&db, "after", false).await.unwrap();
        assert_eq!(committed_notes(&dir), ["after", "first", "last"]);
    }

    /// Inserts a note, then waits forever inside its transaction.
    async fn stuck_write(db: &Db) -> Result<(), DbError> {
        with_write_tx!(db, |conn| {
            diesel::sql_query("INSERT INTO notes (body) VALUES ('abandoned')")
                .execute(conn)
                .await?;
            std::future::pending::<()>().await;
            Ok(())
        })
    }

    #[tokio::test]
    async fn a_write_abandoned_half_way_fails_its_whole_batch_and_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(&dir).await;
        // A write that inserts, then never finishes: its caller gives up on it.
        let abandoned = tokio::time::timeout(Duration::from_millis(50), stuck_write(&db));
        let (kept, gave_up) = tokio::join!(note(&db, "same batch", false), abandoned);
        assert!(gave_up.is_err(), "the stuck write timed out");
        assert!(
            matches!(&kept, Err(DbError::Commit(_))),
            "a write sharing the batch is told it was not committed: {kept:?}"
        );
        assert!(kept.as_ref().unwrap_err().is_transient());
        assert!(committed_notes(&dir).is_empty());
        // Retried, it is committed in a new batch.
        note(&db, "same batch", false).await.unwrap();
        assert_eq!(committed_notes(&dir), ["same batch"]);
    }
}
