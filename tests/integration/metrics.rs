//! /metrics: every family is exposed (zero-initialised before any traffic), the output is
//! valid Prometheus text for an independent parser (Python's prometheus_client, via
//! tests/tools/parse_metrics.py), counters move when a payment flows, the separate metrics
//! port works, and every metric the alerting rules use is exposed.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use facture::startup::Application;
use facture_core::config::Settings;
use facture_core::orders::{self, step, NewOrder};
use facture_core::testkit::db::TestDb;
use serde_json::Value;

use crate::helpers::{eventually, spawn_app, test_figment, TestApp};
use crate::stripe::{completed, evt, session};

const WAIT: Duration = Duration::from_secs(30);

const ACTORS: [&str; 7] = [
    "webhook_receiver",
    "order_registry",
    "order",
    "invoice_renderer",
    "storage_writer",
    "mailer",
    "notification_bus",
];

/// A family's label and the values every one of its series must have.
type Labelled = Option<(&'static str, Vec<&'static str>)>;

/// A counter sample (name, labels) and by how much one payment moves it at least.
type Moved<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64);

/// (metric name as written, Prometheus type, labelled series).
fn expected() -> Vec<(&'static str, &'static str, Labelled)> {
    let actors = || Some(("actor", ACTORS.to_vec()));
    vec![
        ("facture_mailbox_depth", "gauge", actors()),
        ("facture_mailbox_capacity", "gauge", actors()),
        ("facture_messages_handled_total", "counter", actors()),
        ("facture_handler_duration_seconds", "histogram", actors()),
        ("facture_handler_failures_total", "counter", actors()),
        ("facture_retries_total", "counter", actors()),
        ("facture_actor_restarts_total", "counter", actors()),
        ("facture_order_actors_live", "gauge", None),
        ("facture_renders_in_flight", "gauge", None),
        ("facture_render_permits_waiting", "gauge", None),
        ("facture_webhook_batch_size", "histogram", None),
        ("facture_webhook_ack_seconds", "histogram", None),
        ("facture_webhook_append_seconds", "histogram", None),
        ("facture_pipeline_seconds", "histogram", None),
        ("facture_pipeline_run_seconds", "histogram", None),
        ("facture_invoices_issued_total", "counter", None),
        ("facture_db_statements_total", "counter", None),
        (
            "facture_db_wait_seconds",
            "histogram",
            Some(("for", vec!["writer", "readers", "acks"])),
        ),
        (
            "facture_db_held_seconds",
            "histogram",
            Some(("pool", vec!["writer", "readers"])),
        ),
        (
            "facture_mails_total",
            "counter",
            Some(("outcome", vec!["sent", "failed"])),
        ),
        (
            "facture_steps_dead_lettered_total",
            "counter",
            Some((
                "step",
                vec!["activation", "invoice", "render", "mail", "notify"],
            )),
        ),
        (
            "facture_webhook_requests_total",
            "counter",
            Some((
                "outcome",
                vec![
                    "accepted",
                    "duplicate",
                    "unavailable",
                    "invalid_signature",
                    "missing_signature",
                ],
            )),
        ),
        ("facture_unfinished_events", "gauge", None),
        ("facture_unfinished_pipelines", "gauge", None),
        ("facture_dead_lettered_pipelines", "gauge", None),
        ("facture_oldest_unfinished_event_seconds", "gauge", None),
        ("facture_oldest_unfinished_pipeline_seconds", "gauge", None),
        ("facture_backlog_updated_timestamp_seconds", "gauge", None),
    ]
}

/// One scrape, as the independent parser read it.
struct Scrape {
    families: serde_json::Map<String, Value>,
}

impl Scrape {
    fn family(&self, name: &str, kind: &str) -> Option<&Value> {
        // prometheus_client names a counter family without its `_total` suffix.
        let key = match kind {
            "counter" => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        self.families.get(key)
    }

    fn samples(&self) -> impl Iterator<Item = &Value> {
        self.families
            .values()
            .flat_map(|f| f["samples"].as_array().into_iter().flatten())
    }

    fn sample_names(&self) -> BTreeSet<String> {
        self.samples()
            .filter_map(|s| s["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// The value of the sample `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples()
            .find(|s| {
                s["name"] == name
                    && labels
                        .iter()
                        .all(|(k, v)| s["labels"][*k].as_str() == Some(*v))
            })
            .and_then(|s| s["value"].as_f64())
    }
}

/// Runs the Python parser; None (the test skips) when python3 or prometheus_client is
/// missing outside CI. In CI (env CI set) a missing parser fails the test.
fn parse(text: &str) -> Option<Scrape> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/parse_metrics.py");
    let missing = |why: String| -> Option<Scrape> {
        if std::env::var_os("CI").is_some() {
            panic!("the metrics parser is required in CI: {why}");
        }
        eprintln!("skipping the prometheus_client checks: {why}");
        None
    };
    let mut child = match Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return missing(format!("python3 cannot run: {e}")),
    };
    // The parser may exit before reading (module missing): its status tells.
    let _ = child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(text.as_bytes());
    let out = child.wait_with_output().expect("parser ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(3) => return missing(stderr.trim().to_owned()),
        _ => panic!("/metrics is not valid Prometheus text: {stderr}\n---\n{text}"),
    }
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("parser prints JSON");
    let families = parsed["families"].as_object().expect("families").clone();
    Some(Scrape { families })
}

async fn scrape_text(client: &awc::Client, url: &str) -> (u16, String, String) {
    let mut res = client.get(url).send().await.expect("metrics request");
    let body = res.body().limit(16 << 20).await.expect("metrics body");
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        res.status().as_u16(),
        content_type,
        String::from_utf8(body.to_vec()).expect("UTF-8"),
    )
}

async fn scrape(app: &TestApp) -> Option<Scrape> {
    let (status, content_type, text) = scrape_text(&app.client, &app.url("/metrics")).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse(&text)
}

fn assert_every_family(scrape: &Scrape) {
    for (name, kind, labels) in expected() {
        let family = scrape
            .family(name, kind)
            .unwrap_or_else(|| panic!("family {name} is not exposed"));
        assert_eq!(family["type"], kind, "type of {name}");
        assert!(
            !family["help"].as_str().unwrap_or_default().is_empty(),
            "{name} has a HELP line"
        );
        let sample = match kind {
            "histogram" => format!("{name}_count"),
            _ => name.to_owned(),
        };
        match labels {
            None => assert!(
                scrape.value(&sample, &[]).is_some(),
                "{sample} has a sample"
            ),
            Some((label, values)) => {
                for v in values {
                    assert!(
                        scrape.value(&sample, &[(label, v)]).is_some(),
                        "{sample}{{{label}=\"{v}\"}} is exposed before any traffic"
                    );
                }
            }
        }
    }
    // Histograms have buckets (alerts take quantiles from them).
    assert!(
        scrape
            .value("facture_webhook_ack_seconds_bucket", &[("le", "0.005")])
            .is_some(),
        "the ack histogram has a 5 ms bucket"
    );
}

#[actix_web::test]
async fn metrics_expose_every_family_and_counters_move_when_a_payment_flows() {
    let app = spawn_app().await;
    let Some(before) = scrape(&app).await else {
        return;
    };
    assert_every_family(&before);
    assert_eq!(
        before.value("facture_mailbox_capacity", &[("actor", "mailer")]),
        Some(app.settings.engine.mailbox_capacity as f64)
    );

    let order = orders::create_order(
        &app.db,
        &NewOrder {
            email: "metrics@example.fr".into(),
            prenom: "Mona".into(),
            nom: "Trique".into(),
            titre: "Correction".into(),
            description: "Relecture".into(),
            amount_cents: 4_200,
            session_id: session(),
        },
    )
    .await
    .expect("order created");
    let sid = order.stripe_session_id.clone().expect("session");
    let event = evt();
    let (status, _) = app.deliver(completed(&event, &sid, 4_200)).await;
    assert_eq!(status, 200);
    let (status, _) = app.deliver(completed(&event, &sid, 4_200)).await;
    assert_eq!(status, 200, "a redelivery is acknowledged too");
    eventually("the order's pipeline to finish", WAIT, || async {
        let c = orders::find(&app.db, &order.id).await.unwrap()?;
        (c.pipeline.as_deref() == Some(step::DONE)).then_some(())
    })
    .await;

    // Counters only grow (other tests share the process's recorder): each must have moved
    // by at least what this payment did.
    let mut moved: Vec<Moved> = vec![
        (
            "facture_webhook_requests_total",
            vec![("outcome", "accepted")],
            1.0,
        ),
        (
            "facture_webhook_requests_total",
            vec![("outcome", "duplicate")],
            1.0,
        ),
        ("facture_invoices_issued_total", vec![], 1.0),
        // Claiming, paying, numbering, storing, mailing, notifying: dozens of statements.
        ("facture_db_statements_total", vec![], 20.0),
        // Every step checks out a connection, and the wait for it is measured.
        (
            "facture_db_wait_seconds_count",
            vec![("for", "writer")],
            5.0,
        ),
        ("facture_mails_total", vec![("outcome", "sent")], 1.0),
        ("facture_webhook_ack_seconds_count", vec![], 2.0),
        ("facture_webhook_append_seconds_count", vec![], 2.0),
        ("facture_webhook_batch_size_count", vec![], 1.0),
        ("facture_pipeline_seconds_count", vec![], 1.0),
        ("facture_pipeline_run_seconds_count", vec![], 1.0),
        (
            "facture_handler_duration_seconds_count",
            vec![("actor", "invoice_renderer")],
            1.0,
        ),
    ]
    .into_iter()
    .chain(
        [
            "webhook_receiver",
            "order",
            "invoice_renderer",
            "storage_writer",
            "mailer",
            "notification_bus",
        ]
        .into_iter()
        .map(|a| ("facture_messages_handled_total", vec![("actor", a)], 1.0)),
    )
    .collect();
    if app.db.is_sqlite() {
        // The acknowledgement's wait for its journal connection and for the journal's WAL
        // sync, apart from the pipeline's waits (SQLite only: PostgreSQL has neither).
        for what in ["acks", "wal_sync"] {
            moved.push(("facture_db_wait_seconds_count", vec![("for", what)], 2.0));
        }
        // The pipeline's writes are committed in batches (one per step at least here).
        moved.push(("facture_db_write_batch_size_count", vec![], 5.0));
    }
    let deadline = std::time::Instant::now() + WAIT;
    let settled = loop {
        let after = scrape(&app).await.expect("parser present");
        let lagging: Vec<String> = moved
            .iter()
            .filter_map(|(name, labels, by)| {
                let was = before.value(name, labels).unwrap_or(0.0);
                let now = after.value(name, labels).unwrap_or(0.0);
                (now < was + by).then(|| format!("{name}{labels:?}: {was} → {now}"))
            })
            .collect();
        let measured = after
            .value("facture_backlog_updated_timestamp_seconds", &[])
            .is_some_and(|t| t > 0.0);
        if lagging.is_empty() && measured {
            break after;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "counters did not move: {lagging:?} (backlog measured: {measured})"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    let p = settled
        .value("facture_pipeline_seconds_sum", &[])
        .expect("pipeline sum");
    assert!(p > 0.0, "the end-to-end latency is measured: {p}");
    assert!(settled
        .value("facture_mailbox_depth", &[("actor", "webhook_receiver")])
        .is_some());
}

#[actix_web::test]
async fn with_a_metrics_port_metrics_are_served_there_and_not_on_the_api_port() {
    let test_db = TestDb::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let settings =
        Settings::from_figment(test_figment(&test_db, dir.path()).merge(("metrics.port", 0)))
            .expect("settings");
    let app = Application::build(settings).await.expect("app starts");
    let api = app.port();
    let metrics = app.metrics_port().expect("a separate metrics port");
    assert_ne!(api, metrics);
    let handle = app.server_handle();
    actix_web::rt::spawn(app.run_until_stopped());
    let client = awc::Client::default();

    let (status, content_type, text) =
        scrape_text(&client, &format!("http://127.0.0.1:{metrics}/metrics")).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(text.contains("facture_mailbox_depth"), "{text}");
    if let Some(scrape) = parse(&text) {
        assert_every_family(&scrape);
    }

    let (status, _, body) = scrape_text(&client, &format!("http://127.0.0.1:{api}/metrics")).await;
    assert_eq!(status, 404, "not on the API port: {body}");
    let (status, _, _) = scrape_text(&client, &format!("http://127.0.0.1:{api}/health")).await;
    assert_eq!(status, 200, "the API still answers");

    handle.stop(true).await;
    drop(test_db);
}

/// Metric names a rules file uses: every `facture_…` token.
fn rule_metric_names(rules: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = rules.as_bytes();
    let mut i = 0;
    while let Some(at) = rules[i..].find("facture_") {
        let start = i + at;
        let boundary = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric());
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            names.insert(rules[start..end].to_owned());
        }
        i = end;
    }
    names
}

#[actix_web::test]
async fn every_metric_the_alerting_rules_use_is_exposed() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus/alerts.yml");
    let rules = std::fs::read_to_string(path).expect("alerts.yml");
    let used = rule_metric_names(&rules);
    assert!(used.len() >= 8, "the rules use facture's metrics: {used:?}");
    let app = spawn_app().await;
    let Some(scrape) = scrape(&app).await else {
        return;
    };
    let exposed = scrape.sample_names();
    let missing: Vec<_> = used.iter().filter(|n| !exposed.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "alerts.yml uses metrics /metrics does not expose: {missing:?}"
    );
}
