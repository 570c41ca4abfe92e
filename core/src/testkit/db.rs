//! A fresh, migrated database per test: a SQLite file in a temporary folder by default,
//! or a new PostgreSQL database when `FACTURE_TEST_DATABASE_URL` points at a server
//! (e.g. `postgres://postgres@127.0.0.1:5432/postgres`). The PostgreSQL database is
//! dropped when the [`TestDb`] is dropped.

use std::path::PathBuf;

use diesel::connection::SimpleConnection;
use diesel::Connection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;

use crate::config::DatabaseUrl;
use crate::db::{run_migrations_blocking, Db, PgConn};

pub const PG_ENV: &str = "FACTURE_TEST_DATABASE_URL";

pub struct TestDb {
    url: DatabaseUrl,
    url_text: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A migrated database on the engine chosen by the environment.
    pub fn new() -> Self {
        let db = Self::unmigrated();
        run_migrations_blocking(&db.url, 5_000).expect("migrations apply");
        db
    }

    /// An empty database (no tables), for tests of the migrations themselves.
    pub fn unmigrated() -> Self {
        match std::env::var(PG_ENV).ok().filter(|s| !s.is_empty()) {
            Some(admin) => Self::postgres(admin),
            None => Self::sqlite(),
        }
    }

    fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path: PathBuf = dir.path().join("facture.db");
        let url_text = format!("sqlite://{}", path.display());
        TestDb {
            url: DatabaseUrl::Sqlite(path),
            url_text,
            _dir: Some(dir),
            pg: None,
        }
    }

    fn postgres(admin: String) -> Self {
        let name = format!("facture_test_{}", crate::random_hex(8));
        admin_exec(&admin, &format!("CREATE DATABASE {name}"));
        let base = admin
            .rsplit_once('/')
            .map(|(base, _)| base)
            .expect("FACTURE_TEST_DATABASE_URL ends with /database");
        let url_text = format!("{base}/{name}");
        TestDb {
            url: DatabaseUrl::Postgres(url_text.clone()),
            url_text,
            _dir: None,
            pg: Some((admin, name)),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// The value for `database.url`.
    pub fn url(&self) -> &str {
        &self.url_text
    }

    pub fn database_url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// A pool on this database.
    pub async fn connect(&self) -> Db {
        Db::connect(&self.url, 8, 5_000)
            .await
            .expect("database connects")
    }
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            admin_exec(
                &admin,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

fn admin_exec(admin: &str, sql: &str) {
    let (admin, sql) = (admin.to_owned(), sql.to_owned());
    // The wrapper runs its own runtime: keep it on a plain thread.
    std::thread::spawn(move || {
        let mut conn = AsyncConnectionWrapper::<PgConn>::establish(&admin)
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is not reachable: {e}"));
        conn.batch_execute(&sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    })
    .join()
    .expect("admin statement ran");
}
