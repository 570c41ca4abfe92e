//! Where SQLite's calls run.
//!
//! SQLite is a library, not a server: each call is CPU work plus, now and then, a wait for
//! the write lock or the disk. diesel-async's `SyncConnectionWrapper` therefore runs every
//! statement through a [`SpawnBlocking`] implementation. Tokio's `spawn_blocking` costs a
//! thread handoff there and back per statement, which for the pipeline's short statements
//! costs more than the statements themselves.
//!
//! [`DatabaseThread`] keeps tokio's blocking pool everywhere except on threads marked with
//! [`mark_current_thread_for_database_work`]: the engine's database arbiters, threads that
//! host only the order pipeline, mail, or the webhook receiver's group commits, and exist
//! to wait on the database. There a call runs on the spot, so a whole transaction runs
//! without a handoff. HTTP workers are never marked: their calls still go to the blocking
//! pool.

use std::cell::Cell;
use std::error::Error;
use std::panic::{catch_unwind, AssertUnwindSafe};

use diesel_async::sync_connection_wrapper::SpawnBlocking;
use futures_util::future::{self, BoxFuture, FutureExt};

thread_local! {
    static DATABASE_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as one whose job is database work: SQLite calls made from it
/// run on it directly instead of on tokio's blocking pool. Call it only on a thread that
/// runs nothing latency-sensitive (see the module documentation).
pub fn mark_current_thread_for_database_work() {
    DATABASE_THREAD.with(|d| d.set(true));
}

/// True on a thread marked by [`mark_current_thread_for_database_work`].
pub fn is_database_thread() -> bool {
    DATABASE_THREAD.with(Cell::get)
}

/// The [`SpawnBlocking`] behind every SQLite connection (see the module documentation).
pub struct DatabaseThread;

type Spawned<R> = Result<R, Box<dyn Error + Send + Sync + 'static>>;

impl SpawnBlocking for DatabaseThread {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Spawned<R>>
    where
        R: Send + 'static,
    {
        if is_database_thread() {
            return future::ready(catch_unwind(AssertUnwindSafe(task)).map_err(panicked)).boxed();
        }
        // Dropping the handle does not cancel the task: it finishes on its own, holding the
        // connection's lock until then, so the next user simply waits for it.
        tokio::task::spawn_blocking(task)
            .map(|joined| joined.map_err(|e| Box::new(e) as Box<dyn Error + Send + Sync>))
            .boxed()
    }

    fn get_runtime() -> Self {
        DatabaseThread
    }
}

fn panicked(payload: Box<dyn std::any::Any + Send>) -> Box<dyn Error + Send + Sync + 'static> {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a database call panicked".into());
    message.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_run_on_the_blocking_pool_unless_the_thread_is_marked() {
        let caller = std::thread::current().id();
        let elsewhere = DatabaseThread
            .spawn_blocking(move || std::thread::current().id())
            .await
            .unwrap();
        assert_ne!(elsewhere, caller, "an unmarked thread hands the call off");

        mark_current_thread_for_database_work();
        let here = DatabaseThread
            .spawn_blocking(move || std::thread::current().id())
            .await
            .unwrap();
        assert_eq!(here, caller, "a marked thread runs the call itself");

        let err = DatabaseThread
            .spawn_blocking(|| -> u8 { panic!("boom") })
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "boom", "a panic becomes an error");
    }
}
