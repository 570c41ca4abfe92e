//! The fault campaign against a real facture process (issue 8, phases 3–6), on the engine
//! the suite runs with (SQLite, or PostgreSQL with `FACTURE_TEST_DATABASE_URL`):
//!
//! 3. the SMTP server down, then back: every customer gets their invoice once it returns;
//! 4. the storage folder unusable for a while: steps fail (visible on `/metrics`), then
//!    everything completes, every PDF intact, no partial file;
//! 5. the database unreachable for a while: the webhook answers 503, never a 2xx it did
//!    not commit; what was acknowledged before is processed after;
//! 6. a slow renderer (`engine.render_delay_ms`): the webhook keeps acknowledging, the
//!    backlog shows on `/metrics`, memory stays bounded.
//!
//! Each phase prints one report line: what was injected, how many events, lost (0),
//! duplicate customer mails, time to recover. CI sizes run in seconds; `FACTURE_HEAVY=1`
//! runs bigger bursts and longer outages.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use facture_core::db::{Db, DbError};
use facture_core::mail::Deliveries;
use facture_core::testkit::db::TestDb;
use facture_core::testkit::smtp::SmtpSink;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::process::{free_port, heavy, unfinished, until, Facture, Metrics, Order, Rig};

/// Retries, sweeps and leases short enough for an outage of seconds (see issue 8).
fn tuned(f: &mut Facture) {
    f.set("ENGINE__SWEEP_INTERVAL_SECS", 1)
        .set("ENGINE__RETRY_INITIAL_MS", 20)
        .set("ENGINE__RETRY_MAX_MS", 300)
        .set("ENGINE__MAX_ATTEMPTS", 3)
        .set("ENGINE__LEASE_SECS", 2)
        .set("ENGINE__ORDER_IDLE_SECS", 2)
        .set("MAIL__RETRY_INITIAL_MS", 20)
        .set("MAIL__RETRY_MAX_MS", 100)
        .set("MAIL__MAX_ATTEMPTS", 2)
        .set("MAIL__TIMEOUT_SECS", 2);
}

/// How long a CI-sized phase may wait for something (five times more for the heavy ones).
fn patience(ci_secs: u64) -> Duration {
    Duration::from_secs(if heavy() { ci_secs * 5 } else { ci_secs })
}

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(20))
        .finish()
}

fn engine(test_db: &TestDb) -> &'static str {
    if test_db.is_postgres() {
        "postgresql"
    } else {
        "sqlite"
    }
}

fn bodies(made: &[Order]) -> Vec<&[u8]> {
    made.iter().map(|o| o.event.as_slice()).collect()
}

fn is_2xx(answer: &Result<u16, String>) -> bool {
    matches!(answer, Ok(s) if (200..300).contains(s))
}

/// Delivers like Stripe: whatever is not answered 2xx is delivered again, until every
/// event is acknowledged (fails after `timeout`). Returns how many deliveries were refused.
async fn deliver_until_acknowledged(
    f: &Facture,
    client: &awc::Client,
    mut pending: Vec<&[u8]>,
    timeout: Duration,
) -> usize {
    let deadline = Instant::now() + timeout;
    let mut refused = 0;
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} events still refused after {timeout:?}\n{}",
            pending.len(),
            f.log_tail(20)
        );
        let answers = f.deliver_all(client, &pending, 16).await;
        let before = pending.len();
        pending = pending
            .into_iter()
            .zip(answers)
            .filter(|(_, a)| !is_2xx(a))
            .map(|(b, _)| b)
            .collect();
        refused += pending.len();
        if pending.len() == before {
            actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        }
    }
    refused
}

// ---------------------------------------------------------------------------------------
// 3. SMTP down, then back

#[actix_web::test]
async fn smtp_down_then_back_every_customer_gets_their_invoice() {
    let n = if heavy() { 300 } else { 40 };
    let started = Instant::now();
    let rig = Rig::new(n, "smtp").await;
    let (db, made) = (&rig.db, &rig.made);

    // The mail server's port is reserved, and nothing listens there yet.
    let smtp_port = free_port();
    let mut facture = rig.facture(&format!("smtp://127.0.0.1:{smtp_port}"));
    tuned(&mut facture);
    let client = client();
    facture.start_ready(&client).await;

    let answers = facture.deliver_all(&client, &bodies(made), 16).await;
    let acknowledged = answers.iter().filter(|a| **a == Ok(200)).count();
    assert_eq!(
        acknowledged, n,
        "every payment acknowledged 200 while SMTP is down: {answers:?}"
    );
    let down_at = Instant::now();

    // Every order's invoice mail is attempted and recorded as failed (and counted), and
    // its step parked, then driven again (and parked again) while SMTP stays down.
    let deliveries = Deliveries::new(db.clone());
    let (failed_rows, during) = until(
        "every invoice mail recorded as failed and its step parked twice",
        patience(60),
        Some(&facture),
        || async {
            let mut failed = 0;
            for o in made {
                let rows = deliveries.list_for_commande(&o.commande_id).await.unwrap();
                failed += rows
                    .iter()
                    // A failed attempt is recorded (status `failed`, or `queued` again
                    // while the parked step is retried).
                    .filter(|d| is_invoice_mail(d) && d.status != "sent" && d.attempts > 0)
                    .count();
            }
            let m = facture.metrics(&client).await;
            let parked = m.sum("facture_steps_parked_total", &[("step", "mail")]);
            (failed == n && parked >= 2.0 * n as f64).then_some((failed, m))
        },
    )
    .await;
    let failed_metric = during.sum("facture_mails_total", &[("outcome", "failed")]);
    let parked = during.sum("facture_steps_parked_total", &[("step", "mail")]);
    assert!(
        failed_metric >= n as f64,
        "facture_mails_total{{outcome=\"failed\"}} = {failed_metric}, expected ≥ {n}"
    );
    assert_eq!(
        during.sum("facture_mails_total", &[("outcome", "sent")]),
        0.0,
        "nothing can be sent while SMTP is down"
    );
    assert_eq!(
        during.sum("facture_steps_dead_lettered_total", &[]),
        0.0,
        "an unreachable SMTP server dead-letters nothing"
    );

    // The server comes back on the same port.
    let smtp = SmtpSink::start_on(smtp_port).await;
    let down_for = down_at.elapsed();
    let back_at = Instant::now();
    rig.wait_done(&smtp, patience(90), "after SMTP came back")
        .await;
    let recovered = back_at.elapsed();

    let found = rig.audit(&smtp, "SMTP down, then back").await;
    // Each invoice mail is one delivery row, sent in the end, its failed attempts kept.
    let mut attempts = 0;
    for o in made {
        let rows = deliveries.list_for_commande(&o.commande_id).await.unwrap();
        let invoice_rows: Vec<_> = rows.iter().filter(|d| is_invoice_mail(d)).collect();
        assert_eq!(invoice_rows.len(), 1, "one delivery row per invoice mail");
        let d = invoice_rows[0];
        assert_eq!(d.status, "sent", "{d:?}");
        assert!(d.attempts >= 2, "failed attempts recorded: {d:?}");
        attempts += d.attempts;
    }
    let after = facture.metrics(&client).await;
    assert_eq!(
        after.sum("facture_steps_dead_lettered_total", &[]),
        0.0,
        "an unreachable SMTP server dead-letters nothing"
    );
    let admin_mails = smtp
        .messages()
        .iter()
        .filter(|m| m.recipients.iter().any(|r| r == "admin@example.fr"))
        .count();
    println!(
        "campaign 3 [{}] SMTP down then back: injected SMTP refused for {:.1}s; {n} events, {n} acknowledged 200; \
         {failed_rows} invoice mails recorded failed, {failed_metric} failed sends counted, {parked} mail steps parked, \
         {attempts} attempts in all; lost 0; {}, admin mails {admin_mails}; \
         recovered {:.1}s after SMTP came back; total {:.1}s",
        engine(&rig.test_db),
        down_for.as_secs_f64(),
        found,
        recovered.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

fn is_invoice_mail(d: &facture_core::db::models::EmailDelivery) -> bool {
    d.dedupe_key
        .as_deref()
        .is_some_and(|k| k.starts_with("invoice:"))
}

// ---------------------------------------------------------------------------------------
// 4. Storage unusable for a while

#[actix_web::test]
async fn storage_unwritable_for_a_while_then_everything_completes_intact() {
    let n = if heavy() { 300 } else { 40 };
    let started = Instant::now();
    let rig = Rig::new(n, "disk").await;
    let made = &rig.made;
    let smtp = SmtpSink::start().await;
    let mut facture = rig.facture(&smtp.url());
    tuned(&mut facture);
    let client = client();
    facture.start_ready(&client).await;

    // The process runs as root: permissions would not stop it. A regular file where the
    // invoices directory should be makes every write fail, whoever writes.
    let uploads = rig.uploads();
    let invoices_dir = uploads.join("invoices");
    std::fs::create_dir_all(&uploads).unwrap();
    if invoices_dir.is_dir() {
        std::fs::remove_dir(&invoices_dir).unwrap();
    }
    std::fs::write(&invoices_dir, b"not a directory").unwrap();
    let before = facture.metrics(&client).await;
    let failures_before = storage_failures(&before);

    let answers = facture.deliver_all(&client, &bodies(made), 16).await;
    assert!(
        answers.iter().all(|a| *a == Ok(200)),
        "every payment acknowledged while storage is broken: {answers:?}"
    );
    let broken_at = Instant::now();

    // Every order's PDF write fails, /metrics says so, and the steps are parked and
    // driven again (and fail again) while storage stays broken.
    let during = until(
        "storage failures on /metrics, every render step parked twice",
        patience(60),
        Some(&facture),
        || async {
            let m = facture.metrics(&client).await;
            let failed = storage_failures(&m) - failures_before;
            let parked = m.sum("facture_steps_parked_total", &[("step", "render")]);
            (failed >= 2.0 * n as f64 && parked >= 2.0 * n as f64).then_some(m)
        },
    )
    .await;
    let failures = storage_failures(&during) - failures_before;
    let parked = during.sum("facture_steps_parked_total", &[("step", "render")]);
    assert_eq!(
        during.sum("facture_steps_dead_lettered_total", &[]),
        0.0,
        "unwritable storage dead-letters nothing"
    );
    let customers: BTreeSet<&str> = made.iter().map(|o| o.email.as_str()).collect();
    let mailed_early = smtp
        .messages()
        .iter()
        .filter(|m| m.recipients.iter().any(|r| customers.contains(r.as_str())))
        .count();
    assert_eq!(mailed_early, 0, "no customer mail without a stored PDF");
    assert_eq!(
        std::fs::read(&invoices_dir).unwrap(),
        b"not a directory",
        "nothing written over the obstacle"
    );

    // Storage is usable again.
    std::fs::remove_file(&invoices_dir).unwrap();
    std::fs::create_dir(&invoices_dir).unwrap();
    let broken_for = broken_at.elapsed();
    let fixed_at = Instant::now();
    rig.wait_done(&smtp, patience(60), "after storage came back")
        .await;
    let recovered = fixed_at.elapsed();

    let found = rig.audit(&smtp, "storage unwritable").await;
    let stray: Vec<_> = std::fs::read_dir(&uploads)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "invoices")
        .collect();
    assert!(stray.is_empty(), "nothing beside invoices/: {stray:?}");
    let pdfs = std::fs::read_dir(&invoices_dir).unwrap().count();
    assert_eq!(pdfs, n, "one PDF per invoice, nothing else");
    let after = facture.metrics(&client).await;
    assert_eq!(
        after.sum("facture_steps_dead_lettered_total", &[]),
        0.0,
        "unwritable storage dead-letters nothing"
    );
    println!(
        "campaign 4 [{}] storage unwritable: injected a file in place of uploads/invoices for {:.1}s; \
         {n} events, {n} acknowledged 200; {failures} failed storage writes on /metrics, {parked} render steps parked; \
         lost 0; partial files 0; {}; recovered {:.1}s after storage came back; total {:.1}s",
        engine(&rig.test_db),
        broken_for.as_secs_f64(),
        found,
        recovered.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

fn storage_failures(m: &Metrics) -> f64 {
    m.sum(
        "facture_handler_failures_total",
        &[("actor", "storage_writer")],
    )
}

// ---------------------------------------------------------------------------------------
// 5. Database unreachable for a while

/// A TCP proxy in front of PostgreSQL: facture connects through it; an outage closes
/// every proxied connection and drops new ones until it ends. It runs on a runtime (and
/// threads) of its own, so forwarding never waits for the test's own work.
struct PgProxy {
    port: u16,
    up: watch::Sender<bool>,
    dropped: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl PgProxy {
    fn start(upstream: String) -> PgProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, watching) = watch::channel(true);
        let dropped = Arc::new(AtomicUsize::new(0));
        let counted = dropped.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pg-proxy")
            .enable_io()
            .build()
            .unwrap();
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !*watching.borrow() {
                    counted.fetch_add(1, Ordering::SeqCst);
                    drop(inbound); // closed at once: the client's start-up fails
                    continue;
                }
                let mut outage = watching.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        // Outage (or the proxy gone): both sides are closed mid-session.
                        _ = outage.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        PgProxy {
            port,
            up,
            dropped,
            runtime: Some(runtime),
        }
    }

    fn cut(&self) {
        self.up.send_replace(false);
    }

    fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.cut();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The parts of `scheme://[user@]host[:port]/db`: (`scheme://[user@]`, `host:port`, `/db`).
fn split_pg_url(url: &str) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    (format!("{scheme}://{userinfo}"), host, format!("/{path}"))
}

/// SQLite's outage: another connection holds a file's write lock (`BEGIN EXCLUSIVE`) until
/// released, so no write to it gets through. The outage locks both the main file and the
/// acknowledgement journal.
struct SqliteLock {
    release: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SqliteLock {
    async fn hold(path: std::path::PathBuf) -> SqliteLock {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let locked = Arc::new(AtomicBool::new(false));
        let flag = locked.clone();
        let thread = std::thread::spawn(move || {
            use diesel::connection::SimpleConnection;
            use diesel::Connection;
            let mut conn = diesel::sqlite::SqliteConnection::establish(&path.to_string_lossy())
                .expect("SQLite file opens");
            conn.batch_execute("PRAGMA busy_timeout = 30000; BEGIN EXCLUSIVE;")
                .expect("the write lock is taken");
            flag.store(true, Ordering::SeqCst);
            let _ = released.recv();
            conn.batch_execute("COMMIT")
                .expect("the write lock is released");
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while !locked.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "could not take SQLite's write lock"
            );
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
        SqliteLock {
            release,
            thread: Some(thread),
        }
    }

    fn release(&mut self) {
        let _ = self.release.send(());
        if let Some(t) = self.thread.take() {
            t.join().expect("lock holder");
        }
    }
}

impl Drop for SqliteLock {
    fn drop(&mut self) {
        self.release();
    }
}

enum Outage {
    Postgres(PgProxy),
    /// The main file, and the locks held on it and its journal during the outage.
    Sqlite(std::path::PathBuf, Vec<SqliteLock>),
}

impl Outage {
    async fn begin(&mut self) {
        match self {
            Outage::Postgres(proxy) => proxy.cut(),
            Outage::Sqlite(path, locks) => {
                let journal = facture_core::db::ack_journal::path_for(path);
                *locks = vec![
                    SqliteLock::hold(journal).await,
                    SqliteLock::hold(path.clone()).await,
                ];
            }
        }
    }

    fn end(&mut self) {
        match self {
            Outage::Postgres(proxy) => proxy.restore(),
            Outage::Sqlite(_, locks) => locks.iter_mut().for_each(SqliteLock::release),
        }
    }
}

/// Every Stripe event id stored in `webhook_events`.
async fn stored_event_ids(db: &Db) -> Result<BTreeSet<String>, DbError> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use facture_core::db::schema::webhook_events;
    let ids: Vec<String> = facture_core::with_conn!(db, |conn| {
        webhook_events::table
            .select(webhook_events::stripe_event_id)
            .load(conn)
            .await
    })?;
    Ok(ids.into_iter().collect())
}

#[actix_web::test]
async fn database_unreachable_for_a_while_webhook_answers_503_and_nothing_acknowledged_is_lost() {
    let (n, outage_for) = if heavy() {
        (300, Duration::from_secs(10))
    } else {
        (60, Duration::from_secs(3))
    };
    let started = Instant::now();
    let rig = Rig::new(n, "dbdown").await;
    let (db, made) = (&rig.db, &rig.made);
    let smtp = SmtpSink::start().await;
    let (before, during) = made.split_at(n / 2);

    let (mut outage, url) = match rig.test_db.database_url() {
        facture_core::config::DatabaseUrl::Postgres(url) => {
            let (prefix, upstream, path) = split_pg_url(url);
            let proxy = PgProxy::start(upstream);
            let proxied = format!("{prefix}127.0.0.1:{}{path}", proxy.port);
            (Outage::Postgres(proxy), proxied)
        }
        facture_core::config::DatabaseUrl::Sqlite(path) => (
            Outage::Sqlite(path.clone(), Vec::new()),
            rig.test_db.url().to_owned(),
        ),
    };
    let mut facture = Facture::new(&url, rig.dir.path(), &smtp.url());
    tuned(&mut facture);
    // Acknowledgements give up quickly on a locked SQLite file (503, Stripe retries).
    facture.set("DATABASE__BUSY_TIMEOUT_MS", 250);
    let client = client();
    facture.start_ready(&client).await;

    // Half the payments are acknowledged, and the database goes away at once, while
    // their pipelines run.
    let refused_before =
        deliver_until_acknowledged(&facture, &client, bodies(before), patience(60)).await;
    let acked_before: BTreeSet<&str> = before.iter().map(|o| o.event_id.as_str()).collect();
    outage.begin().await;
    let down_at = Instant::now();
    let unprocessed_at_cut = unfinished(db).await;

    // During the outage the other half arrives, spread over it.
    let mut during_answers: Vec<(&Order, Result<u16, String>)> = Vec::new();
    let chunks: Vec<&[Order]> = during.chunks(8).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let answers = facture
            .deliver_all(&client, &bodies(chunk), chunk.len())
            .await;
        during_answers.extend(chunk.iter().zip(answers));
        let next = down_at + outage_for.mul_f64((i + 1) as f64 / (chunks.len() + 1) as f64);
        actix_web::rt::time::sleep_until(next.into()).await;
    }
    let health = client.get(facture.url("/health")).send().await;
    assert!(
        health.is_ok_and(|r| r.status().is_success()),
        "the process stays up during the outage"
    );
    while down_at.elapsed() < outage_for {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    outage.end();
    let down_for = down_at.elapsed();
    let back_at = Instant::now();

    let unavailable = during_answers.iter().filter(|(_, a)| *a == Ok(503)).count();
    let acked_during: Vec<&str> = during_answers
        .iter()
        .filter(|(_, a)| is_2xx(a))
        .map(|(o, _)| o.event_id.as_str())
        .collect();
    let other: Vec<_> = during_answers
        .iter()
        .filter(|(_, a)| *a != Ok(503) && !is_2xx(a))
        .map(|(_, a)| a.clone())
        .collect();
    assert!(
        unavailable > 0,
        "the webhook answered 503 during the outage"
    );
    assert!(
        acked_during.is_empty(),
        "no 2xx while the database is unreachable: {} acknowledged",
        acked_during.len()
    );
    assert!(
        other.is_empty(),
        "during the outage every answer is 503: {other:?}"
    );

    // Stripe retries what was refused.
    let refused: Vec<&[u8]> = during_answers
        .iter()
        .filter(|(_, a)| !is_2xx(a))
        .map(|(o, _)| o.event.as_slice())
        .collect();
    let refused_after = deliver_until_acknowledged(&facture, &client, refused, patience(60)).await;
    rig.wait_done(&smtp, patience(90), "after the database came back")
        .await;
    let recovered = back_at.elapsed();

    let stored = stored_event_ids(db).await.unwrap();
    let lost: Vec<_> = acked_before
        .iter()
        .filter(|id| !stored.contains(**id))
        .collect();
    assert!(lost.is_empty(), "acknowledged yet not stored: {lost:?}");
    let found = rig.audit(&smtp, "database unreachable").await;
    let dropped = match &outage {
        Outage::Postgres(p) => p.dropped.load(Ordering::SeqCst),
        Outage::Sqlite(..) => 0,
    };
    println!(
        "campaign 5 [{}] database unreachable: injected {} for {:.1}s ({dropped} connections dropped); \
         {n} events: {} acknowledged before ({refused_before} refused and redelivered), {} unfinished at the cut; \
         during it {} deliveries → {unavailable} × 503, 0 × 2xx; {refused_after} refused again after; \
         lost 0; {}; recovered {:.1}s after the database came back; total {:.1}s",
        engine(&rig.test_db),
        match outage {
            Outage::Postgres(_) => "a TCP proxy cutting every connection",
            Outage::Sqlite(..) => "SQLite's write locks held (BEGIN EXCLUSIVE, on the file and on its acknowledgement journal)",
        },
        down_for.as_secs_f64(),
        acked_before.len(),
        unprocessed_at_cut,
        during_answers.len(),
        found,
        recovered.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------
// 6. Slow consumer

/// The highest values `/metrics` showed while sampling.
#[derive(Debug, Default)]
struct Peaks {
    unfinished_pipelines: f64,
    unfinished_events: f64,
    permits_waiting: f64,
    renderer_depth: f64,
    renders_in_flight: f64,
    samples: usize,
}

impl Peaks {
    fn record(&mut self, m: &Metrics) {
        let max = |a: &mut f64, b: f64| *a = a.max(b);
        max(
            &mut self.unfinished_pipelines,
            m.sum("facture_unfinished_pipelines", &[]),
        );
        max(
            &mut self.unfinished_events,
            m.sum("facture_unfinished_events", &[]),
        );
        max(
            &mut self.permits_waiting,
            m.sum("facture_render_permits_waiting", &[]),
        );
        max(
            &mut self.renderer_depth,
            m.sum("facture_mailbox_depth", &[("actor", "invoice_renderer")]),
        );
        max(
            &mut self.renders_in_flight,
            m.sum("facture_renders_in_flight", &[]),
        );
        self.samples += 1;
    }
}

#[actix_web::test]
async fn slow_renderer_the_webhook_keeps_acknowledging_backlog_visible_memory_bounded() {
    let (n, delay_ms) = if heavy() { (1_000, 100) } else { (80, 150) };
    let threads = 2;
    let started = Instant::now();
    let rig = Rig::new(n, "slow").await;
    let (db, made) = (&rig.db, &rig.made);
    let smtp = SmtpSink::start().await;
    let mut facture = rig.facture(&smtp.url());
    tuned(&mut facture);
    facture
        .set("ENGINE__RENDER_DELAY_MS", delay_ms)
        .set("ENGINE__RENDER_POOL", threads);
    let client = client();
    facture.start_ready(&client).await;

    // The burst, and /metrics sampled every 100 ms until everything is done.
    let burst_at = Instant::now();
    let burst_done = AtomicBool::new(false);
    let burst = async {
        let t = Instant::now();
        let answers = facture.deliver_all(&client, &bodies(made), 16).await;
        let took = t.elapsed();
        let left = unfinished(db).await;
        burst_done.store(true, Ordering::SeqCst);
        (answers, took, left)
    };
    let sample = async {
        let mut peaks = Peaks::default();
        let deadline = Instant::now() + patience(120);
        loop {
            peaks.record(&facture.metrics(&client).await);
            if burst_done.load(Ordering::SeqCst) && unfinished(db).await == 0 {
                return (peaks, Instant::now());
            }
            assert!(
                Instant::now() < deadline,
                "the backlog did not drain: {} unfinished\n{}",
                unfinished(db).await,
                facture.log_tail(20)
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let ((answers, ack_took, left_at_last_ack), (peaks, drained_at)) =
        futures_util::future::join(burst, sample).await;
    let acked = answers.iter().filter(|a| **a == Ok(200)).count();
    assert_eq!(
        acked,
        n,
        "every payment acknowledged 200 while renders are backed up: {:?}",
        answers
            .iter()
            .filter(|a| **a != Ok(200))
            .collect::<Vec<_>>()
    );
    assert!(
        left_at_last_ack > 0,
        "the renders were still backed up when the last acknowledgement came back"
    );
    assert!(
        peaks.unfinished_pipelines > 0.0 || peaks.unfinished_events > 0.0,
        "the backlog is visible on /metrics: {peaks:?}"
    );
    assert!(
        peaks.permits_waiting > 0.0 || peaks.renderer_depth > 0.0,
        "the renderer's queue is visible on /metrics: {peaks:?}"
    );
    let peak_rss_kib = facture.peak_rss_kib().expect("VmHWM of the process");
    assert!(
        peak_rss_kib < 200 * 1024,
        "memory bounded: peak RSS {peak_rss_kib} KiB"
    );
    let drained_in = drained_at.duration_since(burst_at);

    rig.wait_done(&smtp, patience(30), "after the backlog drained")
        .await;
    let found = rig.audit(&smtp, "slow renderer").await;
    println!(
        "campaign 6 [{}] slow consumer: injected engine.render_delay_ms={delay_ms} on {threads} render threads; \
         {n} events, all {acked} acknowledged 200 in {:.2}s with {left_at_last_ack} still unfinished; \
         /metrics peaks: unfinished pipelines {}, unfinished events {}, render permits waiting {}, \
         renderer mailbox depth {}, renders in flight {} ({} scrapes); peak RSS {:.1} MB; \
         lost 0; {}; backlog drained {:.1}s after the burst began; total {:.1}s",
        engine(&rig.test_db),
        ack_took.as_secs_f64(),
        peaks.unfinished_pipelines,
        peaks.unfinished_events,
        peaks.permits_waiting,
        peaks.renderer_depth,
        peaks.renders_in_flight,
        peaks.samples,
        peak_rss_kib as f64 / 1024.0,
        found,
        drained_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// Phase 2 on a real process: every payment's `completed` and a late
/// `async_payment_failed` for the same session, each delivered three times, all shuffled
/// and sent concurrently. The end state is that of one in-order delivery: every order
/// paid once, one invoice each, numbers gapless, every customer mailed.
#[actix_web::test]
async fn duplicates_and_failed_after_completed_in_any_order_end_as_one_in_order_delivery() {
    let n = if heavy() { 500 } else { 40 };
    let started = Instant::now();
    let rig = Rig::new(n, "order").await;
    let (db, made) = (&rig.db, &rig.made);
    let smtp = SmtpSink::start().await;
    let mut facture = rig.facture(&smtp.url());
    tuned(&mut facture);
    let client = client();
    facture.start_ready(&client).await;

    let mut failures = Vec::with_capacity(n);
    for o in made {
        let order = facture_core::orders::find(db, &o.commande_id)
            .await
            .unwrap()
            .unwrap();
        let session = order.stripe_session_id.unwrap();
        failures.push(crate::stripe::session_event(
            "checkout.session.async_payment_failed",
            &crate::stripe::evt(),
            &session,
            o.amount_cents,
        ));
    }
    let mut deliveries: Vec<&[u8]> = made
        .iter()
        .map(|o| o.event.as_slice())
        .chain(failures.iter().map(Vec::as_slice))
        .flat_map(|body| [body, body, body])
        .collect();
    let mut rng = crate::process::Rng::from_env();
    for i in (1..deliveries.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        deliveries.swap(i, j);
    }
    let answers = facture.deliver_all(&client, &deliveries, 16).await;
    assert!(
        answers.iter().all(|a| *a == Ok(200)),
        "every delivery acknowledged 200: {answers:?}"
    );
    let acked_at = Instant::now();
    rig.wait_done(&smtp, patience(60), "duplicates and order")
        .await;

    let stored = facture_core::events::count_all(db).await.unwrap();
    assert_eq!(
        stored,
        2 * n as i64,
        "each event stored once, whatever the copies"
    );
    let mut sequences = BTreeSet::new();
    for o in made {
        let order = facture_core::orders::find(db, &o.commande_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(order.payment_status, "paid", "a late failure never un-pays");
        assert_eq!(order.pipeline.as_deref(), Some("done"));
        let invoice = facture_core::invoices::find_by_commande(db, &o.commande_id)
            .await
            .unwrap()
            .expect("one invoice per paid order");
        assert_eq!(invoice.amount_cents, o.amount_cents);
        assert!(sequences.insert(invoice.sequence), "a number issued twice");
    }
    assert_eq!(
        sequences,
        (1..=n as i64).collect::<BTreeSet<_>>(),
        "numbers gapless"
    );
    let mails = smtp.messages();
    let mut duplicate_mails = 0;
    for o in made {
        let received = mails
            .iter()
            .filter(|m| m.recipients.contains(&o.email))
            .count();
        assert!(received >= 1, "{} has their invoice", o.email);
        duplicate_mails += received - 1;
    }
    println!(
        "campaign [{}] duplicates and order: {n} payments, each completed + failed, each \
         delivered 3 times shuffled ({} deliveries); lost 0; duplicate invoices 0; \
         duplicate customer mails {duplicate_mails}; all done {:.1}s after the last ack, \
         total {:.1}s",
        engine(&rig.test_db),
        deliveries.len(),
        acked_at.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
