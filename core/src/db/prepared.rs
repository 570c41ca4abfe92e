//! Statements kept prepared between executions.
//!
//! diesel keeps a connection's prepared statements in a cache, but it prepares every UPDATE,
//! every upsert (`ON CONFLICT ... DO UPDATE`) and every raw SQL fragment again at each
//! execution: their text may vary with their values (a changeset skips its `None` fields),
//! so it will not key them by type. On SQLite, preparing is parsing and compiling the
//! statement, on the thread that runs the order pipeline: about an eighth of that thread's
//! time in a profile of a load run (BENCHMARKS.md, third session of 2026-12-01), for the dozen
//! UPDATEs and upserts a payment makes.
//!
//! [`KeepPrepared`] keys such a statement by its SQL text instead, which is always correct:
//! two executions share a prepared statement only when their text is the same. Use it only
//! where that text takes a few forms, since each form stays prepared for the connection's
//! life; never around `eq_any` lists or boxed queries, whose text grows with their input.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::QueryResult;

/// A statement cached by its SQL text (see the module documentation). For diesel-async's
/// connections, which take the statement by value; diesel's blocking connections take it by
/// reference and would not see the override below.
#[derive(Debug, Clone, Copy)]
pub struct KeepPrepared<Q>(Q);

impl<Q> QueryId for KeepPrepared<Q> {
    type QueryId = ();
    // No static id: the cache is keyed by the SQL text, never by the statement's type (one
    // type, such as an UPDATE whose changeset has optional fields, may give several texts).
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for KeepPrepared<Q> {
    type SqlType = Q::SqlType;
}

impl<DB: Backend, Q: QueryFragment<DB>> QueryFragment<DB> for KeepPrepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    // diesel's statement cache asks this before keying a statement by its text.
    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

/// `.keep_prepared()` on any statement: see [`KeepPrepared`].
pub trait KeepPreparedDsl: Sized {
    fn keep_prepared(self) -> KeepPrepared<Self> {
        KeepPrepared(self)
    }
}

impl<Q: QueryId> KeepPreparedDsl for Q {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::SqliteConn;
    use diesel::connection::{Instrumentation, InstrumentationEvent};
    use diesel::prelude::*;
    use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
    use std::sync::{Arc, Mutex};

    diesel::table! {
        writers (id) {
            id -> Text,
            nom -> Text,
        }
    }

    type Prepared = Arc<Mutex<Vec<String>>>;

    /// The engine's kind of SQLite connection, with one row, and the UPDATEs it prepares
    /// for its statement cache.
    async fn connection() -> (SqliteConn, Prepared) {
        let mut conn = SqliteConn::establish(":memory:").await.unwrap();
        conn.batch_execute(
            "CREATE TABLE writers (id TEXT PRIMARY KEY, nom TEXT NOT NULL); \
             INSERT INTO writers VALUES ('w1', 'Zola');",
        )
        .await
        .unwrap();
        let cached = Prepared::default();
        let log = cached.clone();
        let watch = move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                if sql.starts_with("UPDATE") {
                    log.lock().unwrap().push(sql.to_owned());
                }
            }
        };
        conn.set_instrumentation(Box::new(watch) as Box<dyn Instrumentation>);
        (conn, cached)
    }

    async fn name_of(conn: &mut SqliteConn) -> String {
        writers::table
            .find("w1")
            .select(writers::nom)
            .first(conn)
            .await
            .unwrap()
    }

    fn updates(cached: &Prepared) -> Vec<String> {
        cached.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn an_update_is_prepared_once_and_then_reused() {
        let (mut conn, cached) = connection().await;
        let rename = |nom: &str| {
            diesel::update(writers::table.find("w1")).set(writers::nom.eq(nom.to_owned()))
        };

        for nom in ["Hugo", "Sand", "Colette"] {
            rename(nom)
                .keep_prepared()
                .execute(&mut conn)
                .await
                .unwrap();
        }
        assert_eq!(name_of(&mut conn).await, "Colette");
        assert_eq!(updates(&cached).len(), 1, "{:?}", updates(&cached));

        // Without it, diesel prepares an UPDATE at each execution and caches none.
        rename("Balzac").execute(&mut conn).await.unwrap();
        assert_eq!(name_of(&mut conn).await, "Balzac");
        assert_eq!(updates(&cached).len(), 1);
    }

    #[tokio::test]
    async fn one_statement_type_with_two_texts_keeps_both_apart() {
        let (mut conn, cached) = connection().await;
        // A changeset skips its `None` fields: one type, two SQL texts.
        let change = |nom: Option<&str>| {
            diesel::update(writers::table.find("w1")).set((
                writers::id.eq("w1"),
                nom.map(|n| writers::nom.eq(n.to_owned())),
            ))
        };
        change(Some("Hugo"))
            .keep_prepared()
            .execute(&mut conn)
            .await
            .unwrap();
        change(None)
            .keep_prepared()
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            name_of(&mut conn).await,
            "Hugo",
            "the text without `nom` left it alone"
        );
        change(Some("Sand"))
            .keep_prepared()
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(name_of(&mut conn).await, "Sand");
        let texts = updates(&cached);
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert_ne!(texts[0], texts[1]);
    }
}
