//! The engine end to end: a signed payment becomes a paid order, one numbered invoice, a
//! stored PDF, a mail with the PDF received by a real SMTP server, and an admin notice —
//! exactly once, whatever Stripe's redeliveries, and across a restart.

use std::collections::BTreeSet;
use std::time::Duration;

use facture_core::db::models::{Commande, Invoice};
use facture_core::events;
use facture_core::invoices;
use facture_core::mail::Deliveries;
use facture_core::notifications::NotificationStore;
use facture_core::orders::{self, step, NewOrder, NewPendingOrder};
use facture_core::storage::sha256_hex;
use facture_core::testkit::smtp::{SinkMode, SmtpSink};

use crate::helpers::{
    eventually, spawn_app_on, spawn_app_with, until_events_with_status, with_smtp, TestApp,
};
use crate::stripe::{completed, evt, session, session_event};

const WAIT: Duration = Duration::from_secs(30);

async fn customer_order(app: &TestApp, email: &str, amount: i64) -> Commande {
    orders::create_order(
        &app.db,
        &NewOrder {
            email: email.into(),
            prenom: "Émilie".into(),
            nom: "Durand".into(),
            titre: "Correction d’un roman".into(),
            description: "Relecture orthotypographique, 320 pages.".into(),
            amount_cents: amount,
            session_id: session(),
        },
    )
    .await
    .expect("order created")
}

fn session_of(c: &Commande) -> String {
    c.stripe_session_id.clone().expect("session id")
}

/// Waits until the order's pipeline is done and returns its invoice.
async fn invoiced(app: &TestApp, commande_id: &str) -> Invoice {
    eventually("the order's pipeline to finish", WAIT, || async {
        let c = orders::find(&app.db, commande_id).await.unwrap()?;
        (c.pipeline.as_deref() == Some(step::DONE)).then_some(())
    })
    .await;
    invoices::find_by_commande(&app.db, commande_id)
        .await
        .unwrap()
        .expect("an invoice")
}

fn stored_pdf(app: &TestApp, invoice: &Invoice) -> Vec<u8> {
    let path = app
        .settings
        .storage
        .root
        .join(invoice.pdf_path.as_deref().expect("pdf path"));
    std::fs::read(path).expect("the PDF is on disk")
}

#[actix_web::test]
async fn a_paid_checkout_is_invoiced_stored_mailed_and_notified() {
    let smtp = SmtpSink::start().await;
    let app = spawn_app_with(with_smtp(&smtp)).await;
    let order = customer_order(&app, "emilie@example.fr", 12_000).await;

    let (status, _) = app
        .deliver(completed(&evt(), &session_of(&order), 12_000))
        .await;
    assert_eq!(status, 200);

    let invoice = invoiced(&app, &order.id).await;
    let paid = orders::find(&app.db, &order.id).await.unwrap().unwrap();
    assert_eq!(paid.payment_status, "paid");
    assert_eq!(paid.statut, "EN_COURS");
    let year = chrono::Utc::now().format("%Y");
    assert_eq!(invoice.number, format!("FAC-{year}-000001"));
    assert_eq!((invoice.amount_cents, invoice.tax_cents), (12_000, 2_000));
    assert_eq!(invoice.status, "SENT");

    let pdf = stored_pdf(&app, &invoice);
    assert!(pdf.starts_with(b"%PDF-"));
    assert_eq!(
        invoice.pdf_sha256.as_deref(),
        Some(sha256_hex(&pdf).as_str())
    );

    let mails = smtp.wait_for(2, WAIT).await;
    let to_customer: Vec<_> = mails
        .iter()
        .filter(|m| m.recipients == ["emilie@example.fr"])
        .collect();
    assert_eq!(to_customer.len(), 1, "one mail to the customer");
    let mail = to_customer[0].parse();
    assert!(mail.subject.contains(&invoice.number), "{}", mail.subject);
    let attachment = &mail.attachments[0];
    assert_eq!(attachment.content_type, "application/pdf");
    assert_eq!(
        attachment.filename.as_deref(),
        Some(format!("{}.pdf", invoice.number).as_str())
    );
    assert_eq!(attachment.bytes, pdf, "the attachment is the stored PDF");
    assert!(
        mails
            .iter()
            .any(|m| m.recipients == [app.settings.mail.admin.clone()]),
        "the admin is told"
    );

    let store = NotificationStore::new(app.db.clone());
    let notice = store
        .find_by_dedupe_key(&format!("payment:{}", order.id))
        .await
        .unwrap()
        .expect("an admin notification");
    assert_eq!(notice.kind, "PAYMENT");
}

#[actix_web::test]
async fn a_guest_checkout_creates_the_account_and_sends_the_activation_mail() {
    let smtp = SmtpSink::start().await;
    let app = spawn_app_with(with_smtp(&smtp)).await;
    let guest_session = session();
    orders::create_pending_order(
        &app.db,
        &NewPendingOrder {
            prenom: "Jeanne".into(),
            nom: "Martin".into(),
            email: "jeanne@example.fr".into(),
            telephone: Some("+33 6 12 34 56 78".into()),
            adresse: Some("3 rue Racine\n69002 Lyon".into()),
            titre: "Relecture de mémoire".into(),
            description: "Mémoire de master, 80 pages".into(),
            amount_cents: 4_990,
            nombre_pages: Some(80),
            session_id: guest_session.clone(),
        },
    )
    .await
    .unwrap();

    assert_eq!(
        app.deliver(completed(&evt(), &guest_session, 4_990))
            .await
            .0,
        200
    );

    let order = eventually("the guest's order", WAIT, || async {
        orders::find_by_session(&app.db, &guest_session)
            .await
            .unwrap()
    })
    .await;
    let invoice = invoiced(&app, &order.id).await;
    let user = orders::find_user(&app.db, &order.user_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.email, "jeanne@example.fr");
    assert!(!user.is_active, "a guest account waits for activation");
    assert_eq!(order.statut, "PAYEE");
    assert!(order.is_guest);

    let mails = smtp.wait_for(3, WAIT).await;
    let to_jeanne: Vec<_> = mails
        .iter()
        .filter(|m| m.recipients == ["jeanne@example.fr"])
        .map(|m| m.parse())
        .collect();
    assert_eq!(to_jeanne.len(), 2, "activation + invoice");
    let activation = to_jeanne
        .iter()
        .find(|m| m.attachments.is_empty())
        .expect("the activation mail");
    assert!(activation.text.as_deref().unwrap_or("").contains("token="));
    assert!(to_jeanne
        .iter()
        .any(|m| m.subject.contains(&invoice.number)));

    // A second guest checkout with the same email reuses the account: no activation mail.
    let again = session();
    orders::create_pending_order(
        &app.db,
        &NewPendingOrder {
            prenom: "Jeanne".into(),
            nom: "Martin".into(),
            email: "jeanne@example.fr".into(),
            telephone: None,
            adresse: None,
            titre: "Seconde relecture".into(),
            description: "Corrections".into(),
            amount_cents: 2_000,
            nombre_pages: None,
            session_id: again.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(app.deliver(completed(&evt(), &again, 2_000)).await.0, 200);
    let second = eventually("the second order", WAIT, || async {
        orders::find_by_session(&app.db, &again).await.unwrap()
    })
    .await;
    invoiced(&app, &second.id).await;
    assert_eq!(second.user_id, user.id, "same customer, no new account");
    let deliveries = Deliveries::new(app.db.clone());
    let activations: Vec<_> = deliveries
        .list(None, 1, 100)
        .await
        .unwrap()
        .0
        .into_iter()
        .filter(|d| d.kind == "account_activation")
        .collect();
    assert_eq!(activations.len(), 1);
}

#[actix_web::test]
async fn fifty_payments_delivered_three_times_shuffled_give_fifty_gapless_invoices() {
    let app = spawn_app_with(|f| f).await;
    let mut orders_made = Vec::new();
    let mut bodies = Vec::new();
    for i in 0..50 {
        let order = customer_order(&app, &format!("client{i}@example.fr"), 1_000 + i).await;
        let body = completed(&evt(), &session_of(&order), 1_000 + i);
        for _ in 0..3 {
            bodies.push((facture_core::random_hex(4), body.clone()));
        }
        orders_made.push(order);
    }
    bodies.sort();
    let answers =
        futures_util::future::join_all(bodies.into_iter().map(|(_, body)| app.deliver(body))).await;
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    let duplicates = answers
        .iter()
        .filter(|(_, j)| j["duplicate"] == true)
        .count();
    assert_eq!(duplicates, 100);

    let mut numbers = BTreeSet::new();
    for order in &orders_made {
        let invoice = invoiced(&app, &order.id).await;
        numbers.insert(invoice.sequence);
    }
    assert_eq!(numbers, (1..=50).collect::<BTreeSet<i64>>());
    assert_eq!(events::count_all(&app.db).await.unwrap(), 50);
}

// The gate is a std lock taken only by the renderer pool's own threads: holding it across
// this test's awaits is the point (every render waits), and nothing on this thread takes it.
#[allow(clippy::await_holding_lock)]
#[actix_web::test]
async fn webhooks_are_acknowledged_while_the_renderer_pool_is_saturated() {
    let app = spawn_app_with(|f| f).await;
    let gate = app.engine.render_gate();
    let mut made = Vec::new();
    {
        let _held = gate.hold();
        for i in 0..20 {
            let order = customer_order(&app, &format!("busy{i}@example.fr"), 5_000).await;
            let (status, _) = app
                .deliver(completed(&evt(), &session_of(&order), 5_000))
                .await;
            assert_eq!(status, 200, "acknowledged while every render is held");
            made.push(order);
        }
        // Nothing got past the renderer while it was held.
        for order in &made {
            let invoice = invoices::find_by_commande(&app.db, &order.id)
                .await
                .unwrap();
            assert!(invoice.is_none_or(|i| i.pdf_sha256.is_none()));
        }
    }
    for order in &made {
        let invoice = invoiced(&app, &order.id).await;
        assert!(invoice.pdf_sha256.is_some());
    }
}

#[actix_web::test]
async fn a_crash_between_render_and_mail_is_finished_after_restart_exactly_once() {
    let smtp = SmtpSink::start().await;
    let app = spawn_app_with(|f| with_smtp(&smtp)(f).merge(("engine.halt_before", "mail"))).await;
    let order = customer_order(&app, "crash@example.fr", 9_900).await;
    assert_eq!(
        app.deliver(completed(&evt(), &session_of(&order), 9_900))
            .await
            .0,
        200
    );
    eventually("the render step to finish", WAIT, || async {
        let c = orders::find(&app.db, &order.id).await.unwrap()?;
        (c.pipeline.as_deref() == Some(step::MAIL)).then_some(())
    })
    .await;
    let before = invoices::find_by_commande(&app.db, &order.id)
        .await
        .unwrap()
        .unwrap();
    assert!(before.pdf_sha256.is_some());
    assert!(
        smtp.messages().is_empty(),
        "nothing mailed before the crash"
    );
    let (test_db, dir) = app.stop().await;

    // A new process on the same database and folder: the sweep finishes the order.
    let app = spawn_app_on(test_db, dir, with_smtp(&smtp)).await;
    let after = invoiced(&app, &order.id).await;
    assert_eq!(after.id, before.id, "the same invoice, not a second one");
    assert_eq!(after.number, before.number);
    let mails = smtp.wait_for(2, WAIT).await;
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.recipients == ["crash@example.fr"])
            .count(),
        1,
        "one customer mail"
    );
}

#[actix_web::test]
async fn a_payment_acknowledged_just_before_a_crash_is_invoiced_after_restart() {
    let smtp = SmtpSink::start().await;
    let app = spawn_app_with(with_smtp(&smtp)).await;
    let order = customer_order(&app, "journal@example.fr", 6_600).await;
    let (test_db, dir) = app.stop().await;

    // What the receiver commits before its 200, with the process gone before anything
    // else happened: on SQLite the event is only in the acknowledgement journal.
    let id = evt();
    let body = completed(&id, &session_of(&order), 6_600);
    let db = test_db.connect().await;
    let appended = events::append_batch(
        &db,
        &[events::NewEvent {
            stripe_event_id: id,
            event_type: "checkout.session.completed".into(),
            payload: String::from_utf8(body).unwrap(),
            session_id: Some(session_of(&order)),
        }],
    )
    .await
    .unwrap();
    assert!(matches!(appended[..], [events::Appended::Inserted(_)]));
    drop(db);

    let app = spawn_app_on(test_db, dir, with_smtp(&smtp)).await;
    let invoice = invoiced(&app, &order.id).await;
    assert!(invoice.pdf_sha256.is_some());
    let mails = smtp.wait_for(2, WAIT).await;
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.recipients == ["journal@example.fr"])
            .count(),
        1,
        "one customer mail"
    );
    assert_eq!(events::count_all(&app.db).await.unwrap(), 1);
}

#[actix_web::test]
async fn admins_see_a_payment_while_their_mail_is_refused_and_get_the_mail_once_when_it_recovers() {
    let smtp = SmtpSink::start().await;
    let app = spawn_app_with(|f| with_smtp(&smtp)(f).merge(("engine.halt_before", "notify"))).await;
    let order = customer_order(&app, "admins@example.fr", 5_000).await;
    let (status, _) = app
        .deliver(completed(&evt(), &session_of(&order), 5_000))
        .await;
    assert_eq!(status, 200);
    eventually("the mail step to finish", WAIT, || async {
        let c = orders::find(&app.db, &order.id).await.unwrap()?;
        (c.pipeline.as_deref() == Some(step::NOTIFY)).then_some(())
    })
    .await;
    // The customer's mail was recorded with the step that sent it.
    let invoice = invoices::find_by_commande(&app.db, &order.id)
        .await
        .unwrap()
        .unwrap();
    let deliveries = Deliveries::new(app.db.clone());
    let to_customer = deliveries
        .find_by_dedupe_key(&format!("invoice:{}", invoice.id))
        .await
        .unwrap()
        .expect("the customer's delivery is recorded");
    assert_eq!(to_customer.status, "sent");
    assert_eq!(invoice.status, "SENT");
    let (test_db, dir) = app.stop().await;

    // Restarted while the mail server refuses: the admin mail fails and the step is parked,
    // but the payment's notification is in the app.
    smtp.set_mode(SinkMode::Tempfail451);
    let app = spawn_app_on(test_db, dir, with_smtp(&smtp)).await;
    let admin_key = format!("admin:payment:{}", order.id);
    let failed = eventually("the admin mail to fail", WAIT, || async {
        let d = deliveries.find_by_dedupe_key(&admin_key).await.unwrap()?;
        (d.status == "failed").then_some(d)
    })
    .await;
    let parked = orders::find(&app.db, &order.id).await.unwrap().unwrap();
    assert_eq!(parked.pipeline.as_deref(), Some(step::NOTIFY));
    // The bus stores the notification right after the mailer records the failure, in a
    // transaction of its own: wait for it, while the mail server still refuses.
    let store = NotificationStore::new(app.db.clone());
    let notice = eventually(
        "the notification to be stored while the mail fails",
        WAIT,
        || async {
            store
                .find_by_dedupe_key(&format!("payment:{}", order.id))
                .await
                .unwrap()
        },
    )
    .await;
    assert_eq!(notice.kind, "PAYMENT");

    // The server recovers: the admin mail goes once, on the same delivery, and the
    // notification is not stored twice.
    smtp.set_mode(SinkMode::Accept);
    eventually("the order to be done", WAIT, || async {
        let c = orders::find(&app.db, &order.id).await.unwrap()?;
        (c.pipeline.as_deref() == Some(step::DONE)).then_some(())
    })
    .await;
    let sent = deliveries
        .find_by_dedupe_key(&admin_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent.id, failed.id);
    assert_eq!(sent.status, "sent");
    assert!(sent.attempts > failed.attempts);
    let admin = app.settings.mail.admin.clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mails = smtp.messages();
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.recipients == [admin.clone()])
            .count(),
        1
    );
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.recipients == ["admins@example.fr"])
            .count(),
        1,
        "the customer was mailed once, before the restart"
    );
    let (payments, _) = store.list(false, 1, 50).await.unwrap();
    assert_eq!(
        payments.iter().filter(|n| n.kind == "PAYMENT").count(),
        1,
        "one notification for the payment"
    );
}

#[actix_web::test]
async fn a_late_failure_never_unpays_and_orphans_are_kept() {
    let app = spawn_app_with(|f| f).await;
    let order = customer_order(&app, "late@example.fr", 3_000).await;
    let s = session_of(&order);
    assert_eq!(app.deliver(completed(&evt(), &s, 3_000)).await.0, 200);
    invoiced(&app, &order.id).await;
    let failed = session_event("checkout.session.async_payment_failed", &evt(), &s, 3_000);
    assert_eq!(app.deliver(failed).await.0, 200);
    let orphan = completed(&evt(), &session(), 777);
    assert_eq!(app.deliver(orphan).await.0, 200);
    until_events_with_status(&app.db, events::status::RECEIVED, 0, WAIT).await;
    let order = orders::find(&app.db, &order.id).await.unwrap().unwrap();
    assert_eq!(order.payment_status, "paid");
    assert_eq!(
        events::count_by_status(&app.db, events::status::ORPHAN)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        events::count_by_status(&app.db, events::status::IGNORED)
            .await
            .unwrap(),
        1
    );
}

#[actix_web::test]
async fn an_order_actor_stops_once_its_work_is_done_and_a_later_event_starts_a_new_one() {
    // An hour of idle time: only stopping when the last message is handled frees the actor.
    let app = spawn_app_with(|f| f.merge(("engine.order_idle_secs", 3600))).await;
    let order = customer_order(&app, "stops@example.fr", 2_900).await;
    let s = session_of(&order);
    assert_eq!(app.deliver(completed(&evt(), &s, 2_900)).await.0, 200);
    invoiced(&app, &order.id).await;
    let no_actor_left = || async { (app.engine.live_orders().await.unwrap() == 0).then_some(()) };
    eventually("the order's actor to stop", WAIT, no_actor_left).await;

    // A later event for the same order is handled by a new actor, which stops in turn.
    let late = session_event("checkout.session.async_payment_failed", &evt(), &s, 2_900);
    assert_eq!(app.deliver(late).await.0, 200);
    until_events_with_status(&app.db, events::status::IGNORED, 1, WAIT).await;
    eventually("the new actor to stop", WAIT, no_actor_left).await;
    let order = orders::find(&app.db, &order.id).await.unwrap().unwrap();
    assert_eq!(order.payment_status, "paid");
}

#[actix_web::test]
async fn a_failure_before_payment_marks_the_order_failed_then_payment_wins() {
    let app = spawn_app_with(|f| f).await;
    let order = customer_order(&app, "async@example.fr", 4_000).await;
    let s = session_of(&order);
    let failed = session_event("checkout.session.async_payment_failed", &evt(), &s, 4_000);
    assert_eq!(app.deliver(failed).await.0, 200);
    eventually("the failure to be applied", WAIT, || async {
        let c = orders::find(&app.db, &order.id).await.unwrap()?;
        (c.payment_status == "failed").then_some(())
    })
    .await;
    let succeeded = session_event(
        "checkout.session.async_payment_succeeded",
        &evt(),
        &s,
        4_000,
    );
    assert_eq!(app.deliver(succeeded).await.0, 200);
    let invoice = invoiced(&app, &order.id).await;
    assert_eq!(invoice.amount_cents, 4_000);
}

#[actix_web::test]
async fn sessions_from_other_sources_are_acknowledged_and_ignored() {
    let app = spawn_app_with(|f| f.merge(("stripe.allowed_sources", "correction-site"))).await;
    let order = customer_order(&app, "source@example.fr", 1_500).await;
    assert_eq!(
        app.deliver(completed(&evt(), &session_of(&order), 1_500))
            .await
            .0,
        200
    );
    until_events_with_status(&app.db, events::status::IGNORED, 1, WAIT).await;
    let order = orders::find(&app.db, &order.id).await.unwrap().unwrap();
    assert_eq!(order.payment_status, "pending");
}

#[actix_web::test]
async fn a_mail_server_refusing_for_a_while_parks_the_step_and_the_invoice_goes_out_when_it_recovers(
) {
    let smtp = SmtpSink::start().await;
    smtp.set_mode(SinkMode::Tempfail451);
    let app = spawn_app_with(with_smtp(&smtp)).await;
    let order = customer_order(&app, "patience@example.fr", 4_200).await;
    assert_eq!(
        app.deliver(completed(&evt(), &session_of(&order), 4_200))
            .await
            .0,
        200
    );

    // Every in-process retry fails (451): the mail step is parked, not dead-lettered.
    let parked = eventually("the mail step to be parked", WAIT, || async {
        let c = orders::find(&app.db, &order.id).await.unwrap()?;
        (c.pipeline.as_deref() == Some(step::MAIL) && c.next_attempt_at.is_some()).then_some(c)
    })
    .await;
    assert_eq!(
        parked.pipeline_error, None,
        "a transient outage is no dead letter"
    );
    let steps = orders::steps_of(&app.db, &order.id).await.unwrap();
    let mail_step = steps
        .iter()
        .find(|s| s.step == step::MAIL)
        .expect("mail step recorded");
    assert_eq!(mail_step.status, "retrying");
    assert!(mail_step
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("451"));
    assert!(smtp.messages().is_empty());

    // The server recovers: the sweep drives the parked step again and the invoice goes out.
    smtp.set_mode(SinkMode::Accept);
    let invoice = invoiced(&app, &order.id).await;
    let mails = smtp.wait_for(2, WAIT).await;
    let to_customer: Vec<_> = mails
        .iter()
        .filter(|m| m.recipients.iter().any(|r| r == "patience@example.fr"))
        .collect();
    assert_eq!(
        to_customer.len(),
        1,
        "one invoice mail once the server is back"
    );
    assert!(to_customer[0].parse().subject.contains(&invoice.number));
    let done = orders::find(&app.db, &order.id).await.unwrap().unwrap();
    assert_eq!(done.next_attempt_at, None);
    assert_eq!(done.pipeline_error, None);
}

// The gate is a std lock taken only by the renderer pool's own threads (see above).
#[allow(clippy::await_holding_lock)]
#[actix_web::test]
async fn at_most_max_active_orders_are_worked_on_at_once_the_rest_wait_their_turn() {
    let app = spawn_app_with(|f| f.merge(("engine.max_active_orders", 2))).await;
    let gate = app.engine.render_gate();
    let mut made = Vec::new();
    {
        let _held = gate.hold();
        for i in 0..10 {
            let order = customer_order(&app, &format!("turn{i}@example.fr"), 4_000).await;
            let (status, _) = app
                .deliver(completed(&evt(), &session_of(&order), 4_000))
                .await;
            assert_eq!(status, 200, "every payment is acknowledged");
            made.push(order);
        }
        // Two orders get in and stop at their render; the other eight events wait, unapplied.
        let paid = || async {
            let mut n = 0;
            for order in &made {
                let c = orders::find(&app.db, &order.id).await.unwrap().unwrap();
                n += usize::from(c.payment_status == "paid");
            }
            n
        };
        eventually("two orders to be worked on", WAIT, || async {
            (paid().await == 2).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            paid().await,
            2,
            "no third order got in while two are active"
        );
        assert_eq!(
            events::count_by_status(&app.db, events::status::RECEIVED)
                .await
                .unwrap(),
            8,
            "the other events wait their turn, stored"
        );
    }
    for order in &made {
        let invoice = invoiced(&app, &order.id).await;
        assert!(invoice.pdf_sha256.is_some());
    }
}

#[actix_web::test]
async fn a_backlog_longer_than_one_sweep_batch_is_finished_without_waiting_for_the_interval() {
    // Six paid orders whose pipelines stop before `invoice`, as after a crash.
    let app = spawn_app_with(|f| f.merge(("engine.halt_before", "invoice"))).await;
    let mut made = Vec::new();
    for i in 0..6 {
        let order = customer_order(&app, &format!("batch{i}@example.fr"), 3_900).await;
        let paid = completed(&evt(), &session_of(&order), 3_900);
        assert_eq!(app.deliver(paid).await.0, 200);
        made.push(order);
    }
    for order in &made {
        eventually("the pipeline to halt before invoice", WAIT, || async {
            let c = orders::find(&app.db, &order.id).await.unwrap()?;
            (c.pipeline.as_deref() == Some(step::INVOICE)).then_some(())
        })
        .await;
    }
    let (test_db, dir) = app.stop().await;

    // The restart's sweep reads two pipelines at a time and no periodic sweep comes: the
    // registry must sweep again by itself after each full batch.
    let app = spawn_app_on(test_db, dir, |f| {
        f.merge(("engine.sweep_batch", 2))
            .merge(("engine.sweep_interval_secs", 3600))
            .merge(("engine.order_idle_secs", 1))
    })
    .await;
    for order in &made {
        let invoice = invoiced(&app, &order.id).await;
        assert!(invoice.pdf_sha256.is_some(), "every order gets its invoice");
    }
}

// The gate is a std lock taken only by the renderer pool's own threads (see above).
#[allow(clippy::await_holding_lock)]
#[actix_web::test]
async fn past_max_live_orders_events_wait_in_the_database_and_are_routed_as_actors_stop() {
    // No periodic sweep during the test: only the registry's own sweep, run when half the
    // actors have stopped, can route what was left in the database.
    let app = spawn_app_with(|f| {
        f.merge(("engine.max_active_orders", 1))
            .merge(("engine.max_live_orders", 2))
            .merge(("engine.sweep_interval_secs", 3600))
            .merge(("engine.order_idle_secs", 1))
    })
    .await;
    let gate = app.engine.render_gate();
    let mut made = Vec::new();
    {
        let _held = gate.hold();
        for i in 0..6 {
            let order = customer_order(&app, &format!("live{i}@example.fr"), 4_500).await;
            let (status, _) = app
                .deliver(completed(&evt(), &session_of(&order), 4_500))
                .await;
            assert_eq!(status, 200, "every payment is acknowledged, actor or not");
            made.push(order);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let live = app.engine.live_orders().await.unwrap();
        assert!(
            (1..=2).contains(&live),
            "six payments waiting, at most two actors alive: {live}"
        );
    }
    for order in &made {
        let invoice = invoiced(&app, &order.id).await;
        assert!(invoice.pdf_sha256.is_some(), "every order gets its invoice");
    }
}

/// A thread's niceness from its `stat` file (Linux: field 19).
fn niceness_in(stat: &str) -> i32 {
    // The name may hold spaces: the fields that follow start after its closing ')'.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(16).unwrap().parse().unwrap()
}

/// `read` applied to one `/proc` file of every thread of this process.
fn per_thread<T>(file: &str, read: impl Fn(&str) -> Option<T>) -> Vec<T> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        // A thread that ended meanwhile has no file left to read.
        .filter_map(|task| std::fs::read_to_string(task.path().join(file)).ok())
        .filter_map(|text| read(&text))
        .collect()
}

/// Niceness of every thread of this process.
fn thread_niceness() -> Vec<i32> {
    per_thread("stat", |stat| Some(niceness_in(stat)))
}

#[actix_web::test]
async fn the_pipeline_mail_and_renderer_threads_run_at_the_background_priority() {
    // 9: no other test's engine uses it (the default is 19).
    let app = spawn_app_with(|f| {
        f.merge(("engine.background_nice", 9))
            .merge(("engine.render_pool", 2))
    })
    .await;
    let order = customer_order(&app, "nice@example.fr", 2_500).await;
    let paid = completed(&evt(), &session_of(&order), 2_500);
    assert_eq!(app.deliver(paid).await.0, 200);
    invoiced(&app, &order.id).await;

    // The pipeline's and the mail's database arbiters, and the two renderer threads.
    let background = thread_niceness().into_iter().filter(|n| *n == 9).count();
    assert!(background >= 4, "{background} threads at niceness 9");
    // Per thread, not the whole process: this test's own thread keeps the normal priority.
    let own = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    assert_eq!(niceness_in(&own), 0);
}

/// The time slice (ns) the kernel gives a thread, from its `sched` file (Linux: `se.slice`).
fn slice_in(sched: &str) -> Option<u64> {
    let line = sched.lines().find(|l| l.starts_with("se.slice"))?;
    line.split(':').nth(1)?.trim().parse().ok()
}

/// Slice of every thread of this process.
fn thread_slices() -> Vec<u64> {
    per_thread("sched", slice_in)
}

#[actix_web::test]
async fn the_threads_an_acknowledgement_waits_on_ask_for_the_short_slice() {
    // 321 µs: no other test's engine uses it (the default is 100).
    let app = spawn_app_with(|f| f.merge(("engine.ack_slice_us", 321))).await;
    let (status, _) = app.deliver(completed(&evt(), &session(), 1_000)).await;
    assert_eq!(status, 200);

    // The receiver's thread, and the HTTP worker that answered (the others start with it).
    let short = thread_slices()
        .into_iter()
        .filter(|ns| *ns == 321_000)
        .count();
    assert!(short >= 2, "{short} threads with a 321 µs slice");
    // Only those: this test's own thread keeps the kernel's default.
    let own = std::fs::read_to_string("/proc/thread-self/sched").unwrap();
    assert_ne!(slice_in(&own), Some(321_000));
    assert!(slice_in(&own).is_some(), "this kernel reports slices");
}
