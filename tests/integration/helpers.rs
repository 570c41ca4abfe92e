//! Starts the real application for a test and talks to it over HTTP.

use std::time::Duration;

use facture::startup::Application;
use facture_actors::Engine;
use facture_core::config::{Settings, DEFAULT_TOML};
use facture_core::db::Db;
use facture_core::testkit::db::TestDb;
use facture_core::testkit::smtp::SmtpSink;
use figment::providers::{Format, Toml};
use figment::Figment;

pub const SECRETS: [&str; 2] = ["whsec_test_primary", "whsec_test_rotated"];

pub struct TestApp {
    pub db: Db,
    pub engine: Engine,
    pub address: String,
    pub settings: Settings,
    pub client: awc::Client,
    pub dir: tempfile::TempDir,
    pub handle: actix_web::dev::ServerHandle,
    // Dropped last: the server must stop before its database goes away.
    pub test_db: TestDb,
}

/// The settings a test app runs with: everything under a temporary folder.
pub fn test_figment(test_db: &TestDb, dir: &std::path::Path) -> Figment {
    let path = |p: &str| dir.join(p).to_string_lossy().into_owned();
    Figment::from(Toml::string(DEFAULT_TOML))
        .merge(("server.port", 0))
        .merge(("database.url", test_db.url()))
        .merge(("database.pool_size", 4))
        .merge(("storage.root", path("uploads")))
        .merge(("app.data_dir", path("data")))
        .merge(("mail.outbox", path("outbox")))
        .merge(("stripe.webhook_secrets", SECRETS.join(",")))
        .merge(("auth.jwt_secret", "test-jwt-secret-0123456789abcdef"))
        // Fast retries and sweeps so failure paths finish within a test.
        .merge(("engine.retry_initial_ms", 20))
        .merge(("engine.retry_max_ms", 200))
        .merge(("engine.max_attempts", 4))
        .merge(("engine.sweep_interval_secs", 1))
        .merge(("engine.lease_secs", 2))
        .merge(("engine.order_idle_secs", 2))
        .merge(("mail.retry_initial_ms", 20))
        .merge(("mail.retry_max_ms", 200))
        .merge(("mail.max_attempts", 3))
        .merge(("mail.timeout_secs", 5))
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|f| f).await
}

pub async fn spawn_app_with(customise: impl FnOnce(Figment) -> Figment) -> TestApp {
    spawn_app_on(
        TestDb::new(),
        tempfile::tempdir().expect("temp dir"),
        customise,
    )
    .await
}

/// Starts an app on an existing database and folder (to restart after a stop).
pub async fn spawn_app_on(
    test_db: TestDb,
    dir: tempfile::TempDir,
    customise: impl FnOnce(Figment) -> Figment,
) -> TestApp {
    let settings =
        Settings::from_figment(customise(test_figment(&test_db, dir.path()))).expect("settings");
    let app = Application::build(settings.clone())
        .await
        .expect("app starts");
    let port = app.port();
    let handle = app.server_handle();
    let db = app.db().clone();
    let engine = app.engine().clone();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        db,
        engine,
        address: format!("http://127.0.0.1:{port}"),
        settings,
        client: awc::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .finish(),
        dir,
        handle,
        test_db,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// GET → (status, JSON body).
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let mut res = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let body = res.body().limit(10 << 20).await.expect("body");
        (
            res.status().as_u16(),
            serde_json::from_slice(&body).unwrap_or_default(),
        )
    }

    /// Stops the server and gives back what a restart needs.
    pub async fn stop(self) -> (TestDb, tempfile::TempDir) {
        self.handle.stop(true).await;
        (self.test_db, self.dir)
    }
}

/// Sends mail to a real SMTP server on 127.0.0.1 instead of files.
pub fn with_smtp(sink: &SmtpSink) -> impl FnOnce(Figment) -> Figment {
    let url = sink.url();
    move |f| {
        f.merge(("mail.transport", "smtp"))
            .merge(("mail.smtp_url", url))
    }
}

/// Polls `check` until it returns Some, or fails the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until every acknowledged event is in webhook_events (SQLite imports them from its
/// journal) and exactly `n` of them have `status`, or fails the test after `timeout`.
pub async fn until_events_with_status(db: &Db, status: &str, n: i64, timeout: Duration) {
    let what = format!("{n} webhook event(s) {status}");
    eventually(&what, timeout, || async {
        let unimported = facture_core::events::count_unimported(db)
            .await
            .expect("journal counted");
        let count = facture_core::events::count_by_status(db, status)
            .await
            .expect("events counted");
        (unimported == 0 && count == n).then_some(())
    })
    .await;
}
