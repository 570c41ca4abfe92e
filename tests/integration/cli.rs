//! The development commands against a running server: create an order, pay it with a
//! signed simulated event, replay the event — one invoice, one mail.

use std::process::{Command, Output};
use std::time::Duration;

use facture_core::{events, invoices, orders};

use crate::helpers::{eventually, spawn_app, until_events_with_status, TestApp, SECRETS};

/// Runs the facture binary against the app's database, off the actix thread.
async fn facture(app: &TestApp, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_facture"));
    cmd.current_dir(app.dir.path())
        .env("FACTURE__DATABASE__URL", app.test_db.url())
        .env("FACTURE__STRIPE__WEBHOOK_SECRETS", SECRETS[0])
        .args(args);
    let out = actix_web::rt::task::spawn_blocking(move || cmd.output().expect("facture runs"))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn line_after(out: &Output, prefix: &str) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
        .unwrap_or_else(|| {
            panic!(
                "no `{prefix}` line in {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
}

fn outbox_mails(app: &TestApp, to: &str) -> usize {
    std::fs::read_dir(&app.settings.mail.outbox)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().contains(to))
                .count()
        })
        .unwrap_or(0)
}

#[actix_web::test]
async fn orders_create_then_simulate_payment_then_replay_invoices_once() {
    let app = spawn_app().await;
    let out = facture(
        &app,
        &[
            "orders",
            "create",
            "--email",
            "cli@example.fr",
            "--title",
            "Correction",
            "--amount-cents",
            "4500",
        ],
    )
    .await;
    let commande = line_after(&out, "commande ");
    let session = line_after(&out, "session ");

    let out = facture(
        &app,
        &[
            "simulate-payment",
            "--session",
            &session,
            "--url",
            &app.address,
        ],
    )
    .await;
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(printed.contains("200"), "{printed}");
    let event_id = printed.split(':').next().unwrap().to_owned();

    let done = || async {
        let c = orders::find(&app.db, &commande).await.unwrap()?;
        (c.pipeline.as_deref() == Some("done")).then_some(())
    };
    eventually(
        "the simulated payment to be invoiced",
        Duration::from_secs(30),
        done,
    )
    .await;
    let invoice = invoices::find_by_commande(&app.db, &commande)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(invoice.amount_cents, 4500);
    eventually(
        "the customer mail in the outbox",
        Duration::from_secs(30),
        || async { (outbox_mails(&app, "cli@example.fr") == 1).then_some(()) },
    )
    .await;

    let out = facture(&app, &["replay", "--event", &event_id]).await;
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("1 event(s)"));
    until_events_with_status(
        &app.db,
        events::status::PROCESSED,
        1,
        Duration::from_secs(30),
    )
    .await;
    let again = invoices::find_by_commande(&app.db, &commande)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, invoice.id);
    assert_eq!(outbox_mails(&app, "cli@example.fr"), 1, "no second mail");
}

#[actix_web::test]
async fn orders_create_refuses_a_bad_amount_with_a_clear_error() {
    let app = spawn_app().await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_facture"));
    cmd.current_dir(app.dir.path())
        .env("FACTURE__DATABASE__URL", app.test_db.url())
        .args([
            "orders",
            "create",
            "--email",
            "x@example.fr",
            "--title",
            "T",
            "--amount-cents",
            "-5",
        ]);
    let out = actix_web::rt::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("amount-cents"));
}
