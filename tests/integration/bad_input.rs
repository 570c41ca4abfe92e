//! Bad input on the HTTP API: path traversal, SQL metacharacters, oversized parameters.
//!
//! Against the real server (SQLite by default, PostgreSQL with FACTURE_TEST_DATABASE_URL):
//! every attempt is refused cleanly — a 4xx answering `{"error", "message"}` in JSON, or a
//! 200 that shows nothing it should not — never a 5xx, never a file from outside the
//! uploads folder, and the database is exactly as it was before.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use facture_core::db::schema::{
    commandes, email_deliveries, files, invoices, notifications, users, webhook_events,
};
use facture_core::db::DbError;
use facture_core::with_conn;
use serde_json::Value;

use crate::accounts::{admin_token, enc, invoiced_order, pdf_path, signed_in, Res};
use crate::helpers::{spawn_app, TestApp};
use crate::stripe::{completed, evt, session, signed};

/// What must not change: every row count, and each invoice's id, number, status and hash.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    counts: Vec<(&'static str, i64)>,
    invoices: Vec<(String, String, String, Option<String>)>,
    events: Vec<(String, String, String)>,
}

async fn snapshot(app: &TestApp) -> Snapshot {
    let taken: Result<Snapshot, DbError> = async {
        let mut counts = Vec::new();
        macro_rules! count {
            ($table:ident) => {{
                let n: i64 = with_conn!(app.db, |conn| {
                    $table::table.count().get_result(conn).await
                })?;
                counts.push((stringify!($table), n));
            }};
        }
        count!(users);
        count!(commandes);
        count!(invoices);
        count!(files);
        count!(webhook_events);
        count!(email_deliveries);
        count!(notifications);
        let invoices = with_conn!(app.db, |conn| {
            invoices::table
                .select((
                    invoices::id,
                    invoices::number,
                    invoices::status,
                    invoices::pdf_sha256,
                ))
                .order_by(invoices::id)
                .load(conn)
                .await
        })?;
        let events = with_conn!(app.db, |conn| {
            webhook_events::table
                .select((
                    webhook_events::stripe_event_id,
                    webhook_events::event_type,
                    webhook_events::status,
                ))
                .order_by(webhook_events::stripe_event_id)
                .load(conn)
                .await
        })?;
        Ok(Snapshot {
            counts,
            invoices,
            events,
        })
    }
    .await;
    taken.expect("snapshot of the database")
}

/// A clean refusal: a 4xx (no 5xx) answering `{"error": code, "message": text}` in JSON.
#[track_caller]
fn assert_clean_4xx(res: &Res, what: &str) {
    assert!(
        (400..500).contains(&res.status),
        "{what}: expected a 4xx, got {res:?}"
    );
    let content_type = res.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: content-type {content_type:?}, {res:?}"
    );
    let json = res.json();
    let code = json["error"].as_str().unwrap_or_default();
    let message = json["message"].as_str().unwrap_or_default();
    assert!(
        !code.is_empty() && !message.is_empty(),
        "{what}: not an error body: {res:?}"
    );
    assert_eq!(
        json.as_object().map(|o| o.len()),
        Some(2),
        "{what}: {res:?}"
    );
}

/// An oversized request, refused and never a 5xx: either by the application, in its JSON
/// error shape, or — for a request target over 64 KiB, which `http::Uri` cannot hold, or a
/// request head over 128 KiB — by actix-http before any application code runs: a bare 400
/// or 431, empty body, connection closed (actix-http writes those itself; they cannot be
/// given a JSON body from the routes).
#[track_caller]
fn assert_refused_oversized(res: &Res, what: &str) {
    if res.body.is_empty() {
        assert!(matches!(res.status, 400 | 431), "{what}: {res:?}");
        assert_eq!(res.header("connection").as_deref(), Some("close"), "{what}");
    } else {
        assert_clean_4xx(res, what);
    }
}

/// Writes `request` on a new connection (from another thread) while reading the answer
/// until the server closes; whatever arrived before an error is kept.
fn exchange(address: &str, request: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let request = request.to_vec();
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    sending.join().unwrap();
    raw
}

/// Sends a request whose path is written on the wire exactly as given (no normalisation).
async fn get_raw(app: &TestApp, path: &str, token: &str) -> Res {
    app.call("GET", path, Some(token), None).await
}

/// A GET written by hand on a plain TCP connection, for targets too long for an HTTP
/// client to build (`http::Uri` stops at 64 KiB). The server runs on its own threads, so
/// blocking this one is fine.
fn get_over_tcp(app: &TestApp, target: &str, token: &str) -> Res {
    let address = app.address.trim_start_matches("http://");
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    );
    // A server refusing an oversized head answers and closes before reading all of it; the
    // unread rest makes its kernel reset the connection, which can overtake the answer.
    // Reading while writing makes that rare; a few attempts make it irrelevant.
    let mut attempts = 0;
    let raw = loop {
        let raw = exchange(address, request.as_bytes());
        attempts += 1;
        if raw.windows(4).any(|w| w == b"\r\n\r\n") || attempts == 5 {
            break raw;
        }
    };
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no HTTP answer to a {}-byte request in {attempts} attempts",
                request.len()
            )
        });
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    let mut headers = awc::http::header::HeaderMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(
                awc::http::header::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                awc::http::header::HeaderValue::from_str(value.trim()).unwrap(),
            );
        }
    }
    let mut body = raw[split + 4..].to_vec();
    if let Some(n) = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        body.truncate(n);
    }
    Res {
        status,
        headers,
        body,
    }
}

// ---------------------------------------------------------------------------------------
// Path traversal on the downloads

const OUTSIDE_MARKER: &str = "OUTSIDE-THE-UPLOADS-FOLDER-7c1e";

/// Ids an attacker might try in `/{id}/download`, as written in the URL.
fn traversal_ids(real_id: &str, outside: &str) -> Vec<String> {
    let mut ids: Vec<String> = [
        "..",
        "...",
        "%2e%2e",
        "%2E%2E",
        "..%2F",
        "..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "%2e%2e%2F%2e%2e%2F%2e%2e%2F%2e%2e%2Fetc%2Fpasswd%00",
        "..%5C..%5C..%5Cwindows%5Cwin.ini",
        "%252e%252e%252f%252e%252e%252fetc%252fpasswd",
        "%c0%ae%c0%ae%c0%afetc%c0%afpasswd",
        "%e0%80%ae%e0%80%ae%2fetc%2fpasswd",
        "%2Fetc%2Fpasswd",
        "%2F%2Fetc%2Fpasswd",
        "C:%5CWindows%5Cwin.ini",
        "file:%2F%2F%2Fetc%2Fpasswd",
        "%00",
        "%00..%2F..%2Fetc%2Fpasswd",
        "..%00",
        "%E2%80%AE..%2F",
        "~root",
        "%7E%2F.ssh%2Fid_rsa",
        "uploads",
        ".",
        "%2E",
        "*",
        "%2A",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    // The real id, tampered with.
    ids.extend([
        format!("{real_id}%00"),
        format!("{real_id}%00.pdf"),
        format!("{real_id}.pdf"),
        format!("{real_id}%2F..%2F..%2Fetc%2Fpasswd"),
        format!("..%2F{real_id}"),
        format!("{real_id}%2F.."),
        format!("{real_id}%0B%00"),
        format!("{real_id}{real_id}"),
        enc(outside),
        enc(&format!("../{outside}")),
        enc(&format!("../../{outside}")),
    ]);
    // Very long ids.
    ids.extend([
        "a".repeat(4_000),
        "..%2F".repeat(1_500),
        "%2e%2e%2f".repeat(800),
        "0".repeat(30_000),
    ]);
    ids
}

#[actix_web::test]
async fn path_traversal_on_every_download_is_refused_cleanly() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let (_, customer) = signed_in(&app, "victim@example.fr", "USER").await;
    let (_, invoice) = invoiced_order(&app, "victim@example.fr", "Correction", 12_000).await;

    // A file next to the uploads folder that must never be served.
    let outside = app.dir.path().join("outside.txt");
    std::fs::write(&outside, OUTSIDE_MARKER).unwrap();
    let pdf = pdf_path(&app, &invoice);
    assert!(pdf.starts_with(&app.settings.storage.root));
    let before = snapshot(&app).await;

    // Sanity: the real downloads work for both callers, so the refusals below mean something.
    let admin_url = format!("/admin/factures/{}/download", invoice.id);
    let customer_url = format!("/invoices/{}/download", invoice.id);
    assert_eq!(get_raw(&app, &admin_url, &admin).await.status, 200);
    assert_eq!(get_raw(&app, &customer_url, &customer).await.status, 200);

    let outside_path = outside.to_string_lossy().into_owned();
    let mut cases = 0;
    for id in traversal_ids(&invoice.id, &outside_path) {
        for (prefix, token) in [("/admin/factures", &admin), ("/invoices", &customer)] {
            for suffix in ["/download", ""] {
                let path = format!("{prefix}/{id}{suffix}");
                let res = get_raw(&app, &path, token).await;
                let shown = &path[..path.len().min(120)];
                assert_clean_4xx(&res, shown);
                let body = String::from_utf8_lossy(&res.body);
                assert!(!res.body.starts_with(b"%PDF"), "{shown}: a PDF was served");
                assert!(
                    !body.contains(OUTSIDE_MARKER) && !body.contains("root:"),
                    "{shown}: a file from outside uploads was served: {res:?}"
                );
                cases += 1;
            }
        }
    }
    // Raw `..` segments and absolute paths, unencoded (not normalised by the server).
    for path in [
        "/admin/factures/../../../../etc/passwd/download",
        "/admin/factures/..//..//etc/passwd",
        "/invoices/../../../../etc/passwd/download",
        "/invoices//etc/passwd/download",
        "/invoices/./download",
        "/admin/factures/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/admin/../../etc/passwd",
        "/../../../../etc/passwd",
    ] {
        for token in [&admin, &customer] {
            let res = get_raw(&app, path, token).await;
            assert_clean_4xx(&res, path);
            assert!(
                !String::from_utf8_lossy(&res.body).contains("root:"),
                "{path}"
            );
            cases += 1;
        }
    }
    // Ids longer than an HTTP client will build.
    for id in [
        "a".repeat(60_000),
        "a".repeat(100_000),
        "..%2F".repeat(20_000),
        "%00".repeat(50_000),
    ] {
        for (prefix, token) in [("/admin/factures", &admin), ("/invoices", &customer)] {
            let target = format!("{prefix}/{id}/download");
            let res = get_over_tcp(&app, &target, token);
            assert_refused_oversized(&res, prefix);
            if target.len() < 65_000 {
                // Short enough for the application: its own answer.
                assert_eq!(res.code(), "invalid_id", "{prefix}: {res:?}");
            }
            cases += 1;
        }
    }
    println!("path traversal: {cases} requests, all refused cleanly");

    // Nothing moved: the database, the PDF, and the outside file.
    assert_eq!(snapshot(&app).await, before);
    assert!(pdf.exists());
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), OUTSIDE_MARKER);
    assert_eq!(get_raw(&app, &customer_url, &customer).await.status, 200);
}

// ---------------------------------------------------------------------------------------
// SQL metacharacters in every string parameter

const SQL_PAYLOADS: &[&str] = &[
    "'",
    "''",
    "\"",
    "`",
    ";",
    "--",
    "/*",
    "*/",
    "\\",
    "\\'",
    "' OR '1'='1",
    "' OR 1=1 --",
    "\" OR \"\"=\"",
    "1; DROP TABLE invoices; --",
    "'; DROP TABLE users; --",
    "'; DELETE FROM invoices WHERE '1'='1",
    "'); UPDATE invoices SET status='PAID'; --",
    "' UNION SELECT password_hash, email, role FROM users --",
    "'||(SELECT password_hash FROM users LIMIT 1)||'",
    "1' AND SLEEP(5) AND '1'='1",
    "'; SELECT pg_sleep(5); --",
    "' AND 1=(SELECT COUNT(*) FROM sqlite_master) --",
    "$1",
    "?",
    ":name",
    "$$ OR 1=1 $$",
    "E'\\x27'",
    ") OR (1=1",
    "%' OR '%'='",
    "_%",
    "[a-z]%",
    "\u{2bc} OR 1=1 --",
    "\u{0}",
    "a\u{0}' OR '1'='1",
    "\u{1a}",
    "\r\n' OR 1=1",
];

/// The invoices a listing returned.
fn listed(res: &Res, key: &str) -> Vec<Value> {
    res.json()[key].as_array().cloned().unwrap_or_default()
}

#[actix_web::test]
async fn sql_metacharacters_in_filters_match_literally_or_are_refused() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let (_, customer) = signed_in(&app, "sql@example.fr", "USER").await;
    invoiced_order(&app, "sql@example.fr", "Correction", 12_000).await;
    invoiced_order(&app, "other@example.fr", "Relecture", 4_990).await;
    let before = snapshot(&app).await;

    let mut cases = 0;
    for payload in SQL_PAYLOADS {
        let value = enc(payload);
        // Free text: a literal match (none of these appear in the data) or a clean 400.
        for (path, key) in [
            (format!("/admin/factures?search={value}"), "invoices"),
            (format!("/admin/webhook-events?type={value}"), "events"),
        ] {
            let res = get_raw(&app, &path, &admin).await;
            match res.status {
                200 => assert_eq!(listed(&res, key), Vec::<Value>::new(), "{path}: {res:?}"),
                _ => {
                    assert_clean_4xx(&res, &path);
                    assert_eq!(res.code(), "invalid_query", "{path}");
                }
            }
            cases += 1;
        }
        // Enumerations, sorting and numbers: refused, naming the parameter.
        for (endpoint, token) in [
            ("/admin/factures", &admin),
            ("/invoices", &customer),
            ("/admin/webhook-events", &admin),
            ("/admin/deliveries", &admin),
            ("/admin/notifications", &admin),
        ] {
            let names: &[&str] = match endpoint {
                "/admin/factures" | "/invoices" => {
                    &["status", "sortBy", "sortOrder", "page", "limit"]
                }
                "/admin/notifications" => &["unread", "page", "limit"],
                _ => &["status", "page", "limit"],
            };
            for name in names {
                let path = format!("{endpoint}?{name}={value}");
                let res = get_raw(&app, &path, token).await;
                let trimmed = payload.trim();
                if trimmed.is_empty() || (*name == "unread" && matches!(trimmed, "0" | "1")) {
                    // Blank counts as absent.
                    assert_eq!(res.status, 200, "{path}: {res:?}");
                } else {
                    assert_clean_4xx(&res, &path);
                    assert_eq!(res.status, 400, "{path}");
                    assert_eq!(res.code(), "invalid_query", "{path}");
                    let message = res.json()["message"].as_str().unwrap().to_owned();
                    assert!(message.contains(&format!("`{name}`")), "{path}: {message}");
                }
                cases += 1;
            }
        }
        // Search on the customer listing is not a filter there: ignored, own invoices only.
        let res = get_raw(&app, &format!("/invoices?search={value}"), &customer).await;
        assert_eq!(res.status, 200, "{payload:?}: {res:?}");
        assert_eq!(listed(&res, "invoices").len(), 1, "{payload:?}");
        cases += 1;
    }
    println!("SQL metacharacters: {cases} requests");

    // The tables are intact and still work.
    assert_eq!(snapshot(&app).await, before);
    let all = get_raw(&app, "/admin/factures?search=correction", &admin).await;
    assert_eq!(all.status, 200, "{all:?}");
    assert_eq!(listed(&all, "invoices").len(), 1);
    assert_eq!(
        listed(&get_raw(&app, "/admin/factures", &admin).await, "invoices").len(),
        2
    );
}

// ---------------------------------------------------------------------------------------
// Oversized and nonsensical query parameters

#[actix_web::test]
async fn oversized_and_nonsensical_query_parameters_are_refused_cleanly() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let (_, customer) = signed_in(&app, "big@example.fr", "USER").await;
    invoiced_order(&app, "big@example.fr", "Correction", 12_000).await;
    let before = snapshot(&app).await;
    let endpoints = [
        ("/admin/factures", &admin),
        ("/invoices", &customer),
        ("/admin/webhook-events", &admin),
        ("/admin/deliveries", &admin),
        ("/admin/notifications", &admin),
    ];

    let mut cases = 0;
    // Numbers out of every range, or not numbers at all: 400 naming the parameter.
    for (name, value) in [
        ("limit", "99999999999999999999"),
        ("limit", "18446744073709551616"),
        ("limit", "4294967296"),
        ("limit", "-1"),
        ("limit", "-0"),
        ("limit", "0"),
        ("limit", "101"),
        ("limit", "1e3"),
        ("limit", "10.5"),
        ("limit", "NaN"),
        ("limit", "Infinity"),
        ("limit", "0x10"),
        ("limit", "%EF%BC%91"),
        ("limit", "%00"),
        ("limit", "1%00"),
        ("page", "99999999999999999999"),
        ("page", "1000001"),
        ("page", "-1"),
        ("page", "-9223372036854775808"),
        ("page", "0"),
        ("page", "NaN"),
        ("page", "-NaN"),
        ("page", "inf"),
        ("page", "1.0"),
        ("page", "%2B%2B1"),
        ("page", "1%2C2"),
        ("page", "true"),
        ("page", "[]"),
    ] {
        for (endpoint, token) in endpoints {
            let path = format!("{endpoint}?{name}={value}");
            let res = get_raw(&app, &path, token).await;
            assert_clean_4xx(&res, &path);
            assert_eq!(
                (res.status, res.code()),
                (400, "invalid_query".into()),
                "{path}"
            );
            let message = res.json()["message"].as_str().unwrap().to_owned();
            assert!(message.contains(&format!("`{name}`")), "{path}: {message}");
            cases += 1;
        }
    }
    // The largest page allowed: an empty page, not an overflow.
    for (endpoint, token) in endpoints {
        let res = get_raw(&app, &format!("{endpoint}?page=1000000&limit=100"), token).await;
        assert_eq!(res.status, 200, "{endpoint}: {res:?}");
        assert_eq!(res.json()["pagination"]["page"], 1_000_000);
        cases += 1;
    }

    // Unknown enumeration values.
    for path in [
        "/admin/factures?status=paid",
        "/admin/factures?status=PAYEE",
        "/admin/factures?status=SENT%00",
        "/admin/factures?sortBy=created_at",
        "/admin/factures?sortBy=amount%20desc",
        "/admin/factures?sortBy=1",
        "/admin/factures?sortOrder=DESC",
        "/admin/factures?sortOrder=desc%2C%20id",
        "/invoices?status=ALL",
        "/invoices?sortBy=password_hash",
        "/admin/webhook-events?status=PROCESSED",
        "/admin/webhook-events?status=*",
        "/admin/deliveries?status=bounced",
        "/admin/deliveries?status=sent%00",
        "/admin/notifications?unread=yes",
        "/admin/notifications?unread=2",
    ] {
        let token = if path.starts_with("/invoices") {
            &customer
        } else {
            &admin
        };
        let res = get_raw(&app, path, token).await;
        assert_clean_4xx(&res, path);
        assert_eq!(
            (res.status, res.code()),
            (400, "invalid_query".into()),
            "{path}"
        );
        cases += 1;
    }

    // Free text over its limit, and a 100 KB query string: refused, never a 5xx.
    for path in [
        format!("/admin/factures?search={}", "a".repeat(201)),
        format!("/admin/factures?search={}", enc(&"é".repeat(201))),
        format!("/admin/webhook-events?type={}", "x".repeat(201)),
        format!("/admin/factures?search={}", "a".repeat(60_000)),
        format!("/admin/factures?search={}", "a".repeat(100_000)),
        format!("/admin/factures?search={}", "%41".repeat(33_000)),
        format!("/admin/webhook-events?type={}", "%27".repeat(33_000)),
        format!("/admin/factures?search={}", "a".repeat(200_000)),
        format!("/admin/factures?limit={}", "9".repeat(60_000)),
        format!("/admin/factures?limit={}", "9".repeat(100_000)),
        format!("/admin/factures?{}", "page=1&".repeat(15_000)),
    ] {
        let res = get_over_tcp(&app, &path, &admin);
        let shown = &path[..path.len().min(80)];
        assert_refused_oversized(&res, shown);
        if path.len() < 65_000 {
            assert_eq!(res.code(), "invalid_query", "{shown}: {res:?}");
        }
        cases += 1;
    }
    // Free text at its limit is fine.
    let res = get_raw(
        &app,
        &format!("/admin/factures?search={}", enc(&"é".repeat(200))),
        &admin,
    )
    .await;
    assert_eq!(res.status, 200, "{res:?}");

    // Malformed query strings, repeated and many parameters.
    let many_unknown: String = (0..3_000).map(|i| format!("p{i}=1&")).collect();
    let many_pages: String = (0..500).map(|_| "page=1&").collect();
    for (query, ok) in [
        ("search=%ZZ", true),
        ("search=%", true),
        ("search=%FF%FE", true),
        ("search=%C3%28", true),
        ("=&&&=&", true),
        ("&&&&", true),
        ("search", true),
        ("unknown=1&other=%00", true),
        (many_unknown.as_str(), true),
        ("page=1&page=1", false),
        ("limit=1&limit=1", false),
        ("status=PAID&status=SENT", false),
        (many_pages.as_str(), false),
    ] {
        let path = format!("/admin/factures?{query}");
        let shown = &path[..path.len().min(80)];
        let res = get_raw(&app, &path, &admin).await;
        if ok {
            assert_eq!(res.status, 200, "{shown}: {res:?}");
        } else {
            assert_clean_4xx(&res, shown);
            assert_eq!(res.code(), "invalid_query", "{shown}");
        }
        cases += 1;
    }
    println!("oversized parameters: {cases} requests");

    assert_eq!(snapshot(&app).await, before);
    let res = get_raw(&app, "/admin/factures", &admin).await;
    assert_eq!(listed(&res, "invoices").len(), 1, "{res:?}");
}

// ---------------------------------------------------------------------------------------
// Stored text: what is written must be storable on both engines

/// A signed event whose id or type holds a control character (a NUL cannot be stored in a
/// PostgreSQL text column) is refused as malformed, not answered 5xx, and the valid events
/// around it still go through.
#[actix_web::test]
async fn signed_events_with_control_characters_in_id_or_type_are_malformed() {
    let app = spawn_app().await;
    let before = snapshot(&app).await;
    let valid = completed(&evt(), &session(), 1000);
    for (field, value) in [
        ("id", "evt_\u{0}nul"),
        ("id", "evt_line\nbreak"),
        ("id", "evt_\u{1b}[31mred"),
        ("type", "checkout.session.completed\u{0}"),
        ("type", "charge.\u{7f}refunded"),
    ] {
        let mut event: Value = serde_json::from_slice(&valid).unwrap();
        event[field] = Value::String(value.to_owned());
        let body = serde_json::to_vec(&event).unwrap();
        let sig = signed(&body);
        let (status, json) = app.post_webhook(body, Some(sig)).await;
        assert_eq!(
            (status, json["error"].as_str()),
            (400, Some("malformed_event")),
            "{field} {value:?}: {json}"
        );
    }
    assert_eq!(snapshot(&app).await, before);
    let (status, json) = app.deliver(valid).await;
    assert_eq!(status, 200, "{json}");
}
