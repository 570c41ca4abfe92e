//! Operations for admins: notifications (list, read, live stream), the webhook event log
//! (filters, details, replay), and mail deliveries (failed ones listed and retried).

use std::time::Duration;

use facture_core::testkit::smtp::{SinkMode, SmtpSink};
use facture_core::{events, invoices, orders};
use futures_util::StreamExt;
use serde_json::Value;

use crate::accounts::{admin_token, invoiced, invoiced_order, order_for, signed_in, WAIT};
use crate::helpers::{eventually, spawn_app, spawn_app_with, until_events_with_status, with_smtp};
use crate::stripe::{completed, evt, session};

#[actix_web::test]
async fn notifications_are_listed_filtered_and_marked_read() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let (_, user) = signed_in(&app, "user@example.fr", "USER").await;
    invoiced_order(&app, "notif@example.fr", "Correction", 12_000).await;

    let list = eventually("the payment notification", WAIT, || async {
        let res = app.get_as("/admin/notifications", &admin).await;
        assert_eq!(res.status, 200, "{res:?}");
        let body = res.json();
        let has_payment = body["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "PAYMENT");
        has_payment.then_some(body)
    })
    .await;
    let payment = list["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "PAYMENT")
        .unwrap()
        .clone();
    assert_eq!(payment["isRead"], false);
    assert_eq!(payment["data"]["event"], "payment_received");
    assert!(payment["title"].as_str().unwrap().contains("120,00"));
    let total = list["pagination"]["total"].as_i64().unwrap();
    let unread = list["unreadCount"].as_i64().unwrap();
    assert!(unread >= 1 && unread == total);

    let id = payment["id"].as_str().unwrap();
    let res = app
        .call(
            "POST",
            &format!("/admin/notifications/{id}/read"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.json()["isRead"], true);
    let unread_only = app
        .get_as("/admin/notifications?unread=true", &admin)
        .await
        .json();
    assert_eq!(unread_only["unreadCount"], unread - 1);
    assert!(unread_only["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["isRead"] == false && n["id"] != id));
    let one = app
        .get_as("/admin/notifications?limit=1", &admin)
        .await
        .json();
    assert_eq!(one["notifications"].as_array().unwrap().len(), 1);
    assert_eq!(one["pagination"]["total"], total);

    let res = app
        .get_as("/admin/notifications?unread=maybe", &admin)
        .await;
    assert_eq!(res.status, 400);
    assert!(res.json()["message"].as_str().unwrap().contains("`unread`"));
    let res = app
        .call("POST", "/admin/notifications/nope/read", Some(&admin), None)
        .await;
    assert_eq!((res.status, res.code()), (400, "invalid_id".into()));
    let res = app
        .call(
            "POST",
            "/admin/notifications/0b6c3d0e-3a59-4a8e-9d55-2a8a4c1f6e11/read",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(res.status, 404);
    assert_eq!(app.get_as("/admin/notifications", &user).await.status, 403);
}

/// Reads the stream until `found` accepts an event's JSON, or fails after the timeout.
async fn next_event<S>(stream: &mut S, buffer: &mut String, found: impl Fn(&Value) -> bool) -> Value
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
{
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if let Some(data) = frame.strip_prefix("data: ") {
                let json: Value = serde_json::from_str(data.trim_end()).expect("JSON data");
                if found(&json) {
                    return json;
                }
            }
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "no matching event in {buffer:?}");
        match actix_web::rt::time::timeout(left, stream.next()).await {
            Ok(Some(chunk)) => buffer.push_str(&String::from_utf8_lossy(&chunk.expect("chunk"))),
            Ok(None) => panic!("the stream ended"),
            Err(_) => panic!("no matching event within {WAIT:?}: {buffer:?}"),
        }
    }
}

#[actix_web::test]
async fn the_stream_pushes_a_notification_when_a_payment_flows() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let (_, user) = signed_in(&app, "user@example.fr", "USER").await;
    let path = "/admin/notifications/stream";
    assert_eq!(app.call("GET", path, None, None).await.status, 401);
    assert_eq!(app.get_as(path, &user).await.status, 403);

    let mut stream = app
        .client
        .get(app.url(path))
        .insert_header(("Authorization", format!("Bearer {admin}")))
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("stream opens");
    assert_eq!(stream.status().as_u16(), 200);
    let content_type = stream
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let mut buffer = String::new();
    let first = actix_web::rt::time::timeout(WAIT, stream.next())
        .await
        .expect("a first frame")
        .expect("open")
        .expect("chunk");
    buffer.push_str(&String::from_utf8_lossy(&first));
    assert!(buffer.starts_with(": connected"), "{buffer:?}");

    let (order, _) = invoiced_order(&app, "live@example.fr", "Correction", 4_200).await;
    let event = next_event(&mut stream, &mut buffer, |n| n["kind"] == "PAYMENT").await;
    assert_eq!(event["data"]["commande_id"], order.id.as_str());
    assert_eq!(event["isRead"], false);
    assert!(event["id"].as_str().is_some());
}

#[actix_web::test]
async fn webhook_events_are_filtered_shown_and_replayed_without_a_second_invoice() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let (order, invoice) = invoiced_order(&app, "events@example.fr", "Correction", 3_000).await;
    let orphan_id = evt();
    assert_eq!(
        app.deliver(completed(&orphan_id, &session(), 777)).await.0,
        200
    );
    until_events_with_status(&app.db, events::status::ORPHAN, 1, WAIT).await;

    let all = app.get_as("/admin/webhook-events", &admin).await;
    assert_eq!(all.status, 200, "{all:?}");
    let all = all.json();
    assert_eq!(all["pagination"]["total"], 2);
    let orphans = app
        .get_as("/admin/webhook-events?status=orphan", &admin)
        .await
        .json();
    assert_eq!(orphans["pagination"]["total"], 1);
    assert_eq!(orphans["events"][0]["stripeEventId"], orphan_id.as_str());
    assert_eq!(orphans["events"][0]["type"], "checkout.session.completed");
    let processed = app
        .get_as(
            "/admin/webhook-events?status=processed&type=checkout.session.completed",
            &admin,
        )
        .await
        .json();
    assert_eq!(processed["pagination"]["total"], 1);
    let event = &processed["events"][0];
    assert_eq!(event["commandeId"], order.id.as_str());
    let none = app
        .get_as("/admin/webhook-events?type=charge.refunded", &admin)
        .await
        .json();
    assert_eq!(none["pagination"]["total"], 0);
    for q in ["status=done", "limit=0", "page=abc"] {
        let res = app
            .get_as(&format!("/admin/webhook-events?{q}"), &admin)
            .await;
        assert_eq!(
            (res.status, res.code()),
            (400, "invalid_query".into()),
            "{q}"
        );
    }

    let id = event["id"].as_str().unwrap();
    let details = app
        .get_as(&format!("/admin/webhook-events/{id}"), &admin)
        .await;
    assert_eq!(details.status, 200, "{details:?}");
    assert_eq!(
        details.json()["payload"]["type"],
        "checkout.session.completed"
    );
    assert_eq!(details.json()["payload"]["id"], event["stripeEventId"]);

    let replay = app
        .call(
            "POST",
            &format!("/admin/webhook-events/{id}/replay"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(replay.status, 202, "{replay:?}");
    eventually("the replayed event to be processed again", WAIT, || async {
        let e = events::get(&app.db, id).await.unwrap()?;
        (e.status == events::status::PROCESSED && e.attempts >= 2).then_some(())
    })
    .await;
    let after = invoiced(&app, &order.id).await;
    assert_eq!(after.id, invoice.id, "no second invoice");
    let total = app.get_as("/admin/factures", &admin).await.json()["pagination"]["total"].clone();
    assert_eq!(total, 1);

    let unknown = "/admin/webhook-events/5d1f3c2a-9b7e-4f6a-8c3d-1e2f3a4b5c6d";
    assert_eq!(app.get_as(unknown, &admin).await.status, 404);
    let res = app
        .call("POST", &format!("{unknown}/replay"), Some(&admin), None)
        .await;
    assert_eq!(res.status, 404, "{res:?}");
    let res = app.get_as("/admin/webhook-events/evt_123", &admin).await;
    assert_eq!((res.status, res.code()), (400, "invalid_id".into()));
}

#[actix_web::test]
async fn failed_deliveries_are_listed_and_retried() {
    let smtp = SmtpSink::start().await;
    smtp.set_mode(SinkMode::Reject550);
    let app = spawn_app_with(with_smtp(&smtp)).await;
    let admin = admin_token(&app).await;
    let order = order_for(&app, "bounce@example.fr", "Correction", 6_000).await;
    let s = order.stripe_session_id.clone().unwrap();
    assert_eq!(app.deliver(completed(&evt(), &s, 6_000)).await.0, 200);

    // The mail step gives up after its retries (a dead letter): nothing else sends now.
    eventually("the mail step to be dead-lettered", WAIT, || async {
        let c = orders::find(&app.db, &order.id).await.unwrap()?;
        c.pipeline_error.is_some().then_some(())
    })
    .await;
    let failed = eventually("a failed delivery to the customer", WAIT, || async {
        let res = app.get_as("/admin/deliveries?status=failed", &admin).await;
        assert_eq!(res.status, 200, "{res:?}");
        let body = res.json();
        body["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["recipient"] == "bounce@example.fr")
            .cloned()
    })
    .await;
    assert_eq!(failed["status"], "failed");
    let invoice = invoices::find_by_commande(&app.db, &order.id)
        .await
        .unwrap()
        .expect("the invoice exists; only its mail failed");
    assert_eq!(failed["invoiceId"], invoice.id.as_str());
    assert!(failed["lastError"].as_str().is_some());
    let sent = app
        .get_as("/admin/deliveries?status=sent", &admin)
        .await
        .json();
    assert!(sent["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["status"] == "sent"));
    let res = app.get_as("/admin/deliveries?status=lost", &admin).await;
    assert_eq!((res.status, res.code()), (400, "invalid_query".into()));
    assert!(res.json()["message"].as_str().unwrap().contains("`status`"));

    smtp.set_mode(SinkMode::Accept);
    let id = failed["id"].as_str().unwrap();
    let res = app
        .call(
            "POST",
            &format!("/admin/deliveries/{id}/retry"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.json()["status"], "sent");
    assert_eq!(res.json()["deliveryId"], id);
    let mail = eventually("the retried mail", WAIT, || async {
        smtp.messages()
            .into_iter()
            .find(|m| m.recipients == ["bounce@example.fr"])
    })
    .await
    .parse();
    assert!(mail.subject.contains(&invoice.number), "{}", mail.subject);

    // Sent now: a second retry sends nothing.
    let again = app
        .call(
            "POST",
            &format!("/admin/deliveries/{id}/retry"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["alreadySent"], true);

    let res = app
        .call(
            "POST",
            "/admin/deliveries/2b0a9f4e-6c1d-4e8f-a3b2-7d6c5e4f3a21/retry",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(res.status, 404, "{res:?}");
}
