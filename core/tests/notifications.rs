#![cfg(feature = "testkit")]
//! Notifications: record (idempotent per dedupe key), list, mark read, follow with
//! `list_since` in order.

use std::collections::HashSet;
use std::time::Duration;

use facture_core::config::{self, MailTransportKind, Settings};
use facture_core::mail::{DeliveryStatus, MailContent, Mailer};
use facture_core::money::Cents;
use facture_core::notifications::{
    cursor_of, is_important, DomainEvent, NotificationKind, NotificationStore, Priority,
};
use facture_core::testkit::db::TestDb;
use facture_core::testkit::smtp::SmtpSink;

fn payment(n: i64) -> DomainEvent {
    DomainEvent::PaymentReceived {
        commande_id: format!("cmd-{n}"),
        customer_name: "Émilie Durand".into(),
        customer_email: "emilie@example.fr".into(),
        amount: Cents(10_000 + n),
        order_title: "Correction".into(),
        guest: n % 2 == 0,
        stripe_session_id: Some(format!("cs_test_{n}")),
        invoice_id: None,
        invoice_number: None,
    }
}

fn activation(n: i64) -> DomainEvent {
    DomainEvent::AccountActivationSent {
        user_id: format!("user-{n}"),
        email: format!("client{n}@example.fr"),
        first_name: "Émilie".into(),
        commande_id: None,
    }
}

#[tokio::test]
async fn record_stores_a_readable_notification() {
    let test_db = TestDb::new();
    let store = NotificationStore::new(test_db.connect().await);

    let (row, created) = store.record(&payment(1), None).await.unwrap();
    assert!(created);
    assert_eq!(row.kind, NotificationKind::Payment.as_str());
    assert_eq!(row.priority, Priority::High.as_str());
    assert_eq!(row.title, "Paiement reçu : 100,01\u{a0}€");
    assert!(
        row.message.contains("Émilie Durand (emilie@example.fr)"),
        "{}",
        row.message
    );
    assert!(!row.is_read);
    let data: serde_json::Value = serde_json::from_str(&row.data).unwrap();
    assert_eq!(data["event"], "payment_received");
    assert_eq!(data["commande_id"], "cmd-1");
    assert_eq!(data["amount"], 10_001);
    assert!(is_important(&payment(1)));

    let stored = store.get(&row.id).await.unwrap().unwrap();
    assert_eq!(stored, row);
    assert_eq!(store.get("missing").await.unwrap(), None);

    let failure = DomainEvent::DeliveryFailed {
        delivery_id: "d-1".into(),
        mail_kind: "payment_confirmation".into(),
        recipient: "emilie@example.fr".into(),
        error: "permanent error (550): 5.1.1 User unknown".into(),
        attempts: 1,
        invoice_id: Some("inv-1".into()),
        commande_id: Some("cmd-1".into()),
    };
    let (row, _) = store.record(&failure, None).await.unwrap();
    assert_eq!(row.kind, "MAIL");
    assert_eq!(row.priority, "HIGH");
    assert!(
        row.message.contains("confirmation de paiement"),
        "{}",
        row.message
    );
    assert!(row.message.contains("(1 tentative)"), "{}", row.message);
    let (row, _) = store.record(&activation(1), None).await.unwrap();
    assert_eq!(
        (row.kind.as_str(), row.priority.as_str()),
        ("ACCOUNT", "LOW")
    );
}

#[tokio::test]
async fn a_dedupe_key_records_once() {
    let test_db = TestDb::new();
    let store = NotificationStore::new(test_db.connect().await);
    let (first, created) = store
        .record(&payment(1), Some("evt_1:payment"))
        .await
        .unwrap();
    assert!(created);
    let (again, created) = store
        .record(&payment(2), Some("evt_1:payment"))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again, first, "the stored row, unchanged");
    // Concurrent duplicates: still one row.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .record(&payment(3), Some("evt_3:payment"))
                .await
                .unwrap()
                .1
        }));
    }
    let mut created = 0;
    for task in tasks {
        created += usize::from(task.await.unwrap());
    }
    assert_eq!(created, 1);
    let (_, total) = store.list(false, 1, 50).await.unwrap();
    assert_eq!(total, 2);
}

#[tokio::test]
async fn list_pages_and_mark_read() {
    let test_db = TestDb::new();
    let store = NotificationStore::new(test_db.connect().await);
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(store.record(&activation(n), None).await.unwrap().0.id);
    }
    let (page1, total) = store.list(false, 1, 2).await.unwrap();
    assert_eq!(total, 5);
    assert_eq!(
        page1.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [ids[4].as_str(), ids[3].as_str()],
        "newest first"
    );
    let (page3, _) = store.list(false, 3, 2).await.unwrap();
    assert_eq!(page3.len(), 1);
    assert_eq!(page3[0].id, ids[0]);

    assert!(store.mark_read(&ids[1]).await.unwrap());
    assert!(
        store.mark_read(&ids[1]).await.unwrap(),
        "still found when already read"
    );
    assert!(!store.mark_read("missing").await.unwrap());
    assert!(store.get(&ids[1]).await.unwrap().unwrap().is_read);
    let (unread, total) = store.list(true, 1, 50).await.unwrap();
    assert_eq!(total, 4);
    assert!(unread.iter().all(|r| !r.is_read && r.id != ids[1]));
    assert_eq!(store.unread_count().await.unwrap(), 4);
    assert_eq!(store.mark_all_read().await.unwrap(), 4);
    assert_eq!(store.unread_count().await.unwrap(), 0);
    let (all, total) = store.list(false, 1, 50).await.unwrap();
    assert_eq!((all.len(), total), (5, 5));
}

#[tokio::test]
async fn list_since_follows_new_rows_in_order() {
    let test_db = TestDb::new();
    let store = NotificationStore::new(test_db.connect().await);
    assert!(store.list_since(None, 10).await.unwrap().is_empty());
    assert_eq!(store.latest_cursor().await.unwrap(), None);
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(store.record(&payment(n), None).await.unwrap().0.id);
    }
    let first = store.list_since(None, 2).await.unwrap();
    assert_eq!(
        first.iter().map(|r| &r.id).collect::<Vec<_>>(),
        [&ids[0], &ids[1]]
    );
    let next = store
        .list_since(Some(cursor_of(&first[1])), 2)
        .await
        .unwrap();
    assert_eq!(
        next.iter().map(|r| &r.id).collect::<Vec<_>>(),
        [&ids[2], &ids[3]]
    );
    let last = store
        .list_since(Some(cursor_of(&next[1])), 10)
        .await
        .unwrap();
    assert_eq!(last.iter().map(|r| &r.id).collect::<Vec<_>>(), [&ids[4]]);
    let cursor = cursor_of(&last[0]);
    assert_eq!(store.latest_cursor().await.unwrap(), Some(cursor.clone()));
    assert!(store
        .list_since(Some(cursor.clone()), 10)
        .await
        .unwrap()
        .is_empty());
    let (new, _) = store.record(&activation(9), None).await.unwrap();
    let after = store.list_since(Some(cursor), 10).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, new.id);
}

#[tokio::test]
async fn a_follower_sees_every_row_while_writers_race() {
    let test_db = TestDb::new();
    let store = NotificationStore::new(test_db.connect().await);
    const WRITERS: i64 = 4;
    const EACH: i64 = 10;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                store.record(&payment(w * 100 + i), None).await.unwrap();
            }
        }));
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < (WRITERS * EACH) as usize {
        assert!(
            tokio::time::Instant::now() < deadline,
            "follower saw {}",
            seen.len()
        );
        let rows = store.list_since(cursor.clone(), 7).await.unwrap();
        if let Some(last) = rows.last() {
            cursor = Some(cursor_of(last));
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen.extend(rows);
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(store.list_since(cursor, 10).await.unwrap().is_empty());
    let unique: HashSet<_> = seen.iter().map(|r| r.id.clone()).collect();
    assert_eq!(unique.len(), seen.len(), "no row seen twice");
    assert!(
        seen.windows(2)
            .all(|w| (w[0].created_at, &w[0].id) < (w[1].created_at, &w[1].id)),
        "strictly ordered"
    );
}

#[tokio::test]
async fn important_events_are_mailed_to_the_admin_once() {
    use figment::providers::{Format, Toml};
    let test_db = TestDb::new();
    let db = test_db.connect().await;
    let sink = SmtpSink::start().await;
    let mut s =
        Settings::from_figment(figment::Figment::from(Toml::string(config::DEFAULT_TOML))).unwrap();
    s.mail.transport = MailTransportKind::Smtp;
    s.mail.smtp_url = sink.url();
    let mailer = Mailer::new(&s.mail, &s.app, db.clone()).unwrap();
    let store = NotificationStore::new(db);

    let first = store
        .record_and_mail(&mailer, &payment(1), Some("evt_1"))
        .await
        .unwrap();
    assert!(first.created);
    let mail = first.admin_mail.expect("a payment is mailed");
    assert_eq!(mail.status, DeliveryStatus::Sent);
    assert_eq!(mail.delivery.kind, "admin_payment");
    assert_eq!(mail.delivery.commande_id.as_deref(), Some("cmd-1"));
    let again = store
        .record_and_mail(&mailer, &payment(1), Some("evt_1"))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.notification.id, first.notification.id);
    assert!(again.admin_mail.unwrap().already_sent);

    let quiet = store
        .record_and_mail(&mailer, &activation(1), Some("evt_2"))
        .await
        .unwrap();
    assert!(quiet.created && quiet.admin_mail.is_none());

    let received = sink.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(received[0].recipients, vec!["admin@example.fr".to_owned()]);
    let parsed = received[0].parse();
    assert!(
        parsed.subject.starts_with("Nouveau paiement"),
        "{}",
        parsed.subject
    );
    assert!(parsed
        .text
        .unwrap()
        .contains("Émilie Durand <emilie@example.fr>"));
    assert!(matches!(
        facture_core::notifications::admin_mail(&payment(1)),
        Some(MailContent::AdminPayment { .. })
    ));
}
