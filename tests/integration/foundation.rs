//! The ground: health, readiness, errors, configuration and the command line.

use std::process::Command;

use crate::helpers::{spawn_app, TestApp};

#[actix_web::test]
async fn health_answers_with_the_version() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[actix_web::test]
async fn ready_when_the_database_answers_and_is_migrated() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"], true);
    assert_eq!(body["migrations"], true);
}

#[actix_web::test]
async fn not_ready_when_migrations_are_missing() {
    let app: TestApp = spawn_app().await;
    // Roll back the schema under the running server: readiness must notice.
    let url = app.test_db.database_url().clone();
    std::thread::spawn(move || {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        match url {
            facture_core::config::DatabaseUrl::Sqlite(path) => {
                let mut c =
                    diesel::sqlite::SqliteConnection::establish(&path.to_string_lossy()).unwrap();
                // The server's own writers may hold the write lock for a moment: wait for it.
                c.batch_execute("PRAGMA busy_timeout = 30000").unwrap();
                c.batch_execute("DELETE FROM __diesel_schema_migrations")
                    .unwrap();
            }
            facture_core::config::DatabaseUrl::Postgres(url) => {
                let mut c = diesel_async::async_connection_wrapper::AsyncConnectionWrapper::<
                    diesel_async::AsyncPgConnection,
                >::establish(&url)
                .unwrap();
                c.batch_execute("DELETE FROM __diesel_schema_migrations")
                    .unwrap();
            }
        }
    })
    .join()
    .unwrap();
    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["migrations"], false);
}

#[actix_web::test]
async fn unknown_routes_answer_json_404() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/no/such/route").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
    assert!(body["message"].as_str().unwrap().contains("/no/such/route"));
}

fn facture() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_facture"));
    // Tests must not inherit a developer's configuration.
    for (key, _) in std::env::vars() {
        if key.starts_with("FACTURE__") {
            cmd.env_remove(key);
        }
    }
    cmd
}

#[test]
fn a_bad_config_value_stops_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = facture()
        .current_dir(dir.path())
        .env("FACTURE__SERVER__PORT", "not-a-port")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let out = facture()
        .current_dir(dir.path())
        .env("FACTURE__DATABASE__URL", "mysql://nope")
        .arg("migrate")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("database.url"), "{err}");
}

#[test]
fn a_config_file_is_layered_under_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("facture.toml");
    std::fs::write(&file, "[database]\nurl = \"sqlite://from-file.db\"\n").unwrap();
    let out = facture()
        .current_dir(dir.path())
        .args(["--config", file.to_str().unwrap(), "migrate"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("from-file.db").exists());

    let out = facture()
        .current_dir(dir.path())
        .env("FACTURE__DATABASE__URL", "sqlite://from-env.db")
        .args(["--config", file.to_str().unwrap(), "migrate"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(dir.path().join("from-env.db").exists());
}

#[test]
fn production_without_secrets_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = facture()
        .current_dir(dir.path())
        .env("FACTURE__ENV", "production")
        .env("FACTURE__SERVER__PORT", "0")
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stripe.webhook_secrets"), "{err}");
}

#[test]
fn migrate_creates_the_default_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = facture()
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("migration(s) applied"));
    assert!(dir.path().join("data/facture.db").exists());
}

#[test]
fn help_and_version() {
    let out = facture().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("serve") && help.contains("migrate"), "{help}");
    let out = facture().arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn render_sample_writes_a_pdf_of_the_configured_company() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sample.pdf");
    let res = facture()
        .current_dir(dir.path())
        .env("FACTURE__COMPANY__NAME", "Plume Éditions")
        .args(["render-sample", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let pdf = std::fs::read(&out).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let doc = lopdf::Document::load_mem(&pdf).expect("lopdf parses it");
    assert_eq!(doc.get_pages().len(), 1);
    if let Ok(text) = std::process::Command::new("pdftotext")
        .args([out.to_str().unwrap(), "-"])
        .output()
    {
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("Plume Éditions"), "{text}");
    } else {
        assert!(std::env::var("CI").is_err(), "CI installs pdftotext");
    }
}
