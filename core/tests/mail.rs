#![cfg(feature = "testkit")]
//! Mail: templates, the SMTP transport against a real SMTP server (the testkit sink),
//! retries, permanent failures, the file transport, the delivery log and dedupe keys.

use std::time::Duration;

use chrono::NaiveDate;
use facture_core::config::{self, MailTransportKind, Settings};
use facture_core::db::Db;
use facture_core::mail::{
    AlertDetail, Attachment, Deferred, DeliveryStatus, MailContent, MailError, Mailer,
    OutgoingMail, Templates,
};
use facture_core::money::Cents;
use facture_core::testkit::db::TestDb;
use facture_core::testkit::smtp::{parse_mail, SinkMode, SmtpSink};

const NBSP: char = '\u{a0}';

fn settings() -> Settings {
    use figment::providers::{Format, Toml};
    Settings::from_figment(figment::Figment::from(Toml::string(config::DEFAULT_TOML)))
        .expect("default settings")
}

fn smtp_settings(sink: &SmtpSink, max_attempts: u32) -> Settings {
    let mut s = settings();
    s.mail.transport = MailTransportKind::Smtp;
    s.mail.smtp_url = sink.url();
    s.mail.timeout_secs = 5;
    s.mail.max_attempts = max_attempts;
    s.mail.retry_initial_ms = 30;
    s.mail.retry_max_ms = 200;
    s
}

fn mailer(s: &Settings, db: Db) -> Mailer {
    Mailer::new(&s.mail, &s.app, db).expect("mailer builds")
}

/// Bytes that survive only an exact transfer: every byte value, CR/LF included.
fn pdf_bytes() -> Vec<u8> {
    let mut bytes = b"%PDF-1.7\n".to_vec();
    bytes.extend((0..=255u8).cycle().take(5_000));
    bytes.extend_from_slice(b"\r\n.\r\n..\n%%EOF\n");
    bytes
}

fn confirmation(new_account: bool) -> MailContent {
    MailContent::PaymentConfirmation {
        first_name: "Émilie <script>alert(1)</script>".into(),
        invoice_number: "FAC-2026-000001".into(),
        amount: Cents(123_456),
        order_title: "Correction du roman Le Horla".into(),
        new_account,
    }
}

fn confirmation_mail(to: &str) -> OutgoingMail {
    OutgoingMail::new(to, confirmation(true))
        .attachment(Attachment::invoice_pdf("FAC-2026-000001", pdf_bytes()))
        .invoice_id("inv-1")
        .commande_id("cmd-1")
}

// ---------------------------------------------------------------------------------------
// Templates

#[test]
fn every_template_renders_with_representative_data() {
    let s = settings();
    let t = Templates::new(&s.mail, &s.app).unwrap();
    let amount = format!("1{NBSP}234,56{NBSP}€");

    let r = t.render(&confirmation(true)).unwrap();
    assert_eq!(
        r.subject,
        "Confirmation de votre paiement – facture FAC-2026-000001"
    );
    for body in [&r.text, &r.html] {
        assert!(body.contains(&amount), "{body}");
        assert!(body.contains("FAC-2026-000001"), "{body}");
        assert!(body.contains("http://127.0.0.1:8080/factures"), "{body}");
        assert!(body.contains("Un compte client a été créé"), "{body}");
        assert!(body.contains("FAC-2026-000001.pdf"), "{body}");
    }
    // Text is not escaped; HTML is.
    assert!(
        r.text.contains("Bonjour Émilie <script>alert(1)</script>,"),
        "{}",
        r.text
    );
    assert!(!r.html.contains("<script>"), "{}", r.html);
    assert!(
        r.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        r.html
    );
    assert!(r.html.starts_with("<!DOCTYPE html>"));
    let signed_in = t.render(&confirmation(false)).unwrap();
    assert!(!signed_in.text.contains("compte client a été créé"));
    assert!(!signed_in.html.contains("compte client a été créé"));
    assert!(!signed_in.text.contains("\n\n\n"), "{}", signed_in.text);

    let admin_payment = |invoice: bool, guest: bool| MailContent::AdminPayment {
        customer_name: "Jean <b>Dupont</b>".into(),
        customer_email: "jean@example.fr".into(),
        amount: Cents(9_900),
        order_title: "Relecture".into(),
        commande_id: "cmd-7".into(),
        invoice_id: invoice.then(|| "inv-7".into()),
        invoice_number: invoice.then(|| "FAC-2026-000007".into()),
        guest,
    };
    let admin = admin_payment(true, true);
    let r = t.render(&admin).unwrap();
    assert_eq!(
        r.subject,
        format!("Nouveau paiement : 99,00{NBSP}€ – Jean <b>Dupont</b>")
    );
    assert!(
        r.text
            .contains("Client : Jean <b>Dupont</b> <jean@example.fr>"),
        "{}",
        r.text
    );
    assert!(r.text.contains("commande en invité"), "{}", r.text);
    assert!(r.text.contains("Facture : FAC-2026-000007\n"), "{}", r.text);
    assert!(
        r.text
            .contains("http://127.0.0.1:8080/admin/factures/inv-7"),
        "{}",
        r.text
    );
    assert!(
        r.html.contains("Jean &lt;b&gt;Dupont&lt;/b&gt;"),
        "{}",
        r.html
    );
    assert!(r
        .html
        .contains("href=\"http://127.0.0.1:8080/admin/factures/inv-7\""));
    let pending = admin_payment(false, false);
    let r = t.render(&pending).unwrap();
    assert!(r.text.contains("client connecté"), "{}", r.text);
    assert!(r.text.contains("en cours d'émission"), "{}", r.text);
    assert!(
        r.text
            .contains("http://127.0.0.1:8080/admin/commandes/cmd-7"),
        "{}",
        r.text
    );

    let activation = MailContent::AccountActivation {
        first_name: "Émilie".into(),
        email: "emilie@example.fr".into(),
        token: "ab12/cd+34".into(),
        expires_at: NaiveDate::from_ymd_opt(2026, 11, 27)
            .unwrap()
            .and_hms_opt(14, 30, 0)
            .unwrap(),
    };
    let r = t.render(&activation).unwrap();
    assert_eq!(r.subject, "Activez votre compte client");
    assert!(
        r.text
            .contains("http://127.0.0.1:8080/activation?token=ab12%2Fcd%2B34"),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("jusqu'au 27 novembre 2026 à 15 h 30"),
        "{}",
        r.text
    );
    assert!(
        r.html
            .contains("href=\"http://127.0.0.1:8080/activation?token=ab12%2Fcd%2B34\""),
        "{}",
        r.html
    );

    let resent = MailContent::InvoiceResent {
        first_name: "Émilie".into(),
        invoice_number: "FAC-2026-000003".into(),
        amount: Cents(5_000),
        issued_on: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
    };
    let r = t.render(&resent).unwrap();
    assert_eq!(r.subject, "Votre facture FAC-2026-000003");
    assert!(r.text.contains("du 1er mars 2026"), "{}", r.text);
    assert!(r.text.contains(&format!("50,00{NBSP}€")), "{}", r.text);

    let alert = MailContent::AdminAlert {
        title: "Paiement échoué".into(),
        message: "Refusé par la banque.".into(),
        details: vec![AlertDetail::new("Raison", "card_declined")],
        admin_path: Some("/admin/commandes/cmd-9".into()),
    };
    let r = t.render(&alert).unwrap();
    assert_eq!(r.subject, "[Alerte] Paiement échoué");
    assert!(r.text.contains("Raison : card_declined\n"), "{}", r.text);
    assert!(
        r.text
            .contains("http://127.0.0.1:8080/admin/commandes/cmd-9"),
        "{}",
        r.text
    );
    assert!(r.html.contains("card_declined"), "{}", r.html);

    for sample in MailContent::samples() {
        let r = t.render(&sample).unwrap();
        assert!(!r.subject.is_empty() && !r.subject.contains('\n'));
        assert!(
            r.text.len() > 40 && r.html.contains("</html>"),
            "{}",
            sample.kind()
        );
    }
}

#[test]
fn a_missing_variable_is_an_error() {
    let s = settings();
    let t = Templates::new(&s.mail, &s.app).unwrap();
    let partial = serde_json::json!({
        "first_name": "Émilie",
        "invoice_number": "FAC-2026-000001",
        "amount": "10,00 €",
        "order_title": "x",
        "new_account": false,
        "attachment_name": "FAC-2026-000001.pdf",
        // billing_url is missing
    });
    match t.render_kind("payment_confirmation", partial) {
        Err(MailError::Template { name, message }) => {
            assert_eq!(name, "payment_confirmation/body.txt.j2");
            assert!(message.contains("undefined"), "{message}");
        }
        other => panic!("expected a template error, got {other:?}"),
    }
}

#[test]
fn templates_dir_overrides_by_name_and_is_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("payment_confirmation");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("subject.txt.j2"), "Merci {{ first_name }} !\n").unwrap();
    let mut s = settings();
    s.mail.templates_dir = dir.path().to_string_lossy().into_owned();
    let t = Templates::new(&s.mail, &s.app).unwrap();
    let r = t.render(&confirmation(false)).unwrap();
    assert_eq!(r.subject, "Merci Émilie <script>alert(1)</script> !");
    // The other templates stay embedded.
    assert!(r.text.contains("Nous avons bien reçu votre paiement"));

    std::fs::write(folder.join("body.html.j2"), "<p>{{ no_such_variable }}</p>").unwrap();
    match Templates::new(&s.mail, &s.app) {
        Err(MailError::Template { name, .. }) => {
            assert_eq!(name, "payment_confirmation/body.html.j2")
        }
        other => panic!("expected a template error, got {other:?}"),
    }
    std::fs::write(folder.join("body.html.j2"), "<p>{% if %}</p>").unwrap();
    assert!(matches!(
        Templates::new(&s.mail, &s.app),
        Err(MailError::Template { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// SMTP

#[tokio::test]
async fn smtp_delivers_text_html_and_the_pdf() {
    let test_db = TestDb::new();
    let sink = SmtpSink::start().await;
    let s = smtp_settings(&sink, 3);
    let mailer = mailer(&s, test_db.connect().await);

    let outcome = mailer
        .send(confirmation_mail("Émilie Durand <emilie@example.fr>"))
        .await
        .unwrap();
    assert_eq!(outcome.status, DeliveryStatus::Sent);
    assert_eq!(outcome.attempts, 1);
    assert!(!outcome.already_sent);

    let received = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(received.len(), 1);
    let message = &received[0];
    assert_eq!(message.from, "facturation@example.fr");
    assert_eq!(message.recipients, vec!["emilie@example.fr".to_owned()]);

    let mail = message.parse();
    let rendered = mailer.templates().render(&confirmation(true)).unwrap();
    assert_eq!(mail.subject, rendered.subject);
    assert_eq!(mail.header("To"), Some("Émilie Durand <emilie@example.fr>"));
    assert!(mail
        .header("From")
        .unwrap()
        .contains("facturation@example.fr"));
    assert_eq!(
        mail.header("Message-ID"),
        Some(format!("<{}@example.fr>", outcome.delivery_id).as_str())
    );
    assert_eq!(
        mail.text.as_deref().map(str::trim_end),
        Some(rendered.text.trim_end())
    );
    assert_eq!(
        mail.html.as_deref().map(str::trim_end),
        Some(rendered.html.trim_end())
    );
    assert_eq!(
        mail.content_types,
        [
            "multipart/mixed",
            "multipart/alternative",
            "text/plain",
            "text/html",
            "application/pdf"
        ]
    );
    assert_eq!(mail.attachments.len(), 1);
    let pdf = &mail.attachments[0];
    assert_eq!(pdf.filename.as_deref(), Some("FAC-2026-000001.pdf"));
    assert_eq!(pdf.content_type, "application/pdf");
    assert_eq!(pdf.bytes, pdf_bytes());

    let row = mailer
        .deliveries()
        .get(&outcome.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.kind, "payment_confirmation");
    assert_eq!(row.recipient, "Émilie Durand <emilie@example.fr>");
    assert_eq!(row.subject, rendered.subject);
    assert_eq!(row.invoice_id.as_deref(), Some("inv-1"));
    assert_eq!(row.commande_id.as_deref(), Some("cmd-1"));
    assert_eq!(row.status, "sent");
    assert_eq!(row.attempts, 1);
    assert_eq!(row.last_error, None);
    assert!(row.sent_at.is_some());

    // A message without attachment is multipart/alternative only.
    let outcome = mailer
        .send(OutgoingMail::new(
            mailer.admin_address(),
            MailContent::samples().remove(1),
        ))
        .await
        .unwrap();
    assert!(outcome.is_sent());
    let received = sink.wait_for(2, Duration::from_secs(5)).await;
    let mail = parse_mail(&received[1].data);
    assert_eq!(received[1].recipients, vec!["admin@example.fr".to_owned()]);
    assert_eq!(
        mail.content_types,
        ["multipart/alternative", "text/plain", "text/html"]
    );
    assert!(mail.attachments.is_empty());
}

#[tokio::test]
async fn smtp_down_then_back_is_retried_until_delivered() {
    let test_db = TestDb::new();
    let sink = SmtpSink::start().await;
    let s = smtp_settings(&sink, 30);
    let mailer = mailer(&s, test_db.connect().await);

    // Warm the pool with a live connection, then take the server away.
    assert!(mailer
        .send(OutgoingMail::new(
            "warm@example.fr",
            MailContent::samples().remove(4)
        ))
        .await
        .unwrap()
        .is_sent());
    sink.stop().await;

    let sending = tokio::spawn({
        let mailer = mailer.clone();
        async move { mailer.send(confirmation_mail("emilie@example.fr")).await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !sending.is_finished(),
        "still retrying while the server is down"
    );
    sink.restart().await;

    let outcome = tokio::time::timeout(Duration::from_secs(20), sending)
        .await
        .expect("delivered after the restart")
        .unwrap()
        .unwrap();
    assert_eq!(outcome.status, DeliveryStatus::Sent, "{outcome:?}");
    assert!(outcome.attempts > 1, "{outcome:?}");
    assert_eq!(outcome.last_error, None);
    let row = mailer
        .deliveries()
        .get(&outcome.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.attempts as u32, outcome.attempts);
    assert_eq!(row.status, "sent");

    let received = sink.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(received[1].recipients, vec!["emilie@example.fr".to_owned()]);
    assert_eq!(received[1].parse().attachments[0].bytes, pdf_bytes());
}

#[tokio::test]
async fn concurrent_mails_share_at_most_smtp_connections_connections() {
    let test_db = TestDb::new();
    let sink = SmtpSink::start().await;
    let mut s = smtp_settings(&sink, 1);
    s.mail.smtp_connections = 2;
    let mailer = mailer(&s, test_db.connect().await);

    let sends = (0..20).map(|i| {
        let mailer = mailer.clone();
        tokio::spawn(async move {
            mailer
                .send(confirmation_mail(&format!("c{i}@example.fr")))
                .await
        })
    });
    for sent in futures_util::future::join_all(sends).await {
        assert_eq!(sent.unwrap().unwrap().status, DeliveryStatus::Sent);
    }
    for i in 0..5 {
        let outcome = mailer
            .send(confirmation_mail(&format!("s{i}@example.fr")))
            .await
            .unwrap();
        assert_eq!(outcome.attempts, 1, "{outcome:?}");
    }

    assert_eq!(sink.wait_for(25, Duration::from_secs(5)).await.len(), 25);
    assert!(
        sink.connections() <= 2,
        "25 mails over {} connections: the others must wait for a pooled one",
        sink.connections()
    );
}

#[tokio::test]
async fn the_load_tests_discarding_sink_counts_every_mail_and_keeps_none() {
    let test_db = TestDb::new();
    let sink = SmtpSink::start_discarding_on(0).await.unwrap();
    let mailer = mailer(&smtp_settings(&sink, 1), test_db.connect().await);

    for i in 0..3 {
        let sent = mailer
            .send(confirmation_mail(&format!("d{i}@example.fr")))
            .await
            .unwrap();
        assert_eq!(sent.status, DeliveryStatus::Sent);
    }

    assert_eq!(sink.accepted(), 3);
    assert!(
        sink.messages().is_empty(),
        "a discarding sink keeps no message"
    );
}

#[tokio::test]
async fn a_pooled_connection_the_server_dropped_is_replaced_without_a_retry() {
    let test_db = TestDb::new();
    let sink = SmtpSink::start().await;
    // One attempt only: a lost idle connection must not cost the message its attempt.
    let s = smtp_settings(&sink, 1);
    let mailer = mailer(&s, test_db.connect().await);
    let first = mailer
        .send(confirmation_mail("a@example.fr"))
        .await
        .unwrap();
    assert_eq!(first.status, DeliveryStatus::Sent);

    sink.stop().await; // closes the pooled connection
    sink.restart().await;
    let second = mailer
        .send(confirmation_mail("b@example.fr"))
        .await
        .unwrap();

    assert_eq!(second.status, DeliveryStatus::Sent, "{second:?}");
    assert_eq!(second.attempts, 1);
    let received = sink.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(received[1].recipients, vec!["b@example.fr".to_owned()]);
    assert_eq!(sink.connections(), 2);
}

#[tokio::test]
async fn smtp_4xx_is_retried_then_recorded_as_failed() {
    let test_db = TestDb::new();
    let sink = SmtpSink::start().await;
    sink.set_mode(SinkMode::Tempfail451);
    let s = smtp_settings(&sink, 3);
    let mailer = mailer(&s, test_db.connect().await);

    let outcome = mailer
        .send(confirmation_mail("emilie@example.fr"))
        .await
        .unwrap();
    assert_eq!(outcome.status, DeliveryStatus::Failed);
    assert_eq!(outcome.attempts, 3);
    assert_eq!(sink.transactions(), 3);
    let error = outcome.last_error.unwrap();
    assert!(
        error.contains("451") && error.contains("try again later"),
        "{error}"
    );

    // A transient refusal that clears up is delivered.
    sink.set_mode(SinkMode::Accept);
    let outcome = mailer
        .send(confirmation_mail("emilie@example.fr"))
        .await
        .unwrap();
    assert!(outcome.is_sent());
}

#[tokio::test]
async fn smtp_550_fails_at_once_with_the_servers_answer() {
    let test_db = TestDb::new();
    let sink = SmtpSink::start().await;
    sink.set_mode(SinkMode::Reject550);
    let s = smtp_settings(&sink, 5);
    let mailer = mailer(&s, test_db.connect().await);

    let outcome = mailer
        .send(confirmation_mail("nobody@example.fr"))
        .await
        .unwrap();
    assert_eq!(outcome.status, DeliveryStatus::Failed);
    assert_eq!(outcome.attempts, 1, "not retried");
    assert_eq!(sink.transactions(), 1);
    let error = outcome.last_error.clone().unwrap();
    assert!(error.contains("550"), "{error}");
    assert!(
        error.contains("Recipient address rejected: User unknown"),
        "{error}"
    );
    let row = mailer
        .deliveries()
        .get(&outcome.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "failed");
    assert_eq!(row.attempts, 1);
    assert_eq!(row.last_error.as_deref(), Some(error.as_str()));
    assert_eq!(row.sent_at, None);
    assert!(sink.messages().is_empty());

    // The admin retries it later, once the address is fixed on the server side.
    sink.set_mode(SinkMode::Accept);
    let mismatch = mailer
        .retry_delivery(
            &outcome.delivery_id,
            &MailContent::samples().remove(3),
            None,
        )
        .await;
    assert!(
        matches!(mismatch, Err(MailError::KindMismatch { .. })),
        "{mismatch:?}"
    );
    let retried = mailer
        .retry_delivery(
            &outcome.delivery_id,
            &confirmation(true),
            Some(Attachment::invoice_pdf("FAC-2026-000001", pdf_bytes())),
        )
        .await
        .unwrap();
    assert_eq!(retried.delivery_id, outcome.delivery_id);
    assert_eq!(retried.status, DeliveryStatus::Sent);
    assert_eq!(retried.attempts, 2, "attempts accumulate on the row");
    assert_eq!(retried.last_error, None);
    let received = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(received[0].recipients, vec!["nobody@example.fr".to_owned()]);
    assert_eq!(received[0].parse().attachments[0].bytes, pdf_bytes());

    // Retrying a sent delivery sends nothing.
    let again = mailer
        .retry_delivery(&outcome.delivery_id, &confirmation(true), None)
        .await
        .unwrap();
    assert!(again.already_sent);
    assert_eq!(sink.messages().len(), 1);
    assert!(matches!(
        mailer
            .retry_delivery("no-such-id", &confirmation(true), None)
            .await,
        Err(MailError::NotFound(_))
    ));
}

#[tokio::test]
async fn an_invalid_address_fails_without_contacting_the_server() {
    let test_db = TestDb::new();
    let sink = SmtpSink::start().await;
    let s = smtp_settings(&sink, 5);
    let mailer = mailer(&s, test_db.connect().await);
    let outcome = mailer
        .send(confirmation_mail("not an address"))
        .await
        .unwrap();
    assert_eq!(outcome.status, DeliveryStatus::Failed);
    assert_eq!(outcome.attempts, 0);
    assert!(outcome
        .last_error
        .unwrap()
        .contains("invalid recipient address"));
    assert_eq!(sink.connections(), 0);
}

#[tokio::test]
async fn a_sent_dedupe_key_is_not_sent_again_and_an_unsent_one_is_reused() {
    let test_db = TestDb::new();
    let sink = SmtpSink::start().await;
    let s = smtp_settings(&sink, 2);
    let mailer = mailer(&s, test_db.connect().await);
    let keyed = |key: &str| confirmation_mail("emilie@example.fr").dedupe_key(key);

    let first = mailer
        .send(keyed("cmd-1:payment_confirmation"))
        .await
        .unwrap();
    assert!(first.is_sent() && !first.already_sent);
    let second = mailer
        .send(keyed("cmd-1:payment_confirmation"))
        .await
        .unwrap();
    assert!(second.already_sent);
    assert_eq!(second.delivery_id, first.delivery_id);
    assert_eq!(second.status, DeliveryStatus::Sent);
    assert_eq!(second.attempts, 1);
    sink.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sink.messages().len(), 1, "sent once");

    // A key whose send failed is taken over by the next send with that key.
    sink.set_mode(SinkMode::Reject550);
    let failed = mailer
        .send(keyed("cmd-2:payment_confirmation"))
        .await
        .unwrap();
    assert_eq!(failed.status, DeliveryStatus::Failed);
    sink.set_mode(SinkMode::Accept);
    let resent = mailer
        .send(keyed("cmd-2:payment_confirmation"))
        .await
        .unwrap();
    assert_eq!(resent.delivery_id, failed.delivery_id);
    assert!(resent.is_sent() && !resent.already_sent);
    assert_eq!(resent.attempts, 2);
    assert_eq!(sink.wait_for(2, Duration::from_secs(5)).await.len(), 2);

    let (rows, total) = mailer.deliveries().list(None, 1, 50).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(rows.len(), 2);
}

#[tokio::test]
async fn a_deferred_send_leaves_its_row_to_the_caller_and_records_failures_at_once() {
    let test_db = TestDb::new();
    let sink = SmtpSink::start().await;
    let s = smtp_settings(&sink, 1);
    let mailer = mailer(&s, test_db.connect().await);
    let keyed = |key: &str| confirmation_mail("emilie@example.fr").dedupe_key(key);

    // Sent, but nothing is written until the caller writes it.
    let Deferred::Sent(finished) = mailer.send_deferred(keyed("invoice:1")).await.unwrap() else {
        panic!("a message the server accepts comes back to record");
    };
    sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(finished.delivery().status, "sent");
    assert_eq!(finished.delivery().attempts, 1);
    let deliveries = mailer.deliveries();
    assert!(deliveries
        .find_by_dedupe_key("invoice:1")
        .await
        .unwrap()
        .is_none());

    // Unrecorded, the key is still free: a re-drive sends again (at least once).
    let Deferred::Sent(again) = mailer.send_deferred(keyed("invoice:1")).await.unwrap() else {
        panic!("an unrecorded send does not count as sent");
    };
    assert_eq!(sink.wait_for(2, Duration::from_secs(5)).await.len(), 2);
    let stored = deliveries.write(&again).await.unwrap();
    assert_eq!(stored.status, "sent");
    assert!(stored.sent_at.is_some());

    // Recorded, it is never sent again.
    let Deferred::Recorded(outcome) = mailer.send_deferred(keyed("invoice:1")).await.unwrap()
    else {
        panic!("a recorded send is found by its key");
    };
    assert!(outcome.already_sent);
    assert_eq!(outcome.delivery_id, stored.id);

    // A refusal is written at once, for the admins to see, and comes back as it is stored.
    sink.set_mode(SinkMode::Reject550);
    let Deferred::Recorded(failed) = mailer.send_deferred(keyed("invoice:2")).await.unwrap() else {
        panic!("a failed send is recorded by the mailer");
    };
    assert_eq!(failed.status, DeliveryStatus::Failed);
    assert!(failed.permanent);
    let row = deliveries
        .find_by_dedupe_key("invoice:2")
        .await
        .unwrap()
        .expect("the failure is stored");
    assert_eq!(row.status, "failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        sink.messages().len(),
        2,
        "the refused message was not delivered"
    );
}

#[tokio::test]
async fn deliveries_list_filters_by_status_and_pages() {
    let test_db = TestDb::new();
    let sink = SmtpSink::start().await;
    let s = smtp_settings(&sink, 1);
    let mailer = mailer(&s, test_db.connect().await);
    for i in 0..5 {
        let to = format!("client{i}@example.fr");
        assert!(mailer
            .send(OutgoingMail::new(to, confirmation(false)).commande_id("cmd-x"))
            .await
            .unwrap()
            .is_sent());
    }
    sink.set_mode(SinkMode::Reject550);
    for i in 0..2 {
        let to = format!("refused{i}@example.fr");
        mailer
            .send(OutgoingMail::new(to, confirmation(false)))
            .await
            .unwrap();
    }
    let d = mailer.deliveries();
    let (all, total) = d.list(None, 1, 100).await.unwrap();
    assert_eq!((all.len(), total), (7, 7));
    assert_eq!(all[0].recipient, "refused1@example.fr", "newest first");
    let (failed, total) = d.list(Some(DeliveryStatus::Failed), 1, 100).await.unwrap();
    assert_eq!((failed.len(), total), (2, 2));
    assert!(failed.iter().all(|r| r.status == "failed"));
    let (page2, total) = d.list(Some(DeliveryStatus::Sent), 2, 2).await.unwrap();
    assert_eq!(total, 5);
    assert_eq!(
        page2
            .iter()
            .map(|r| r.recipient.as_str())
            .collect::<Vec<_>>(),
        ["client2@example.fr", "client1@example.fr"]
    );
    let (page3, _) = d.list(Some(DeliveryStatus::Sent), 3, 2).await.unwrap();
    assert_eq!(page3.len(), 1);
    let (none, total) = d.list(Some(DeliveryStatus::Queued), 1, 10).await.unwrap();
    assert_eq!((none.len(), total), (0, 0));
    assert_eq!(d.list_for_commande("cmd-x").await.unwrap().len(), 5);
    assert_eq!(d.get("missing").await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------
// File transport

#[tokio::test]
async fn file_transport_writes_an_eml_that_parses_back() {
    let test_db = TestDb::new();
    let outbox = tempfile::tempdir().unwrap();
    let mut s = settings();
    s.mail.transport = MailTransportKind::File;
    s.mail.outbox = outbox.path().join("outbox");
    let mailer = mailer(&s, test_db.connect().await);

    let outcome = mailer
        .send(confirmation_mail("emilie@example.fr"))
        .await
        .unwrap();
    assert_eq!(outcome.status, DeliveryStatus::Sent);
    assert_eq!(outcome.attempts, 1);

    let files: Vec<_> = std::fs::read_dir(&s.mail.outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.ends_with(&format!(
            "-emilie@example.fr-payment_confirmation-{}.eml",
            &outcome.delivery_id[..8]
        )),
        "{name}"
    );
    let mail = parse_mail(&std::fs::read(&files[0]).unwrap());
    let rendered = mailer.templates().render(&confirmation(true)).unwrap();
    assert_eq!(mail.subject, rendered.subject);
    assert_eq!(mail.header("To"), Some("emilie@example.fr"));
    assert_eq!(
        mail.text.as_deref().map(str::trim_end),
        Some(rendered.text.trim_end())
    );
    assert_eq!(
        mail.html.as_deref().map(str::trim_end),
        Some(rendered.html.trim_end())
    );
    assert_eq!(mail.attachments.len(), 1);
    assert_eq!(
        mail.attachments[0].filename.as_deref(),
        Some("FAC-2026-000001.pdf")
    );
    assert_eq!(mail.attachments[0].content_type, "application/pdf");
    assert_eq!(mail.attachments[0].bytes, pdf_bytes());
}

#[tokio::test]
async fn bad_settings_are_refused() {
    let test_db = TestDb::new();
    let db = test_db.connect().await;
    let mut s = settings();
    s.mail.from = "facturation chez example.fr".into();
    let err = Mailer::new(&s.mail, &s.app, db.clone())
        .err()
        .expect("refused");
    assert!(
        matches!(err, MailError::Config(ref m) if m.contains("mail.from")),
        "{err}"
    );
    let mut s = settings();
    s.mail.transport = MailTransportKind::Smtp;
    s.mail.smtp_url = "smtp://127.0.0.1:25?tls=sometimes".into();
    let err = Mailer::new(&s.mail, &s.app, db).err().expect("refused");
    assert!(
        matches!(err, MailError::Config(ref m) if m.contains("mail.smtp_url")),
        "{err}"
    );
}
