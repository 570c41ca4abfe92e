//! POST /payments/webhook: what is refused, what is acknowledged, and that an
//! acknowledgement means the event is stored.

use facture_core::events;
use facture_core::stripe::sign;

use crate::helpers::{spawn_app, spawn_app_with, TestApp, SECRETS};
use crate::stripe::{completed, evt, now, session, signed};

/// Events committed by acknowledgements: in SQLite's journal, or PostgreSQL's webhook_events.
async fn stored_events(app: &TestApp) -> i64 {
    events::count_acknowledged(&app.db).await.unwrap()
}

async fn assert_refused(
    app: &TestApp,
    body: Vec<u8>,
    sig: Option<String>,
    status: u16,
    code: &str,
) {
    let (got, json) = app.post_webhook(body, sig).await;
    assert_eq!(
        (got, json["error"].as_str()),
        (status, Some(code)),
        "{json}"
    );
    assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[actix_web::test]
async fn a_signed_event_is_stored_before_the_answer() {
    let app = spawn_app().await;
    let id = evt();
    let (status, json) = app.deliver(completed(&id, &session(), 1000)).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json, serde_json::json!({"received": true}));
    // Committed before the 200: no waiting needed.
    assert_eq!(stored_events(&app).await, 1);
}

#[actix_web::test]
async fn a_redelivered_event_is_acknowledged_as_duplicate_and_stored_once() {
    let app = spawn_app().await;
    let body = completed(&evt(), &session(), 1000);
    assert_eq!(app.deliver(body.clone()).await.0, 200);
    let (status, json) = app.deliver(body).await;
    assert_eq!(status, 200);
    assert_eq!(
        json,
        serde_json::json!({"received": true, "duplicate": true})
    );
    assert_eq!(stored_events(&app).await, 1);
}

#[actix_web::test]
async fn refusals_store_nothing() {
    let app = spawn_app().await;
    let body = completed(&evt(), &session(), 1000);
    assert_refused(&app, body.clone(), None, 400, "missing_signature").await;
    assert_refused(
        &app,
        body.clone(),
        Some("garbage".into()),
        400,
        "invalid_signature",
    )
    .await;
    let wrong_secret = sign(&body, "whsec_someone_else", now());
    assert_refused(
        &app,
        body.clone(),
        Some(wrong_secret),
        400,
        "invalid_signature",
    )
    .await;
    let other_body = sign(b"{}", SECRETS[0], now());
    assert_refused(
        &app,
        body.clone(),
        Some(other_body),
        400,
        "invalid_signature",
    )
    .await;
    let stale = sign(&body, SECRETS[0], now() - 301);
    assert_refused(
        &app,
        body.clone(),
        Some(stale),
        400,
        "timestamp_out_of_tolerance",
    )
    .await;
    let future = sign(&body, SECRETS[0], now() + 301);
    assert_refused(
        &app,
        body.clone(),
        Some(future),
        400,
        "timestamp_out_of_tolerance",
    )
    .await;
    let not_json = b"this is not json".to_vec();
    assert_refused(
        &app,
        not_json.clone(),
        Some(signed(&not_json)),
        400,
        "malformed_event",
    )
    .await;
    let not_event = br#"{"id":"cus_1","object":"customer"}"#.to_vec();
    assert_refused(
        &app,
        not_event.clone(),
        Some(signed(&not_event)),
        400,
        "malformed_event",
    )
    .await;
    assert_eq!(stored_events(&app).await, 0);
}

#[actix_web::test]
async fn an_oversized_body_is_refused_with_413() {
    let app = spawn_app_with(|f| f.merge(("server.webhook_body_limit", 4096))).await;
    let mut body = completed(&evt(), &session(), 1000);
    body.extend(std::iter::repeat_n(b' ', 5000));
    let sig = signed(&body);
    assert_refused(&app, body, Some(sig), 413, "payload_too_large").await;
    assert_eq!(stored_events(&app).await, 0);
}

#[actix_web::test]
async fn an_event_signed_with_the_rotated_secret_is_accepted() {
    let app = spawn_app().await;
    let body = completed(&evt(), &session(), 1000);
    let sig = sign(&body, SECRETS[1], now());
    let (status, _) = app.post_webhook(body, Some(sig)).await;
    assert_eq!(status, 200);
    assert_eq!(stored_events(&app).await, 1);
}

#[actix_web::test]
async fn unknown_event_types_and_fields_are_stored_and_ignored() {
    let app = spawn_app().await;
    let mut event: serde_json::Value =
        serde_json::from_slice(&completed(&evt(), &session(), 1000)).unwrap();
    event["type"] = "invoice.created".into();
    event["api_version"] = "2099-01-01.future".into();
    event["brand_new_field"] = serde_json::json!({"nested": [1, 2, 3]});
    let (status, _) = app.deliver(serde_json::to_vec(&event).unwrap()).await;
    assert_eq!(status, 200);
    crate::helpers::until_events_with_status(
        &app.db,
        events::status::IGNORED,
        1,
        std::time::Duration::from_secs(10),
    )
    .await;
}

/// Where acknowledgements are committed: SQLite's journal file, or PostgreSQL's
/// webhook_events table.
fn acknowledgements_table(app: &TestApp) -> (facture_core::config::DatabaseUrl, &'static str) {
    use facture_core::config::DatabaseUrl;
    match app.test_db.database_url() {
        DatabaseUrl::Sqlite(path) => (
            DatabaseUrl::Sqlite(facture_core::db::ack_journal::path_for(path)),
            "acknowledged_events",
        ),
        postgres => (postgres.clone(), "webhook_events"),
    }
}

/// Runs one statement on the database at `url` from outside the server (a plain thread:
/// the PostgreSQL wrapper drives its own runtime).
fn run_sql(url: &facture_core::config::DatabaseUrl, sql: String) {
    let url = url.clone();
    std::thread::spawn(move || {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        match url {
            facture_core::config::DatabaseUrl::Sqlite(path) => {
                // The server's own writers may hold the write lock for a moment: wait for it.
                let mut conn =
                    diesel::sqlite::SqliteConnection::establish(&path.to_string_lossy()).unwrap();
                conn.batch_execute("PRAGMA busy_timeout = 30000").unwrap();
                conn.batch_execute(&sql).unwrap();
            }
            facture_core::config::DatabaseUrl::Postgres(url) => {
                diesel_async::async_connection_wrapper::AsyncConnectionWrapper::<
                    diesel_async::AsyncPgConnection,
                >::establish(&url)
                .unwrap()
                .batch_execute(&sql)
                .unwrap();
            }
        }
    })
    .join()
    .unwrap();
}

/// The `received_at` of the event with this Stripe id, once it is in webhook_events: the
/// receiver gives every event of one batch (one transaction) the same.
async fn received_at(db: &facture_core::db::Db, stripe_id: &str) -> chrono::NaiveDateTime {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use facture_core::db::schema::webhook_events;
    crate::helpers::eventually(
        "the event in webhook_events",
        std::time::Duration::from_secs(10),
        || async {
            let read = async {
                let at: chrono::NaiveDateTime = facture_core::with_conn!(db, |conn| {
                    webhook_events::table
                        .filter(webhook_events::stripe_event_id.eq(stripe_id))
                        .select(webhook_events::received_at)
                        .first(conn)
                        .await
                })?;
                Ok::<_, facture_core::db::DbError>(at)
            };
            read.await.ok()
        },
    )
    .await
}

#[actix_web::test]
async fn an_answer_leaves_at_its_commit_and_events_arriving_meanwhile_share_the_next_batch() {
    // Every commit holds the receiver's thread this long, as a slow disk's sync would.
    let delay = std::time::Duration::from_millis(500);
    let app = spawn_app_with(|f| f.merge(("engine.append_delay_ms", 500))).await;
    let (a, b, c) = (evt(), evt(), evt());
    let start = std::time::Instant::now();
    let first = async {
        let answer = app.deliver(completed(&a, &session(), 1000)).await;
        (answer, start.elapsed())
    };
    let during_its_commit = async {
        actix_web::rt::time::sleep(delay / 5).await;
        futures_util::join!(
            app.deliver(completed(&b, &session(), 1000)),
            app.deliver(completed(&c, &session(), 1000)),
        )
    };
    let (((status_a, json_a), answered_a), ((status_b, json_b), (status_c, json_c))) =
        futures_util::join!(first, during_its_commit);
    assert_eq!(
        (status_a, status_b, status_c),
        (200, 200, 200),
        "{json_a} {json_b} {json_c}"
    );

    // The first answer left when its own commit ended, not after the next one.
    assert!(
        answered_a < delay * 3 / 2,
        "the first event was answered after {answered_a:?}, its commit took {delay:?}"
    );
    // The two events that arrived during that commit went out together in the next one.
    let (at_a, at_b, at_c) = (
        received_at(&app.db, &a).await,
        received_at(&app.db, &b).await,
        received_at(&app.db, &c).await,
    );
    assert_eq!(
        at_b, at_c,
        "one batch for the events that arrived during a commit"
    );
    assert_ne!(at_a, at_b, "the first event had a batch of its own");
}

#[actix_web::test]
async fn when_the_event_cannot_be_committed_stripe_gets_503_never_2xx() {
    let app = spawn_app().await;
    let (url, table) = acknowledgements_table(&app);
    run_sql(&url, format!("ALTER TABLE {table} RENAME TO {table}_away"));
    let body = completed(&evt(), &session(), 1000);
    let (status, json) = app.deliver(body.clone()).await;
    assert_eq!(status, 503, "{json}");
    assert_eq!(json["error"], "unavailable");

    // The database is back: Stripe's retry of the same event is accepted and stored.
    run_sql(&url, format!("ALTER TABLE {table}_away RENAME TO {table}"));
    let (status, json) = app.deliver(body).await;
    assert_eq!(
        (status, json["received"].as_bool()),
        (200, Some(true)),
        "{json}"
    );
    assert_eq!(stored_events(&app).await, 1);
    // It reaches webhook_events and is handled (no order has its session: an orphan).
    crate::helpers::until_events_with_status(
        &app.db,
        events::status::ORPHAN,
        1,
        std::time::Duration::from_secs(30),
    )
    .await;
}

#[actix_web::test]
async fn malformed_bodies_and_headers_never_panic_nor_5xx() {
    let app = spawn_app().await;
    let valid = completed(&evt(), &session(), 1000);
    let mut bodies: Vec<Vec<u8>> = vec![
        valid[..valid.len() / 2].to_vec(), // truncated JSON
        br#"{"id":"evt_1","type":"x","created":1e999999,"data":{"object":{}}}"#.to_vec(),
        br#"{"id":"evt_1","type":"x","data":{"object":{"amount_total":99999999999999999999999}}}"#
            .to_vec(),
        format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(), // deep nesting
        vec![0xff, 0xfe, 0x00, 0x80],                                         // invalid UTF-8
        Vec::new(),
        b"null".to_vec(),
        br#"{"id":"evt_1","type":"","data":{"object":{}}}"#.to_vec(),
    ];
    bodies.push(
        format!(
            r#"{{"id":"evt_{}","type":"x","data":{{"object":{{}}}}}}"#,
            "a".repeat(300)
        )
        .into_bytes(),
    );
    let mut accepted = 0;
    for body in bodies {
        let sig = signed(&body);
        let (status, json) = app.post_webhook(body, Some(sig)).await;
        // Lenient decoding may accept an event whose unused fields are odd (a huge
        // amount_total is read as absent); anything else is a clean 400, never a 5xx.
        match status {
            200 => accepted += 1,
            400 => assert_eq!(json["error"], "malformed_event", "{json}"),
            other => panic!("{other}: {json}"),
        }
    }
    assert_eq!(
        accepted, 1,
        "only the well-formed envelope with a huge amount is stored"
    );
    let t = now();
    let headers = [
        "t=".to_string(),
        format!("t={t}"),
        format!("t={t},v1="),
        format!("t={t},{}", ["v1=00"; 10].join(",")),
        format!("t=99999999999999999999,v1={}", "ab".repeat(32)),
        "v1=zz,t=abc".to_string(),
        "\u{00e9}t=1".to_string(),
    ];
    for header in headers {
        let (status, json) = app.post_webhook(valid.clone(), Some(header.clone())).await;
        assert_eq!(status, 400, "{header}: {json}");
        assert_eq!(json["error"], "invalid_signature", "{header}");
    }
    assert_eq!(stored_events(&app).await, 1);
}
